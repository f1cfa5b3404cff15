//! Log checks end to end: the seed's crasher, rotation, truncation, crashes of the agent,
//! and check changes on a running agent.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use crate::harness::{append, eventually, repository_root, Sandbox};

fn timestamp(alert: &serde_json::Value) -> std::time::SystemTime {
    humantime::parse_rfc3339(alert["timestamp"].as_str().unwrap()).unwrap()
}

#[test]
fn the_seed_crasher_raises_critical_then_ok_five_seconds_after_its_last_crash_line() {
    seed_crasher_scenario(Sandbox::new());
}

/// The Mender tutorial's log check on the seed's crasher.py, with the sandbox's binaries
/// (the cross-built ones under emulation, too).
pub fn seed_crasher_scenario(sandbox: Sandbox) {
    let app_dir = sandbox.path("app");
    fs::create_dir(&app_dir).unwrap();
    let log = app_dir.join("crasher.log");
    // Exactly the seed's commands, with this project's names.
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "crasher_app",
        "ERROR",
        log.to_str().unwrap(),
        "5",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "crasher_app"]);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    let crasher = Command::new(repository_root().join("examples/crasher/crasher.py"))
        .args(["--log-to-file", "--crash-interval", "1"])
        .current_dir(&app_dir)
        .status()
        .expect("python3 runs the seed's crasher.py");
    assert_eq!(
        crasher.code(),
        Some(1),
        "crasher.py crashes with exit code 1"
    );
    let crashed_at = SystemTime::now();

    let (_, critical) = alerts.expect("CRITICAL", "log crasher_app");
    assert_eq!(critical["name"], "Log file contains ERROR");
    let subject = &critical["subject"];
    assert_eq!(
        (
            subject["name"].as_str(),
            subject["type"].as_str(),
            subject["status"].as_str()
        ),
        (Some("crasher_app"), Some("log"), Some("LOGCONTAINS"))
    );
    let details = &subject["details"];
    assert_eq!(details["line_matching"]["data"], "ERROR:root:Crashing...");
    assert_eq!(details["line_matching"]["line_number"], 3);
    assert_eq!(
        details["lines_before"][0]["data"],
        "INFO:root:Logging to file crasher.log"
    );
    assert_eq!(
        details["lines_before"][1]["data"],
        "INFO:root:Crashing in 1"
    );
    // The crash line was written just before crasher.py exited.
    let delay = crashed_at
        .duration_since(timestamp(&critical))
        .unwrap_or_default();
    assert!(
        delay < Duration::from_secs(1),
        "the CRITICAL was stamped {delay:?} before the crash ended"
    );

    let (_, ok) = alerts.expect("OK", "log crasher_app");
    assert_eq!(ok["name"], "Log file contains ERROR");
    let quiet = timestamp(&ok).duration_since(timestamp(&critical)).unwrap();
    assert!(
        quiet >= Duration::from_secs(5) && quiet < Duration::from_millis(6500),
        "OK came {quiet:?} after the CRITICAL, expected 5 s"
    );
    alerts.assert_quiet_for(Duration::from_millis(300));
}

