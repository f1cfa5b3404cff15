//! Alerts to an MQTT broker, for Home Assistant: every check of a device is a binary
//! sensor of class `problem` (on while the check is CRITICAL), announced by Home
//! Assistant's MQTT discovery and grouped under one Home Assistant device per monitor.
//!
//! - [`MqttDestination`]: a `monitor_destination::Destination`. It publishes, retained and
//!   at QoS 1, each check's discovery config (`<discovery_prefix>/binary_sensor/<node>/<object>/config`,
//!   from the check list the agent pushes, and for a check it has not announced when its
//!   first alert comes), state (`<base_topic>/<device>/<subsystem>/<check>/state`, `ON` or
//!   `OFF`) and attributes (`.../attributes`: the latest alert's status, description and
//!   time). A delivery is done only when the broker acknowledged (PUBACK) every message of
//!   it; a lost connection makes it a retry, after a backoff, through the caller's outbox.
//! - Availability: the last will `offline` and, after every connect, the birth `online`,
//!   both retained on `<base_topic>/<device>/availability`: Home Assistant shows every
//!   check unavailable when the agent dies or loses the broker.
//! - [`Publisher`]: the agent publishes for its own device (availability is the agent's
//!   connection); monitor-server publishes for every device it hears from, over one
//!   connection whose availability (`<base_topic>/availability`) is the server's, with ids
//!   of their own (`monitor_server_<device>`) so they never clash with a device's agent
//!   publishing to the same broker. The server has no check list to push: each alert
//!   brings its sensor's discovery config along.
//! - One check, several subjects (failed units: one per unit): one sensor per check, on
//!   while any of its subjects is CRITICAL; the attributes name the latest alert's subject
//!   and every subject still CRITICAL. The set is kept in memory, so after a restart it
//!   starts from the alerts that follow.
//! - [`BrokerUrl`], [`tls_client_config`]: `mqtt://` or `mqtts://`, TLS with rustls and its
//!   ring provider (the agent's; aws-lc is not built for the Pis), trusting the system's
//!   roots and a `ca_file`.
//!
//! It deliberately knows no settings file and no outbox, and subscribes to nothing: the
//! agent publishes, Home Assistant reads.

mod broker;
mod connection;
mod discovery;
mod topics;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use monitor_destination::{Destination, OutgoingAlert, Verdict, VerdictFuture};
use monitor_wire::backoff::Backoff;
use monitor_wire::config_push::{CheckStatus, ConfigCheck};
use monitor_wire::Level;
use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use tokio::sync::{mpsc, oneshot};

pub use broker::{tls_client_config, BrokerUrl, TlsError, UrlError};
pub use topics::topic_prefix_problem;

use connection::{Command, Publication};
use discovery::{Sensor, Topics};

/// The most alerts one delivery publishes (two or three messages each).
const BATCH_SIZE: usize = 32;
/// How long a delivery waits for the broker's acknowledgements before it is a retry.
const ACKNOWLEDGEMENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Discovery configs are published again this often (and at start, and when the check list
/// changes): a broker that lost its retained messages gets them back.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(3600);
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Retries of a delivery wait from this long, doubling up to [`MAX_RETRY`].
const MIN_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// One broker and one device, resolved from settings (the password read, the URL parsed,
/// the TLS client built).
#[derive(Clone)]
pub struct MqttConfig {
    pub broker: BrokerUrl,
    /// With `mqtts`: the TLS client ([`tls_client_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub username: Option<String>,
    /// A secret: never in a log or an error.
    pub password: Option<String>,
    pub client_id: String,
    /// Where states and availability go: `<base_topic>/<device>/...`.
    pub base_topic: String,
    /// Home Assistant's discovery prefix (its default: `homeassistant`).
    pub discovery_prefix: String,
    /// Whether discovery configs are published.
    pub discovery: bool,
    /// Whose alerts: one device's or every device's.
    pub publisher: Publisher,
}

/// Who publishes, which decides the devices, the availability topic and the ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publisher {
    /// The agent of `device` (its topics, its Home Assistant device): the availability is
    /// `<base_topic>/<device>/availability`, the device's own.
    Agent { device: String },
    /// monitor-server, for the device each delivery names: the availability is the
    /// server's connection, `<base_topic>/availability`, shared by every device's sensors;
    /// node and unique ids are `monitor_server_<device>...`.
    Server,
}

