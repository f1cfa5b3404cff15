//! The connection to the broker: one tokio task that owns rumqttc's event loop, connects,
//! publishes the birth message after every connect, hands over what the destination
//! publishes and says when the broker acknowledged (PUBACK) all of it; a lost connection
//! fails what was waiting, and the task connects again after a backoff.
//!
//! Every connection gets a fresh rumqttc client and event loop (a clean session): nothing
//! of a lost connection is replayed behind the destination's back, whose outbox sends it
//! again; so the n-th publish handed over is the n-th `Outgoing::Publish` the loop reports,
//! which is how a PUBACK's packet id is traced back to the delivery waiting for it.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use monitor_wire::backoff::Backoff;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Outgoing, Packet, QoS,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The first wait before connecting again; it doubles up to [`MAX_BACKOFF`], and starts
/// over once a connection was made.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Publishes handed to rumqttc ahead of its event loop; more wait in our own queue.
const CLIENT_CAPACITY: usize = 16;

/// A retained QoS 1 message (everything this destination publishes is both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Publication {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Publish these; `done` hears `Ok` once the broker acknowledged every one, or what went
/// wrong (connection lost, not connected).
pub(crate) struct Command {
    pub publications: Vec<Publication>,
    pub done: oneshot::Sender<Result<(), String>>,
}

/// Connects with `options` (its last will set) to `broker` until `commands` closes.
/// `birth` is published after every connect.
pub(crate) async fn run(
    options: MqttOptions,
    broker: String,
    birth: Publication,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF).with_jitter(0.2);
    loop {
        let Lost {
            message,
            was_connected,
        } = match connect_once(&options, &birth, &mut commands).await {
            Some(lost) => lost,
            None => return,
        };
        if was_connected {
            backoff.reset();
        }
        let wait = backoff.next_delay();
        tracing::warn!(
            "MQTT broker {broker}: {message}; connecting again in {}s",
            wait.as_secs()
        );
        // Not connected: what is asked now fails at once, and the outbox keeps it.
        let until = Instant::now() + wait;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                command = commands.recv() => match command {
                    None => return,
                    Some(command) => {
                        let _ = command.done.send(Err(format!("not connected to the MQTT broker {broker}: {message}")));
                    }
                },
            }
        }
    }
}

/// Why a connection ended.
struct Lost {
    message: String,
    was_connected: bool,
}

/// A delivery waiting for its PUBACKs.
struct Waiter {
    unacknowledged: usize,
    done: oneshot::Sender<Result<(), String>>,
}

/// One connection, until it is lost (`Some`) or `commands` closes (`None`).
async fn connect_once(
    options: &MqttOptions,
    birth: &Publication,
    commands: &mut mpsc::Receiver<Command>,
) -> Option<Lost> {
    let (client, mut event_loop) = AsyncClient::new(options.clone(), CLIENT_CAPACITY);
    // rumqttc's poll is not to be dropped half-way (a connect in progress is lost), so it
    // runs on a task of its own, stopped (closing the connection) when this returns.
    let (events_sender, mut events) = mpsc::channel(CLIENT_CAPACITY);
    let poller = tokio::spawn(async move {
        loop {
            let event = event_loop.poll().await;
            let lost = event.is_err();
            if events_sender.send(event).await.is_err() || lost {
                return;
            }
        }
    });
    let _stop_poller = AbortOnDrop(poller);
    // Not yet handed to the client, each with the waiter it counts for (none: the birth).
    let mut queue: VecDeque<(Publication, Option<u64>)> = VecDeque::new();
    // Handed to the client, not yet given a packet id by the event loop, in order.
    let mut handed: VecDeque<Option<u64>> = VecDeque::new();
    let mut in_flight: HashMap<u16, u64> = HashMap::new();
    let mut waiters: HashMap<u64, Waiter> = HashMap::new();
    let mut next_waiter = 0u64;
    let mut connected = false;
    loop {
        while let Some((publication, waiter)) = queue.front() {
            let handed_over = client.try_publish(
                publication.topic.clone(),
                QoS::AtLeastOnce,
                true,
                publication.payload.clone(),
            );
            if handed_over.is_err() {
                // Full: the event loop takes some on its next turn.
                break;
            }
            handed.push_back(*waiter);
            queue.pop_front();
        }
        tokio::select! {
            event = events.recv() => match event.unwrap_or(Err(ConnectionError::RequestsDone)) {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    tracing::info!("connected to the MQTT broker {}:{}", options.broker_address().0, options.broker_address().1);
                    queue.push_front((birth.clone(), None));
                }
                Ok(Event::Outgoing(Outgoing::Publish(packet_id))) => {
                    if let Some(Some(waiter)) = handed.pop_front() {
                        in_flight.insert(packet_id, waiter);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(acknowledgement))) => {
                    let Some(waiter) = in_flight.remove(&acknowledgement.pkid) else { continue };
                    let all_acknowledged = waiters.get_mut(&waiter).is_some_and(|waiting| {
                        waiting.unacknowledged -= 1;
                        waiting.unacknowledged == 0
                    });
                    if all_acknowledged {
                        if let Some(waiting) = waiters.remove(&waiter) {
                            let _ = waiting.done.send(Ok(()));
                        }
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    let message = describe(&error);
                    for (_, waiting) in waiters.drain() {
                        let _ = waiting.done.send(Err(format!("the connection to the MQTT broker was lost before it acknowledged everything: {message}")));
                    }
                    return Some(Lost { message, was_connected: connected });
                }
            },
            command = commands.recv() => {
                let Command { publications, done } = command?;
                if publications.is_empty() {
                    let _ = done.send(Ok(()));
                    continue;
                }
                let waiter = next_waiter;
                next_waiter += 1;
                waiters.insert(waiter, Waiter { unacknowledged: publications.len(), done });
                queue.extend(publications.into_iter().map(|publication| (publication, Some(waiter))));
            }
        }
    }
}

/// A connection error in words a user can act on. Names no password: rumqttc's errors
/// hold none.
fn describe(error: &ConnectionError) -> String {
    match error {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => "the broker refused the user name or password: check username and password_file (or password_env), and the broker's password file".to_owned(),
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadClientId) => {
            "the broker refused the client id: set client_id to one it accepts".to_owned()
        }
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection ({code:?})")
        }
        ConnectionError::Io(error) => format!("cannot reach the broker: {error}"),
        ConnectionError::Tls(error) => format!(
            "TLS with the broker failed: {error}; check the URL's host name and ca_file"
        ),
        ConnectionError::NetworkTimeout => "the broker did not answer in time".to_owned(),
        error => error.to_string(),
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
