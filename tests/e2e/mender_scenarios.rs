//! Mender's own end-to-end scenarios for its agent, ported: `tests/tests/test_monitor_client.py`
//! in the public `mendersoftware/integration` repository (2023). Each scenario below names the
//! function it ports and runs against both backends the agent speaks to: the devicemonitor
//! stand-in (`tests/support/devicemonitor_standin.rs`) and a real monitor-server, both with
//! `auth: token`. What Mender checks in emails is checked here in what the backend received.
//!
//! Mender's interfaces only, as its suite uses them: hand-written `.sh` check files in
//! `available/` with a symlink in `enabled/`, and `monitorctl create/enable` with Mender's
//! argument order. Real components: real files, a real `systemd --user` for services, a real
//! `dbus-daemon` for D-Bus, the real `docker` CLI against podman for docker events. Mender's
//! multi-minute waits become short settings (`flapping_interval`, expirations of seconds).
//!
//! Not ported: the email, group and RBAC parts (server-side mail), the `@journalctl` part of
//! `test_monitorclient_alert_email` (journald does not run here), the file-descriptor count
//! of `test_monitorclient_logs_and_services`, `test_monitorclient_remove_old_alerts` (it
//! edits Mender's own store through its shell library).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::devicemonitor_standin::{DeviceMonitorStandIn, ALERT_PATH, DEFAULT_TOKEN};
use crate::harness::{append, eventually, stdout, Agent, AlertFollower, Sandbox, DEADLINE};
use crate::monitor_server::{ServerDatabase, ServerProcess};
use crate::podman::Podman;
use crate::private_bus::PrivateBus;
use crate::server::{server_binary, Management, EMAIL, PASSWORD};
use crate::user_manager::UserManager;

/// Mender's `log_pattern` of the email, store and network scenarios.
const SESSION_PATTERN: &str = "session opened for user [a-z]*";
const SESSION_LINE: &str = "a new session opened for user root now";

/// Each scenario runs once per backend: `mender_scenarios::<scenario>::devicemonitor_standin`
/// and `mender_scenarios::<scenario>::monitor_server`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn devicemonitor_standin() {
                super::$scenario(super::Target::StandIn);
            }

            #[test]
            fn monitor_server() {
                super::$scenario(super::Target::Server);
            }
        }
    )*};
}

on_both_backends!(
    logs_and_surround,
    alert_email_log_file,
    alert_email_tail_f,
    logs_and_services,
    flapping,
    alert_store,
    send_saved_alerts_on_network_issues,
    send_configuration_data,
    dbus_subsystem,
    dbus_pattern_match,
    dbus_bus_filter,
    dockerevents,
);

#[derive(Debug, Clone, Copy)]
enum Target {
    StandIn,
    Server,
}

/// The backend the agent reports to, seen from outside: what it received, and whether it
/// can be reached (Mender's tests point the server's name at 127.2.0.1 in /etc/hosts).
enum Backend {
    StandIn(DeviceMonitorStandIn),
    Server(Box<ServerBackend>),
}

struct ServerBackend {
    binary: PathBuf,
    database: ServerDatabase,
    /// `None` while it is down.
    process: Option<ServerProcess>,
    management: Management,
    token: String,
    device: String,
    port: String,
}

impl Backend {
    fn start(target: Target) -> Backend {
        match target {
            Target::StandIn => Backend::StandIn(DeviceMonitorStandIn::start()),
            Target::Server => {
                let binary = server_binary();
                let database = ServerDatabase::sqlite();
                let token = database.admin_ok(&binary, &["device", "add", "mender-device"], None);
                database.admin_ok(
                    &binary,
                    &["user", "add", EMAIL, "--password-stdin"],
                    Some(&format!("{PASSWORD}\n")),
                );
                let process = ServerProcess::start(&binary, &database, &[]);
                let management = Management::login(&process.url);
                let (devices, _) = management.get("/devices");
                let device = devices[0]["id"].as_str().unwrap().to_owned();
                let port = process.url.rsplit(':').next().unwrap().to_owned();
                Backend::Server(Box::new(ServerBackend {
                    binary,
                    database,
                    process: Some(process),
                    management,
                    token,
                    device,
                    port,
                }))
            }
        }
    }

    /// The `delivery:` section that points the sandbox's agent here, with its token file.
    fn delivery_settings(&self, sandbox: &Sandbox) -> String {
        let (url, token) = match self {
            Backend::StandIn(standin) => (standin.url(), DEFAULT_TOKEN.to_owned()),
            Backend::Server(server) => (
                format!("http://127.0.0.1:{}", server.port),
                server.token.clone(),
            ),
        };
        let token_file = sandbox.path("backend-token");
        fs::write(&token_file, token).unwrap();
        format!(
            "delivery:\n  backend:\n    url: {url}\n    auth: token\n    token_file: {}\n",
            token_file.display()
        )
    }

