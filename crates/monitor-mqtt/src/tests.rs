use std::time::UNIX_EPOCH;

use monitor_wire::{Alert, CheckId, Details, Subject, Subsystem, Timestamp};
use serde_json::{json, Value};

use super::*;

fn config() -> MqttConfig {
    MqttConfig {
        broker: BrokerUrl::parse("mqtt://127.0.0.1:1").unwrap(),
        tls: None,
        username: None,
        password: None,
        client_id: "monitor-pi".into(),
        base_topic: "monitor".into(),
        discovery_prefix: "homeassistant".into(),
        discovery: true,
        publisher: Publisher::Agent {
            device: "pi/4".into(),
        },
    }
}

fn alert(level: Level, subject: &str) -> Alert {
    Alert {
        name: format!("Unit {subject} failed"),
        level,
        timestamp: Timestamp(UNIX_EPOCH),
        subject: Subject {
            name: subject.into(),
            kind: "systemd".into(),
            status: "failed".into(),
            details: Details {
                description: Some(format!("{subject} exited")),
                ..Details::default()
            },
        },
    }
}

fn payloads(publications: &[Publication]) -> Vec<(String, String)> {
    publications
        .iter()
        .map(|publication| {
            (
                publication.topic.clone(),
                String::from_utf8(publication.payload.clone()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_check_is_a_problem_sensor_of_the_monitors_device() {
    let destination = MqttDestination::start(config()).unwrap();
    let sensor = Sensor {
        kind: "service".into(),
        name: "nginx+1".into(),
    };
    let topics = destination.topics("pi/4");
    let publication = destination.discovery_publication(&topics, "pi/4", &sensor);
    assert_eq!(
        publication.topic,
        "homeassistant/binary_sensor/pi_4/pi_4_service_nginx_1/config"
    );
    let config: Value = serde_json::from_slice(&publication.payload).unwrap();
    assert_eq!(
        config,
        json!({
            "name": "service nginx+1",
            "unique_id": "monitor_pi_4_service_nginx_1",
            "object_id": "monitor_pi_4_service_nginx_1",
            "default_entity_id": "binary_sensor.monitor_pi_4_service_nginx_1",
            "device_class": "problem",
            "state_topic": "monitor/pi_4/service/nginx_1/state",
            "payload_on": "ON",
            "payload_off": "OFF",
            "availability_topic": "monitor/pi_4/availability",
            "payload_available": "online",
            "payload_not_available": "offline",
            "json_attributes_topic": "monitor/pi_4/service/nginx_1/attributes",
            "device": {
                "identifiers": ["monitor_pi_4"],
                "name": "pi/4",
                "manufacturer": "monitor",
                "model": "monitor",
                "sw_version": env!("CARGO_PKG_VERSION"),
            },
        })
    );
}

#[test]
fn a_check_with_several_subjects_is_on_while_any_is_critical() {
    let mut destination = MqttDestination::start(config()).unwrap();
    let check = CheckId::new(Subsystem::Service, "failed_units");
    let alerts = [
        alert(Level::Critical, "a.service"),
        alert(Level::Critical, "b.service"),
        alert(Level::Ok, "a.service"),
        alert(Level::Ok, "b.service"),
    ];
    let mut announcing = BTreeSet::new();
    let mut states = Vec::new();
    for (seq, alert) in alerts.iter().enumerate() {
        let outgoing = OutgoingAlert {
            seq: seq as u64,
            check: Some(&check),
            alert,
            link: None,
        };
        let published =
            payloads(&destination.alert_publications("pi/4", &outgoing, &mut announcing));
        // The first alert announces the sensor (not in a pushed check list), once.
        let expected = if seq == 0 { 3 } else { 2 };
        assert_eq!(published.len(), expected, "{published:#?}");
        let (state_topic, state) = &published[expected - 2];
        assert_eq!(state_topic, "monitor/pi_4/service/failed_units/state");
        let attributes: Value = serde_json::from_str(&published[expected - 1].1).unwrap();
        states.push((state.clone(), attributes["critical_subjects"].clone()));
        assert_eq!(attributes["subject"], alert.subject.name);
    }
    assert_eq!(
        states,
        vec![
            ("ON".into(), json!(["a.service"])),
            ("ON".into(), json!(["a.service", "b.service"])),
            ("ON".into(), json!(["b.service"])),
            ("OFF".into(), json!([])),
        ]
    );
}

#[test]
fn without_discovery_only_states_and_attributes_are_published() {
    let mut destination = MqttDestination::start(MqttConfig {
        discovery: false,
        ..config()
    })
    .unwrap();
    assert_eq!(destination.config_push_interval(), None);
    let check = CheckId::new(Subsystem::Log, "app");
    let alert = alert(Level::Critical, "app");
    let outgoing = OutgoingAlert {
        seq: 1,
        check: Some(&check),
        alert: &alert,
        link: None,
    };
    let published =
        payloads(&destination.alert_publications("pi/4", &outgoing, &mut BTreeSet::new()));
    let topics: Vec<&str> = published.iter().map(|(topic, _)| topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "monitor/pi_4/log/app/state",
            "monitor/pi_4/log/app/attributes"
        ]
    );
}

#[test]
fn pushed_checks_are_the_sensors_their_alerts_turn_on() {
    use monitor_wire::config_push::LogCheckConfig;
    let mut destination = MqttDestination::start(config()).unwrap();
    let pushed = ConfigCheck::log(
        "app.sh",
        CheckStatus::Enabled,
        LogCheckConfig {
            pattern: "FATAL".into(),
            path: "/var/log/app.log".into(),
            expire_seconds: None,
        },
    );
    destination.pushed.insert(Sensor::pushed(&pushed));
    let check = CheckId::new(Subsystem::Log, "app");
    let alert = alert(Level::Critical, "app");
    let outgoing = OutgoingAlert {
        seq: 1,
        check: Some(&check),
        alert: &alert,
        link: None,
    };
    // Announced by the push: the alert publishes no discovery config of its own.
    let published =
        payloads(&destination.alert_publications("pi/4", &outgoing, &mut BTreeSet::new()));
    assert_eq!(published.len(), 2, "{published:#?}");
}

#[test]
fn the_server_publishes_each_device_under_ids_of_its_own_with_its_availability() {
    let mut destination = MqttDestination::start(MqttConfig {
        base_topic: "monitor-server".into(),
        publisher: Publisher::Server,
        ..config()
    })
    .unwrap();
    assert_eq!(destination.config_push_interval(), None);
    let alert = alert(Level::Critical, "app");
    let outgoing = OutgoingAlert {
        seq: 1,
        check: None,
        alert: &alert,
        link: None,
    };
    let mut announcing = BTreeSet::new();
    let published = destination.alert_publications("pi-7", &outgoing, &mut announcing);
    let (discovery, states) = published.split_first().unwrap();
    assert_eq!(
        discovery.topic,
        "homeassistant/binary_sensor/server_pi-7/server_pi-7_systemd_app/config"
    );
    let config: Value = serde_json::from_slice(&discovery.payload).unwrap();
    assert_eq!(config["unique_id"], "monitor_server_pi-7_systemd_app");
    assert_eq!(config["availability_topic"], "monitor-server/availability");
    assert_eq!(
        config["state_topic"],
        "monitor-server/pi-7/systemd/app/state"
    );
    assert_eq!(
        config["device"]["identifiers"],
        json!(["monitor_server_pi-7"])
    );
    assert_eq!(config["device"]["name"], "pi-7");
    assert_eq!(
        payloads(&states[..1]),
        [(
            "monitor-server/pi-7/systemd/app/state".to_owned(),
            "ON".to_owned()
        )]
    );
    // Another device's sensor of the same subject is a sensor of its own.
    let other = destination.alert_publications("pi-8", &outgoing, &mut announcing);
    assert_eq!(other.len(), 3, "announced for pi-8 too");
    let again = destination.alert_publications("pi-7", &outgoing, &mut BTreeSet::new());
    assert_eq!(again.len(), 3, "every alert brings its discovery config");
}
