//! What is published about a device: Home Assistant's discovery config of a check's
//! binary sensor, its state and its attributes.
//!
//! Home Assistant's MQTT discovery: <https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery>
//! (a retained config at `<discovery_prefix>/<component>/<node_id>/<object_id>/config`; an
//! empty retained payload removes the entity) and the binary sensor's options:
//! <https://www.home-assistant.io/integrations/binary_sensor.mqtt/>.

use std::collections::BTreeSet;

use monitor_destination::OutgoingAlert;
use monitor_wire::config_push::ConfigCheck;
use monitor_wire::{Level, Subsystem};
use serde_json::{json, Value};

use crate::topics::{discovery_id, topic_level};
use crate::Publisher;

/// The most characters of an alert's description in its attributes: Home Assistant keeps
/// attributes in its database; the full alert is in the device's history.
const MAX_DESCRIPTION_CHARS: usize = 1000;

/// A check as a binary sensor: `kind` is the check's type as the config push names it
/// (its subsystem; docker-events checks are `log` checks there, and here).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Sensor {
    pub kind: String,
    pub name: String,
}

impl Sensor {
    /// The sensor an alert is about; one the sender knows no check of is named after its
    /// subject's type and name.
    pub fn of(alert: &OutgoingAlert<'_>) -> Sensor {
        match alert.check {
            Some(check) => Sensor {
                kind: match check.subsystem {
                    Subsystem::Dockerevents => "log".to_owned(),
                    subsystem => subsystem.as_str().to_owned(),
                },
                name: check.name.clone(),
            },
            None => Sensor {
                kind: alert.alert.subject.kind.clone(),
                name: alert.alert.subject.name.clone(),
            },
        }
    }
}

impl Sensor {
    /// The sensor of a check of the pushed check list.
    pub fn pushed(check: &ConfigCheck) -> Sensor {
        Sensor {
            kind: check.kind.as_str().to_owned(),
            // The push names checks after their Mender check files, `<check>.sh`.
            name: check
                .name
                .strip_suffix(".sh")
                .unwrap_or(&check.name)
                .to_owned(),
        }
    }
}

/// Where one device's messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topics {
    /// `<base_topic>/<device>`.
    device_base: String,
    discovery_prefix: String,
    /// The device's name as Home Assistant's `node_id` (`server_<device>` from the server).
    node_id: String,
    /// `online` or `offline`, retained: the publisher's birth and last will.
    availability: String,
}

impl Topics {
    pub fn new(
        base_topic: &str,
        discovery_prefix: &str,
        device: &str,
        publisher: &Publisher,
    ) -> Topics {
        let node_id = match publisher {
            Publisher::Agent { .. } => discovery_id(device),
            Publisher::Server => format!("server_{}", discovery_id(device)),
        };
        Topics {
            device_base: format!("{base_topic}/{}", topic_level(device)),
            discovery_prefix: discovery_prefix.to_owned(),
            node_id,
            availability: publisher.availability(base_topic),
        }
    }

    /// The agent's availability: `<base_topic>/<device>/availability`.
    pub fn device_availability(base_topic: &str, device: &str) -> String {
        format!("{base_topic}/{}/availability", topic_level(device))
    }

    pub fn availability(&self) -> &str {
        &self.availability
    }

    fn sensor_base(&self, sensor: &Sensor) -> String {
        format!(
            "{}/{}/{}",
            self.device_base,
            topic_level(&sensor.kind),
            topic_level(&sensor.name)
        )
    }

    /// `ON` (a problem: CRITICAL) or `OFF`, retained.
    pub fn state(&self, sensor: &Sensor) -> String {
        format!("{}/state", self.sensor_base(sensor))
    }

    /// The latest alert's fields, JSON, retained.
    pub fn attributes(&self, sensor: &Sensor) -> String {
        format!("{}/attributes", self.sensor_base(sensor))
    }

    /// `<node_id>_<kind>_<name>`: the sensor's object id and unique id (one per device).
    pub fn object_id(&self, sensor: &Sensor) -> String {
        format!(
            "{}_{}_{}",
            self.node_id,
            discovery_id(&sensor.kind),
            discovery_id(&sensor.name)
        )
    }

    pub fn discovery(&self, sensor: &Sensor) -> String {
        format!(
            "{}/binary_sensor/{}/{}/config",
            self.discovery_prefix,
            self.node_id,
            self.object_id(sensor)
        )
    }
}

/// The discovery config of `sensor` on `device`: a `problem` binary sensor, grouped with
/// the device's other checks under one Home Assistant device.
pub(crate) fn discovery_config(topics: &Topics, device: &str, sensor: &Sensor) -> Value {
    let object_id = format!("monitor_{}", topics.object_id(sensor));
    json!({
        "name": format!("{} {}", sensor.kind, sensor.name),
        "unique_id": object_id,
        // `object_id` for Home Assistant before 2025.10, `default_entity_id` after.
        "object_id": object_id,
        "default_entity_id": format!("binary_sensor.{object_id}"),
        "device_class": "problem",
        "state_topic": topics.state(sensor),
        "payload_on": "ON",
        "payload_off": "OFF",
        "availability_topic": topics.availability(),
        "payload_available": "online",
        "payload_not_available": "offline",
        "json_attributes_topic": topics.attributes(sensor),
        "device": {
            "identifiers": [format!("monitor_{}", topics.node_id)],
            "name": device,
            "manufacturer": "monitor",
            "model": "monitor",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
    })
}

/// `ON` while any subject of the check is CRITICAL.
pub(crate) fn state_payload(critical_subjects: &BTreeSet<String>) -> &'static str {
    if critical_subjects.is_empty() {
        "OFF"
    } else {
        "ON"
    }
}

/// The sensor's attributes: the latest alert, and every subject still CRITICAL (a check
/// such as failed units has one per unit).
pub(crate) fn attributes(alert: &OutgoingAlert<'_>, critical_subjects: &BTreeSet<String>) -> Value {
    let subject = &alert.alert.subject;
    let description = subject
        .details
        .description
        .clone()
        .or_else(|| {
            subject
                .details
                .line_matching
                .as_ref()
                .map(|line| line.data.clone())
        })
        .unwrap_or_default();
    json!({
        "level": match alert.alert.level {
            Level::Critical => "CRITICAL",
            Level::Ok => "OK",
        },
        "alert": alert.alert.name,
        "subject": subject.name,
        "subject_type": subject.kind,
        "status": subject.status,
        "description": description.chars().take(MAX_DESCRIPTION_CHARS).collect::<String>(),
        "timestamp": alert.alert.timestamp.to_string(),
        "critical_subjects": critical_subjects,
    })
}
