//! The watch loop: one connection for all checks, filtering, coalescing, reconnection.
//!
//! Invariants:
//! - All messages come through one unfiltered stream, in the order the bus sent them, so a
//!   `NameOwnerChanged` is applied before any signal the new owner sends afterwards.
//! - `Connected` is sent only once every rule is registered: a signal sent after it is seen.
//! - A check sends at most one `Matched` per [`COALESCE_WINDOW`]; the matches in between are
//!   counted, and the latest of them is sent when the window ends, so that no burst goes
//!   unreported and `1 + coalesced` summed over the `Matched` events is the number of matches.
//! - Nothing wakes the loop but a message, a config, a pending coalesced match or a
//!   reconnection deadline.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use monitor_source::watcher::{self, Flow, Reconnect};
use monitor_wire::{CheckId, Details};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use zbus::export::futures_core::Stream;
use zbus::message::Type as MessageType;
use zbus::{Connection, Message, MessageStream};

use crate::render::{render_signal, signal_details};
use crate::rule::{self, ResolvedRule};
use crate::{DbusWatchError, SignalBus, SignalEvent, SignalWatchConfig, WatchedSignal};

/// Every connection attempt and bus call gives up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one `Matched` per check within this window.
const COALESCE_WINDOW: Duration = Duration::from_millis(100);
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(30);
/// How many messages the connection holds before it stops reading the socket (and the bus
/// daemon queues for us). The loop does not wait for anything while a burst is coalesced.
const MESSAGE_QUEUE: usize = 1024;

const BUS_DRIVER: &str = "org.freedesktop.DBus";
const BUS_DRIVER_PATH: &str = "/org/freedesktop/DBus";

pub(crate) async fn run(
    configs: mpsc::Receiver<SignalWatchConfig>,
    events: mpsc::Sender<SignalEvent>,
    shutdown: CancellationToken,
) -> Result<(), DbusWatchError> {
    watcher::run(
        "D-Bus signal",
        "signals",
        configs,
        shutdown,
        |first: SignalWatchConfig| async {
            let mut watcher = Watcher::new(events, first.bus.clone());
            watcher.apply_config(first).await?;
            Ok(watcher)
        },
    )
    .await
}

impl watcher::Watcher for Watcher {
    type Config = SignalWatchConfig;
    type Error = DbusWatchError;

    async fn step(
        &mut self,
        configs: &mut mpsc::Receiver<SignalWatchConfig>,
    ) -> Result<Flow, DbusWatchError> {
        match self.next_wake(configs).await {
            Wake::Config(None) => return Ok(Flow::ConfigsClosed),
            Wake::Config(Some(config)) => self.apply_config(config).await?,
            Wake::Message(Some(Ok(message))) => self.on_message(&message).await?,
            Wake::Message(Some(Err(error))) => {
                self.lose_session(format!("the {} connection failed: {error}", self.bus))
                    .await?
            }
            Wake::Message(None) => {
                self.lose_session(format!("the {} connection closed", self.bus))
                    .await?
            }
            Wake::Flush => self.flush_due().await?,
            Wake::Connect => self.try_connect().await?,
        }
        Ok(Flow::Continue)
    }
}

/// Folds a check's matches within [`COALESCE_WINDOW`] into one event.
#[derive(Debug, Default)]
struct Coalescer {
    last_sent: Option<Instant>,
    /// The latest match not sent yet, and its text.
    pending: Option<(Message, String)>,
    /// Matches not sent since the last `Matched` (the pending one included).
    held_back: u64,
}

/// A match to send, and how many others it stands for.
struct Delivery {
    message: Message,
    text: String,
    coalesced: u64,
}

