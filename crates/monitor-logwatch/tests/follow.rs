//! The watcher against real files: real writes, renames, truncation and deletion, with the
//! real inotify. Every wait is for an event, with a deadline.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use monitor_logwatch::{LogEvent, LogMatch, LogWatchConfig, PatternSpec, ReadFrom, WatchedFile};
use monitor_source::FilePosition;
use monitor_wire::{CheckId, Subsystem};
use regex::bytes::Regex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);

struct Harness {
    configs: mpsc::Sender<LogWatchConfig>,
    events: mpsc::Receiver<LogEvent>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    last_position: Option<FilePosition>,
}

impl Harness {
    fn start() -> Harness {
        let (config_sender, config_receiver) = mpsc::channel(4);
        let (event_sender, event_receiver) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                monitor_logwatch::run(config_receiver, event_sender, shutdown)
                    .await
                    .expect("watcher runs");
            }
        });
        Harness {
            configs: config_sender,
            events: event_receiver,
            shutdown,
            task,
            last_position: None,
        }
    }

    async fn follow(&mut self, files: Vec<WatchedFile>) {
        self.configs
            .send(LogWatchConfig {
                generation: 1,
                files,
                ..LogWatchConfig::default()
            })
            .await
            .unwrap();
        self.wait_caught_up().await;
    }

    /// [`Harness::follow`], collecting the matches read until the config is live.
    async fn follow_and_collect(&mut self, config: LogWatchConfig) -> Vec<LogMatch> {
        self.configs.send(config).await.unwrap();
        let mut found = Vec::new();
        loop {
            match self.next_event().await {
                LogEvent::CaughtUp { .. } => return found,
                LogEvent::Read { matches, .. } => found.extend(matches),
                LogEvent::Problem { .. } | LogEvent::ProblemResolved { .. } => {}
            }
        }
    }

    async fn wait_caught_up(&mut self) {
        loop {
            match self.next_event().await {
                LogEvent::CaughtUp { .. } => return,
                LogEvent::Read { .. }
                | LogEvent::Problem { .. }
                | LogEvent::ProblemResolved { .. } => {}
            }
        }
    }

    async fn next_event(&mut self) -> LogEvent {
        let event = tokio::time::timeout(DEADLINE, self.events.recv())
            .await
            .expect("an event before the deadline")
            .expect("watcher still running");
        if let LogEvent::Read {
            position: Some(position),
            ..
        } = &event
        {
            self.last_position = Some(*position);
        }
        event
    }

    /// Collect matches until `count` have arrived.
    async fn matches(&mut self, count: usize) -> Vec<LogMatch> {
        let mut found = Vec::new();
        while found.len() < count {
            if let LogEvent::Read { matches, .. } = self.next_event().await {
                found.extend(matches);
            }
        }
        assert_eq!(found.len(), count, "more matches than expected: {found:#?}");
        found
    }

    /// Wait until the reported position reaches `offset` (all bytes so far were read).
    async fn read_up_to(&mut self, offset: u64) {
        while self
            .last_position
            .is_none_or(|position| position.offset < offset)
        {
            if let LogEvent::Read { matches, .. } = self.next_event().await {
                assert!(matches.is_empty(), "unexpected matches: {matches:#?}");
            }
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn check(name: &str) -> CheckId {
    CheckId::new(Subsystem::Log, name)
}

/// `path` read by checks `(name, pattern)` that read what the file holds; a `resume`
/// position covers all of them.
fn watched(path: &Path, patterns: &[(&str, &str)], resume: Option<FilePosition>) -> WatchedFile {
    let from = patterns
        .iter()
        .map(|(name, pattern)| (*name, *pattern, ReadFrom::Start));
    let mut file = watched_from(path, &from.collect::<Vec<_>>(), resume);
    file.seen_by = file
        .checks
        .iter()
        .map(|pattern| pattern.check.clone())
        .collect();
    file
}

/// `path` read by checks `(name, pattern, from)`; a `resume` position covers none of them.
fn watched_from(
    path: &Path,
    patterns: &[(&str, &str, ReadFrom)],
    resume: Option<FilePosition>,
) -> WatchedFile {
    WatchedFile {
        path: path.to_path_buf(),
        checks: patterns
            .iter()
            .map(|(name, pattern, from)| PatternSpec {
                check: check(name),
                regex: Regex::new(pattern).unwrap(),
                lines_before: 2,
                lines_after: 2,
                details: Default::default(),
                from: *from,
            })
            .collect(),
        resume,
        seen_by: Default::default(),
    }
}

fn append(path: &Path, text: &[u8]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text).unwrap();
}

fn data(found: &[LogMatch]) -> Vec<(String, u64)> {
    found
        .iter()
        .map(|found| (found.line.data.clone(), found.line.line_number))
        .collect()
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("app.log")
}

#[tokio::test]
async fn new_lines_match_with_context_and_old_lines_never_do_from_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "ERROR old one\nfine\n").unwrap();
    let mut harness = Harness::start();
    harness
        .follow(vec![watched_from(
            &path,
            &[("errors", "ERROR", ReadFrom::End)],
            None,
        )])
        .await;

    append(&path, b"one\ntwo\nERROR: Crashing...\nthree\nfour\nfive\n");
    let found = harness.matches(1).await;
    assert_eq!(data(&found), vec![("ERROR: Crashing...".to_string(), 5)]);
    let before: Vec<_> = found[0]
        .before
        .iter()
        .map(|line| (line.data.as_str(), line.line_number))
        .collect();
    assert_eq!(before, vec![("one", 3), ("two", 4)]);
    let after: Vec<_> = found[0]
        .after
        .iter()
        .map(|line| (line.data.as_str(), line.line_number))
        .collect();
    assert_eq!(after, vec![("three", 6), ("four", 7)]);
    assert_eq!(found[0].check, check("errors"));
    harness.stop().await;
}

