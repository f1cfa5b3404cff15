//! `monitorctl raise`, the replacement for Mender's `monitor_send_alert`: a script's own
//! CRITICAL and OK, through the running agent's engine to the history, a devicemonitor
//! stand-in and a Discord stand-in; once per state, kept across a kill -9, and a clear
//! error when no agent runs.

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::devicemonitor_standin::{DeviceMonitorStandIn, DEFAULT_TOKEN};
use crate::discord_standin::{Behaviour, DiscordStandIn};
use crate::harness::{eventually, stderr, stdout, Sandbox};

const WEBHOOK_ID: &str = "445566778899001122";
const WEBHOOK_TOKEN: &str = "secret-webhook-token-of-raise";

/// An agent configured for the devicemonitor stand-in and the Discord stand-in.
fn sandbox_for(backend: &DeviceMonitorStandIn, discord: &DiscordStandIn) -> Sandbox {
    let mut sandbox = Sandbox::new();
    fs::write(sandbox.path("token"), DEFAULT_TOKEN).unwrap();
    sandbox.env.push((
        "TEST_DISCORD_WEBHOOK".into(),
        discord.url(WEBHOOK_ID, WEBHOOK_TOKEN),
    ));
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "delivery:\n  backend:\n    url: {}\n    auth: token\n    token_file: {}\n  discord:\n    - webhook_url_env: TEST_DISCORD_WEBHOOK\n",
            backend.url(),
            sandbox.path("token").display()
        ),
    )
    .unwrap();
    sandbox
}

fn wait_for_backend(backend: &DeviceMonitorStandIn, count: usize) -> Vec<Value> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(backend.wait_for_alerts(count, Duration::from_secs(30)))
}

/// What a cron script does: `monitorctl raise CRITICAL|OK <subject> ...`, which prints
/// nothing and exits 0 when the agent took it.
fn raise(sandbox: &Sandbox, args: &[&str]) {
    let mut all = vec!["raise"];
    all.extend_from_slice(args);
    sandbox.monitorctl_quietly(&all);
}

