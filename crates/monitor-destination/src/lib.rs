//! The one way out: every place alerts go (a Discord webhook, the Mender devicemonitor
//! backend, the next one) is a [`Destination`], and the agent's delivery, `monitorctl
//! notify-failure` and whatever else delivers drive them all alike.
//!
//! - [`Destination`]: delivers a batch of alerts about a device, optionally pushes the check
//!   configuration, and answers with a [`Verdict`]: delivered, retry after a wait, rejected
//!   (never retry as it is) or gone (disable).
//! - [`OutgoingAlert`]: one alert on its way, with the check that raised it when the sender
//!   knows it: the wire alert does not name it (a log check may give its subject any type),
//!   so the agent, which knows, says it, and monitor-server, which gets wire alerts, cannot;
//!   and a link to a page about it when the sender has one (monitor-server's dashboard).
//! - [`Filter`]: which alerts a destination takes (`min_level`, `checks`). The caller applies
//!   it, once, for every destination ([`Filter::select`] → [`Batch`]); no destination filters
//!   by itself. [`Batch::deliver`] turns verdicts into an [`Outcome`] in the outbox's terms
//!   (how far its records are done with); a rejected batch is split until only the alerts
//!   refused on their own are left ([`Rejection`]), so one bad alert never takes others
//!   with it.
//! - [`Heartbeats`]: whether a destination is told the device is alive (monitor-server's
//!   "device went silent"): every so often, or once that none will come.
//! - [`PlannedDestination`]: a destination resolved from settings (name, identity, filter)
//!   and how to start it, so that settings are checked once and clients built only when
//!   needed.
//!
//! The trait is object-safe, with boxed futures rather than `async fn` (which `dyn` cannot
//! call yet): the agent keeps `Box<dyn Destination>`s of any kind in one list, so adding a
//! destination adds no enum variant or match arm anywhere; one allocation per batch is
//! nothing next to the request it makes.
//!
//! It deliberately knows no HTTP, no settings file and no outbox: implementations bring
//! their own clients, the caller owns what is pending, when to try again and what is
//! acknowledged.

mod batch;
mod filter;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use monitor_wire::config_push::ConfigCheck;
use monitor_wire::{Alert, CheckId, HistoryRecord};
use tokio::time::Instant;

pub use batch::{Batch, Outcome, Rejection};
pub use filter::Filter;

/// What [`Destination::deliver`] and [`Destination::push_config`] return.
pub type VerdictFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// A place alerts go. One value per configured destination; calls take `&mut self`, so a
/// destination has at most one delivery in flight and may keep state between calls (its
/// backoff, its rate-limit bucket, its token).
pub trait Destination: Send {
    /// The most alerts one call to [`Destination::deliver`] is given.
    fn batch_size(&self) -> usize;

    /// Delivers `alerts` (oldest first, never empty) about `device`. Dropping the future
    /// stops the delivery; what was sent by then may arrive (delivery is at least once).
    fn deliver<'a>(
        &'a mut self,
        device: &'a str,
        alerts: &'a [OutgoingAlert<'a>],
    ) -> VerdictFuture<'a>;

    /// Send nothing before this (a pause this destination shares with others, such as
    /// Discord's global rate limit). The caller waits, and can be stopped while it waits.
    fn paused_until(&self) -> Option<Instant> {
        None
    }

    /// How often the check configuration is pushed besides at start and on change; `None`
    /// (the default): this destination takes no configuration.
    fn config_push_interval(&self) -> Option<Duration> {
        None
    }

    /// Pushes the list of checks. Called only when [`Destination::config_push_interval`]
    /// is `Some`; [`Verdict::Retry`]'s `delivered` means nothing here.
    fn push_config<'a>(&'a mut self, checks: &'a [ConfigCheck]) -> VerdictFuture<'a> {
        let _ = checks;
        Box::pin(std::future::ready(Verdict::Delivered))
    }

    /// Whether [`Destination::heartbeat`] is called: `None` (the default), never.
    fn heartbeats(&self) -> Option<Heartbeats> {
        None
    }

    /// Tells the destination the device is alive (or, with [`Heartbeats::Stopped`], that no
    /// heartbeat will come). Called only when [`Destination::heartbeats`] is `Some`; the
    /// caller waits for it between batches, never during one. [`Verdict::Retry`]: try again
    /// after its wait; [`Verdict::Gone`] or [`Verdict::Rejected`]: the destination takes no
    /// heartbeats, stop sending them.
    fn heartbeat(&mut self) -> VerdictFuture<'_> {
        Box::pin(std::future::ready(Verdict::Delivered))
    }
}

/// How a destination that watches for the device's silence is kept informed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeats {
    /// A heartbeat at start and then every this long (each one announces the interval).
    Every(Duration),
    /// None: one message says so at start, so that a device that sent heartbeats before is
    /// not taken for silent.
    Stopped,
}

/// What a destination made of a batch, and so what the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every alert was taken.
    Delivered,
    /// The first `delivered` alerts were taken; send the rest again after `after`.
    Retry {
        delivered: usize,
        after: Duration,
        message: String,
    },
    /// The first `delivered` alerts were taken; the rest was refused for good (the
    /// destination found them invalid, or too big): never send those together again.
    /// [`Batch::deliver`] splits them to find the alerts at fault; an alert refused on its
    /// own is a [`Rejection`]. The message is the destination's reason (its answer,
    /// shortened, never a secret).
    Rejected { delivered: usize, message: String },
    /// The destination no longer exists (a deleted webhook): disable it until its settings
    /// change.
    Gone { message: String },
}

/// One alert on its way to a destination. `message`s and logs may name its `seq`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutgoingAlert<'a> {
    /// The agent's number for the alert (its outbox and history key).
    pub seq: u64,
    /// The check that raised it, when the sender knows it: the agent always does;
    /// monitor-server, which receives Mender's wire alert (naming no check), never does.
    pub check: Option<&'a CheckId>,
    /// The alert itself, in Mender's wire shape.
    pub alert: &'a Alert,
    /// A page about the alert a reader can open, when the sender has one: monitor-server
    /// started with `--public-url` links its dashboard's page of the device; the agent has
    /// none. Destinations show it where their format allows (a link, a button, a field).
    pub link: Option<&'a str>,
}

impl<'a> From<&'a HistoryRecord> for OutgoingAlert<'a> {
    fn from(record: &'a HistoryRecord) -> Self {
        OutgoingAlert {
            seq: record.seq,
            check: Some(&record.check),
            alert: &record.alert,
            link: None,
        }
    }
}

/// Starts a planned destination: builds its client. Errors name the setting at fault.
pub type StartDestination = Box<dyn FnOnce() -> Result<Box<dyn Destination>, String> + Send>;

/// A destination its settings describe, resolved (secrets read, URLs parsed) but not
/// started: starting builds clients, which is done only for a new or changed destination.
pub struct PlannedDestination {
    /// Its key in the outbox (`backend`, `discord:<webhook id>`): a destination keeps its
    /// progress while its name stays.
    pub name: String,
    /// Changes whenever its settings do. It holds secrets: compare it, never print it.
    pub identity: String,
    /// Which alerts it takes.
    pub filter: Filter,
    pub start: StartDestination,
}
