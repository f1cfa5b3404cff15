//! Real plugins: Debian's `monitoring-plugins-basic` (`check_disk`, `check_procs`), shell
//! scripts exiting with each state, and one that hangs with a child of its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

const PLUGINS: &str = "/usr/lib/nagios/plugins";
/// How long a killed process may take to show up as gone.
const DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

fn probe(command: &str) -> PluginProbe {
    PluginProbe {
        command: command.to_owned(),
        timeout: Duration::from_secs(30),
        warning: MappedState::Critical,
        unknown: MappedState::Critical,
    }
}

fn verdict(bad: bool, text: &str) -> Reading {
    Reading::Verdict {
        bad,
        text: text.to_owned(),
    }
}

/// The installed plugins, or `None` (and a printed reason) outside CI; in CI their absence
/// fails the test (`.ci/run` installs `monitoring-plugins-basic`).
fn installed_plugins() -> Option<PathBuf> {
    let folder = PathBuf::from(PLUGINS);
    if folder.join("check_disk").exists() && folder.join("check_procs").exists() {
        return Some(folder);
    }
    let reason = format!("{PLUGINS}/check_disk is missing: install monitoring-plugins-basic (apt-get install monitoring-plugins-basic)");
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

/// Whether `pid` is gone or a zombie.
fn has_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.contains(") Z ") || stat.contains(") X "),
        Err(_) => true,
    }
}

async fn wait_until_ended(pid: u32) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while !has_ended(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn each_exit_status_is_a_state_and_the_first_line_the_text() {
    let roots = Roots::default();
    let cases = [
        (0, verdict(false, "DISK OK - free space: / 3000 MiB (40%);")),
        (
            1,
            verdict(true, "DISK WARNING - free space: / 3000 MiB (40%);"),
        ),
        (
            2,
            verdict(true, "DISK CRITICAL - free space: / 3000 MiB (40%);"),
        ),
        (
            3,
            verdict(true, "DISK UNKNOWN - free space: / 3000 MiB (40%);"),
        ),
    ];
    for (code, expected) in cases {
        let state = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][code];
        let command = format!(
            "echo 'DISK {state} - free space: / 3000 MiB (40%);| /=3000MB;;;0;7000'; \
             echo 'a long output line'; exit {code}"
        );
        assert_eq!(
            probe(&command).sample(&roots).await,
            expected,
            "exit {code}"
        );
    }
}

#[tokio::test]
async fn warning_and_unknown_map_as_the_check_says() {
    let roots = Roots::default();
    let lenient = |command: &str| PluginProbe {
        warning: MappedState::Ok,
        unknown: MappedState::Ok,
        ..probe(command)
    };
    assert_eq!(
        lenient("echo 'LOAD WARNING - 2.1'; exit 1")
            .sample(&roots)
            .await,
        verdict(false, "LOAD WARNING - 2.1")
    );
    assert_eq!(
        lenient("echo 'cannot tell'; exit 3").sample(&roots).await,
        verdict(false, "cannot tell")
    );
    // CRITICAL is always an alert.
    assert_eq!(
        lenient("echo 'LOAD CRITICAL - 9.0'; exit 2")
            .sample(&roots)
            .await,
        verdict(true, "LOAD CRITICAL - 9.0")
    );
}

#[tokio::test]
async fn a_status_outside_the_four_states_is_unknown_with_the_shells_reason() {
    let roots = Roots::default();
    let reading = probe("/nonexistent/check_thing -H host")
        .sample(&roots)
        .await;
    let Reading::Verdict { bad, text } = &reading else {
        panic!("{reading:?}");
    };
    assert!(*bad);
    assert!(
        text.starts_with("UNKNOWN: exit status 127 is not a plugin's state (0 to 3): sh: 1: /nonexistent/check_thing: not found"),
        "{text}"
    );
    assert_eq!(
        probe("exit 42").sample(&roots).await,
        verdict(
            true,
            "UNKNOWN: exit status 42 is not a plugin's state (0 to 3)"
        )
    );
    let lenient = PluginProbe {
        unknown: MappedState::Ok,
        ..probe("exit 42")
    };
    assert!(matches!(
        lenient.sample(&roots).await,
        Reading::Verdict { bad: false, .. }
    ));
}

#[tokio::test]
async fn a_plugin_without_output_says_its_state() {
    let roots = Roots::default();
    assert_eq!(
        probe("exit 1").sample(&roots).await,
        verdict(true, "WARNING (exit status 1) and no output")
    );
    assert_eq!(
        probe("echo 'no such host' >&2; exit 2")
            .sample(&roots)
            .await,
        verdict(true, "CRITICAL (exit status 2): no such host")
    );
}

#[tokio::test]
async fn a_plugin_killed_by_a_signal_is_unknown() {
    let reading = probe("echo partial; kill -9 $$")
        .sample(&Roots::default())
        .await;
    assert_eq!(
        reading,
        verdict(true, "UNKNOWN: the plugin was killed by signal 9 (partial)")
    );
}

