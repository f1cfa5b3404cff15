//! `@command` sources end to end: real child processes whose output is matched, restarted
//! and reported when they die, started at once when enabled on a running agent.

use std::fs;
use std::time::Duration;

use crate::harness::{append, eventually, stdout, Sandbox};

#[test]
fn a_command_enabled_on_a_running_agent_starts_at_once_and_its_lines_match() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    // Mender's own example of a command source: `@tail -F <file>`.
    let source = format!("@tail -n 0 -F {}", log.display());
    sandbox.monitorctl_quietly(&["create", "log", "tailed", "FATAL", &source, "never"]);
    sandbox.monitorctl_quietly(&["enable", "log", "tailed"]);
    eventually("tail is running", || {
        stdout(&sandbox.monitorctl(&["status"])).contains("reading the output of @tail")
    });
    // tail may start reading a moment after it was spawned: keep writing until it tells.
    let mut written = 0;
    let (_, critical) = loop {
        append(&log, &format!("one\nFATAL: disk {written} gone\ntwo\n"));
        written += 1;
        if let Some(alert) = alerts.try_next(Duration::from_millis(200)) {
            break alert;
        }
        assert!(written < 50, "no alert from the tail command");
    };
    assert_eq!(critical["level"], "CRITICAL");
    assert_eq!(critical["name"], "Log file contains FATAL");
    let details = &critical["subject"]["details"];
    assert!(
        details["line_matching"]["data"]
            .as_str()
            .unwrap()
            .starts_with("FATAL: disk"),
        "{critical:#}"
    );
    assert_eq!(
        details["command"],
        format!("tail -n 0 -F {}", log.display())
    );
}

#[test]
fn a_command_that_exits_is_reported_once_and_restarted() {
    let sandbox = Sandbox::new();
    let marker = sandbox.path("runs");
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "flaky",
        "ERROR",
        &format!("@echo run >> {}; echo ERROR once; exit 3", marker.display()),
        "never",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "flaky"]);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    let mut seen: Vec<(String, String)> = (0..2)
        .map(|_| {
            let (_, alert) = alerts.next();
            (
                alert["level"].as_str().unwrap().to_owned(),
                alert["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let stopped = format!(
        "Log source @echo run >> {}; echo ERROR once; exit 3 stopped",
        marker.display()
    );
    assert_eq!(
        seen,
        vec![
            ("CRITICAL".to_owned(), "Log file contains ERROR".to_owned()),
            ("CRITICAL".to_owned(), stopped),
        ]
    );
    // Restarted with backoff (1 s, then 2 s): three runs, and no second report of the death.
    eventually("the command ran three times", || {
        fs::read_to_string(&marker)
            .unwrap_or_default()
            .lines()
            .count()
            >= 3
    });
    alerts.assert_quiet_for(Duration::from_millis(300));
    let status = stdout(&sandbox.monitorctl(&["status"]));
    assert!(status.contains("exited with status 3"), "{status}");
    assert!(status.contains("log flaky  error"), "{status}");
}
