//! "Device went silent" (issue 19, point 8): `monitord` in `auth: token` mode sends
//! heartbeats to a real monitor-server, which raises "Device <name> silent" when they stop
//! (the agent stopped with SIGSTOP, then killed), emails it once through a real SMTP
//! client to a local sink, and the OK when the agent is heard again. In `auth: mender` mode
//! no heartbeat is ever sent; a backend without the endpoint (404) gets one and no more.
//! `monitorctl status` shows each case: on, its interval, the last answered, the last
//! error.

use std::fs;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::devicemonitor_standin::{DeviceMonitorStandIn, DEFAULT_TOKEN};
use crate::harness::{eventually, stdout, Agent, Sandbox};
use crate::mender_auth_standin::MenderAuthStandIn;
use crate::monitor_server::{ServerDatabase, ServerProcess};
use crate::server::{server_binary, Management, EMAIL, PASSWORD};
use crate::smtp_sink::{Mail, SmtpSink};

const HEARTBEAT_PATH: &str = "/api/devices/v1/monitor/heartbeat";
const MAIL_DEADLINE: Duration = Duration::from_secs(60);

fn signal(agent: &Agent, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &agent.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal}");
}

fn subject(mail: &Mail) -> String {
    mail.header("Subject").unwrap_or_default()
}

/// The device as the management API lists it.
fn device(management: &Management) -> Value {
    let (devices, _) = management.get("/devices");
    devices[0].clone()
}