    /// Every alert the backend accepted, oldest first.
    fn alerts(&self) -> Vec<Value> {
        match self {
            Backend::StandIn(standin) => standin.alerts(),
            Backend::Server(server) => {
                let (alerts, _) = server.management.get(&format!(
                    "/devices/{}/alerts?sort_ascending=true&per_page=500",
                    server.device
                ));
                alerts.as_array().cloned().unwrap_or_default()
            }
        }
    }

    /// Waits until the backend holds at least `count` alerts; all of them, oldest first.
    fn wait_for_alerts(&self, count: usize) -> Vec<Value> {
        eventually(&format!("the backend holds {count} alerts"), || {
            self.alerts().len() >= count
        });
        self.alerts()
    }

    /// The check configuration the agent pushed last (an empty list before any).
    fn configuration(&self) -> Vec<Value> {
        match self {
            Backend::StandIn(standin) => standin
                .configs()
                .last()
                .and_then(|config| config.as_array().cloned())
                .unwrap_or_default(),
            Backend::Server(server) => {
                let (config, _) = server
                    .management
                    .get(&format!("/devices/{}/config", server.device));
                config.as_array().cloned().unwrap_or_default()
            }
        }
    }

    /// Unreachable: the stand-in closes every connection, the server stops.
    fn go_offline(&mut self) {
        match self {
            Backend::StandIn(standin) => standin.set_refusing(true),
            Backend::Server(server) => {
                let process = server.process.take().expect("the server runs");
                assert!(process.stop().success());
            }
        }
    }

    /// Reachable again, on the same address.
    fn come_back(&mut self) {
        match self {
            Backend::StandIn(standin) => standin.set_refusing(false),
            Backend::Server(server) => {
                let listen = format!("127.0.0.1:{}", server.port);
                let process =
                    ServerProcess::start(&server.binary, &server.database, &["--listen", &listen]);
                server.management = Management::login(&process.url);
                server.process = Some(process);
            }
        }
    }
}

/// A sandbox whose agent reports to `backend`, with `settings` before the delivery section.
fn sandbox_for(backend: &Backend, settings: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    let delivery = backend.delivery_settings(&sandbox);
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!("{settings}{delivery}"),
    )
    .unwrap();
    sandbox
}

/// As Mender's `prepare_*_monitoring` without the CLI: `available/<file>` written by hand,
/// and a symlink to it in `enabled/`.
fn write_check_file(sandbox: &Sandbox, file: &str, text: &str) {
    let available = sandbox.config_dir().join("available");
    let enabled = sandbox.config_dir().join("enabled");
    fs::create_dir_all(&available).unwrap();
    fs::create_dir_all(&enabled).unwrap();
    fs::write(available.join(file), text).unwrap();
    let link = enabled.join(file);
    if fs::symlink_metadata(&link).is_err() {
        symlink(available.join(file), link).unwrap();
    }
}

/// Mender's `prepare_log_monitoring(..., use_ctl=False)`: `log_<name>.sh`.
fn log_check_file(name: &str, log_file: &str, pattern: &str, expiration: Option<u32>) -> String {
    let mut text =
        format!("SERVICE_NAME=\"{name}\"\nLOG_FILE=\"{log_file}\"\nLOG_PATTERN=\"{pattern}\"\n");
    if let Some(seconds) = expiration {
        text.push_str(&format!("LOG_PATTERN_EXPIRATION={seconds}\n"));
    }
    text
}

/// Mender's `prepare_*_monitoring(..., use_ctl=True)`: `create` then `enable`.
fn create_and_enable(sandbox: &Sandbox, create: &[&str]) {
    let mut arguments = vec!["create"];
    arguments.extend_from_slice(create);
    sandbox.monitorctl_quietly(&arguments);
    sandbox.monitorctl_quietly(&["enable", create[0], create[1]]);
}

/// The alerts named `name`, in order.
fn named<'a>(alerts: &'a [Value], name: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|alert| alert["name"] == name)
        .collect()
}

fn level_and_subject(alert: &Value) -> (String, String) {
    (
        alert["level"].as_str().unwrap_or("?").to_owned(),
        alert["subject"]["name"].as_str().unwrap_or("?").to_owned(),
    )
}

