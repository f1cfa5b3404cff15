//! The agent's state folder: what it writes (little, and only when something happens),
//! what it keeps across `kill -9`, and who may read it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::harness::{append, eventually, stderr, stdout, Sandbox};

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Offsets of lines that made no alert are saved once per `checkpoint_interval`, not per
/// read; a `kill -9` in between reads those lines again and makes the same alerts: none
/// missing, none repeated.
#[test]
fn lines_that_made_no_alert_are_not_checkpointed_and_a_crash_between_repeats_nothing() {
    let sandbox = Sandbox::new();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        "checkpoint_interval: 1h\n",
    )
    .unwrap();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    let source = log.display().to_string();
    sandbox.monitorctl_quietly(&["create", "log", "app", "ERROR", &source, "3600"]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    append(&log, "ERROR first\n");
    alerts.expect("CRITICAL", "log app");
    // The CRITICAL saved the checkpoint at once, with the offset after "ERROR first".
    let checkpoint_path = sandbox.state_dir().join("checkpoint.json");
    let status = || stdout(&sandbox.monitorctl(&["status"]));
    let expiry_before = status();
    eventually("the checkpoint of the CRITICAL is written", || {
        fs::read_to_string(&checkpoint_path).is_ok_and(|text| text.contains("ERROR first"))
    });
    let saved = fs::read(&checkpoint_path).unwrap();

    // Lines that make no alert (the check is CRITICAL already: a match only extends it).
    let mut lines = String::new();
    for index in 0..200 {
        lines.push_str(&format!("nothing to see {index}\n"));
    }
    append(&log, &lines);
    // Not a synchronisation: the window in which a checkpoint batched per second (what
    // the agent did before checkpoint_interval) would have been written, and the second
    // match then moves the expiry shown by `status` (in whole seconds).
    std::thread::park_timeout(std::time::Duration::from_millis(1100));
    append(&log, "ERROR again, while CRITICAL\n");
    // Read once the expiry moved (the status shows when the OK is due).
    eventually("the agent read the second match", || {
        status() != expiry_before
    });
    assert_eq!(
        fs::read(&checkpoint_path).unwrap(),
        saved,
        "lines that made no alert rewrote the checkpoint before checkpoint_interval"
    );

    agent.kill_hard();
    let _agent = sandbox.start_agent();
    // The lines after the checkpoint are read again: still CRITICAL, no second CRITICAL.
    // The sentinel: a clear makes the OK, and nothing came before it.
    sandbox.monitorctl_quietly(&["clear", "log", "app"]);
    alerts.expect("OK", "log app");
    append(&log, "ERROR after the restart\n");
    let (_, critical) = alerts.expect("CRITICAL", "log app");
    assert_eq!(
        critical["subject"]["details"]["line_matching"]["data"],
        "ERROR after the restart"
    );
    let history = stdout(&sandbox.monitorctl(&["alerts", "--json"]));
    assert_eq!(history.lines().count(), 3, "{history}");
}

/// The CRITICAL about a dead `@command` source is agent state too: after a restart the
/// agent still owes its OK, and sends it once the command runs again.
#[test]
fn a_dead_command_gets_its_ok_after_a_restart() {
    let sandbox = Sandbox::new();
    let allowed = sandbox.path("allowed");
    let command = format!(
        "test -e {} && exec tail -f /dev/null; exit 3",
        allowed.display()
    );
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "guarded",
        "ERROR",
        &format!("@{command}"),
        "never",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "guarded"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let (_, critical) = alerts.expect("CRITICAL", "log guarded");
    assert_eq!(critical["name"], format!("Log source @{command} stopped"));
    agent.stop();

    fs::write(&allowed, "").unwrap();
    let _agent = sandbox.start_agent();
    // Up for `healthy_after` (10 s), the command's streak is over: the owed OK.
    let (_, ok) = alerts.expect("OK", "log guarded");
    assert_eq!(ok["name"], format!("Log source @{command} stopped"));
}

