//! MQTT notifications for Home Assistant through the agent's own destination
//! (`monitor-mqtt`'s [`MqttDestination`], as [`Publisher::Server`]): per device and subject
//! a retained `problem` binary sensor (discovery config, state `ON`/`OFF`, attributes) at
//! QoS 1, grouped under one Home Assistant device per monitored device; the sensors'
//! availability is the server's connection (birth `online`, last will `offline` on
//! `<topic_prefix>/availability`). A device gone silent is its sensor `monitor silent`,
//! `ON` while the device is silent.
//!
//! The target is one URL:
//! `mqtt[s]://[user[:password]@]host[:port][/topic/prefix][?discovery_prefix=…&ca_file=…]`.
//! The path is the topic prefix (default `monitor-server`), `discovery_prefix` Home
//! Assistant's (default `homeassistant`), `ca_file` an absolute path on the server to the
//! PEM CA of an `mqtts` broker. It is shown with the password as `***`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use monitor_mqtt::{
    tls_client_config, topic_prefix_problem, BrokerUrl, MqttConfig, MqttDestination, Publisher,
};

use super::ntfy::percent_decoded;
use super::sender::{
    ChannelForm, ChannelKindSpec, ChannelSender, NewSender, Outgoing, PerChannel, SendFailure,
    SendFuture, SenderSettings, SubjectDigest,
};
use super::webhook::{private_host, send_digest};
use super::TargetPolicy;
use crate::storage::{Channel, SILENCE_SUBJECT_NAME, SILENCE_SUBJECT_TYPE};

/// MQTT channels: a broker URL, its password shown redacted.
pub(super) const KIND: ChannelKindSpec = ChannelKindSpec {
    name: "mqtt",
    validate_target,
    shown_target,
    default_name: |target| {
        parse(target).map_or_else(|_| "mqtt".to_owned(), |target| target.broker.host)
    },
    form: ChannelForm {
        heading: "Add an MQTT broker (Home Assistant)",
        target_label: "Broker URL: mqtts://user:password@host:8883/topic-prefix?discovery_prefix=homeassistant&ca_file=/path/ca.pem",
        target_input: "password",
        name_placeholder: "home assistant",
    },
    new_sender,
};

const DEFAULT_TOPIC_PREFIX: &str = "monitor-server";
const DEFAULT_DISCOVERY_PREFIX: &str = "homeassistant";

/// What a target says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MqttTarget {
    broker: BrokerUrl,
    username: Option<String>,
    /// A secret: never shown, never in an error.
    password: Option<String>,
    topic_prefix: String,
    discovery_prefix: String,
    ca_file: Option<PathBuf>,
}

/// The parts of a target; errors never hold the password.
fn parse(target: &str) -> Result<MqttTarget, String> {
    let url = reqwest::Url::parse(target.trim()).map_err(|error| {
        format!(
            "not a URL ({error}): write it as mqtt://host:1883 or mqtts://user:password@host:8883"
        )
    })?;
    let scheme = url.scheme();
    let host = url.host_str().unwrap_or_default();
    let port = url
        .port()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    // Checked without the user part: the broker URL holds no password.
    let broker =
        BrokerUrl::parse(&format!("{scheme}://{host}{port}")).map_err(|error| error.to_string())?;
    let username = Some(percent_decoded(url.username())).filter(|user| !user.is_empty());
    let password = url.password().map(percent_decoded);
    if password.is_some() && username.is_none() {
        return Err("a password without a user name: write mqtt://user:password@host".into());
    }
    if url.fragment().is_some() {
        return Err(
            "the URL holds a # (a wildcard): a topic prefix is a plain topic such as home/monitor"
                .into(),
        );
    }
    let path = percent_decoded(url.path().trim_matches('/'));
    let topic_prefix = if path.is_empty() {
        DEFAULT_TOPIC_PREFIX.to_owned()
    } else {
        path
    };
    let mut discovery_prefix = DEFAULT_DISCOVERY_PREFIX.to_owned();
    let mut ca_file = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "discovery_prefix" => discovery_prefix = value.into_owned(),
            "ca_file" => {
                let path = PathBuf::from(value.as_ref());
                if !path.is_absolute() {
                    return Err(format!(
                        "ca_file \"{value}\" is not an absolute path: write it as /etc/ssl/broker-ca.pem"
                    ));
                }
                ca_file = Some(path);
            }
            key => {
                return Err(format!(
                    "unknown setting `{key}` after `?`: use discovery_prefix or ca_file"
                ))
            }
        }
    }
    if ca_file.is_some() && !broker.tls {
        return Err("ca_file is for TLS: write the URL as mqtts://".into());
    }
    for (field, topic) in [
        ("the topic prefix (the URL's path)", &topic_prefix),
        ("discovery_prefix", &discovery_prefix),
    ] {
        if let Some(problem) = topic_prefix_problem(topic) {
            return Err(format!("{field} \"{topic}\" {problem}"));
        }
    }
    Ok(MqttTarget {
        broker,
        username,
        password,
        topic_prefix,
        discovery_prefix,
        ca_file,
    })
}