#[test]
fn a_raised_critical_is_sent_once_until_its_ok_to_every_destination() {
    let backend = DeviceMonitorStandIn::start();
    let discord = DiscordStandIn::start(Behaviour::default());
    let sandbox = sandbox_for(&backend, &discord);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    // As Mender's `monitor_send_alert CRITICAL "Disk / above 90%" "<df output>" disk_root
    // ... diskusage` would.
    raise(
        &sandbox,
        &[
            "CRITICAL",
            "disk_root",
            "--name",
            "Disk / above 90%",
            "--details",
            "/dev/root 29G 27G 1.2G 96% /",
            "--type",
            "diskusage",
        ],
    );
    let (_, critical) = alerts.expect("CRITICAL", "monitor disk_root");
    assert_eq!(critical["name"], "Disk / above 90%");
    assert_eq!(critical["subject"]["type"], "diskusage");
    assert_eq!(critical["subject"]["status"], "raised");
    assert_eq!(
        critical["subject"]["details"]["description"],
        "/dev/root 29G 27G 1.2G 96% /"
    );
    let status = stdout(&sandbox.monitorctl(&["status"]));
    assert!(
        status.contains("monitor disk_root") && status.contains("critical"),
        "{status}"
    );

    // The next run of the script raises it again: nothing new. The sentinel, raised after
    // it, is the next alert.
    raise(
        &sandbox,
        &["CRITICAL", "disk_root", "--name", "Disk / above 90%"],
    );
    raise(&sandbox, &["critical", "sentinel"]);
    let (_, sentinel) = alerts.expect("CRITICAL", "monitor sentinel");
    assert_eq!(sentinel["name"], "sentinel raised by a script");
    assert_eq!(sentinel["subject"]["type"], "script");

    // The OK keeps the CRITICAL's name and type; a second OK sends nothing.
    raise(&sandbox, &["OK", "disk_root"]);
    let (_, ok) = alerts.expect("OK", "monitor disk_root");
    assert_eq!(ok["name"], "Disk / above 90%");
    assert_eq!(ok["subject"]["type"], "diskusage");
    assert_eq!(ok["subject"]["status"], "cleared");
    raise(&sandbox, &["OK", "disk_root"]);
    raise(&sandbox, &["OK", "sentinel"]);
    alerts.expect("OK", "monitor sentinel");

    let delivered = wait_for_backend(&backend, 4);
    let summary: Vec<(String, String)> = delivered
        .iter()
        .map(|alert| {
            (
                alert["level"].as_str().unwrap().to_owned(),
                alert["subject"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("CRITICAL".to_owned(), "disk_root".to_owned()),
            ("CRITICAL".to_owned(), "sentinel".to_owned()),
            ("OK".to_owned(), "disk_root".to_owned()),
            ("OK".to_owned(), "sentinel".to_owned()),
        ]
    );
    assert_eq!(delivered[0]["name"], "Disk / above 90%");
    eventually("Discord got the four embeds", || {
        discord.embeds().len() >= 4
    });
    let titles: Vec<Value> = discord
        .embeds()
        .iter()
        .map(|embed| embed["title"].clone())
        .collect();
    assert_eq!(titles[0], "Disk / above 90%", "{titles:?}");
    assert_eq!(titles.len(), 4, "{titles:?}");

    let history = stdout(&sandbox.monitorctl(&["alerts"]));
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 4, "{history}");
    assert!(
        lines[0].contains("CRITICAL") && lines[0].contains("monitor disk_root  Disk / above 90%"),
        "{history}"
    );
}

#[test]
fn a_raised_critical_survives_a_kill_9_and_a_reload_until_cleared() {
    let backend = DeviceMonitorStandIn::start();
    let discord = DiscordStandIn::start(Behaviour::default());
    let sandbox = sandbox_for(&backend, &discord);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    raise(
        &sandbox,
        &["CRITICAL", "backup", "--name", "Nightly backup failed"],
    );
    alerts.expect("CRITICAL", "monitor backup");
    // `raise` answered once the state was in a written checkpoint.
    agent.kill_hard();

    let _agent = sandbox.start_agent();
    raise(&sandbox, &["CRITICAL", "backup"]);
    // A check created and enabled makes the agent reload its checks: the raised subject
    // has no file, and stays.
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    sandbox.monitorctl_quietly(&["create", "log", "app", "ERROR", log.to_str().unwrap()]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    raise(&sandbox, &["CRITICAL", "sentinel"]);
    alerts.expect("CRITICAL", "monitor sentinel");
    let status = stdout(&sandbox.monitorctl(&["status"]));
    assert!(status.contains("monitor backup"), "{status}");

    // `monitorctl clear` takes the raised subject as `monitor <subject>`.
    sandbox.monitorctl_quietly(&["clear", "monitor", "backup"]);
    let (_, ok) = alerts.expect("OK", "monitor backup");
    assert_eq!(
        ok["name"], "Nightly backup failed",
        "the name survived the restart"
    );
    assert_eq!(
        ok["subject"]["details"]["description"],
        "cleared by hand (monitorctl clear)"
    );
    let again = sandbox.monitorctl(&["clear", "monitor", "backup"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("\"monitor backup\" is not raised"),
        "{}",
        stderr(&again)
    );

    // Refusals say what to do; the agent's own check is not a script's.
    for (args, expected) in [
        (vec!["raise", "CRITICAL", " "], "the subject is empty"),
        (
            vec!["raise", "CRITICAL", "state_dir"],
            "the subject `state_dir` is the agent's own check",
        ),
        (
            vec!["raise", "CRITICAL", "x", "--name", "two\nlines"],
            "--name has a control character",
        ),
    ] {
        let output = sandbox.monitorctl(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let unknown_level = sandbox.monitorctl(&["raise", "WARNING", "x"]);
    assert_eq!(unknown_level.status.code(), Some(2));
    // None of them sent anything: the sentinel's OK is the next alert.
    raise(&sandbox, &["OK", "sentinel"]);
    alerts.expect("OK", "monitor sentinel");
}

#[test]
fn raise_without_a_running_agent_fails_and_says_so() {
    let sandbox = Sandbox::new();
    let output = sandbox.monitorctl(&["raise", "CRITICAL", "disk_root"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("the alert was not raised: monitord is not running"),
        "{message}"
    );
    assert!(message.contains("start it"), "{message}");
    assert!(
        !sandbox.state_dir().join("alerts.jsonl").exists(),
        "nothing was recorded"
    );
}
