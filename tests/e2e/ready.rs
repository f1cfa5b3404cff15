//! Ready means every check is known: systemd's `READY=1` (on a `NOTIFY_SOCKET` the test
//! binds, as systemd does for `Type=notify`) comes once every check had its first read, so a
//! `monitorctl status` right after it has a state for each; a source that hangs holds it up
//! for a bounded time only, and its check says what it waits for.

use std::fs;
use std::os::unix::net::{UnixDatagram, UnixListener};

use serde_json::Value;

use crate::harness::{Sandbox, DEADLINE};
use crate::user_manager::UserManager;

/// A socket standing in for systemd's notification socket, in the sandbox's environment.
fn notify_socket(sandbox: &mut Sandbox) -> UnixDatagram {
    let path = sandbox.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    sandbox
        .env
        .push(("NOTIFY_SOCKET".to_owned(), path.display().to_string()));
    socket
}

/// The next notification, which must be `READY=1`; returns it whole.
fn expect_ready(socket: &UnixDatagram) -> String {
    let mut buffer = [0; 4096];
    let length = socket.recv(&mut buffer).unwrap_or_else(|error| {
        panic!("no notification from monitord within {DEADLINE:?}: {error}")
    });
    let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
    assert!(message.lines().any(|line| line == "READY=1"), "{message}");
    message
}

/// Every check of `monitorctl status --json`, by `<subsystem> <name>`.
fn statuses(sandbox: &Sandbox) -> Vec<(String, Value)> {
    let output = sandbox.monitorctl(&["status", "--json"]);
    assert!(output.status.success(), "monitorctl status: {output:?}");
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| {
            let id = &check["check"];
            let name = format!(
                "{} {}",
                id["subsystem"].as_str().unwrap(),
                id["name"].as_str().unwrap()
            );
            (name, check.clone())
        })
        .collect()
}

fn status_of<'a>(statuses: &'a [(String, Value)], check: &str) -> &'a Value {
    statuses
        .iter()
        .find(|(name, _)| name == check)
        .map(|(_, status)| status)
        .unwrap_or_else(|| panic!("no {check} in {statuses:#?}"))
}

#[test]
fn right_after_ready_every_check_has_a_state() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit(
        "ready-steady.service",
        "[Service]\nExecStart=/bin/sleep 1000\n",
    );
    manager.install_unit(
        "ready-idle.service",
        "[Service]\nExecStart=/bin/sleep 1000\n",
    );
    manager.systemctl_ok(&["start", "ready-steady.service"]);
    manager.wait_for_state("ready-steady.service", "active");

    let mut sandbox = Sandbox::new();
    sandbox.env = manager.env();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        "systemd:\n  bus: user\n",
    )
    .unwrap();
    let log = sandbox.path("app.log");
    fs::write(&log, "started\n").unwrap();
    let tailed = sandbox.path("tailed.log");
    fs::write(&tailed, "started\n").unwrap();
    let tail = format!("@tail -F {}", tailed.display());
    for create in [
        vec!["create", "log", "app", "ERROR", log.to_str().unwrap()],
        vec!["create", "log", "tailed", "FATAL", &tail],
        vec!["create", "service", "ready-steady", "systemd"],
        vec!["create", "service", "ready-idle", "systemd"],
        vec!["create", "diskusage", "root_space", "/", "99"],
    ] {
        sandbox.monitorctl_quietly(&create);
    }
    for (kind, name) in [
        ("log", "app"),
        ("log", "tailed"),
        ("service", "ready-steady"),
        ("service", "ready-idle"),
        ("diskusage", "root_space"),
    ] {
        sandbox.monitorctl_quietly(&["enable", kind, name]);
    }
    let notifications = notify_socket(&mut sandbox);
    let mut agent = sandbox.spawn_agent();

    let ready = expect_ready(&notifications);
    let statuses = statuses(&sandbox);
    assert_eq!(statuses.len(), 5, "{statuses:#?}");
    for (check, status) in &statuses {
        assert_ne!(status["state"], "unknown", "{check}: {status:#}");
    }
    assert_eq!(status_of(&statuses, "service ready-steady")["state"], "ok");
    assert_eq!(
        status_of(&statuses, "service ready-idle")["state"],
        "critical"
    );
    assert_eq!(status_of(&statuses, "log app")["state"], "ok");
    assert_eq!(status_of(&statuses, "log tailed")["state"], "ok");
    assert_eq!(status_of(&statuses, "diskusage root_space")["state"], "ok");
    assert!(
        ready.contains("STATUS=watching\n") || ready.ends_with("STATUS=watching"),
        "{ready}"
    );
    agent.assert_alive();
}