/// One check per line, `^event-N$`, never expiring; each CRITICAL is cleared by hand. A line
/// read twice would raise its CRITICAL twice, a line lost would raise none.
#[test]
fn rotation_truncation_and_kill_9_lose_no_line_and_repeat_none() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "old line that never alerts: event-0\n").unwrap();
    for event in 1..=7 {
        let name = format!("event{event}");
        let pattern = format!("^event-{event}$");
        sandbox.monitorctl_quietly(&[
            "create",
            "log",
            &name,
            &pattern,
            log.to_str().unwrap(),
            "never",
        ]);
        sandbox.monitorctl_quietly(&["enable", "log", &name]);
    }
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let raise_and_clear = |alerts: &mut crate::harness::AlertFollower, events: &[u32]| {
        let mut raised: Vec<String> = events
            .iter()
            .map(|_| alerts.expect_level("CRITICAL").1)
            .map(|alert| alert["check"]["name"].as_str().unwrap().to_owned())
            .collect();
        raised.sort();
        let expected: Vec<String> = events.iter().map(|event| format!("event{event}")).collect();
        assert_eq!(raised, expected);
        for name in expected {
            sandbox.monitorctl_quietly(&["clear", "log", &name]);
            assert_eq!(alerts.next().1["level"], "OK");
        }
    };

    // A writer that keeps its descriptor across the rotation, as crasher.py's logging does.
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    writer.write_all(b"event-1\n").unwrap();
    raise_and_clear(&mut alerts, &[1]);

    // logrotate's default: rename, create a new file; the old writer writes on for a while.
    fs::rename(&log, sandbox.path("app.log.1")).unwrap();
    writer.write_all(b"event-2\n").unwrap();
    append(&log, "event-3\n");
    raise_and_clear(&mut alerts, &[2, 3]);

    // copytruncate: same file, cut to nothing, written again.
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "event-4\n");
    raise_and_clear(&mut alerts, &[4]);

    // A crash of the agent, lines written while it is down, and a rotation meanwhile.
    append(&log, "unrelated line just before the crash\n");
    agent.kill_hard();
    append(&log, "event-5\n");
    fs::rename(&log, sandbox.path("app.log.1")).unwrap();
    append(&log, "event-6\n");
    let agent = sandbox.start_agent();
    raise_and_clear(&mut alerts, &[5, 6]);

    // And a clean restart.
    agent.stop();
    append(&log, "event-7\n");
    let _agent = sandbox.start_agent();
    raise_and_clear(&mut alerts, &[7]);
    alerts.assert_quiet_for(Duration::from_millis(500));
}

#[test]
fn enabling_and_disabling_on_a_running_agent_take_effect_within_a_second() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "app",
        "FATAL",
        log.to_str().unwrap(),
        "never",
    ]);
    // Timed by the alert's own timestamp (when the agent saw it), not by when it reached
    // the disk: that depends on the disk, not on the agent.
    let started = SystemTime::now();
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    // When enable returns the check is live: a line written right away is caught.
    append(&log, "FATAL: disk on fire\n");
    let (_, critical) = alerts.expect("CRITICAL", "log app");
    let took = timestamp(&critical).duration_since(started).unwrap();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let list = String::from_utf8_lossy(&sandbox.monitorctl(&["list"]).stdout).into_owned();
    assert!(
        list.contains("log        app    yes      critical"),
        "{list}"
    );

    // Disabling a CRITICAL check sends its OK.
    let started = SystemTime::now();
    sandbox.monitorctl_quietly(&["disable", "log", "app"]);
    let (_, ok) = alerts.expect("OK", "log app");
    assert_eq!(ok["subject"]["details"]["reason"], "check disabled");
    let took = timestamp(&ok).duration_since(started).unwrap();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    append(&log, "FATAL: nobody listens now\n");
    alerts.assert_quiet_for(Duration::from_millis(500));
}

#[test]
fn check_files_linked_by_hand_are_picked_up_within_a_second() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    let config = sandbox.config_dir();
    fs::write(
        config.join("available/log_byhand.yaml"),
        format!(
            "pattern: panic\nsource: {}\nexpiration: never\n",
            log.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    std::os::unix::fs::symlink(
        "../available/log_byhand.yaml",
        config.join("enabled/log_byhand.yaml"),
    )
    .unwrap();
    eventually("the agent lists the hand-made check", || {
        let status = sandbox.monitorctl(&["status", "--json"]);
        String::from_utf8_lossy(&status.stdout).contains("byhand")
    });
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    append(&log, "kernel panic\n");
    alerts.expect("CRITICAL", "log byhand");
}

#[test]
fn a_broken_check_file_never_stops_the_other_checks() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    let config = sandbox.config_dir();
    fs::create_dir_all(config.join("available")).unwrap();
    fs::create_dir_all(config.join("enabled")).unwrap();
    fs::write(
        config.join("available/log_broken.yaml"),
        "pattern: '(unclosed'\nsource: /var/log/x\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../available/log_broken.yaml",
        config.join("enabled/log_broken.yaml"),
    )
    .unwrap();
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "good",
        "ERROR",
        log.to_str().unwrap(),
        "never",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "good"]);

    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR still watched\n");
    alerts.expect("CRITICAL", "log good");
    let status = sandbox.monitorctl(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("log_broken.yaml: pattern: "), "{text}");
    assert!(
        agent.log().contains("log_broken.yaml: pattern: "),
        "{}",
        agent.log()
    );
}

