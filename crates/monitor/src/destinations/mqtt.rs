//! `delivery.mqtt[]`: MQTT brokers, for Home Assistant.

use monitor_config::{MinLevel, MqttSettings};
use monitor_destination::{Filter, PlannedDestination};
use monitor_mqtt::{
    tls_client_config, topic_prefix_problem, BrokerUrl, MqttConfig, MqttDestination, Publisher,
};
use monitor_wire::Level;

use super::secret;

/// The broker's name in the outbox is `mqtt:<client id>@<host>:<port>`: a client id is one
/// connection to a broker.
pub(super) fn plan(settings: &MqttSettings, device: &str) -> Result<PlannedDestination, String> {
    let broker = BrokerUrl::parse(&settings.url).map_err(|error| format!("url: {error}"))?;
    for (field, topic) in [
        ("base_topic", &settings.base_topic),
        ("discovery_prefix", &settings.discovery_prefix),
    ] {
        if let Some(problem) = topic_prefix_problem(topic) {
            return Err(format!("{field}: \"{topic}\" {problem}"));
        }
    }
    let password = if let Some(file) = &settings.password_file {
        let text = secret::from_file(file, "password_file")?;
        Some(text.lines().next().unwrap_or_default().to_owned())
    } else if let Some(variable) = &settings.password_env {
        Some(secret::from_env(variable, "password_env")?)
    } else {
        None
    };
    let tls = if broker.tls {
        let config =
            tls_client_config(settings.ca_file.as_deref()).map_err(|error| error.to_string())?;
        Some(std::sync::Arc::new(config))
    } else {
        None
    };
    let client_id = settings
        .client_id
        .clone()
        .unwrap_or_else(|| format!("monitor-{device}"));
    let name = format!("mqtt:{client_id}@{}:{}", broker.host, broker.port);
    // The password is in it, so that a new one in its file reconnects.
    let identity = format!("{settings:?}|{device}|{password:?}");
    let min_level = match settings.min_level {
        MinLevel::Ok => Level::Ok,
        MinLevel::Critical => Level::Critical,
    };
    let config = MqttConfig {
        broker,
        tls,
        username: settings.username.clone(),
        password,
        client_id,
        base_topic: settings.base_topic.clone(),
        discovery_prefix: settings.discovery_prefix.clone(),
        discovery: settings.discovery,
        publisher: Publisher::Agent {
            device: device.to_owned(),
        },
    };
    Ok(PlannedDestination {
        name,
        identity,
        filter: Filter::new(min_level, settings.checks.clone()),
        start: Box::new(move || {
            let destination = MqttDestination::start(config).map_err(|error| error.to_string())?;
            Ok(Box::new(destination))
        }),
    })
}