#[tokio::test]
async fn a_line_split_across_writes_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "").unwrap();
    let mut harness = Harness::start();
    harness
        .follow(vec![watched(&path, &[("errors", "ERROR here")], None)])
        .await;

    append(&path, b"the ERR");
    // The first half is read and held: nothing matches, the position stays before it.
    let event = harness.next_event().await;
    assert!(
        matches!(&event, LogEvent::Read { matches, position: Some(position), .. } if matches.is_empty() && position.offset == 0)
    );
    append(&path, b"OR here\n");
    assert_eq!(
        data(&harness.matches(1).await),
        vec![("the ERROR here".to_string(), 1)]
    );
    assert_eq!(harness.last_position.unwrap().offset, 15);
    harness.stop().await;
}

#[tokio::test]
async fn many_checks_on_one_file_each_see_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "").unwrap();
    let mut harness = Harness::start();
    harness
        .follow(vec![watched(
            &path,
            &[("errors", "ERROR"), ("warnings", "WARN|ERROR")],
            None,
        )])
        .await;
    append(&path, b"WARN a\nERROR b\n");
    let found = harness.matches(3).await;
    let mut seen: Vec<_> = found
        .iter()
        .map(|found| (found.check.name.clone(), found.line.data.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("errors".into(), "ERROR b".into()),
            ("warnings".into(), "ERROR b".into()),
            ("warnings".into(), "WARN a".into())
        ]
    );
    harness.stop().await;
}

#[tokio::test]
async fn rotation_by_rename_finishes_the_old_file_then_follows_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "").unwrap();
    let mut harness = Harness::start();
    harness
        .follow(vec![watched(&path, &[("errors", "ERROR")], None)])
        .await;

    // A writer that keeps its descriptor, as Python's logging does.
    let mut writer = OpenOptions::new().append(true).open(&path).unwrap();
    writer.write_all(b"ERROR 1\n").unwrap();
    assert_eq!(
        data(&harness.matches(1).await),
        vec![("ERROR 1".to_string(), 1)]
    );

    fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    writer
        .write_all(b"ERROR 2 still in the old file\n")
        .unwrap();
    assert_eq!(
        data(&harness.matches(1).await),
        vec![("ERROR 2 still in the old file".to_string(), 2)]
    );

    fs::write(&path, "").unwrap();
    writer.write_all(b"ERROR 3 old file again\n").unwrap();
    append(&path, b"ERROR 4 new file\n");
    let mut found = data(&harness.matches(2).await);
    found.sort();
    assert_eq!(
        found,
        vec![
            ("ERROR 3 old file again".to_string(), 3),
            ("ERROR 4 new file".to_string(), 1)
        ]
    );
    harness.stop().await;
}

