//! MQTT for Home Assistant, end to end: a real monitord publishing to a real Mosquitto
//! broker, watched with `mosquitto_sub` as Home Assistant would: discovery, states,
//! availability by birth and last will, a broker that goes away and comes back, a login,
//! TLS.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::harness::{append, eventually, stdout, Sandbox};
use crate::mosquitto::{BrokerSettings, Mosquitto};

const DEVICE: &str = "pi-e2e";
const AVAILABILITY: &str = "monitor/pi-e2e/availability";
const STATE: &str = "monitor/pi-e2e/log/app/state";
const ATTRIBUTES: &str = "monitor/pi-e2e/log/app/attributes";
const DISCOVERY: &str = "homeassistant/binary_sensor/pi-e2e/pi-e2e_log_app/config";
const PASSWORD: &str = "secret-mqtt-password-do-not-log";

/// A sandbox with a log check `app` on `app.log` (CRITICAL on `FATAL`), and what `mqtt`
/// writes as the entries of `delivery.mqtt`.
fn sandbox_with_log_check(mqtt: impl FnOnce(&Sandbox) -> String) -> Sandbox {
    let sandbox = Sandbox::new();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "device_id: {DEVICE}\ndelivery:\n  mqtt:\n{}",
            mqtt(&sandbox)
        ),
    )
    .unwrap();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "app",
        "FATAL",
        log.to_str().unwrap(),
        "never",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    sandbox
}

fn password_file(sandbox: &Sandbox, password: &str) -> String {
    let path = sandbox.path("mqtt-password");
    fs::write(&path, format!("{password}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

fn json(payload: &str) -> Value {
    serde_json::from_str(payload).unwrap_or_else(|error| panic!("{error}: {payload}"))
}

#[test]
fn home_assistant_sees_a_problem_sensor_go_on_and_off_and_the_device_go_offline_when_the_agent_dies(
) {
    let Some(broker) = Mosquitto::start(BrokerSettings::default()) else {
        return;
    };
    let sandbox = sandbox_with_log_check(|_| format!("    - url: {}\n", broker.url()));
    let mut watcher = broker.watch("#");
    let agent = sandbox.start_agent();

    watcher.expect_payload(AVAILABILITY, "online");
    let discovery = watcher.expect(DISCOVERY, |payload| !payload.is_empty());
    let config = json(&discovery.payload);
    assert_eq!(config["device_class"], "problem");
    assert_eq!(config["unique_id"], "monitor_pi-e2e_log_app");
    assert_eq!(config["object_id"], "monitor_pi-e2e_log_app");
    assert_eq!(config["state_topic"], STATE);
    assert_eq!(config["payload_on"], "ON");
    assert_eq!(config["payload_off"], "OFF");
    assert_eq!(config["availability_topic"], AVAILABILITY);
    assert_eq!(config["payload_available"], "online");
    assert_eq!(config["payload_not_available"], "offline");
    assert_eq!(config["json_attributes_topic"], ATTRIBUTES);
    assert_eq!(config["device"]["identifiers"][0], "monitor_pi-e2e");
    assert_eq!(config["device"]["name"], DEVICE);
    assert_eq!(config["device"]["manufacturer"], "monitor");

    append(&sandbox.path("app.log"), "FATAL: disk on fire\n");
    watcher.expect_payload(STATE, "ON");
    let attributes = json(&watcher.expect(ATTRIBUTES, |_| true).payload);
    assert_eq!(attributes["level"], "CRITICAL");
    assert_eq!(attributes["status"], "LOGCONTAINS", "{attributes}");
    assert!(attributes["timestamp"].is_string(), "{attributes}");

    // What Home Assistant finds when it (re)subscribes: retained.
    let mut late = broker.watch("monitor/#");
    assert!(late.expect_payload(STATE, "ON").retained);
    assert!(late.expect_payload(AVAILABILITY, "online").retained);
    let mut late = broker.watch("homeassistant/#");
    assert!(
        late.expect(DISCOVERY, |payload| !payload.is_empty())
            .retained
    );

    // Disabling the check sends its OK, then removes its sensor (empty retained config).
    sandbox.monitorctl_quietly(&["disable", "log", "app"]);
    watcher.expect_payload(STATE, "OFF");
    watcher.expect_payload(DISCOVERY, "");

    agent.kill_hard();
    watcher.expect_payload(AVAILABILITY, "offline");
}

#[test]
fn an_alert_raised_while_the_broker_is_down_arrives_when_it_is_back() {
    let Some(mut broker) = Mosquitto::start(BrokerSettings {
        login: Some(("pi".into(), PASSWORD.into())),
        tls: false,
    }) else {
        return;
    };
    let url = broker.url();
    let sandbox = sandbox_with_log_check(|sandbox| {
        format!(
            "    - url: {url}\n      username: pi\n      password_file: {}\n",
            password_file(sandbox, PASSWORD)
        )
    });
    let mut watcher = broker.watch("monitor/#");
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    watcher.expect_payload(AVAILABILITY, "online");

    broker.kill();
    drop(watcher);
    append(
        &sandbox.path("app.log"),
        "FATAL: raised while the broker is away\n",
    );
    alerts.expect("CRITICAL", "log app");
    eventually("the alert waits in the outbox for the broker", || {
        let pending = stdout(&sandbox.monitorctl(&["alerts", "--pending"]));
        pending.contains("mqtt:monitor-pi-e2e@127.0.0.1") && pending.contains("not connected")
    });

    broker.launch();
    // The broker kept nothing: what arrives is the agent's birth and its redelivery.
    let mut watcher = broker.watch("monitor/#");
    watcher.expect_payload(AVAILABILITY, "online");
    watcher.expect_payload(STATE, "ON");
    eventually("nothing is pending any more", || {
        let pending = stdout(&sandbox.monitorctl(&["alerts", "--pending"]));
        !pending.contains("not connected")
    });
    let log = agent.log();
    assert!(log.contains("connecting again in"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
}

#[test]
fn tls_with_the_brokers_ca_and_a_wrong_password_named_without_it() {
    let Some(broker) = Mosquitto::start(BrokerSettings {
        login: Some(("pi".into(), PASSWORD.into())),
        tls: true,
    }) else {
        return;
    };
    let sandbox = sandbox_with_log_check(|sandbox| {
        let right = password_file(sandbox, PASSWORD);
        let wrong = sandbox.path("wrong-password");
        fs::write(&wrong, "not-the-password-either\n").unwrap();
        fs::set_permissions(&wrong, fs::Permissions::from_mode(0o600)).unwrap();
        // The second entry logs in with the wrong password (on the plain listener).
        format!(
            "    - url: {}\n      username: pi\n      password_file: {right}\n      ca_file: {}\n    - url: {}\n      client_id: wrong-login\n      base_topic: wrong\n      username: pi\n      password_file: {}\n",
            broker.tls_url(),
            broker.ca_file().display(),
            broker.url(),
            wrong.display()
        )
    });
    let log = sandbox.path("app.log");
    let mut watcher = broker.watch("monitor/#");
    let agent = sandbox.start_agent();
    watcher.expect_payload(AVAILABILITY, "online");
    append(&log, "FATAL: over TLS\n");
    watcher.expect_payload(STATE, "ON");

    eventually("the refused login is logged", || {
        agent
            .log()
            .contains("the broker refused the user name or password")
    });
    let status = stdout(&sandbox.monitorctl(&["alerts", "--pending"]));
    let log = agent.log();
    for shown in [&log, &status] {
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert!(!shown.contains("not-the-password-either"), "{shown}");
    }
}