#[test]
fn a_new_expiration_takes_effect_while_critical() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "app",
        "ERROR",
        log.to_str().unwrap(),
        "never",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR once\n");
    alerts.expect("CRITICAL", "log app");

    let file = sandbox.config_dir().join("available/log_app.yaml");
    let text = fs::read_to_string(&file)
        .unwrap()
        .replace("expiration: never", "expiration: 1s");
    fs::write(&file, text).unwrap();
    let (_, ok) = alerts.expect("OK", "log app");
    assert_eq!(ok["subject"]["details"]["reason"], "no match for 1s");
}

#[test]
fn a_clean_restart_sends_nothing_and_keeps_the_expiry() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    sandbox.monitorctl_quietly(&["create", "log", "app", "ERROR", log.to_str().unwrap(), "3"]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR before the restart\n");
    let (_, critical) = alerts.expect("CRITICAL", "log app");

    agent.stop();
    let _agent = sandbox.start_agent();
    let (_, ok) = alerts.expect("OK", "log app");
    let after = timestamp(&ok).duration_since(timestamp(&critical)).unwrap();
    assert!(
        after >= Duration::from_secs(3) && after < Duration::from_millis(4500),
        "OK after {after:?}"
    );
    alerts.assert_quiet_for(Duration::from_millis(300));
}

#[test]
fn alert_overrides_and_context_settings_shape_the_alert() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    let config = sandbox.config_dir();
    fs::create_dir_all(config.join("available")).unwrap();
    fs::write(
        config.join("available/log_custom.yaml"),
        format!(
            "pattern: 'fail(ed|ure)'\nsource: {}\nexpiration: never\nlines_before: 1\nlines_after: 1\nalert:\n  name: App failed\n  description: 'the app logged a failure, saw: %line_matching'\n  status: APPFAILED\n  type: app\n",
            log.display()
        ),
    )
    .unwrap();
    sandbox.monitorctl_quietly(&["enable", "log", "custom"]);
    // The same as Mender writes it: LOG_ALERT_DESCRIPTION is the alert's name and
    // LOG_ALERT_DETAILS its description. A key Mender does not know is ignored with a
    // warning, as Mender (which sources the file) ignores it.
    fs::write(
        config.join("available/log_mender.sh"),
        format!(
            "SERVICE_NAME=\"mender\"\nLOG_FILE=\"{}\"\nLOG_PATTERN=\"no disk\"\nLOG_ALERT_DESCRIPTION=\"Disk gone\"\nLOG_ALERT_DETAILS=\"Alert was raised due to:%line_matching\"\nLOG_PATERN_EXPIRATION=32\n",
            log.display()
        ),
    )
    .unwrap();
    sandbox.monitorctl_quietly(&["enable", "log", "mender"]);
    let validate = sandbox.monitorctl(&["validate"]);
    let warnings = crate::harness::stderr(&validate);
    assert!(validate.status.success(), "{warnings}");
    assert!(
        warnings.contains("log_mender.sh: LOG_PATERN_EXPIRATION: line 6: unknown key for a log check, ignored: Mender ignores it too; remove it or use LOG_PATTERN_EXPIRATION if you meant it"),
        "{warnings}"
    );
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "one\ntwo\nstartup failed: no disk\nthree\nfour\n");
    let mut critical = std::collections::BTreeMap::new();
    while critical.len() < 2 {
        let (_, alert) = alerts.expect_level("CRITICAL");
        critical.insert(crate::harness::describe_check(&alert), alert);
    }
    let mender = &critical["log mender"];
    assert_eq!(mender["name"], "Disk gone");
    assert_eq!(
        mender["subject"]["details"]["description"],
        "Alert was raised due to:startup failed: no disk"
    );
    assert!(
        agent.log().contains("LOG_PATERN_EXPIRATION"),
        "the agent logs the warning: {}",
        agent.log()
    );
    let alert = &critical["log custom"];
    assert_eq!(alert["name"], "App failed");
    let subject = &alert["subject"];
    assert_eq!(
        (subject["type"].as_str(), subject["status"].as_str()),
        (Some("app"), Some("APPFAILED"))
    );
    let details = &subject["details"];
    assert_eq!(
        details["description"],
        "the app logged a failure, saw: startup failed: no disk"
    );
    assert!(details.get("message").is_none(), "{details}");
    assert_eq!(
        details["lines_before"],
        serde_json::json!([{"line_number": 2, "data": "two"}])
    );
    assert_eq!(
        details["lines_after"],
        serde_json::json!([{"line_number": 4, "data": "three"}])
    );
    assert_eq!(details["path"], log.to_str().unwrap());
}

