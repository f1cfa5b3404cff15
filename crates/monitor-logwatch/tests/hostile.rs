//! Paths that name something other than a log file: the watcher, on its own thread
//! ([`monitor_logwatch::spawn`]), reports a problem once and never blocks on it.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use monitor_logwatch::{LogEvent, LogWatchConfig, PatternSpec, ReadFrom, WatchedFile};
use monitor_wire::{CheckId, Subsystem};
use regex::bytes::Regex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);

fn watched(path: &Path, check: &str) -> WatchedFile {
    WatchedFile {
        path: path.to_path_buf(),
        checks: vec![PatternSpec {
            check: CheckId::new(Subsystem::Log, check),
            regex: Regex::new("ERROR").unwrap(),
            lines_before: 0,
            lines_after: 0,
            details: Default::default(),
            from: ReadFrom::Start,
        }],
        resume: None,
        seen_by: Default::default(),
    }
}

fn mkfifo(path: &Path) {
    let name = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
}

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

async fn next_event(events: &mut mpsc::Receiver<LogEvent>) -> LogEvent {
    tokio::time::timeout(DEADLINE, events.recv())
        .await
        .expect("an event before the deadline")
        .expect("watcher still running")
}

/// Events until a match of `check`, which is returned last.
async fn events_until_match(events: &mut mpsc::Receiver<LogEvent>, check: &str) -> Vec<LogEvent> {
    let mut seen = Vec::new();
    loop {
        let event = next_event(events).await;
        let done = matches!(&event, LogEvent::Read { matches, .. } if matches.iter().any(|found| found.check.name == check));
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn problems(events: &[LogEvent]) -> Vec<(PathBuf, Option<String>)> {
    events
        .iter()
        .filter_map(|event| match event {
            LogEvent::Problem { path, message } => Some((path.clone(), Some(message.clone()))),
            LogEvent::ProblemResolved { path } => Some((path.clone(), None)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_fifo_in_place_of_the_file_is_one_problem_until_a_regular_file_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let sentinel = dir.path().join("sentinel.log");
    fs::write(&path, "").unwrap();
    fs::write(&sentinel, "").unwrap();
    let (configs, config_receiver) = mpsc::channel(4);
    let (event_sender, mut events) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let finished =
        monitor_logwatch::spawn(config_receiver, event_sender, shutdown.clone()).unwrap();
    configs
        .send(LogWatchConfig {
            generation: 1,
            files: vec![watched(&path, "app"), watched(&sentinel, "sentinel")],
            ..LogWatchConfig::default()
        })
        .await
        .unwrap();
    while !matches!(next_event(&mut events).await, LogEvent::CaughtUp { .. }) {}

    // No writer: a blocking open would hold the watcher for ever.
    fs::remove_file(&path).unwrap();
    mkfifo(&path);
    let message = loop {
        if let LogEvent::Problem {
            path: reported,
            message,
        } = next_event(&mut events).await
        {
            assert_eq!(reported, path);
            break message;
        }
    };
    assert_eq!(
        message,
        format!(
            "{0} is a FIFO, not a regular file, and is not read; point the check at a log file, or replace {0} with one",
            path.display()
        )
    );
    // Changes to the FIFO are looked at, and the same problem is not sent again.
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    append(&sentinel, "ERROR one\n");
    assert_eq!(
        problems(&events_until_match(&mut events, "sentinel").await),
        vec![]
    );

    // A regular file in its place is followed from its start.
    let fresh = dir.path().join("fresh");
    fs::write(&fresh, "ERROR in the new file\n").unwrap();
    fs::rename(&fresh, &path).unwrap();
    let seen = events_until_match(&mut events, "app").await;
    assert_eq!(problems(&seen), vec![(path.clone(), None)]);
    let Some(LogEvent::Read { matches, .. }) = seen.last() else {
        unreachable!()
    };
    assert_eq!(matches[0].line.data, "ERROR in the new file");

    shutdown.cancel();
    tokio::time::timeout(DEADLINE, finished)
        .await
        .expect("the watcher's thread ends")
        .expect("it reports how")
        .expect("without an error");
}