/// The agent stopped (SIGSTOP) goes silent after 2 missed 1 s heartbeats: a CRITICAL
/// "Device pi-e2e silent" in the management API, on the dashboard, and in one email; resumed
/// (SIGCONT), it is back: the OK and its email, which is the next email (so no second
/// silent email came before it); killed, it is silent again.
#[test]
fn an_agent_that_stops_is_reported_silent_once_and_back_when_it_resumes() {
    let server_binary = server_binary();
    let sink = SmtpSink::start();
    let database = ServerDatabase::sqlite();
    let token = database.admin_ok(&server_binary, &["device", "add", "pi-e2e"], None);
    database.admin_ok(
        &server_binary,
        &["user", "add", EMAIL, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    database.admin_ok(
        &server_binary,
        &["channel", "email", "ops@example.com"],
        None,
    );
    let config = tempfile::tempdir().unwrap();
    let config_file = config.path().join("server.yaml");
    fs::write(&config_file, "notify_interval: 1s\nsilent_after: 2\n").unwrap();
    let server = ServerProcess::start(
        &server_binary,
        &database,
        &[
            "--config",
            config_file.to_str().unwrap(),
            "--smtp-url",
            &sink.url(),
        ],
    );
    let management = Management::login(&server.url);

    let sandbox = Sandbox::new();
    fs::write(sandbox.path("token"), &token).unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "delivery:\n  backend:\n    url: {}\n    auth: token\n    token_file: {}\n    heartbeat_interval: 1s\n",
            server.url,
            sandbox.path("token").display()
        ),
    )
    .unwrap();
    let agent = sandbox.start_agent();
    eventually("the agent announced its heartbeat interval", || {
        device(&management)["heartbeat_interval_seconds"] == 1
    });
    assert!(device(&management).get("silent_since").is_none());
    let heartbeat = status_heartbeat(&sandbox, "a heartbeat was answered", |heartbeat| {
        heartbeat["last_answered"].is_string()
    });
    assert_eq!(heartbeat["state"], "on", "{heartbeat}");
    assert_eq!(heartbeat["interval_seconds"], 1, "{heartbeat}");
    assert_eq!(heartbeat["last_error"], Value::Null, "{heartbeat}");
    let table = stdout(&sandbox.monitorctl(&["status"]));
    let line = table.lines().nth(1).unwrap_or_default();
    assert!(
        line.starts_with("heartbeats: on, every 1s; last answered 20"),
        "{table}"
    );

    signal(&agent, "-STOP");
    let silent = sink.next(MAIL_DEADLINE);
    assert_eq!(
        subject(&silent),
        "CRITICAL: Monitor Alert for Device pi-e2e silent on pi-e2e",
        "{}",
        server.log()
    );
    assert_eq!(silent.to, ["ops@example.com"]);
    let body = silent.decoded();
    assert!(
        body.contains("every 1s and 2 were missed") && body.contains("no word from pi-e2e since"),
        "{body}"
    );
    let shown = device(&management);
    assert!(shown["silent_since"].is_string(), "{shown}");
    assert_eq!(shown["alert_count"], 1, "{shown}");
    let id = shown["id"].as_str().unwrap().to_owned();
    let (latest, _) = management.get(&format!("/devices/{id}/alerts/latest"));
    let heartbeat = latest
        .as_array()
        .unwrap()
        .iter()
        .find(|alert| {
            alert["subject"]["type"] == "monitor" && alert["subject"]["name"] == "heartbeat"
        })
        .unwrap_or_else(|| panic!("no heartbeat subject in {latest}"))
        .clone();
    assert_eq!(heartbeat["level"], "CRITICAL");
    assert_eq!(heartbeat["name"], "Device pi-e2e silent");
    assert_eq!(heartbeat["subject"]["status"], "silent");
    let page = management.dashboard("/ui/devices");
    assert!(page.contains("silent since"), "{page}");

    signal(&agent, "-CONT");
    let back = sink.next(MAIL_DEADLINE);
    assert_eq!(
        subject(&back),
        "OK: Monitor Alert for Device pi-e2e back on pi-e2e",
        "the next email after the silence is its OK: {}",
        server.log()
    );
    let shown = device(&management);
    assert!(shown.get("silent_since").is_none(), "{shown}");
    assert_eq!(shown["alert_count"], 0, "{shown}");

    agent.kill_hard();
    let again = sink.next(MAIL_DEADLINE);
    assert_eq!(
        subject(&again),
        "CRITICAL: Monitor Alert for Device pi-e2e silent on pi-e2e"
    );
    let (history, total) = management.get(&format!("/devices/{id}/alerts?sort_ascending=true"));
    let levels: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|alert| alert["subject"]["name"] == "heartbeat")
        .map(|alert| alert["level"].as_str().unwrap())
        .collect();
    assert_eq!(
        levels,
        ["CRITICAL", "OK", "CRITICAL"],
        "{total:?} {history}"
    );
}

/// `monitorctl status --json`'s heartbeat, once `condition` holds of it.
fn status_heartbeat(sandbox: &Sandbox, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let mut heartbeat = Value::Null;
    eventually(what, || {
        let output = sandbox.monitorctl(&["status", "--json"]);
        let status: Value = serde_json::from_str(&stdout(&output)).unwrap_or(Value::Null);
        heartbeat = status["heartbeat"].clone();
        condition(&heartbeat)
    });
    heartbeat
}

