//! The MQTT channel with a real Mosquitto (`tests/support/mosquitto.rs`; plain and TLS
//! listeners, a password), watched with
//! `mosquitto_sub` as Home Assistant would: a device's CRITICAL and OK become a retained
//! problem sensor under the device's own Home Assistant device, a silent device its
//! `monitor silent` sensor, an alert sent while the broker is away arrives once it is back,
//! the server's death is its last will, and started again it is online before any alert. The broker's password is never shown.

use serde_json::{json, Value};

use crate::api::{alert, binary, Fixture};
use crate::monitor_server::{ServerDatabase, ServerProcess};
use crate::mosquitto::{BrokerSettings, Mosquitto, Watcher};

const USER: &str = "homeassistant";
const PASSWORD: &str = "mqtt-password-never-shown";

const DISCOVERY: &str = "homeassistant/binary_sensor/server_pi-1/server_pi-1_log_app/config";
const STATE: &str = "monitor-server/pi-1/log/app/state";
const AVAILABILITY: &str = "monitor-server/availability";
const SILENT_STATE: &str = "monitor-server/pi-1/monitor/silent/state";

/// The discovery config of pi-1's `app` sensor, checked field by field.
fn expect_discovery(watcher: &mut Watcher) -> Value {
    let message = watcher.expect(DISCOVERY, |_| true);
    let config: Value = serde_json::from_str(&message.payload).unwrap();
    assert_eq!(config["device_class"], "problem");
    assert_eq!(config["unique_id"], "monitor_server_pi-1_log_app");
    assert_eq!(config["state_topic"], STATE);
    assert_eq!(config["availability_topic"], AVAILABILITY);
    assert_eq!(config["payload_on"], "ON");
    assert_eq!(
        config["device"]["identifiers"],
        json!(["monitor_server_pi-1"])
    );
    assert_eq!(config["device"]["name"], "pi-1");
    config
}