fn data(lines: &Value) -> Vec<String> {
    lines
        .as_array()
        .unwrap_or_else(|| panic!("a list of lines: {lines}"))
        .iter()
        .map(|line| line["data"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The next local alert that `wanted` accepts, skipping others (a `@command` source's own
/// alerts, say).
fn next_where(alerts: &mut AlertFollower, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let (_, alert) = alerts.next();
        if wanted(&alert) {
            return alert;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Logs

/// Ports `test_monitorclient_logs_and_surround`: 63 lines, the match and 63 more lines are
/// in the file *before* the check is created with `create log`; one CRITICAL comes, with 30
/// lines before and 30 after.
fn logs_and_surround(target: Target) {
    let backend = Backend::start(target);
    let sandbox = sandbox_for(&backend, "");
    let log_file = sandbox.path("mylog.long.log");
    let mut text = String::new();
    for n in 0..63 {
        text.push_str(&format!("some long line of logs number: {n}\n"));
    }
    text.push_str(&format!("{SESSION_LINE}\n"));
    for n in 0..63 {
        text.push_str(&format!("some long line of logs number: {n}\n"));
    }
    fs::write(&log_file, text).unwrap();
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let pattern = r"session opened for user \w+";
    create_and_enable(
        &sandbox,
        &["log", "mylog-pcre", pattern, log_file.to_str().unwrap()],
    );

    alerts.expect("CRITICAL", "log mylog-pcre");
    // One alert, not one per line: clearing it by hand is the sentinel that follows it.
    sandbox.monitorctl_quietly(&["clear", "log", "mylog-pcre"]);
    alerts.expect("OK", "log mylog-pcre");
    let received = backend.wait_for_alerts(2);
    let levels: Vec<_> = received.iter().map(level_and_subject).collect();
    assert_eq!(
        levels,
        [
            ("CRITICAL".into(), "mylog-pcre".into()),
            ("OK".into(), "mylog-pcre".into())
        ],
        "{received:#?}"
    );
    let critical = &received[0];
    assert_eq!(critical["name"], format!("Log file contains {pattern}"));
    let details = &critical["subject"]["details"];
    assert_eq!(details["line_matching"]["data"], SESSION_LINE);
    let before = data(&details["lines_before"]);
    let after = data(&details["lines_after"]);
    assert_eq!((before.len(), after.len()), (30, 30), "{details:#}");
    assert_eq!(before[0], "some long line of logs number: 33");
    assert_eq!(after[29], "some long line of logs number: 29");
}

/// Ports the log part of `test_monitorclient_alert_email`: `log_mylog.sh` written by hand;
/// two lines, then the match and one line, then two more: a CRITICAL with the 2 lines before
/// and the 1 after. No expiration: it stays CRITICAL; rewriting the file in place with
/// `LOG_PATTERN_EXPIRATION` (Mender: 32 s, here 2 s) brings the OK.
fn alert_email_log_file(target: Target) {
    let backend = Backend::start(target);
    let sandbox = sandbox_for(&backend, "");
    let log_file = sandbox.path("mylog.log");
    let log_path = log_file.to_str().unwrap();
    write_check_file(
        &sandbox,
        "log_mylog.sh",
        &log_check_file("mylog", log_path, SESSION_PATTERN, None),
    );
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    append(&log_file, "some line 1\n");
    append(&log_file, "some line 2\n");
    append(&log_file, &format!("{SESSION_LINE}\nsome line 3\n"));
    alerts.expect("CRITICAL", "log mylog");
    // Written once the match was read (Mender waits between them): not context.
    append(&log_file, "some line 4\n");
    append(&log_file, "some line 5\n");
    let received = backend.wait_for_alerts(1);
    let critical = &received[0];
    assert_eq!(
        critical["name"],
        format!("Log file contains {SESSION_PATTERN}")
    );
    let details = &critical["subject"]["details"];
    assert_eq!(details["line_matching"]["data"], SESSION_LINE);
    assert_eq!(
        data(&details["lines_before"]),
        ["some line 1", "some line 2"]
    );
    assert_eq!(data(&details["lines_after"]), ["some line 3"]);

    // No expiration in the check: the agent says it never expires (Mender sends no OK until
    // the file below sets one).
    eventually("the check's configuration was pushed", || {
        !backend.configuration().is_empty()
    });
    let configuration = backend.configuration();
    let pushed = configuration
        .iter()
        .find(|check| check["type"] == "log")
        .unwrap_or_else(|| panic!("{configuration:#?}"));
    let expiration = &pushed["log"]["expire_seconds"];
    assert!(
        expiration.is_null() || expiration == 0,
        "a check without LOG_PATTERN_EXPIRATION must not expire: {pushed:#}"
    );

    write_check_file(
        &sandbox,
        "log_mylog.sh",
        &log_check_file("mylog", log_path, SESSION_PATTERN, Some(2)),
    );
    let (_, ok) = alerts.expect("OK", "log mylog");
    assert_eq!(ok["name"], format!("Log file contains {SESSION_PATTERN}"));
    let received = backend.wait_for_alerts(2);
    assert_eq!(received.len(), 2, "{received:#?}");
    assert_eq!(received[1]["level"], "OK");
    assert_eq!(received[1]["name"], ok["name"]);
}

/// Ports the streaming part of `test_monitorclient_alert_email`: the check's `LOG_FILE` is
/// `@tail -f <file>` with `LOG_PATTERN_EXPIRATION` (32 s there, 2 s here): the match is a
/// CRITICAL, and the OK follows once it expires.
fn alert_email_tail_f(target: Target) {
    let backend = Backend::start(target);
    let sandbox = sandbox_for(&backend, "");
    let log_file = sandbox.path("mylog.log");
    // Mender: the file must exist, or `tail -f` exits at once.
    fs::write(&log_file, "").unwrap();
    write_check_file(
        &sandbox,
        "log_crond.sh",
        &log_check_file(
            "crond",
            &format!("@tail -f {}", log_file.display()),
            SESSION_PATTERN,
            Some(2),
        ),
    );
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    append(
        &log_file,
        &format!("another line\n{SESSION_LINE}\nsome line 3\n"),
    );
    let name = format!("Log file contains {SESSION_PATTERN}");
    let critical = next_where(&mut alerts, |alert| alert["name"] == name);
    assert_eq!(critical["level"], "CRITICAL");
    let ok = next_where(&mut alerts, |alert| alert["name"] == name);
    assert_eq!(ok["level"], "OK");
    eventually("the backend holds the CRITICAL and the OK", || {
        named(&backend.alerts(), &name).len() >= 2
    });
    let received = backend.alerts();
    let levels: Vec<_> = named(&received, &name)
        .into_iter()
        .map(level_and_subject)
        .collect();
    assert_eq!(
        levels,
        [
            ("CRITICAL".into(), "crond".into()),
            ("OK".into(), "crond".into())
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Services

fn user_manager_sandbox(manager: &UserManager, backend: &Backend, settings: &str) -> Sandbox {
    let mut sandbox = sandbox_for(backend, &format!("systemd:\n  bus: user\n{settings}"));
    sandbox.env = manager.env();
    sandbox
}

/// A long-running unit named as Mender's tests name theirs, started.
fn start_unit(manager: &UserManager, name: &str) {
    manager.install_unit(
        &format!("{name}.service"),
        &format!("[Unit]\nDescription=Mender's {name}\n[Service]\nExecStart=/bin/sleep infinity\n"),
    );
    manager.systemctl_ok(&["start", name]);
    manager.wait_for_state(&format!("{name}.service"), "active");
}

/// Ports `test_monitorclient_logs_and_services`: two services watched through the CLI;
/// stopping both gives two CRITICAL `Service <name> not running`, starting both two OK.
/// Then a log check and a `@tail -f` check on one file: two matches give one CRITICAL per
/// check, no repeat while it is CRITICAL (a sentinel check on the same file shows the second
/// match was read).
fn logs_and_services(target: Target) {
    let Some(manager) = UserManager::start() else {
        return;
    };
    let backend = Backend::start(target);
    let services = ["crond", "mender-connect"];
    for service in services {
        start_unit(&manager, service);
    }
    let sandbox = user_manager_sandbox(&manager, &backend, "");
    for service in services {
        create_and_enable(&sandbox, &["service", service, "systemd"]);
    }
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    for service in services {
        manager.systemctl_ok(&["stop", service]);
        alerts.expect("CRITICAL", &format!("service {service}"));
    }
    for service in services {
        manager.systemctl_ok(&["start", service]);
        alerts.expect("OK", &format!("service {service}"));
    }
    let received = backend.wait_for_alerts(4);
    let levels: Vec<_> = received.iter().map(level_and_subject).collect();
    assert_eq!(
        levels,
        [
            ("CRITICAL".into(), "crond".into()),
            ("CRITICAL".into(), "mender-connect".into()),
            ("OK".into(), "crond".into()),
            ("OK".into(), "mender-connect".into()),
        ],
        "{received:#?}"
    );
    for alert in &received {
        let service = alert["subject"]["name"].as_str().unwrap();
        assert_eq!(alert["name"], format!("Service {service} not running"));
    }

    let log_file = sandbox.path("mylog.log");
    fs::write(&log_file, "").unwrap();
    let log_path = log_file.to_str().unwrap();
    let tail = format!("@tail -f {log_path}");
    create_and_enable(&sandbox, &["log", "mylog", SESSION_PATTERN, log_path]);
    create_and_enable(&sandbox, &["log", "mylog-tail", SESSION_PATTERN, &tail]);
    create_and_enable(&sandbox, &["log", "sentinel", "^sentinel$", log_path]);
    create_and_enable(&sandbox, &["log", "sentinel-tail", "^sentinel$", &tail]);
    append(&log_file, "some line 1\nsome line 2\n");
    append(&log_file, &format!("{SESSION_LINE}\nsome line 3\n"));
    append(&log_file, "some line 4\nsome line 5\n");
    append(&log_file, &format!("{SESSION_LINE}\nsome line 3\n"));
    append(&log_file, "sentinel\n");
    eventually("both sentinels reached the backend", || {
        let received = backend.alerts();
        ["sentinel", "sentinel-tail"].iter().all(|name| {
            received
                .iter()
                .any(|alert| alert["subject"]["name"] == *name)
        })
    });
    let received = backend.alerts();
    let logs: Vec<_> = received[4..]
        .iter()
        .map(level_and_subject)
        .filter(|(_, subject)| subject.starts_with("mylog"))
        .collect();
    let mut sorted = logs.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("CRITICAL".into(), "mylog".into()),
            ("CRITICAL".into(), "mylog-tail".into())
        ],
        "one CRITICAL per log check, no repeat: {received:#?}"
    );
}

/// Ports `test_monitorclient_flapping`: a service stopped and started again and again
/// (Mender: 32 times, 2.2 s apart, within its 10-minute window; here a 10 s window and a
/// threshold of 3) is CRITICAL `Service crond going up and down`; once calm, its OK
/// `Service crond not running`.
fn flapping(target: Target) {
    let Some(manager) = UserManager::start() else {
        return;
    };
    let backend = Backend::start(target);
    start_unit(&manager, "crond");
    let sandbox = user_manager_sandbox(
        &manager,
        &backend,
        "flapping_interval: 10s\nflapping_count_threshold: 3\nalert_log_max_age: 1m\n",
    );
    write_check_file(
        &sandbox,
        "service_crond.sh",
        "SERVICE_NAME=crond\nSERVICE_TYPE=systemd\n",
    );
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let flapping_name = "Service crond going up and down";
    // Each change is an alert until the changes make it flapping.
    let mut running = true;
    let mut flapping = None;
    for _ in 0..16 {
        if running {
            manager.systemctl_ok(&["stop", "crond"]);
        } else {
            manager.systemctl_ok(&["start", "crond"]);
        }
        running = !running;
        let (_, alert) = alerts.next();
        if alert["name"] == flapping_name {
            flapping = Some(alert);
            break;
        }
    }
    let flapping = flapping.unwrap_or_else(|| panic!("never flapping: {:#?}", alerts.seen));
    assert_eq!(flapping["level"], "CRITICAL");
    if !running {
        manager.systemctl_ok(&["start", "crond"]);
    }
    // Calm: the changes leave the window and the episode ends with the OK.
    let ok = next_where(&mut alerts, |alert| alert["level"] == "OK");
    assert_eq!(ok["name"], "Service crond not running");
    eventually(
        "the backend holds the flapping alert and the OK after it",
        || {
            let received = backend.alerts();
            let flapping_at = received
                .iter()
                .position(|alert| alert["name"] == flapping_name);
            flapping_at.is_some_and(|at| {
                received[at + 1..].iter().any(|alert| {
                    alert["level"] == "OK" && alert["name"] == "Service crond not running"
                })
            })
        },
    );
    let received = backend.alerts();
    assert_eq!(named(&received, flapping_name).len(), 1, "{received:#?}");
    assert_eq!(received[received.len() - 1]["level"], "OK", "{received:#?}");
}

/// Ports `test_monitorclient_alert_store`: with the backend unreachable a service is stopped
/// and started; nothing arrives; once it is back the CRITICAL and then the OK arrive, in
/// order. Then the large store (MEN-5133): 30 matches in a log while unreachable; once back,
/// at least the CRITICAL arrives.
fn alert_store(target: Target) {
    let Some(manager) = UserManager::start() else {
        return;
    };
    let mut backend = Backend::start(target);
    start_unit(&manager, "rpcbind");
    let sandbox = user_manager_sandbox(&manager, &backend, "");
    write_check_file(
        &sandbox,
        "service_rpcbind.sh",
        "SERVICE_NAME=rpcbind\nSERVICE_TYPE=systemd\n",
    );
    let log_file = sandbox.path("mylog.log");
    fs::write(&log_file, "").unwrap();
    write_check_file(
        &sandbox,
        "log_mylog.sh",
        &log_check_file("mylog", log_file.to_str().unwrap(), SESSION_PATTERN, None),
    );
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    backend.go_offline();
    manager.systemctl_ok(&["stop", "rpcbind"]);
    alerts.expect("CRITICAL", "service rpcbind");
    manager.systemctl_ok(&["start", "rpcbind"]);
    alerts.expect("OK", "service rpcbind");
    if let Backend::StandIn(standin) = &backend {
        assert!(standin.alerts().is_empty(), "{:#?}", standin.alerts());
    }
    backend.come_back();
    let received = backend.wait_for_alerts(2);
    let levels: Vec<_> = received.iter().map(level_and_subject).collect();
    assert_eq!(
        levels,
        [
            ("CRITICAL".into(), "rpcbind".into()),
            ("OK".into(), "rpcbind".into())
        ],
        "{received:#?}"
    );
    assert_eq!(received[0]["name"], "Service rpcbind not running");

    backend.go_offline();
    for _ in 0..30 {
        append(
            &log_file,
            "some line 1\nsome line 2\nsome line 3\nsome line 4\n",
        );
        append(&log_file, "the session session opened for user tests\n");
        append(
            &log_file,
            "some line 6\nsome line 7\nsome line 8\nsome line 9\n",
        );
    }
    alerts.expect("CRITICAL", "log mylog");
    backend.come_back();
    eventually("the CRITICAL made while offline arrived", || {
        backend
            .alerts()
            .iter()
            .any(|alert| alert["subject"]["name"] == "mylog" && alert["level"] == "CRITICAL")
    });
}

/// Ports `test_monitorclient_send_saved_alerts_on_network_issues`: unreachable from the
/// start; a `@tail -f` log check matches; once the network is back the CRITICAL arrives, with
/// its context. (Mender's test counts two CRITICAL emails for its two matches; with no
/// expiration the check is still CRITICAL at the second, which `logs_and_services` says
/// repeats nothing, so one CRITICAL is expected here.)
fn send_saved_alerts_on_network_issues(target: Target) {
    let mut backend = Backend::start(target);
    backend.go_offline();
    let sandbox = sandbox_for(&backend, "");
    let log_file = sandbox.path("mylog.log");
    fs::write(&log_file, "").unwrap();
    write_check_file(
        &sandbox,
        "log_mylog.sh",
        &log_check_file(
            "mylog",
            &format!("@tail -f {}", log_file.display()),
            SESSION_PATTERN,
            None,
        ),
    );
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log_file, "some line 1\nsome line 2\n");
    append(&log_file, &format!("{SESSION_LINE}\n"));
    append(&log_file, "some line 4\nsome line 5\nsome line 6\n");
    let name = format!("Log file contains {SESSION_PATTERN}");
    next_where(&mut alerts, |alert| alert["name"] == name);
    append(&log_file, &format!("{SESSION_LINE}\n"));
    append(&log_file, "some line 7\nsomeline 8\n");
    if let Backend::StandIn(standin) = &backend {
        assert!(standin.alerts().is_empty(), "{:#?}", standin.alerts());
    }

    backend.come_back();
    eventually("the CRITICAL made while offline arrived", || {
        !named(&backend.alerts(), &name).is_empty()
    });
    let received = backend.alerts();
    let critical = named(&received, &name)[0];
    assert_eq!(critical["level"], "CRITICAL");
    let details = &critical["subject"]["details"];
    assert_eq!(details["line_matching"]["data"], SESSION_LINE);
    assert_eq!(
        data(&details["lines_before"]),
        ["some line 1", "some line 2"]
    );
}

/// Ports `test_monitorclient_alert_store_discard_http_400`, against the stand-in only: it
/// needs a backend that answers 400 on demand (Mender writes corrupt records into its store
/// by hand instead). A CRITICAL made while unreachable is refused with a 400 once back: it is
/// taken out of the store (nothing pending) and kept aside (`alerts --rejected`), never sent
/// again; the alerts that follow still arrive, in order. Unlike Mender, which drops every
/// alert of a refused batch, only the refused alert is set aside (issue 16, item 14).
#[test]
fn alert_store_discard_http_400() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    let mut backend = Backend::start(Target::StandIn);
    start_unit(&manager, "crond");
    let sandbox = user_manager_sandbox(&manager, &backend, "");
    write_check_file(
        &sandbox,
        "service_crond.sh",
        "SERVICE_NAME=crond\nSERVICE_TYPE=systemd\n",
    );
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let Backend::StandIn(standin) = &backend else {
        unreachable!()
    };
    // The configuration push is done, so the next request is the alert's.
    eventually("the configuration was pushed", || {
        !standin.configs().is_empty()
    });

    backend.go_offline();
    manager.systemctl_ok(&["stop", "crond"]);
    alerts.expect("CRITICAL", "service crond");
    let Backend::StandIn(standin) = &backend else {
        unreachable!()
    };
    standin.fail_next(1, 400);
    backend.come_back();
    let Backend::StandIn(standin) = &backend else {
        unreachable!()
    };
    eventually("the stand-in refused the CRITICAL with a 400", || {
        standin
            .requests()
            .iter()
            .any(|request| request.path == ALERT_PATH && request.status == 400)
    });
    eventually("nothing is pending for the backend", || {
        let pending: Value = serde_json::from_str(&stdout(&sandbox.monitorctl(&[
            "alerts",
            "--pending",
            "--json",
        ])))
        .unwrap_or(Value::Null);
        pending
            .as_array()
            .is_some_and(|destinations| destinations.iter().all(|d| d["pending"] == 0))
    });

    manager.systemctl_ok(&["start", "crond"]);
    alerts.expect("OK", "service crond");
    backend.go_offline();
    manager.systemctl_ok(&["stop", "crond"]);
    alerts.expect("CRITICAL", "service crond");
    manager.systemctl_ok(&["start", "crond"]);
    alerts.expect("OK", "service crond");
    backend.come_back();
    let received = backend.wait_for_alerts(3);
    let levels: Vec<_> = received.iter().map(level_and_subject).collect();
    assert_eq!(
        levels,
        [
            ("OK".into(), "crond".into()),
            ("CRITICAL".into(), "crond".into()),
            ("OK".into(), "crond".into())
        ],
        "the refused CRITICAL is never sent again: {received:#?}"
    );
    let rejected = sandbox.monitorctl(&["alerts", "--rejected"]);
    let shown = stdout(&rejected);
    assert!(
        rejected.status.success() && shown.contains("Service crond not running"),
        "`monitorctl alerts --rejected` shows the refused alert: {}{}",
        shown,
        crate::harness::stderr(&rejected)
    );
    assert!(shown.contains("planned failure 400"), "{shown}");
}

/// Ports `test_monitorclient_send_configuration_data`: services crond and dbus, logs syslog
/// and clientlogs, all created and enabled with the CLI; the pushed configuration has exactly
/// these 4, named `<check>.sh`, all enabled. A fifth check, created but not enabled, is not
/// pushed (Mender's changelog 1.1.0: "configuration data on enabled checks").
fn send_configuration_data(target: Target) {
    let backend = Backend::start(target);
    let sandbox = sandbox_for(&backend, "");
    let syslog = sandbox.path("syslog");
    fs::write(&syslog, "").unwrap();
    create_and_enable(&sandbox, &["service", "crond", "systemd"]);
    create_and_enable(&sandbox, &["service", "dbus", "systemd"]);
    create_and_enable(
        &sandbox,
        &["log", "syslog", "root.*access", syslog.to_str().unwrap()],
    );
    create_and_enable(
        &sandbox,
        &[
            "log",
            "clientlogs",
            "[Ee]rror.*",
            "@journalctl -u mender-authd -f",
        ],
    );
    sandbox.monitorctl_quietly(&["create", "service", "cron-disabled", "systemd"]);
    let _agent = sandbox.start_agent();
    eventually("the agent pushed its configuration", || {
        backend.configuration().len() >= 4
    });
    let configuration = backend.configuration();
    let mut pushed: Vec<(String, String, String)> = configuration
        .iter()
        .map(|check| {
            (
                check["name"].as_str().unwrap_or("?").to_owned(),
                check["type"].as_str().unwrap_or("?").to_owned(),
                check["status"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    pushed.sort();
    let expected = |name: &str, kind: &str| (name.to_owned(), kind.to_owned(), "enabled".into());
    assert_eq!(
        pushed,
        [
            expected("clientlogs.sh", "log"),
            expected("crond.sh", "service"),
            expected("dbus.sh", "service"),
            expected("syslog.sh", "log"),
        ],
        "{configuration:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// D-Bus

/// Waits until the agent logs `needle`; at the deadline, fails with what it logged as
/// problems (why a check is not watched).
fn wait_for_agent_log(agent: &Agent, needle: &str) {
    let deadline = Instant::now() + DEADLINE;
    let mut pause = Duration::from_millis(5);
    while !agent.log().contains(needle) {
        if Instant::now() > deadline {
            let log = agent.log();
            let problems: Vec<&str> = log
                .lines()
                .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
                .collect();
            panic!(
                "the agent did not log `{needle}` within {DEADLINE:?}; its problems:\n{}",
                problems.join("\n")
            );
        }
        std::thread::park_timeout(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Mender's `prepare_dbus_monitoring`: `dbus_test.sh` with `DBUS_NAME=test` (a label, not a
/// bus name) and the optional lines; the agent on a private bus. Then `signals` are sent
/// once the agent listens, and the first alert is returned.
fn dbus_scenario(target: Target, extra_lines: &str, signals: &[(&str, &str, &str)]) -> Value {
    let Some(bus) = PrivateBus::start() else {
        return Value::Null;
    };
    let backend = Backend::start(target);
    let sandbox = sandbox_for(&backend, &format!("dbus:\n  bus: \"{}\"\n", bus.address));
    write_check_file(
        &sandbox,
        "dbus_test.sh",
        &format!("DBUS_NAME=test\n{extra_lines}"),
    );
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    wait_for_agent_log(&agent, "listening for D-Bus signals");
    for (interface, member, text) in signals {
        bus.send(interface, member, text);
    }
    let (_, critical) = alerts.expect("CRITICAL", "dbus test");
    let received = backend.wait_for_alerts(1);
    let delivered = &received[0];
    assert_eq!(delivered["level"], "CRITICAL");
    // Whatever bus the check watches, an empty watch expression is Mender's "system bus".
    assert_eq!(
        delivered["name"], "D-Bus signal arrived on bus system bus",
        "{delivered:#}"
    );
    assert_eq!(delivered["subject"]["name"], "test");
    critical
}

/// Ports `test_dbus_subsystem`: `DBUS_NAME=test` alone watches every signal on the bus.
fn dbus_subsystem(target: Target) {
    dbus_scenario(
        target,
        "",
        &[("io.mender.Authentication1", "JwtTokenStateChange", "")],
    );
}

/// Ports `test_dbus_pattern_match`: `DBUS_PATTERN=mender` alerts on a signal whose text holds
/// `mender`, not on one without it.
fn dbus_pattern_match(target: Target) {
    let critical = dbus_scenario(
        target,
        "DBUS_PATTERN=mender\n",
        &[
            ("org.example.Sensor", "Alarm", "all quiet"),
            ("org.example.Sensor", "Alarm", "mender is here"),
        ],
    );
    if critical.is_null() {
        return;
    }
    let description = critical["subject"]["details"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(description.contains("mender is here"), "{critical:#}");
}

/// Ports `test_dbus_bus_filter`: the file sets `DBUS_WATCH_PATTERN`, a key Mender does not
/// read (its key is `DBUS_WATCH_EXPRESSION`); an unknown key is ignored, so the check still
/// watches the whole bus and a signal on `io.mender.Authentication1` alerts as
/// `D-Bus signal arrived on bus system bus`.
fn dbus_bus_filter(target: Target) {
    dbus_scenario(
        target,
        "DBUS_WATCH_PATTERN=type='signal',interface='io.mender.Authentication1'\n",
        &[(
            "io.mender.Authentication1",
            "JwtTokenStateChange",
            "the token changed",
        )],
    );
}

// ---------------------------------------------------------------------------------------
// Docker events

/// Ports `test_monitorclient_dockerevents` with the real `docker` CLI on podman instead of
/// Mender's fake `docker` script: `create dockerevents container_mycontainer_restart
/// mycontainer restart <expiration>` (32 s there, 2 s here); `docker restart mycontainer`
/// gives CRITICAL `Docker container mycontainer restart`, then the OK once it expires.
fn dockerevents(target: Target) {
    let _engine = crate::podman::one_engine();
    let Some(podman) = Podman::start() else {
        return;
    };
    podman.docker_ok(&[
        "run",
        "-d",
        "--network=none",
        "--name",
        "mycontainer",
        crate::podman::IMAGE,
        "sleep",
        "100000",
    ]);
    let backend = Backend::start(target);
    let mut sandbox = sandbox_for(&backend, "");
    sandbox
        .env
        .push(("DOCKER_HOST".into(), podman.docker_host()));
    create_and_enable(
        &sandbox,
        &[
            "dockerevents",
            "container_mycontainer_restart",
            "mycontainer",
            "restart",
            "2",
        ],
    );
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let name = "Docker container mycontainer restart";
    // `docker events` shows only what happens after it connects, and nothing says when the
    // agent's has: restart until the event is seen.
    let mut critical = None;
    for _ in 0..5 {
        podman.docker_ok(&["restart", "-t", "0", "mycontainer"]);
        if let Some((_, alert)) = alerts.try_next(Duration::from_secs(5)) {
            critical = Some(alert);
            break;
        }
    }
    let critical = critical.unwrap_or_else(|| panic!("no alert for `docker restart`"));
    assert_eq!(critical["name"], name, "{critical:#}");
    assert_eq!(critical["level"], "CRITICAL");
    let ok = next_where(&mut alerts, |alert| alert["name"] == name);
    assert_eq!(ok["level"], "OK");
    eventually("the backend holds the CRITICAL and the OK", || {
        named(&backend.alerts(), name).len() >= 2
    });
    let received = backend.alerts();
    let delivered = named(&received, name);
    assert_eq!(
        (
            delivered[0]["level"].as_str(),
            delivered[1]["level"].as_str()
        ),
        (Some("CRITICAL"), Some("OK"))
    );
    let subject = &delivered[0]["subject"];
    assert_eq!(subject["name"], "container_mycontainer_restart");
    assert_eq!(subject["type"], "docker_event");
    let line = subject["details"]["line_matching"]["data"]
        .as_str()
        .unwrap_or_default();
    assert!(
        line.contains("container restart") && line.contains("name=mycontainer"),
        "{subject:#}"
    );
    // What Mender's `ctl-lib.sh` writes for a dockerevents check.
    assert_eq!(
        subject["status"], "DOCKEREVENTS_CONTAINER_EVENT",
        "{subject:#}"
    );
    let description = subject["details"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        description.starts_with("Alert was raised due to:") && description.contains(line),
        "{subject:#}"
    );
}