#[tokio::test]
async fn truncation_in_place_starts_over_from_the_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "").unwrap();
    let mut harness = Harness::start();
    harness
        .follow(vec![watched(&path, &[("errors", "ERROR")], None)])
        .await;

    append(
        &path,
        b"a fairly long line that makes the file bigger than what follows\nERROR before\n",
    );
    assert_eq!(
        data(&harness.matches(1).await),
        vec![("ERROR before".to_string(), 2)]
    );
    // copytruncate: the file keeps its inode and shrinks to nothing.
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&path, b"ERROR after\n");
    assert_eq!(
        data(&harness.matches(1).await),
        vec![("ERROR after".to_string(), 1)]
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_file_and_folder_that_do_not_exist_yet_are_read_from_their_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later/deeper/app.log");
    let mut harness = Harness::start();
    harness
        .follow(vec![watched(&path, &[("errors", "ERROR")], None)])
        .await;

    fs::create_dir(dir.path().join("later")).unwrap();
    fs::create_dir(dir.path().join("later/deeper")).unwrap();
    append(&path, b"ERROR first line of a new file\n");
    assert_eq!(
        data(&harness.matches(1).await),
        vec![("ERROR first line of a new file".to_string(), 1)]
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_deleted_and_recreated_file_is_followed_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "").unwrap();
    let mut harness = Harness::start();
    harness
        .follow(vec![watched(&path, &[("errors", "ERROR")], None)])
        .await;
    append(&path, b"ERROR one\n");
    harness.matches(1).await;

    fs::remove_file(&path).unwrap();
    append(&path, b"ERROR two\n");
    assert_eq!(
        data(&harness.matches(1).await),
        vec![("ERROR two".to_string(), 1)]
    );
    harness.stop().await;
}

#[tokio::test]
async fn bad_bytes_and_huge_lines_never_stop_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "").unwrap();
    let mut harness = Harness::start();
    harness
        .follow(vec![watched(&path, &[("errors", "ERROR")], None)])
        .await;

    let mut bytes = b"\xff\xfe ERROR \xc3\x28 invalid utf-8\n".to_vec();
    bytes.extend(vec![b'x'; 200_000]);
    bytes.extend(b" ERROR past the limit is not seen\n");
    bytes.extend(b"ERROR after the huge line\n");
    append(&path, &bytes);
    let found = harness.matches(2).await;
    assert_eq!(
        found[0].line.data,
        "\u{fffd}\u{fffd} ERROR \u{fffd}( invalid utf-8"
    );
    assert_eq!(found[0].line.line_number, 1);
    assert_eq!(found[1].line.data, "ERROR after the huge line");
    assert_eq!(found[1].line.line_number, 3);
    // The huge line is context, cut for the alert.
    assert!(found[1].before[1].data.ends_with('…'));
    assert!(found[1].before[1].data.len() < 5000);
    harness.stop().await;
}

#[tokio::test]
async fn resuming_reads_exactly_the_lines_written_since_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "").unwrap();
    let mut harness = Harness::start();
    harness
        .follow(vec![watched(&path, &[("errors", "ERROR")], None)])
        .await;
    append(&path, b"ERROR seen before the stop\n");
    harness.matches(1).await;
    let position = harness.last_position.unwrap();
    harness.stop().await;

    append(&path, b"ERROR written while down\n");
    let mut harness = Harness::start();
    harness
        .configs
        .send(LogWatchConfig {
            generation: 1,
            files: vec![watched(&path, &[("errors", "ERROR")], Some(position))],
            ..LogWatchConfig::default()
        })
        .await
        .unwrap();
    assert_eq!(
        data(&harness.matches(1).await),
        vec![("ERROR written while down".to_string(), 2)]
    );
    harness.wait_caught_up().await;
    harness.stop().await;
}

#[tokio::test]
async fn resuming_after_a_rotation_while_down_finishes_the_rotated_file_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "").unwrap();
    let mut harness = Harness::start();
    harness
        .follow(vec![watched(&path, &[("errors", "ERROR")], None)])
        .await;
    append(&path, b"ERROR 1\n");
    harness.matches(1).await;
    let position = harness.last_position.unwrap();
    harness.stop().await;

    append(&path, b"ERROR 2 before rotation\n");
    fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    append(&path, b"ERROR 3 in the new file\n");
    let mut harness = Harness::start();
    harness
        .configs
        .send(LogWatchConfig {
            generation: 1,
            files: vec![watched(&path, &[("errors", "ERROR")], Some(position))],
            ..LogWatchConfig::default()
        })
        .await
        .unwrap();
    assert_eq!(
        data(&harness.matches(2).await),
        vec![
            ("ERROR 2 before rotation".to_string(), 2),
            ("ERROR 3 in the new file".to_string(), 1)
        ]
    );
    harness.wait_caught_up().await;
    let size = fs::metadata(&path).unwrap().len();
    harness.read_up_to(size).await;
    harness.stop().await;
}