async fn heartbeat(fixture: &Fixture, interval_seconds: u64) {
    let response = fixture
        .device_post(
            "/api/devices/v1/monitor/heartbeat",
            &fixture.device_token,
            &json!({ "interval_seconds": interval_seconds }),
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_devices_alerts_become_home_assistant_sensors_through_a_broker_that_goes_away() {
    let Some(mut broker) = Mosquitto::start(BrokerSettings {
        login: Some((USER.into(), PASSWORD.into())),
        tls: true,
    }) else {
        return;
    };
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("server.yaml");
    std::fs::write(
        &config,
        "notify_interval: 1s\nallow_private_targets: true\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let server_args = ["--config", config.as_str(), "--silent-after", "2"];
    let fixture = Fixture::start_with(ServerDatabase::sqlite(), &server_args).await;
    fixture.database.admin_ok(
        binary(),
        &[
            "channel",
            "mqtt",
            "home",
            "--url",
            &broker.url(),
            "--username",
            USER,
            "--password-stdin",
            "--allow-private-targets",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    // The same broker over TLS, trusting the test CA, under prefixes of its own.
    let ca_file = broker.ca_file().display().to_string();
    fixture.database.admin_ok(
        binary(),
        &[
            "channel",
            "mqtt",
            "home-tls",
            "--url",
            &broker.tls_url(),
            "--username",
            USER,
            "--password-stdin",
            "--ca-file",
            &ca_file,
            "--topic-prefix",
            "home/tls",
            "--discovery-prefix",
            "ha-tls",
            "--allow-private-targets",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    let listed = fixture
        .database
        .admin_ok(binary(), &["channel", "list"], None);
    assert!(
        listed.contains(&format!("mqtts://{USER}:***@127.0.0.1:")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "/home/tls?discovery_prefix=ha-tls&ca_file={ca_file}"
        )),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "mqtt://{USER}:***@127.0.0.1:{}/monitor-server",
            broker.port
        )),
        "{listed}"
    );
    let (channels, _) = fixture.manage("/settings/channels").await;
    assert_eq!(channels[0]["kind"], "mqtt", "{channels}");
    assert_eq!(channels.as_array().unwrap().len(), 2, "{channels}");
    for shown in [listed, channels.to_string()] {
        assert!(!shown.contains(PASSWORD), "{shown}");
    }

    // CRITICAL, then OK: a discovery config, the server online, ON then OFF.
    let mut watcher = broker.watch("#");
    fixture
        .post_alerts(&json!([alert("app", "CRITICAL", 1)]))
        .await;
    expect_discovery(&mut watcher);
    watcher.expect_payload(AVAILABILITY, "online");
    watcher.expect_payload(STATE, "ON");
    watcher.expect_payload("home/tls/pi-1/log/app/state", "ON");
    watcher.expect(
        "ha-tls/binary_sensor/server_pi-1/server_pi-1_log_app/config",
        |config| config.contains("\"state_topic\":\"home/tls/pi-1/log/app/state\""),
    );
    fixture.post_alerts(&json!([alert("app", "OK", 2)])).await;
    watcher.expect_payload(STATE, "OFF");

    // As Home Assistant finds them when it starts: retained.
    let mut late = broker.watch("#");
    for (topic, payload) in [(STATE, "OFF"), (AVAILABILITY, "online")] {
        let message = late.expect_payload(topic, payload);
        assert!(message.retained, "{message:?}");
    }
    assert!(expect_discovery(&mut late)["name"].is_string());

    // pi-1 announces 1 s heartbeats and stops: its silent sensor turns on, then off when
    // it is heard again.
    heartbeat(&fixture, 1).await;
    watcher.expect_payload(SILENT_STATE, "ON");
    heartbeat(&fixture, 3600).await;
    watcher.expect_payload(SILENT_STATE, "OFF");

    // The broker dies (and loses its retained messages): an alert meanwhile waits in the
    // outbox and arrives, with its discovery config again, once the broker is back.
    broker.kill();
    fixture
        .post_alerts(&json!([alert("app", "CRITICAL", 3)]))
        .await;
    broker.launch();
    let mut after = broker.watch("#");
    expect_discovery(&mut after);
    after.expect_payload(STATE, "ON");
    after.expect_payload(AVAILABILITY, "online");

    // The server dies: the broker tells Home Assistant by its last will; started again, it
    // is back online before any alert.
    let log = fixture.server.log();
    assert!(!log.contains(PASSWORD), "{log}");
    let Fixture {
        server, database, ..
    } = fixture;
    server.kill_hard();
    after.expect_payload(AVAILABILITY, "offline");
    let again = ServerProcess::start(binary(), &database, &server_args);
    after.expect_payload(AVAILABILITY, "online");
    let availability: Vec<&str> = after
        .seen
        .iter()
        .filter(|message| message.topic == AVAILABILITY)
        .map(|message| message.payload.as_str())
        .collect();
    assert_eq!(
        availability.last(),
        Some(&"online"),
        "after the will: {availability:?}"
    );

    // Removed through the API, the `home` channel closes its connection: the broker
    // publishes its last will; `home-tls` stays online.
    let client = crate::api::client();
    let token =
        crate::api::login(&client, &again.url, crate::api::EMAIL, crate::api::PASSWORD).await;
    let channels: Value = client
        .get(format!(
            "{}/api/management/v1/devicemonitor/settings/channels",
            again.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let home = channels
        .as_array()
        .unwrap()
        .iter()
        .find(|channel| channel["name"] == "home")
        .unwrap_or_else(|| panic!("no home in {channels}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut removal = broker.watch("+/availability");
    let removed = client
        .delete(format!(
            "{}/api/management/v1/devicemonitor/settings/channels/{home}",
            again.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    removal.expect_payload(AVAILABILITY, "offline");
    let mut tls_availability = broker.watch("home/tls/availability");
    tls_availability.expect_payload("home/tls/availability", "online");
    let log = again.log();
    assert!(!log.contains(PASSWORD), "{log}");
}

#[test]
fn a_broker_on_the_network_needs_the_flag_and_bad_settings_name_the_fix() {
    let database = ServerDatabase::sqlite();
    for (args, expected) in [
        (
            vec!["--url", "mqtt://127.0.0.1:1883"],
            "--allow-private-targets",
        ),
        (
            vec!["--url", "mqtt://user:hunter2@broker.example"],
            "--password-stdin",
        ),
        (
            vec!["--url", "mqtts://broker.example", "--topic-prefix", "a/+/b"],
            "wildcard",
        ),
        (
            vec![
                "--url",
                "mqtts://broker.example",
                "--ca-file",
                "/nonexistent/ca.pem",
            ],
            "/nonexistent/ca.pem",
        ),
    ] {
        let mut command = vec!["channel", "mqtt", "home"];
        command.extend(&args);
        let output = database.admin(binary(), &command, None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}