impl Coalescer {
    /// Takes a match: returns it to send now, or holds it back until the window ends.
    fn offer(&mut self, now: Instant, message: &Message, text: &str) -> Option<Delivery> {
        if self
            .last_sent
            .is_some_and(|sent| now < sent + COALESCE_WINDOW)
        {
            self.held_back += 1;
            self.pending = Some((message.clone(), text.to_owned()));
            return None;
        }
        let coalesced = std::mem::take(&mut self.held_back);
        self.pending = None;
        self.last_sent = Some(now);
        Some(Delivery {
            message: message.clone(),
            text: text.to_owned(),
            coalesced,
        })
    }

    /// When the held-back match is due.
    fn flush_at(&self) -> Option<Instant> {
        self.pending.as_ref()?;
        self.last_sent.map(|sent| sent + COALESCE_WINDOW)
    }

    /// The held-back match, if its window has ended.
    fn flush(&mut self, now: Instant) -> Option<Delivery> {
        if self.flush_at()? > now {
            return None;
        }
        let (message, text) = self.pending.take()?;
        let coalesced = std::mem::take(&mut self.held_back).saturating_sub(1);
        self.last_sent = Some(now);
        Some(Delivery {
            message,
            text,
            coalesced,
        })
    }
}

/// One valid check.
struct CheckWatch {
    signal: WatchedSignal,
    resolved: ResolvedRule,
    /// The bus refused the rule in the current session: the check waits for a new config.
    refused: bool,
    coalescer: Coalescer,
}

impl CheckWatch {
    fn check(&self) -> &CheckId {
        &self.signal.check
    }

    /// Whether `message` (rendered as `text`, on demand) is one for this check.
    fn accepts(&self, message: &Message, owners: &HashMap<String, Option<String>>) -> bool {
        if self.refused || !self.resolved.rule.matches(message).unwrap_or(false) {
            return false;
        }
        match &self.resolved.well_known_sender {
            None => true,
            Some(name) => {
                let owner = owners.get(name).and_then(Option::as_deref);
                let header = message.header();
                owner.is_some() && owner == header.sender().map(|sender| sender.as_str())
            }
        }
    }
}

/// The live connection.
struct Session {
    /// Kept for the connection's lifetime; dropping it closes the connection.
    _connection: Connection,
    messages: MessageStream,
    /// The unique name owning each well-known sender name of the checks (`None`: nobody).
    owners: HashMap<String, Option<String>>,
}

enum Wake {
    Config(Option<SignalWatchConfig>),
    Message(Option<zbus::Result<Message>>),
    Flush,
    Connect,
}

struct Watcher {
    events: mpsc::Sender<SignalEvent>,
    bus: SignalBus,
    checks: Vec<CheckWatch>,
    session: Option<Session>,
    /// When to connect again, and whether the outage was reported.
    reconnect: Reconnect,
    /// `(check, message)` of every problem already sent: each is sent once.
    problems_reported: HashSet<(CheckId, String)>,
}

impl Watcher {
    fn new(events: mpsc::Sender<SignalEvent>, bus: SignalBus) -> Watcher {
        Watcher {
            events,
            bus,
            checks: Vec::new(),
            session: None,
            reconnect: Reconnect::new(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY),
            problems_reported: HashSet::new(),
        }
    }

    async fn send(&self, event: SignalEvent) -> Result<(), DbusWatchError> {
        self.events
            .send(event)
            .await
            .map_err(|_| DbusWatchError::EventsClosed)
    }

    async fn report_problem(
        &mut self,
        check: CheckId,
        message: String,
    ) -> Result<(), DbusWatchError> {
        if self
            .problems_reported
            .insert((check.clone(), message.clone()))
        {
            tracing::warn!(%check, %message, "cannot watch a D-Bus signal");
            self.send(SignalEvent::Problem { check, message }).await?;
        }
        Ok(())
    }