/// No polling: with checks enabled and nothing happening, the agent's threads sleep.
/// (Reading its own check files once made it reload in a loop.)
#[test]
fn an_idle_agent_does_not_wake_up() {
    let sandbox = Sandbox::new();
    for name in ["one", "two", "three"] {
        let log = sandbox.path(&format!("{name}.log"));
        fs::write(&log, "").unwrap();
        sandbox.monitorctl_quietly(&["create", "log", name, "ERROR", log.to_str().unwrap()]);
        sandbox.monitorctl_quietly(&["enable", "log", name]);
    }
    let agent = sandbox.start_agent();
    // Let the start settle: the first checkpoint is written a second after the start.
    let settle = std::sync::mpsc::channel::<()>();
    let _ = settle.1.recv_timeout(Duration::from_millis(1500));
    let before = agent.wake_ups();
    let _ = settle.1.recv_timeout(Duration::from_secs(2));
    let woke = agent.wake_ups() - before;
    assert!(
        woke <= 2,
        "the idle agent woke up {woke} times in 2 s; log:\n{}",
        agent.log()
    );
}

#[test]
fn mender_check_files_are_watched_as_they_are() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("crasher.log");
    fs::write(&log, "").unwrap();
    let config = sandbox.config_dir();
    fs::create_dir_all(config.join("available")).unwrap();
    fs::create_dir_all(config.join("enabled")).unwrap();
    fs::write(
        config.join("available/log_crasher_app.sh"),
        format!(
            "SERVICE_NAME=\"crasher_app\"\nLOG_PATTERN=\"ERROR\"\nLOG_FILE=\"{}\"\nLOG_PATTERN_EXPIRATION=\"1\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../available/log_crasher_app.sh",
        config.join("enabled/log_crasher_app.sh"),
    )
    .unwrap();
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR:root:Crashing...\n");
    alerts.expect("CRITICAL", "log crasher_app");
    let (_, ok) = alerts.expect("OK", "log crasher_app");
    assert_eq!(ok["subject"]["details"]["reason"], "no match for 1s");
}