impl Publisher {
    /// Where the birth `online` and the last will `offline` go.
    fn availability(&self, base_topic: &str) -> String {
        match self {
            Publisher::Agent { device } => Topics::device_availability(base_topic, device),
            Publisher::Server => format!("{base_topic}/availability"),
        }
    }
}

/// Why a destination cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("mqtts needs a TLS client set-up")]
    NoTls,
}

/// Delivers alerts to an MQTT broker for Home Assistant (see the crate's documentation).
pub struct MqttDestination {
    config: MqttConfig,
    /// To the connection task; it ends when this is dropped, closing the connection (the
    /// broker then publishes the last will).
    commands: Option<mpsc::Sender<Command>>,
    /// The options and birth the connection task is started with.
    connect: Option<(MqttOptions, Publication)>,
    /// Sensors whose discovery config the last push of the check list published.
    pushed: BTreeSet<Sensor>,
    /// Sensors announced on their first alert (not in the check list: the agent's own; on
    /// the server, every one), with their device.
    announced: BTreeSet<(String, Sensor)>,
    /// Per device and sensor, the subjects now CRITICAL.
    critical: BTreeMap<(String, Sensor), BTreeSet<String>>,
    retry: Backoff,
}

impl MqttDestination {
    /// Builds the client; the connection task starts now when called inside a tokio
    /// runtime (the agent), else with the first delivery (`monitorctl notify-failure`).
    pub fn start(config: MqttConfig) -> Result<MqttDestination, StartError> {
        let availability = config.publisher.availability(&config.base_topic);
        let mut options = MqttOptions::new(
            config.client_id.clone(),
            config.broker.host.clone(),
            config.broker.port,
        );
        options.set_keep_alive(KEEP_ALIVE);
        options.set_last_will(LastWill::new(
            availability.clone(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(username) = &config.username {
            options.set_credentials(
                username.clone(),
                config.password.clone().unwrap_or_default(),
            );
        }
        if config.broker.tls {
            let tls = config.tls.clone().ok_or(StartError::NoTls)?;
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        }
        let birth = Publication {
            topic: availability,
            payload: b"online".to_vec(),
        };
        let mut destination = MqttDestination {
            config,
            commands: None,
            connect: Some((options, birth)),
            pushed: BTreeSet::new(),
            announced: BTreeSet::new(),
            critical: BTreeMap::new(),
            retry: Backoff::new(MIN_RETRY, MAX_RETRY),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            destination.connection();
        }
        Ok(destination)
    }

    /// The connection task's mailbox, starting the task first if need be (in a runtime).
    fn connection(&mut self) -> mpsc::Sender<Command> {
        if let Some((options, birth)) = self.connect.take() {
            let (commands, mailbox) = mpsc::channel(4);
            tokio::spawn(connection::run(
                options,
                self.config.broker.to_string(),
                birth,
                mailbox,
            ));
            self.commands = Some(commands);
        }
        self.commands.clone().expect("started above")
    }

    /// Publishes `publications` and waits for the broker's acknowledgements.
    async fn publish(&mut self, publications: Vec<Publication>) -> Result<(), String> {
        let commands = self.connection();
        let (done, acknowledged) = oneshot::channel();
        let stopped = || "the MQTT connection task stopped".to_owned();
        commands
            .send(Command { publications, done })
            .await
            .map_err(|_| stopped())?;
        match tokio::time::timeout(ACKNOWLEDGEMENT_TIMEOUT, acknowledged).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(format!(
                "the MQTT broker {} did not acknowledge within {}s",
                self.config.broker,
                ACKNOWLEDGEMENT_TIMEOUT.as_secs()
            )),
        }
    }

    /// Delivered, or a retry after a doubling wait.
    fn verdict(&mut self, published: Result<(), String>) -> Verdict {
        match published {
            Ok(()) => {
                self.retry.reset();
                Verdict::Delivered
            }
            Err(message) => Verdict::Retry {
                delivered: 0,
                after: self.retry.next_delay(),
                message,
            },
        }
    }

    /// The device an alert is about: the agent's own, or the one the server names.
    fn device<'a>(&'a self, delivered_for: &'a str) -> &'a str {
        match &self.config.publisher {
            Publisher::Agent { device } => device,
            Publisher::Server => delivered_for,
        }
    }

    fn topics(&self, device: &str) -> Topics {
        Topics::new(
            &self.config.base_topic,
            &self.config.discovery_prefix,
            device,
            &self.config.publisher,
        )
    }

    fn discovery_publication(&self, topics: &Topics, device: &str, sensor: &Sensor) -> Publication {
        let config = discovery::discovery_config(topics, device, sensor);
        Publication {
            topic: topics.discovery(sensor),
            payload: config.to_string().into_bytes(),
        }
    }

    /// The messages of one alert, and its discovery config if its sensor is neither
    /// announced nor in `announcing` (which it then joins).
    fn alert_publications(
        &mut self,
        device: &str,
        alert: &OutgoingAlert<'_>,
        announcing: &mut BTreeSet<(String, Sensor)>,
    ) -> Vec<Publication> {
        let topics = self.topics(device);
        let sensor = Sensor::of(alert);
        let key = (device.to_owned(), sensor.clone());
        let mut publications = Vec::new();
        // The server pushes no check list: it announces with every alert (retained, so
        // the same config again changes nothing), and a broker that lost its retained
        // messages has them back with the next one.
        let unannounced = match self.config.publisher {
            Publisher::Agent { .. } => {
                !self.pushed.contains(&sensor) && !self.announced.contains(&key)
            }
            Publisher::Server => true,
        };
        if self.config.discovery && unannounced && announcing.insert(key.clone()) {
            publications.push(self.discovery_publication(&topics, device, &sensor));
        }
        let subjects = self.critical.entry(key).or_default();
        match alert.alert.level {
            Level::Critical => subjects.insert(alert.alert.subject.name.clone()),
            Level::Ok => subjects.remove(&alert.alert.subject.name),
        };
        let attributes = discovery::attributes(alert, subjects);
        publications.push(Publication {
            topic: topics.state(&sensor),
            payload: discovery::state_payload(subjects).as_bytes().to_vec(),
        });
        publications.push(Publication {
            topic: topics.attributes(&sensor),
            payload: attributes.to_string().into_bytes(),
        });
        publications
    }
}

impl Destination for MqttDestination {
    fn batch_size(&self) -> usize {
        BATCH_SIZE
    }

    fn deliver<'a>(
        &'a mut self,
        device: &'a str,
        alerts: &'a [OutgoingAlert<'a>],
    ) -> VerdictFuture<'a> {
        // The agent's topics use the device its destination was made for (its availability
        // and discovery are about it), which is the one it delivers for.
        let device = self.device(device).to_owned();
        let mut announcing = BTreeSet::new();
        let mut publications = Vec::new();
        for alert in alerts {
            publications.extend(self.alert_publications(&device, alert, &mut announcing));
        }
        Box::pin(async move {
            let published = self.publish(publications).await;
            if published.is_ok() {
                // Announced once the broker has it: a retry announces again.
                self.announced.extend(announcing);
            }
            self.verdict(published)
        })
    }

    fn config_push_interval(&self) -> Option<Duration> {
        let agent = matches!(self.config.publisher, Publisher::Agent { .. });
        (agent && self.config.discovery).then_some(DISCOVERY_INTERVAL)
    }

    /// Publishes the discovery config of every enabled check, and removes (an empty
    /// retained config, state and attributes) the sensors of checks no longer there. Only
    /// the agent pushes its check list (the server knows no checks, only alerts).
    fn push_config<'a>(&'a mut self, checks: &'a [ConfigCheck]) -> VerdictFuture<'a> {
        let Publisher::Agent { device } = &self.config.publisher else {
            return Box::pin(async { Verdict::Delivered });
        };
        let device = device.clone();
        let topics = self.topics(&device);
        let sensors: BTreeSet<Sensor> = checks
            .iter()
            .filter(|check| check.status == CheckStatus::Enabled)
            .map(Sensor::pushed)
            .collect();
        let mut publications: Vec<Publication> = sensors
            .iter()
            .map(|sensor| self.discovery_publication(&topics, &device, sensor))
            .collect();
        for gone in self.pushed.difference(&sensors) {
            for topic in [
                topics.discovery(gone),
                topics.state(gone),
                topics.attributes(gone),
            ] {
                publications.push(Publication {
                    topic,
                    payload: Vec::new(),
                });
            }
        }
        Box::pin(async move {
            let published = self.publish(publications).await;
            if published.is_ok() {
                for gone in self.pushed.difference(&sensors) {
                    self.critical.remove(&(device.clone(), gone.clone()));
                }
                self.announced
                    .retain(|(_, sensor)| !sensors.contains(sensor));
                self.pushed = sensors;
            }
            self.verdict(published)
        })
    }
}

#[cfg(test)]
mod tests;