    /// Replaces the checks (keeping the coalescing state of those that stay) and connects
    /// anew, so that the bus only holds the new rules.
    async fn apply_config(&mut self, config: SignalWatchConfig) -> Result<(), DbusWatchError> {
        let mut previous: HashMap<CheckId, Coalescer> = self
            .checks
            .drain(..)
            .map(|check| (check.signal.check, check.coalescer))
            .collect();
        if config.bus != self.bus {
            self.reconnect.forget_outage();
        }
        self.bus = config.bus;
        for signal in config.signals {
            match rule::resolve(&signal.watch_expression, signal.sender.as_deref()) {
                Ok(resolved) => {
                    let coalescer = previous.remove(&signal.check).unwrap_or_default();
                    self.checks.push(CheckWatch {
                        signal,
                        resolved,
                        refused: false,
                        coalescer,
                    });
                }
                Err(message) => self.report_problem(signal.check, message).await?,
            }
        }
        // Matches held back for checks that are gone are sent now rather than lost.
        for (check, mut coalescer) in previous {
            if let Some(delivery) = coalescer.flush(Instant::now() + COALESCE_WINDOW) {
                self.deliver(check, delivery).await?;
            }
        }
        self.session = None;
        self.reconnect.start_over();
        Ok(())
    }

    async fn next_wake(&mut self, configs: &mut mpsc::Receiver<SignalWatchConfig>) -> Wake {
        let flush_at = self
            .checks
            .iter()
            .filter_map(|check| check.coalescer.flush_at())
            .min();
        // No checks: nothing to connect for.
        let connect_at = match (&self.session, self.checks.is_empty()) {
            (None, false) => Some(self.reconnect.retry_at().unwrap_or_else(Instant::now)),
            _ => None,
        };
        let session = self.session.as_mut();
        tokio::select! {
            config = configs.recv() => Wake::Config(config),
            item = next_message(session) => Wake::Message(item),
            _ = sleep_until_some(flush_at) => Wake::Flush,
            _ = sleep_until_some(connect_at) => Wake::Connect,
        }
    }