/// A plugin that hangs, with a child of its own: at the timeout both are killed, and the
/// sample says so, as CRITICAL.
#[tokio::test]
async fn a_hanging_plugin_is_killed_with_its_children_at_the_timeout() {
    let folder = tempfile::tempdir().unwrap();
    let child_pid = folder.path().join("child.pid");
    let shell_pid = folder.path().join("shell.pid");
    let command = format!(
        "echo $$ > {shell}; sleep 3600 & echo $! > {child}; echo 'still checking'; wait",
        shell = shell_pid.display(),
        child = child_pid.display()
    );
    let probe = PluginProbe {
        timeout: Duration::from_millis(500),
        ..probe(&command)
    };
    let started = Instant::now();
    let reading = probe.sample(&Roots::default()).await;
    let took = started.elapsed();
    assert_eq!(
        reading,
        verdict(
            true,
            "timed out after 500ms; the plugin and what it started were killed"
        )
    );
    assert!(took < Duration::from_secs(5), "the sample took {took:?}");
    let (shell, child) = (read_pid(&shell_pid), read_pid(&child_pid));
    assert!(has_ended(shell), "the plugin's shell {shell} still runs");
    assert!(
        wait_until_ended(child).await,
        "the plugin's child {child} still runs"
    );
}

/// A plugin that exits leaving a child behind (holding its stdout): the sample ends when
/// the plugin does, and the child is killed.
#[tokio::test]
async fn what_a_plugin_leaves_behind_is_killed_when_it_exits() {
    let folder = tempfile::tempdir().unwrap();
    let child_pid = folder.path().join("child.pid");
    let command = format!(
        "sleep 3600 & echo $! > {child}; echo 'OK - done'; exit 0",
        child = child_pid.display()
    );
    let started = Instant::now();
    let reading = probe(&command).sample(&Roots::default()).await;
    assert_eq!(reading, verdict(false, "OK - done"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the sample waited for the leftover child: {:?}",
        started.elapsed()
    );
    let child = read_pid(&child_pid);
    assert!(
        wait_until_ended(child).await,
        "the leftover child {child} still runs"
    );
}

#[tokio::test]
async fn a_flood_of_output_is_read_to_the_end_and_cut() {
    // 1 MiB on one line: more than a pipe holds, so the plugin blocks unless it is read.
    let reading = probe("head -c 1048576 /dev/zero | tr '\\0' x; echo; exit 2")
        .sample(&Roots::default())
        .await;
    let Reading::Verdict { bad, text } = reading else {
        panic!("{reading:?}");
    };
    assert!(bad);
    assert_eq!(text.chars().count(), TEXT_CHARS + 1, "cut with an ellipsis");
    assert!(text.ends_with("x…"));
}

#[tokio::test]
async fn debians_check_disk_reports_ok_warning_and_critical() {
    let Some(plugins) = installed_plugins() else {
        return;
    };
    let check_disk = plugins.join("check_disk");
    let roots = &Roots::default();
    let sample = |arguments: &str| {
        let command = format!("{} {arguments} -p /", check_disk.display());
        async move { probe(&command).sample(roots).await }
    };
    // Thresholds in MiB free (1) and in % free (100%: never enough).
    let ok = sample("-w 1 -c 1").await;
    let warning = sample("-w 100% -c 0%").await;
    let critical = sample("-w 100% -c 100%").await;
    for (reading, expected_bad, prefix) in [
        (&ok, false, "DISK OK - free space: / "),
        (&warning, true, "DISK WARNING - free space: / "),
        (&critical, true, "DISK CRITICAL - free space: / "),
    ] {
        let Reading::Verdict { bad, text } = reading else {
            panic!("{reading:?}");
        };
        assert_eq!(*bad, expected_bad, "{text}");
        assert!(text.starts_with(prefix), "{text}");
        assert!(!text.contains('|'), "performance data in the text: {text}");
    }
}

#[tokio::test]
async fn debians_check_procs_sees_a_process_come_and_go() {
    let Some(plugins) = installed_plugins() else {
        return;
    };
    let marker = format!("3600.{}", std::process::id());
    let command = format!("{}/check_procs -c 1: -a {marker}", plugins.display());
    let roots = Roots::default();
    let reading = probe(&command).sample(&roots).await;
    assert_eq!(
        reading,
        verdict(
            true,
            &format!("PROCS CRITICAL: 0 processes with args '{marker}'")
        )
    );

    let mut sleeper = std::process::Command::new("/bin/sleep")
        .arg(&marker)
        .spawn()
        .unwrap();
    let reading = probe(&command).sample(&roots).await;
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_eq!(
        reading,
        verdict(false, &format!("PROCS OK: 1 process with args '{marker}'"))
    );
}