/// Under [`TargetPolicy::PublicServicesOnly`]: `mqtts`, and no private, loopback or
/// link-local host (a broker at home needs `--allow-private-targets`).
fn allowed(target: &MqttTarget, policy: TargetPolicy) -> Result<(), String> {
    if policy == TargetPolicy::AnyHost || (target.broker.tls && !private_host(&target.broker.host))
    {
        return Ok(());
    }
    Err(format!(
        "{} is not a public mqtts address: start the server with --allow-private-targets to \
         publish to a broker on your network",
        target.broker
    ))
}

fn validate_target(target: &str, policy: TargetPolicy) -> Result<(), String> {
    let parsed = parse(target).map_err(|error| format!("target: {error}"))?;
    allowed(&parsed, policy).map_err(|error| format!("target: {error}"))?;
    tls(&parsed).map_err(|error| format!("target: {error}"))?;
    Ok(())
}

/// The TLS client of an `mqtts` target, trusting its `ca_file`.
fn tls(target: &MqttTarget) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    if !target.broker.tls {
        return Ok(None);
    }
    let config = tls_client_config(target.ca_file.as_deref()).map_err(|error| error.to_string())?;
    Ok(Some(Arc::new(config)))
}

fn shown_target(target: &str) -> String {
    let Ok(parsed) = parse(target) else {
        return "<invalid MQTT URL>".to_owned();
    };
    let broker = parsed.broker.to_string();
    let (scheme, address) = broker.split_once("://").unwrap_or(("mqtt", &broker));
    let login = match (&parsed.username, &parsed.password) {
        (Some(user), Some(_)) => format!("{user}:***@"),
        (Some(user), None) => format!("{user}@"),
        _ => String::new(),
    };
    let mut shown = format!(
        "{scheme}://{login}{address}/{}?discovery_prefix={}",
        parsed.topic_prefix, parsed.discovery_prefix
    );
    if let Some(ca_file) = &parsed.ca_file {
        shown.push_str(&format!("&ca_file={}", ca_file.display()));
    }
    shown
}

fn new_sender(settings: &SenderSettings<'_>) -> NewSender {
    Ok(Some(Box::new(MqttSender {
        targets: settings.targets,
        destinations: PerChannel::default(),
    })))
}

struct MqttSender {
    targets: TargetPolicy,
    /// One destination, and so one connection, per channel, kept for as long as the server
    /// runs: its availability is the server's.
    destinations: PerChannel<MqttDestination>,
}

impl ChannelSender for MqttSender {
    /// Closes the connection of a removed channel: the broker publishes its last will, so
    /// Home Assistant shows that channel's sensors unavailable rather than stale.
    fn keep_only(&mut self, channels: &HashSet<&str>) {
        self.destinations.keep_only(channels);
    }

    fn send<'a>(
        &'a mut self,
        message: &'a Outgoing<'a>,
        digest: &'a [SubjectDigest],
    ) -> SendFuture<'a> {
        Box::pin(async move {
            let destination = self.destinations.get_or_make(message.channel_id, || {
                destination(
                    message.channel_id,
                    message.channel_name,
                    message.target,
                    self.targets,
                )
            })?;
            let digest: Vec<SubjectDigest> = digest.iter().map(silence_as_sensor).collect();
            send_digest(destination, "the MQTT broker", message, &digest).await
        })
    }

    /// Connects at start: Home Assistant sees the server online (its birth) without
    /// waiting for an alert.
    fn open(&mut self, channel: &Channel) {
        let opened = self.destinations.get_or_make(&channel.id, || {
            destination(&channel.id, &channel.name, &channel.target, self.targets)
        });
        if let Err(SendFailure::Refused { reason } | SendFailure::Retry { reason, .. }) = opened {
            tracing::warn!("cannot open the MQTT channel: {reason}");
        }
    }
}