    async fn try_connect(&mut self) -> Result<(), DbusWatchError> {
        match self.connect().await {
            Ok((session, refusals)) => {
                tracing::info!(bus = %self.bus, checks = self.checks.len(), "watching D-Bus signals");
                self.session = Some(session);
                self.reconnect.connected();
                self.send(SignalEvent::Connected).await?;
                for (index, message) in refusals {
                    let check = self.checks[index].check().clone();
                    self.report_problem(check, message).await?;
                }
            }
            Err(error) => {
                let (delay, new_outage) = self.reconnect.failed();
                tracing::warn!(%error, retry_in = ?delay, "cannot watch D-Bus signals");
                if new_outage {
                    self.send(SignalEvent::Disconnected {
                        reason: error.to_string(),
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Connects, registers the rules and reads the owners of the sender names. Returns the
    /// session and the checks whose rules the bus refused, with a message for each.
    async fn connect(&mut self) -> Result<(Session, Vec<(usize, String)>), DbusWatchError> {
        let bus = self.bus.clone();
        let address = bus.address()?;
        let connect_error = |source| DbusWatchError::Connect {
            bus: bus.clone(),
            address: address.clone(),
            source: Box::new(source),
        };
        let builder = zbus::connection::Builder::address(address.as_str())
            .map_err(connect_error)?
            .max_queued(MESSAGE_QUEUE);
        let connection = tokio::time::timeout(CALL_TIMEOUT, builder.build())
            .await
            .map_err(|_| DbusWatchError::ConnectTimeout {
                bus: bus.clone(),
                address: address.clone(),
            })?
            .map_err(connect_error)?;
        // The stream exists before any rule, so no message matching one is missed.
        let messages = MessageStream::from(&connection);
        let names: BTreeSet<String> = self
            .checks
            .iter()
            .filter_map(|check| check.resolved.well_known_sender.clone())
            .collect();
        // Follow the owners before asking for them, so that no change falls in between.
        for name in &names {
            add_match(&connection, &bus, &rule::name_owner_rule(name)).await?;
        }
        let mut refusals = Vec::new();
        for (index, check) in self.checks.iter_mut().enumerate() {
            check.refused = false;
            match add_match(&connection, &bus, &check.resolved.add_match).await {
                Ok(()) => {}
                Err(DbusWatchError::Refused { name, message, .. }) => {
                    check.refused = true;
                    refusals.push((
                        index,
                        format!(
                            "the {bus} refused the watch expression \"{}\": {message} ({name}); correct the expression",
                            check.signal.watch_expression
                        ),
                    ));
                }
                Err(error) => return Err(error),
            }
        }
        let mut owners = HashMap::new();
        for name in names {
            let owner = name_owner(&connection, &bus, &name).await?;
            owners.insert(name, owner);
        }
        Ok((
            Session {
                _connection: connection,
                messages,
                owners,
            },
            refusals,
        ))
    }

    /// Drops the connection, says so once, and schedules the reconnection.
    async fn lose_session(&mut self, reason: String) -> Result<(), DbusWatchError> {
        tracing::warn!(%reason, "lost the D-Bus connection; reconnecting");
        self.session = None;
        if self.reconnect.failed().1 {
            self.send(SignalEvent::Disconnected { reason }).await?;
        }
        Ok(())
    }

    async fn on_message(&mut self, message: &Message) -> Result<(), DbusWatchError> {
        if message.message_type() != MessageType::Signal {
            return Ok(());
        }
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        follow_owner(&mut session.owners, message);
        let now = Instant::now();
        let mut text: Option<String> = None;
        let mut deliveries = Vec::new();
        for check in &mut self.checks {
            if !check.accepts(message, &session.owners) {
                continue;
            }
            let text = text.get_or_insert_with(|| render_signal(message));
            let pattern_matches = check
                .signal
                .pattern
                .as_ref()
                .is_none_or(|pattern| pattern.is_match(text.as_bytes()));
            if !pattern_matches {
                continue;
            }
            if let Some(delivery) = check.coalescer.offer(now, message, text) {
                deliveries.push((check.signal.check.clone(), delivery));
            }
        }
        for (check, delivery) in deliveries {
            self.deliver(check, delivery).await?;
        }
        Ok(())
    }

    async fn flush_due(&mut self) -> Result<(), DbusWatchError> {
        let now = Instant::now();
        let mut deliveries = Vec::new();
        for check in &mut self.checks {
            if let Some(delivery) = check.coalescer.flush(now) {
                deliveries.push((check.signal.check.clone(), delivery));
            }
        }
        for (check, delivery) in deliveries {
            self.deliver(check, delivery).await?;
        }
        Ok(())
    }

    async fn deliver(&self, check: CheckId, delivery: Delivery) -> Result<(), DbusWatchError> {
        let mut details: Details = signal_details(&delivery.message, &delivery.text);
        if delivery.coalesced > 0 {
            details
                .fields
                .insert("coalesced".to_owned(), delivery.coalesced.into());
        }
        self.send(SignalEvent::Matched {
            check,
            text: delivery.text,
            details,
        })
        .await
    }
}

/// Applies a `NameOwnerChanged` from the bus for a followed name.
fn follow_owner(owners: &mut HashMap<String, Option<String>>, message: &Message) {
    let header = message.header();
    let from_bus = header.sender().is_some_and(|sender| sender == BUS_DRIVER)
        && header
            .interface()
            .is_some_and(|interface| interface == BUS_DRIVER)
        && header
            .member()
            .is_some_and(|member| member == "NameOwnerChanged");
    if !from_bus {
        return;
    }
    let Ok((name, _old_owner, new_owner)) =
        message.body().deserialize::<(String, String, String)>()
    else {
        return;
    };
    if let Some(owner) = owners.get_mut(&name) {
        tracing::debug!(%name, %new_owner, "a watched sender name changed owner");
        *owner = (!new_owner.is_empty()).then_some(new_owner);
    }
}

/// A call to the bus itself, with a timeout and an error that names the call.
async fn call_bus(
    connection: &Connection,
    bus: &SignalBus,
    method: &str,
    argument: &str,
) -> Result<Message, DbusWatchError> {
    let call = || format!("{method}(\"{argument}\")");
    let reply = tokio::time::timeout(
        CALL_TIMEOUT,
        connection.call_method(
            Some(BUS_DRIVER),
            BUS_DRIVER_PATH,
            Some(BUS_DRIVER),
            method,
            &argument,
        ),
    )
    .await
    .map_err(|_| DbusWatchError::Timeout {
        bus: bus.clone(),
        call: call(),
    })?;
    reply.map_err(|error| match error {
        zbus::Error::MethodError(name, message, _) => DbusWatchError::Refused {
            bus: bus.clone(),
            call: call(),
            name: name.to_string(),
            message: message.unwrap_or_default(),
        },
        source => DbusWatchError::Call {
            bus: bus.clone(),
            call: call(),
            source: Box::new(source),
        },
    })
}

async fn add_match(
    connection: &Connection,
    bus: &SignalBus,
    rule: &str,
) -> Result<(), DbusWatchError> {
    call_bus(connection, bus, "AddMatch", rule).await.map(drop)
}

/// The unique name owning `name`, `None` when nobody does.
async fn name_owner(
    connection: &Connection,
    bus: &SignalBus,
    name: &str,
) -> Result<Option<String>, DbusWatchError> {
    match call_bus(connection, bus, "GetNameOwner", name).await {
        Ok(reply) => {
            let owner =
                reply
                    .body()
                    .deserialize::<String>()
                    .map_err(|source| DbusWatchError::Call {
                        bus: bus.clone(),
                        call: format!("GetNameOwner(\"{name}\")"),
                        source: Box::new(source),
                    })?;
            Ok(Some(owner))
        }
        Err(DbusWatchError::Refused { name: error, .. })
            if error == "org.freedesktop.DBus.Error.NameHasNoOwner" =>
        {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// The next message of the session; never, without one.
async fn next_message(session: Option<&mut Session>) -> Option<zbus::Result<Message>> {
    match session {
        Some(session) => {
            poll_fn(|context| Pin::new(&mut session.messages).poll_next(context)).await
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_wire::backoff::Backoff;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY);
        let delays: Vec<_> = (0..11).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert_eq!(delays[9], Duration::from_secs(30));
        assert_eq!(delays[10], Duration::from_secs(30));
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn coalescing_sends_one_per_window_and_counts_the_rest() {
        let message = Message::signal("/org/example/Sensor", "org.example.Sensor", "Reading")
            .unwrap()
            .build(&())
            .unwrap();
        let start = Instant::now();
        let mut coalescer = Coalescer::default();
        let first = coalescer.offer(start, &message, "one").unwrap();
        assert_eq!(first.coalesced, 0);
        assert_eq!(coalescer.flush_at(), None, "nothing held back yet");
        let within = start + Duration::from_millis(10);
        assert!(coalescer.offer(within, &message, "two").is_none());
        assert!(coalescer.offer(within, &message, "three").is_none());
        let due = start + COALESCE_WINDOW;
        assert_eq!(coalescer.flush_at(), Some(due));
        assert!(coalescer.flush(within).is_none(), "not due yet");
        let flushed = coalescer.flush(due).unwrap();
        assert_eq!((flushed.text.as_str(), flushed.coalesced), ("three", 1));
        assert_eq!(coalescer.flush_at(), None);
        // Held back, then a match after the window: it is sent and counts the held one.
        assert!(coalescer.offer(due, &message, "four").is_none());
        let late = coalescer
            .offer(due + COALESCE_WINDOW, &message, "five")
            .unwrap();
        assert_eq!((late.text.as_str(), late.coalesced), ("five", 1));
        assert_eq!(coalescer.flush_at(), None);
    }
}