#[tokio::test]
async fn truncation_rewritten_past_the_old_size_before_the_next_read_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "").unwrap();
    let mut harness = Harness::start();
    harness
        .follow(vec![watched(&path, &[("errors", "ERROR")], None)])
        .await;
    append(&path, b"ERROR one\n");
    harness.matches(1).await;

    // Cut and written again to the same size, as if both happened between two reads.
    let file = File::options().write(true).open(&path).unwrap();
    file.set_len(0).unwrap();
    drop(file);
    append(&path, b"ERROR two\n");
    assert_eq!(
        data(&harness.matches(1).await),
        vec![("ERROR two".to_string(), 1)]
    );
    harness.stop().await;
}

fn context(lines: &[monitor_wire::LogLine]) -> Vec<(String, u64)> {
    lines
        .iter()
        .map(|line| (line.data.clone(), line.line_number))
        .collect()
}

/// Mender's agent reads what a file holds when a check on it is new (its
/// `test_monitorclient_logs_and_surround` writes the lines before it creates the check).
#[tokio::test]
async fn a_new_check_reads_what_the_file_holds_with_its_context() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "one\ntwo\nthree\nERROR old\nfour\nfive\nsix\n").unwrap();
    let mut harness = Harness::start();
    let found = harness
        .follow_and_collect(LogWatchConfig {
            generation: 1,
            files: vec![watched_from(
                &path,
                &[("errors", "ERROR", ReadFrom::Start)],
                None,
            )],
            ..LogWatchConfig::default()
        })
        .await;
    assert_eq!(data(&found), vec![("ERROR old".to_string(), 4)]);
    assert_eq!(
        context(&found[0].before),
        vec![("two".to_string(), 2), ("three".to_string(), 3)]
    );
    assert_eq!(
        context(&found[0].after),
        vec![("four".to_string(), 5), ("five".to_string(), 6)]
    );
    // Then what comes, once.
    append(&path, b"ERROR new\n");
    assert_eq!(
        data(&harness.matches(1).await),
        vec![("ERROR new".to_string(), 8)]
    );
    harness.stop().await;
}

/// Only the last `first_read_limit` bytes, from the first whole line in them.
#[tokio::test]
async fn a_first_read_goes_back_at_most_the_limit_from_a_whole_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    // 10 lines of 10 bytes; the window of 25 bytes starts inside line 8.
    let mut text = String::new();
    for index in 1..=10 {
        text.push_str(&format!("ERROR {index:>3}\n"));
    }
    fs::write(&path, &text).unwrap();
    let mut harness = Harness::start();
    let found = harness
        .follow_and_collect(LogWatchConfig {
            generation: 1,
            files: vec![watched_from(
                &path,
                &[("errors", "ERROR", ReadFrom::Start)],
                None,
            )],
            first_read_limit: 25,
            ..LogWatchConfig::default()
        })
        .await;
    assert_eq!(
        data(&found),
        vec![("ERROR   9".to_string(), 9), ("ERROR  10".to_string(), 10)]
    );
    assert_eq!(
        context(&found[1].before),
        vec![("ERROR   9".to_string(), 9)]
    );
    harness.stop().await;
}

/// A check added on a followed file reads what the file held; the check that read it
/// already does not read it again.
#[tokio::test]
async fn a_check_added_on_a_followed_file_reads_the_old_lines_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "").unwrap();
    let mut harness = Harness::start();
    let first = ("first", "ERROR", ReadFrom::Start);
    harness
        .follow(vec![watched_from(&path, &[first], None)])
        .await;
    append(&path, b"before\nERROR old\nafter\n");
    let found = harness.matches(1).await;
    assert_eq!(found[0].check, check("first"));

    let second = ("second", "ERROR", ReadFrom::Start);
    let late = ("late", "ERROR", ReadFrom::End);
    let found = harness
        .follow_and_collect(LogWatchConfig {
            generation: 2,
            files: vec![watched_from(&path, &[first, second, late], None)],
            ..LogWatchConfig::default()
        })
        .await;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].check, check("second"));
    assert_eq!(data(&found), vec![("ERROR old".to_string(), 2)]);
    assert_eq!(context(&found[0].before), vec![("before".to_string(), 1)]);
    assert_eq!(context(&found[0].after), vec![("after".to_string(), 3)]);

    // From now on all three read every line, once.
    append(&path, b"ERROR new\n");
    let mut checks: Vec<_> = harness
        .matches(3)
        .await
        .into_iter()
        .map(|found| (found.check.name, found.line.line_number))
        .collect();
    checks.sort();
    assert_eq!(
        checks,
        vec![
            ("first".to_string(), 4),
            ("late".to_string(), 4),
            ("second".to_string(), 4)
        ]
    );
    harness.stop().await;
}