/// The silence alert's subject (`monitor`/`heartbeat`) as the device's sensor
/// `monitor silent`: on while the device is silent.
fn silence_as_sensor(entry: &SubjectDigest) -> SubjectDigest {
    let mut entry = entry.clone();
    let subject = &mut entry.latest.alert.subject;
    if subject.kind == SILENCE_SUBJECT_TYPE && subject.name == SILENCE_SUBJECT_NAME {
        subject.name = "silent".to_owned();
    }
    entry
}

fn destination(
    channel_id: &str,
    channel_name: &str,
    target: &str,
    targets: TargetPolicy,
) -> Result<MqttDestination, SendFailure> {
    let refused = |error: String| SendFailure::Refused {
        reason: format!("channel {channel_name}: {error}"),
    };
    let target = parse(target).map_err(refused)?;
    // A channel stored before the rule, or by a server started with the flag.
    allowed(&target, targets).map_err(refused)?;
    let tls = tls(&target).map_err(refused)?;
    let config = MqttConfig {
        broker: target.broker,
        tls,
        username: target.username,
        password: target.password,
        // Unique per channel and process: two replicas sharing a client id would throw
        // each other off the broker.
        client_id: format!(
            "monitor-server-{}-{}",
            channel_id.chars().take(8).collect::<String>(),
            std::process::id()
        ),
        base_topic: target.topic_prefix,
        discovery_prefix: target.discovery_prefix,
        discovery: true,
        publisher: Publisher::Server,
    };
    MqttDestination::start(config).map_err(|error| refused(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_one_url_shown_without_its_password() {
        let target = parse(
            "mqtts://ha:p%40ss@broker.example:8884/home/monitor?discovery_prefix=ha&ca_file=/etc/ca.pem",
        )
        .unwrap();
        assert_eq!(target.broker.to_string(), "mqtts://broker.example:8884");
        assert_eq!(target.username.as_deref(), Some("ha"));
        assert_eq!(target.password.as_deref(), Some("p@ss"));
        assert_eq!(target.topic_prefix, "home/monitor");
        assert_eq!(target.discovery_prefix, "ha");
        assert_eq!(target.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            shown_target("mqtt://ha:s3cret@192.168.1.5"),
            "mqtt://ha:***@192.168.1.5:1883/monitor-server?discovery_prefix=homeassistant"
        );
        let defaults = parse("mqtt://broker.lan").unwrap();
        assert_eq!(
            (
                defaults.topic_prefix.as_str(),
                defaults.discovery_prefix.as_str()
            ),
            ("monitor-server", "homeassistant")
        );
    }

    #[test]
    fn bad_targets_say_the_fix_and_never_the_password() {
        for (target, expected) in [
            ("https://u:s3cret@broker", "mqtt://host:1883"),
            ("mqtt://u:s3cret@broker/a/#", "wildcard"),
            ("mqtt://u:s3cret@broker/a/%2B", "wildcard"),
            ("mqtt://u:s3cret@broker?ca_file=/ca.pem", "mqtts://"),
            ("mqtts://u:s3cret@broker?ca_file=ca.pem", "absolute path"),
            ("mqtt://u:s3cret@broker?qos=2", "unknown setting `qos`"),
            ("mqtt://u:s3cret@broker:0", "port"),
        ] {
            let error = validate_target(target, TargetPolicy::AnyHost).unwrap_err();
            assert!(
                error.starts_with("target: ") && error.contains(expected),
                "{target}: {error}"
            );
            assert!(!error.contains("s3cret"), "{error}");
        }
        let missing = validate_target(
            "mqtts://broker.example?ca_file=/nonexistent/ca.pem",
            TargetPolicy::PublicServicesOnly,
        )
        .unwrap_err();
        assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
    }

    #[test]
    fn a_broker_on_the_network_needs_the_flag() {
        let public = TargetPolicy::PublicServicesOnly;
        assert!(validate_target("mqtts://broker.example", public).is_ok());
        for private in [
            "mqtt://broker.example",
            "mqtts://192.168.1.5",
            "mqtts://localhost",
        ] {
            let error = validate_target(private, public).unwrap_err();
            assert!(error.contains("--allow-private-targets"), "{error}");
        }
        assert!(validate_target("mqtt://127.0.0.1:1883", TargetPolicy::AnyHost).is_ok());
    }
}