/// The agent's log must never hold it up: a stderr that does not drain (a full pipe, a
/// stalled journald) costs log lines, not alerts or answers.
#[test]
fn a_full_stderr_pipe_nobody_reads_does_not_stop_the_agent() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    sandbox.monitorctl_quietly(&["create", "log", "app", "^boom$", log.to_str().unwrap()]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);

    let (mut reader, writer) = std::io::pipe().unwrap();
    // Keeps the pipe full for as long as the test does not read it: each write blocks until
    // there is room again, then fills it. NUL bytes, which the agent never writes: a write
    // may land in the middle of one of the agent's, so the reader drops them.
    let stop_filling = Arc::new(AtomicBool::new(false));
    let filler = {
        let mut filler = writer.try_clone().unwrap();
        let stop_filling = Arc::clone(&stop_filling);
        std::thread::spawn(move || {
            while !stop_filling.load(Ordering::Relaxed) && filler.write_all(&[0; 4096]).is_ok() {}
        })
    };
    // RUST_LOG=debug: the agent has plenty to say, and nowhere to say it.
    let agent = sandbox.start_agent_with_stderr(writer.into());
    let mut alerts = sandbox.follow_alerts();
    append(&log, "boom\n");
    let (_, critical) = alerts.expect("CRITICAL", "log app");
    let status = sandbox.monitorctl(&["status"]);
    assert!(status.status.success(), "{status:?}");
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("log app  critical"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    // Once someone reads, the lines held back arrive: the alert's own line among them.
    stop_filling.store(true, Ordering::Relaxed);
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut chunk = [0; 65536];
        while let Ok(read) = reader.read(&mut chunk) {
            if read == 0 {
                break;
            }
            text.extend(chunk[..read].iter().filter(|&&byte| byte != 0));
            let seen = String::from_utf8_lossy(&text).into_owned();
            if lines.send(seen).is_err() {
                break;
            }
        }
    });
    let alert_line = format!("alert seq={} check=log app level=CRITICAL", critical["seq"]);
    let deadline = Instant::now() + crate::harness::DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let text = received
            .recv_timeout(left)
            .expect("the agent's held-back log reaches the pipe once it is read");
        if text.contains(&alert_line) {
            break;
        }
    }
    drop(agent);
    filler.join().unwrap();
}

fn line_data(lines: &serde_json::Value) -> Vec<String> {
    lines
        .as_array()
        .unwrap_or_else(|| panic!("a list of lines: {lines:#}"))
        .iter()
        .map(|line| line["data"].as_str().unwrap().to_owned())
        .collect()
}

/// Ports Mender's `test_monitorclient_logs_and_surround` (`tests/tests/test_monitor_client.py`
/// in mendersoftware/integration): 63 lines, the match and 63 more lines are in the file
/// before the check is created with the CLI; the new check reads them and sends one
/// CRITICAL with the default 30 lines before and 30 after.
#[test]
fn a_new_check_reads_what_the_file_holds_with_30_lines_around_the_match() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("mylog.log");
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    let mut text = String::new();
    for index in 1..=63 {
        text.push_str(&format!("some line {index} before\n"));
    }
    text.push_str("pam_unix(sshd:session): session opened for user root by (uid=0)\n");
    for index in 1..=63 {
        text.push_str(&format!("some line {index} after\n"));
    }
    fs::write(&log, text).unwrap();
    let pattern = r"session opened for user \w+";
    sandbox.monitorctl_quietly(&["create", "log", "mylog", pattern, log.to_str().unwrap()]);
    sandbox.monitorctl_quietly(&["enable", "log", "mylog"]);

    let (_, critical) = alerts.expect("CRITICAL", "log mylog");
    assert_eq!(critical["name"], format!("Log file contains {pattern}"));
    let details = &critical["subject"]["details"];
    assert_eq!(
        details["line_matching"]["data"],
        "pam_unix(sshd:session): session opened for user root by (uid=0)"
    );
    assert_eq!(details["line_matching"]["line_number"], 64);
    let before = line_data(&details["lines_before"]);
    let after = line_data(&details["lines_after"]);
    assert_eq!(before.len(), 30, "{before:?}");
    assert_eq!(after.len(), 30, "{after:?}");
    assert_eq!(before[0], "some line 34 before");
    assert_eq!(before[29], "some line 63 before");
    assert_eq!(after[0], "some line 1 after");
    assert_eq!(after[29], "some line 30 after");

    // Once: a clear makes the OK, a new line the next CRITICAL, and nothing came between.
    sandbox.monitorctl_quietly(&["clear", "log", "mylog"]);
    alerts.expect("OK", "log mylog");
    append(&log, "sentinel: session opened for user sentinel\n");
    let (_, sentinel) = alerts.expect("CRITICAL", "log mylog");
    assert_eq!(
        sentinel["subject"]["details"]["line_matching"]["data"],
        "sentinel: session opened for user sentinel"
    );
}