/// A resumed position covers the checks that read the file before; a check it does not
/// cover (added while the watcher was down) reads what is before it, alone.
#[tokio::test]
async fn resuming_reads_the_old_lines_only_for_checks_the_position_does_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "ERROR seen\n").unwrap();
    let mut harness = Harness::start();
    let old = ("old", "ERROR", ReadFrom::Start);
    let found = harness
        .follow_and_collect(LogWatchConfig {
            generation: 1,
            files: vec![watched_from(&path, &[old], None)],
            ..LogWatchConfig::default()
        })
        .await;
    assert_eq!(data(&found), vec![("ERROR seen".to_string(), 1)]);
    let position = harness.last_position.unwrap();
    harness.stop().await;

    append(&path, b"ERROR while down\n");
    let mut file = watched_from(
        &path,
        &[old, ("new", "ERROR", ReadFrom::Start)],
        Some(position),
    );
    file.seen_by.insert(check("old"));
    let mut harness = Harness::start();
    let found = harness
        .follow_and_collect(LogWatchConfig {
            generation: 1,
            files: vec![file],
            ..LogWatchConfig::default()
        })
        .await;
    let mut seen: Vec<_> = found
        .iter()
        .map(|found| (found.check.name.as_str(), found.line.data.as_str()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("new", "ERROR seen"),
            ("new", "ERROR while down"),
            ("old", "ERROR while down")
        ]
    );
    harness.stop().await;
}

/// A position that only moved (no match) is held back, not lost: it comes at shutdown, so
/// that the caller's last checkpoint has it.
#[tokio::test]
async fn a_position_that_only_moved_is_sent_by_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = dir.path().join("quiet.log");
    let loud = dir.path().join("loud.log");
    fs::write(&quiet, "").unwrap();
    fs::write(&loud, "").unwrap();
    let mut harness = Harness::start();
    harness
        .follow(vec![
            watched(&quiet, &[("quiet", "ERROR")], None),
            watched(&loud, &[("loud", "ERROR")], None),
        ])
        .await;

    append(&quiet, b"nothing to see\n");
    // The sentinel: its event is queued after the quiet file's, so once its match is here
    // the quiet file was read too.
    append(&loud, b"ERROR sentinel\n");
    assert_eq!(
        data(&harness.matches(1).await),
        vec![("ERROR sentinel".to_string(), 1)]
    );
    harness.shutdown.cancel();
    let mut quiet_offset = None;
    while let Some(event) = tokio::time::timeout(DEADLINE, harness.events.recv())
        .await
        .expect("the watcher ends before the deadline")
    {
        if let LogEvent::Read {
            path,
            position: Some(position),
            ..
        } = event
        {
            if path == quiet {
                quiet_offset = Some(position.offset);
            }
        }
    }
    assert_eq!(quiet_offset, Some(15));
}

/// With `coalesce`, the writes that land within the window are read in one pass: both
/// matches come in one event.
#[tokio::test]
async fn with_coalesce_the_writes_in_the_window_are_read_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, "").unwrap();
    let mut harness = Harness::start();
    harness
        .configs
        .send(LogWatchConfig {
            generation: 1,
            files: vec![watched(&path, &[("errors", "ERROR")], None)],
            // The longest allowed: the two writes below land well within it.
            coalesce: Duration::from_secs(1),
            ..LogWatchConfig::default()
        })
        .await
        .unwrap();
    harness.wait_caught_up().await;

    append(&path, b"ERROR one\n");
    append(&path, b"ERROR two\n");
    loop {
        if let LogEvent::Read { matches, .. } = harness.next_event().await {
            if matches.is_empty() {
                continue;
            }
            assert_eq!(
                data(&matches),
                vec![("ERROR one".to_string(), 1), ("ERROR two".to_string(), 2)]
            );
            break;
        }
    }
    harness.stop().await;
}