/// Whatever the umask, the state and runtime folders are 0700 and what is in them 0600:
/// the history holds log lines.
#[test]
fn the_state_is_private_whatever_the_umask() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "app",
        "ERROR",
        &log.display().to_string(),
        "never",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        "delivery:\n  discord:\n    - webhook_url: http://127.0.0.1:9/api/webhooks/1/secret\n",
    )
    .unwrap();
    let mut agent = Command::new("sh")
        .args([
            "-c",
            "umask 0; exec \"$0\"",
            crate::harness::monitord_binary(),
        ])
        .envs(sandbox.environment())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("monitord answers", || {
        sandbox.monitorctl(&["status"]).status.success()
    });
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR with a secret\n");
    alerts.expect("CRITICAL", "log app");
    let state = sandbox.state_dir();
    eventually("the alert is in the outbox's files", || {
        fs::read_to_string(state.join("outbox/outbox.jsonl")).is_ok_and(|text| !text.is_empty())
            && state.join("outbox/progress.json").exists()
    });
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&sandbox.path("run")), 0o700);
    for file in [
        "alerts.jsonl",
        "checkpoint.json",
        "outbox/outbox.jsonl",
        "outbox/progress.json",
    ] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&state.join("outbox")), 0o700);
}

/// A state folder inside a folder that anyone may write to (no sticky bit) could be
/// swapped by another user: the agent refuses to start and says why.
#[test]
fn a_state_folder_in_a_folder_others_can_write_is_refused() {
    let sandbox = Sandbox::new();
    let shared = sandbox.path("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    let output = Command::new(crate::harness::monitord_binary())
        .envs(sandbox.environment())
        .env("MONITOR_STATE_DIR", shared.join("state"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "sits in {}, which another user can change",
            shared.display()
        )),
        "{message}"
    );
}

fn line_matching(alert: &serde_json::Value) -> &str {
    alert["subject"]["details"]["line_matching"]["data"]
        .as_str()
        .unwrap()
}

/// A check reads what the file held once: after a `kill -9` it resumes at its checkpointed
/// position; a check added while the agent was down reads what the file held, alone.
#[test]
fn after_kill_9_a_check_does_not_read_again_and_a_check_added_meanwhile_reads_the_file() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "before\nERROR old\n").unwrap();
    let source = log.display().to_string();
    sandbox.monitorctl_quietly(&["create", "log", "first", "ERROR", &source, "never"]);
    sandbox.monitorctl_quietly(&["enable", "log", "first"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let (_, critical) = alerts.expect("CRITICAL", "log first");
    assert_eq!(line_matching(&critical), "ERROR old");
    sandbox.monitorctl_quietly(&["clear", "log", "first"]);
    alerts.expect("OK", "log first");

    agent.kill_hard();
    sandbox.monitorctl_quietly(&["create", "log", "second", "ERROR", &source, "never"]);
    sandbox.monitorctl_quietly(&["enable", "log", "second"]);
    let _agent = sandbox.start_agent();
    let (_, second) = alerts.expect("CRITICAL", "log second");
    assert_eq!(line_matching(&second), "ERROR old");
    // The sentinel: the first check's next CRITICAL is for a line written now.
    append(&log, "ERROR after the restart\n");
    let (_, first) = alerts.expect("CRITICAL", "log first");
    assert_eq!(line_matching(&first), "ERROR after the restart");
    alerts.assert_quiet_for(std::time::Duration::from_millis(300));
}

/// A checkpoint of a version that kept one position per file (no `seen_by`): the position
/// covers every check on the file, as it did then, so none reads the file again.
#[test]
fn a_position_from_an_older_checkpoint_covers_every_check_on_the_file() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "ERROR old\n").unwrap();
    let source = log.display().to_string();
    for name in ["one", "two"] {
        sandbox.monitorctl_quietly(&["create", "log", name, "ERROR", &source, "never"]);
        sandbox.monitorctl_quietly(&["enable", "log", name]);
    }
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    for _ in 0..2 {
        alerts.expect_level("CRITICAL");
    }
    for name in ["one", "two"] {
        sandbox.monitorctl_quietly(&["clear", "log", name]);
        alerts.expect("OK", &format!("log {name}"));
    }
    agent.stop();

    let checkpoint_path = sandbox.state_dir().join("checkpoint.json");
    let mut checkpoint: serde_json::Value =
        serde_json::from_slice(&fs::read(&checkpoint_path).unwrap()).unwrap();
    let positions = checkpoint["positions"].as_object_mut().unwrap();
    let position = positions.get_mut(&source).unwrap().as_object_mut().unwrap();
    assert!(position.remove("seen_by").is_some(), "{position:?}");
    fs::write(&checkpoint_path, serde_json::to_vec(&checkpoint).unwrap()).unwrap();

    let _agent = sandbox.start_agent();
    append(&log, "ERROR new\n");
    for _ in 0..2 {
        let (_, critical) = alerts.expect_level("CRITICAL");
        assert_eq!(line_matching(&critical), "ERROR new");
    }
    alerts.assert_quiet_for(std::time::Duration::from_millis(300));
}
