//! The D-Bus signal watcher: Mender's `dbus` checks
//! (`create dbus <check> <dbus_name> <pattern> <watch_expression> [expiration]`).
//!
//! [`run`] connects to one bus ([`SignalBus`]), registers every check's watch expression as a
//! match rule (`AddMatch`; a check's optional `sender` restricts the rule to that bus name;
//! Mender's `DBUS_NAME` is only a label and never reaches this crate), renders
//! each arriving signal as one line of text ([`render_signal`], like `dbus-monitor`), and
//! sends a [`SignalEvent::Matched`] for every check whose rule matches the signal and whose
//! pattern matches the text. One connection carries the signals of all rules, so the watcher
//! filters each message against each rule itself, following the owners of well-known sender
//! names (`NameOwnerChanged`) because a message only names its sender's unique name.
//!
//! A burst of signals is coalesced per check: at most one `Matched` per check every 100 ms,
//! the next one counting the others in `details.fields.coalesced`. A bad watch expression is
//! reported once as a [`SignalEvent::Problem`] and the other checks keep working. When the
//! bus goes away the watcher says so ([`SignalEvent::Disconnected`]) and reconnects with
//! capped backoff, re-adding every rule. It does not wake up while nothing arrives.
//!
//! This crate does not decide what is an alert, what it is called or when it expires (the
//! engine and the check's config do), does not call methods on anybody but the bus itself,
//! and does not eavesdrop or become a bus monitor.

mod render;
mod rule;
mod watch;

use std::convert::Infallible;
use std::fmt;

use monitor_source::{bus_address, WatcherEvent};
use monitor_wire::CheckId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use render::render_signal;

/// The system bus address when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
pub const DEFAULT_SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";

/// Which message bus the signals are watched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalBus {
    /// The system bus (Mender's choice): `DBUS_SYSTEM_BUS_ADDRESS`, or
    /// [`DEFAULT_SYSTEM_BUS_ADDRESS`].
    System,
    /// The session bus at `DBUS_SESSION_BUS_ADDRESS`.
    Session,
    /// A bus at this D-Bus address (`unix:path=/run/…`).
    Address(String),
}

impl SignalBus {
    /// The bus's D-Bus address, read from the environment for the system and session buses.
    pub fn address(&self) -> Result<String, DbusWatchError> {
        match self {
            SignalBus::System => Ok(bus_address::system_bus_address(DEFAULT_SYSTEM_BUS_ADDRESS)),
            // Only the variable: a dbus check names the bus it means.
            SignalBus::Session => {
                bus_address::session_bus_address(false).ok_or(DbusWatchError::NoSessionBus)
            }
            SignalBus::Address(address) => Ok(address.clone()),
        }
    }
}

impl fmt::Display for SignalBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalBus::System => f.write_str("system bus"),
            SignalBus::Session => f.write_str("session bus"),
            SignalBus::Address(address) => write!(f, "bus at {address}"),
        }
    }
}

/// One `dbus` check.
#[derive(Debug, Clone)]
pub struct WatchedSignal {
    pub check: CheckId,
    /// Only signals from this sender (a well-known or unique bus name) count; `None`: any
    /// sender, or the one the watch expression names with `sender=`. Not Mender's
    /// `DBUS_NAME`, which is a label.
    pub sender: Option<String>,
    /// Matched against the signal's text ([`render_signal`]); `None`: every signal.
    pub pattern: Option<regex::bytes::Regex>,
    /// A D-Bus match rule as users write it, e.g.
    /// `type='signal',interface='org.example.Foo'`. Empty: every signal on the bus.
    pub watch_expression: String,
}

/// The whole set of signals to watch; a new one replaces the old.
#[derive(Debug, Clone)]
pub struct SignalWatchConfig {
    pub bus: SignalBus,
    pub signals: Vec<WatchedSignal>,
}

/// What the watcher observed ([`WatcherEvent`]; never a `State`, so its status type is
/// [`Infallible`]).
///
/// - `Matched`: a signal matched a check. `text` is the signal as one line
///   ([`render_signal`]); `details.description` is the same text, and `details.fields` hold
///   `sender`, `path`, `interface`, `member` (strings, when the signal has them), `args` (a
///   JSON array) and, when earlier matches of the same check within 100 ms were folded into
///   this one, `coalesced` (how many).
/// - `Problem`: the check's watch expression or sender is invalid, or the bus refused
///   it: sent once; the check is not watched until a config fixes it.
/// - `Connected`: connected to the bus with every rule registered; signals sent from now on
///   are seen. Sent after every (re)connection, also after a new config (which connects anew).
/// - `Disconnected`: the bus was lost or could not be reached; the watcher retries with
///   backoff. Sent once per outage.
pub type SignalEvent = WatcherEvent<Infallible>;

/// Why the bus could not be watched. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DbusWatchError {
    #[error("the session bus address is unknown: DBUS_SESSION_BUS_ADDRESS is not set; run monitord in the user's session or watch the system bus")]
    NoSessionBus,
    #[error("cannot connect to the {bus} at {address}: {source}; is dbus-daemon running and may monitord use it?")]
    Connect {
        bus: SignalBus,
        address: String,
        source: Box<zbus::Error>,
    },
    #[error("cannot connect to the {bus} at {address}: no answer within 5 s; is dbus-daemon overloaded?")]
    ConnectTimeout { bus: SignalBus, address: String },
    #[error("calling {call} on the {bus} failed: {source}; the connection is retried")]
    Call {
        bus: SignalBus,
        call: String,
        source: Box<zbus::Error>,
    },
    #[error("the {bus} refused {call}: {message} ({name})")]
    Refused {
        bus: SignalBus,
        call: String,
        name: String,
        message: String,
    },
    #[error("the {bus} did not answer {call} within 5 s; the connection is retried")]
    Timeout { bus: SignalBus, call: String },
    #[error("the receiver of D-Bus signal events is gone; the agent's engine stopped, nothing is left to watch for")]
    EventsClosed,
}

/// Watches the signals of the latest config from `configs` and sends what it observes to
/// `events`. Waits for the first config.
///
/// Returns `Ok` on shutdown or when `configs` closes, and an error only when `events` closes.
/// Bus trouble is reported as [`SignalEvent::Disconnected`] and retried. `events` is bounded:
/// when it is full the watcher waits, signals queue up in the connection (1024) and then in
/// the bus daemon; coalescing keeps a flood down to ten events per check and second.
pub async fn run(
    configs: mpsc::Receiver<SignalWatchConfig>,
    events: mpsc::Sender<SignalEvent>,
    shutdown: CancellationToken,
) -> Result<(), DbusWatchError> {
    watch::run(configs, events, shutdown).await
}