/// A check added on a file another check follows reads what the file held; the check
/// that had read it does not read it again.
#[test]
fn a_check_added_on_a_followed_file_gets_the_old_match_and_the_first_check_does_not() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    let source = log.to_str().unwrap();
    sandbox.monitorctl_quietly(&["create", "log", "first", "ERROR", source, "never"]);
    sandbox.monitorctl_quietly(&["enable", "log", "first"]);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "before\nERROR old\nafter\n");
    alerts.expect("CRITICAL", "log first");
    sandbox.monitorctl_quietly(&["clear", "log", "first"]);
    alerts.expect("OK", "log first");

    sandbox.monitorctl_quietly(&["create", "log", "second", "ERROR", source, "never"]);
    sandbox.monitorctl_quietly(&["enable", "log", "second"]);
    let (_, second) = alerts.expect("CRITICAL", "log second");
    let details = &second["subject"]["details"];
    assert_eq!(details["line_matching"]["data"], "ERROR old");
    assert_eq!(line_data(&details["lines_before"]), ["before"]);
    assert_eq!(line_data(&details["lines_after"]), ["after"]);

    // The sentinel: the first check's next CRITICAL is for the new line.
    append(&log, "ERROR new\n");
    let (_, first) = alerts.expect("CRITICAL", "log first");
    assert_eq!(
        first["subject"]["details"]["line_matching"]["data"],
        "ERROR new"
    );
    alerts.assert_quiet_for(Duration::from_millis(300));
}

/// `from: end`: today's "from now on" for the check that asks for it.
#[test]
fn a_check_from_the_end_reads_only_what_comes() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "ERROR old\n").unwrap();
    let config = sandbox.config_dir();
    fs::create_dir_all(config.join("available")).unwrap();
    fs::write(
        config.join("available/log_recent.yaml"),
        format!(
            "pattern: ERROR\nsource: {}\nexpiration: never\nfrom: end\n",
            log.display()
        ),
    )
    .unwrap();
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    sandbox.monitorctl_quietly(&["enable", "log", "recent"]);
    append(&log, "ERROR new\n");
    let (_, critical) = alerts.expect("CRITICAL", "log recent");
    assert_eq!(
        critical["subject"]["details"]["line_matching"]["data"],
        "ERROR new"
    );
    assert_eq!(
        critical["subject"]["details"]["line_matching"]["line_number"],
        2
    );
}

/// A file bigger than `log_first_read_limit`: a new check reads its last bytes from the
/// first whole line in them; a match before them is not read.
#[test]
fn a_first_read_goes_back_only_log_first_read_limit_bytes() {
    let sandbox = Sandbox::new();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        "log_first_read_limit: 4096\n",
    )
    .unwrap();
    let log = sandbox.path("big.log");
    let mut text = String::from("ERROR too old to be read\n");
    // 100 lines of 100 bytes: the window of 4096 bytes starts inside line 61.
    for index in 2..=101 {
        text.push_str(&format!("{:<99}\n", format!("filler line {index}")));
    }
    text.push_str("ERROR recent enough\n");
    fs::write(&log, text).unwrap();
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "big",
        "ERROR",
        log.to_str().unwrap(),
        "never",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "big"]);

    // The first match read makes the CRITICAL: had the old line been read, it would be it.
    let (_, critical) = alerts.expect("CRITICAL", "log big");
    let details = &critical["subject"]["details"];
    assert_eq!(details["line_matching"]["data"], "ERROR recent enough");
    assert_eq!(details["line_matching"]["line_number"], 102);
    let before = line_data(&details["lines_before"]);
    assert_eq!(before.len(), 30);
    assert_eq!(before[29].trim_end(), "filler line 101");
    sandbox.monitorctl_quietly(&["clear", "log", "big"]);
    alerts.expect("OK", "log big");
    alerts.assert_quiet_for(Duration::from_millis(300));
}