/// How many requests the stand-in got on the heartbeat path.
fn heartbeats(backend: &DeviceMonitorStandIn) -> usize {
    backend
        .requests()
        .iter()
        .filter(|request| request.path == HEARTBEAT_PATH)
        .count()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// In `auth: mender` mode the agent sends no heartbeat (Mender's API has none): with the
/// check list pushed every second as the clock, three pushes come and no heartbeat. In
/// `auth: token` mode against a backend without the endpoint (the stand-in answers 404, as
/// Mender's devicemonitor does), one heartbeat goes, one line says so, and three pushes later
/// none followed it.
#[test]
fn no_heartbeat_in_mender_mode_and_none_after_a_404() {
    let backend = DeviceMonitorStandIn::start();
    let Some(auth) = MenderAuthStandIn::start(DEFAULT_TOKEN, &backend.url()) else {
        return;
    };
    let sandbox = Sandbox::new();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "delivery:\n  backend:\n    auth: mender\n    mender_bus: {}\n    config_push_interval: 1\n",
            auth.bus_address
        ),
    )
    .unwrap();
    let agent = sandbox.start_agent();
    runtime().block_on(backend.wait_for_configs(3, Duration::from_secs(30)));
    assert_eq!(heartbeats(&backend), 0, "{:#?}", backend.requests());
    let status: Value =
        serde_json::from_str(&stdout(&sandbox.monitorctl(&["status", "--json"]))).unwrap();
    assert_eq!(status["heartbeat"], Value::Null, "{status}");
    let table = stdout(&sandbox.monitorctl(&["status"]));
    assert_eq!(
        table.lines().nth(1),
        Some("heartbeats: off (only delivery.backend with auth: token sends them)"),
        "{table}"
    );
    agent.stop();

    let backend = DeviceMonitorStandIn::start();
    let sandbox = Sandbox::new();
    fs::write(sandbox.path("token"), DEFAULT_TOKEN).unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "delivery:\n  backend:\n    url: {}\n    auth: token\n    token_file: {}\n    heartbeat_interval: 1s\n    config_push_interval: 1\n",
            backend.url(),
            sandbox.path("token").display()
        ),
    )
    .unwrap();
    let agent = sandbox.start_agent();
    eventually("the agent sent a heartbeat", || heartbeats(&backend) == 1);
    let pushed = backend.configs().len();
    runtime().block_on(backend.wait_for_configs(pushed + 3, Duration::from_secs(30)));
    assert_eq!(heartbeats(&backend), 1, "{:#?}", backend.requests());
    let log = agent.log();
    assert_eq!(
        log.matches("the backend takes no heartbeats").count(),
        1,
        "{log}"
    );
    assert!(log.contains("404"), "{log}");
    let heartbeat = status_heartbeat(&sandbox, "the heartbeat refusal is shown", |heartbeat| {
        heartbeat["state"] == "not_served"
    });
    let error = heartbeat["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("404"), "{heartbeat}");
    assert_eq!(heartbeat["last_answered"], Value::Null, "{heartbeat}");
    let table = stdout(&sandbox.monitorctl(&["status"]));
    assert!(
        table.lines().nth(1).is_some_and(|line| line
            .starts_with("heartbeats: off, the backend does not take them; last error: ")
            && line.contains("404")),
        "{table}"
    );
}

/// A backend that cannot be reached: heartbeats stay on, none is answered, and the
/// status shows why, without the token.
#[test]
fn a_heartbeat_that_fails_shows_its_error_in_the_status() {
    let sandbox = Sandbox::new();
    fs::write(sandbox.path("token"), DEFAULT_TOKEN).unwrap();
    // Nothing listens on the discard port.
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "delivery:\n  backend:\n    url: http://127.0.0.1:9\n    auth: token\n    token_file: {}\n    heartbeat_interval: 30s\n",
            sandbox.path("token").display()
        ),
    )
    .unwrap();
    let _agent = sandbox.start_agent();
    let heartbeat = status_heartbeat(&sandbox, "the failed heartbeat is shown", |heartbeat| {
        heartbeat["last_error"].is_string()
    });
    assert_eq!(heartbeat["state"], "on", "{heartbeat}");
    assert_eq!(heartbeat["interval_seconds"], 30, "{heartbeat}");
    assert_eq!(heartbeat["last_answered"], Value::Null, "{heartbeat}");
    let table = stdout(&sandbox.monitorctl(&["status"]));
    let line = table.lines().nth(1).unwrap_or_default();
    assert!(
        line.starts_with("heartbeats: on, every 30s; none answered yet; last error: "),
        "{table}"
    );
    assert!(!table.contains(DEFAULT_TOKEN), "{table}");
    assert!(!heartbeat.to_string().contains(DEFAULT_TOKEN));
}