/// A plugin that runs for its whole minute-long timeout and a bus that takes connections
/// and never answers do not hold READY until they end: it comes after the agent's bounded
/// wait, and `status` says what those two checks still wait for, while the others are known.
#[test]
fn a_hanging_source_does_not_hold_ready_and_its_check_says_why() {
    let mut sandbox = Sandbox::new();
    // Connections wait in its backlog; nobody ever answers on it.
    let silent_bus = sandbox.path("silent-bus");
    let _silent_bus = UnixListener::bind(&silent_bus).unwrap();
    sandbox.env.push((
        "DBUS_SESSION_BUS_ADDRESS".to_owned(),
        format!("unix:path={}", silent_bus.display()),
    ));
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        "systemd:\n  bus: user\n",
    )
    .unwrap();
    let log = sandbox.path("app.log");
    fs::write(&log, "started\n").unwrap();
    sandbox.monitorctl_quietly(&["create", "log", "app", "ERROR", log.to_str().unwrap()]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    sandbox.monitorctl_quietly(&["create", "service", "unanswered", "systemd"]);
    sandbox.monitorctl_quietly(&["enable", "service", "unanswered"]);
    sandbox.monitorctl_quietly(&["create", "plugin", "stuck", "sleep 120"]);
    let file = sandbox.config_dir().join("available/plugin_stuck.yaml");
    let mut definition = fs::read_to_string(&file).unwrap();
    definition.push_str("interval: 60s\ntimeout: 60s\n");
    fs::write(&file, definition).unwrap();
    sandbox.monitorctl_quietly(&["enable", "plugin", "stuck"]);
    let notifications = notify_socket(&mut sandbox);
    let mut agent = sandbox.spawn_agent();

    // Within the harness's deadline, half the plugin's timeout: READY did not wait for it.
    let ready = expect_ready(&notifications);
    assert!(
        ready.contains("STATUS=watching; not read yet: 2 checks (see monitorctl status)"),
        "{ready}"
    );
    let statuses = statuses(&sandbox);
    assert_eq!(status_of(&statuses, "log app")["state"], "ok");
    let plugin = status_of(&statuses, "plugin stuck");
    assert_eq!(plugin["state"], "unknown", "{plugin:#}");
    assert_eq!(
        plugin["detail"],
        "not read yet: waiting for its first sample, still running"
    );
    let service = status_of(&statuses, "service unanswered");
    assert_eq!(service["state"], "unknown", "{service:#}");
    assert!(
        service["detail"]
            .as_str()
            .is_some_and(|detail| detail.starts_with("not read yet: ")),
        "{service:#}"
    );
    assert!(
        agent.log().contains("not read yet: 2 checks"),
        "{}",
        agent.log()
    );
    agent.assert_alive();
}

/// A bus that is not there at all (the agent retries: at boot systemd may take its name on
/// the bus a moment later) holds READY up to the bounded wait only, and the service check
/// says why it has no state.
#[test]
fn an_unreachable_bus_is_why_its_service_check_is_unknown() {
    let mut sandbox = Sandbox::new();
    sandbox.env.push((
        "DBUS_SESSION_BUS_ADDRESS".to_owned(),
        format!("unix:path={}", sandbox.path("no-bus-here").display()),
    ));
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        "systemd:\n  bus: user\n",
    )
    .unwrap();
    sandbox.monitorctl_quietly(&["create", "service", "unreached", "systemd"]);
    sandbox.monitorctl_quietly(&["enable", "service", "unreached"]);
    let notifications = notify_socket(&mut sandbox);
    let mut agent = sandbox.spawn_agent();

    let ready = expect_ready(&notifications);
    assert!(ready.contains("not read yet: 1 checks"), "{ready}");
    let statuses = statuses(&sandbox);
    let service = status_of(&statuses, "service unreached");
    assert_eq!(service["state"], "unknown", "{service:#}");
    let detail = service["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("not read yet: lost the connection to systemd (")
            && detail.contains("no-bus-here"),
        "{service:#}"
    );
    let log = agent.log();
    assert!(
        log.contains("ready after 5s; not read yet: 1 checks"),
        "{log}"
    );
    agent.assert_alive();
}
