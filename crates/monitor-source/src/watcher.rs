//! What every reconnecting watcher does alike: the events it sends ([`WatcherEvent`]), wait
//! for its first config, run turn after turn until shutdown or until its configs stop, and
//! keep its outage bookkeeping (report a loss once per outage, retry with capped backoff,
//! start over on success).

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use monitor_wire::backoff::Backoff;
use monitor_wire::{CheckId, Details};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a watcher (of systemd units, containers or D-Bus signals) observed, in its own
/// terms: the state of a watched thing with its status `S`, or a matched signal. The agent
/// turns it into [`SourceEvent`](crate::SourceEvent)s about checks.
///
/// A watcher of things that run (units, containers) sends `State`s and never `Matched`; the
/// signal watcher sends `Matched` and never `State` (its `S` is [`Infallible`]).
// `State` is much larger than the others; boxing its status would cost an allocation per
// event and make every consumer's pattern match clumsier, for no gain on a channel.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum WatcherEvent<S> {
    /// The watched thing's state: sent for every watched thing when it is first read and
    /// after each reconnect (even if unchanged), then whenever `running` changes, with the
    /// latest status. A crash seen only through a restart counter is sent as a
    /// `running: false` and a `running: true`.
    State {
        check: CheckId,
        running: bool,
        status: S,
    },
    /// A signal matched a check. `text` is the signal as one line; `details` are the
    /// alert's (`details.description` the same text).
    Matched {
        check: CheckId,
        text: String,
        details: Details,
    },
    /// The check's source cannot be watched (the thing does not exist or failed to load, a
    /// watch expression is invalid or refused): sent once per finding, with a message a
    /// person can act on.
    Problem { check: CheckId, message: String },
    /// The watcher is (again) connected to what it watches; for a watcher of states, a
    /// `State` for every watched thing follows.
    Connected,
    /// What is watched was lost (or could not be reached); the watcher retries with
    /// backoff. Sent once per outage.
    Disconnected { reason: String },
}

/// A watched thing's status, as an alert shows it.
pub trait WatchedStatus {
    /// The alert's details: a description and the status as fields.
    fn details(&self) -> Details;

    /// The watched thing is there to be watched (a unit that loaded): a problem its check
    /// had is over.
    fn found(&self) -> bool {
        true
    }
}

/// The signal watcher has no states.
impl WatchedStatus for Infallible {
    fn details(&self) -> Details {
        match *self {}
    }
}

/// After a turn: go on, or stop because the sender of configs is gone.
pub enum Flow {
    Continue,
    ConfigsClosed,
}

/// A watcher the agent reconfigures while it runs.
pub trait Watcher {
    type Config;
    type Error;

    /// One turn: wait for what comes next (a config, a message, a deadline) and handle it.
    /// Dropped midway only at shutdown.
    fn step(
        &mut self,
        configs: &mut mpsc::Receiver<Self::Config>,
    ) -> impl Future<Output = Result<Flow, Self::Error>>;
}

/// Waits for the first config, starts the watcher with it (`start`), then runs its turns
/// until `shutdown` or until `configs` closes. `what` names the watched things in logs
/// ("service", "D-Bus signal"); `watching` what stops being watched ("services").
pub async fn run<W, Start, Starting>(
    what: &str,
    watching: &str,
    mut configs: mpsc::Receiver<W::Config>,
    shutdown: CancellationToken,
    start: Start,
) -> Result<(), W::Error>
where
    W: Watcher,
    Start: FnOnce(W::Config) -> Starting,
    Starting: Future<Output = Result<W, W::Error>>,
{
    let first = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return Ok(()),
        config = configs.recv() => config,
    };
    let Some(first) = first else {
        tracing::info!("no {what} config arrived before the config channel closed");
        return Ok(());
    };
    let mut watcher = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return Ok(()),
        started = start(first) => started?,
    };
    loop {
        let flow = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            flow = watcher.step(&mut configs) => flow?,
        };
        if let Flow::ConfigsClosed = flow {
            tracing::info!("the {what} config channel closed; no longer watching {watching}");
            return Ok(());
        }
    }
}

/// A connection's outage bookkeeping: when to try again, and whether the outage was
/// reported (a watcher says `Disconnected` once per outage, `Connected` after each).
#[derive(Debug)]
pub struct Reconnect {
    backoff: Backoff,
    retry_at: Option<Instant>,
    down_reported: bool,
}

impl Reconnect {
    /// Retries wait `first`, doubling to `max`.
    pub fn new(first: Duration, max: Duration) -> Reconnect {
        Reconnect {
            backoff: Backoff::new(first, max),
            retry_at: None,
            down_reported: false,
        }
    }

    /// When to try connecting next; `None` for at once.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// The wait before the next try is over.
    pub fn waited(&mut self) {
        self.retry_at = None;
    }

    /// Connected: the next loss waits the first delay again and is a new outage.
    pub fn connected(&mut self) {
        self.backoff.reset();
        self.retry_at = None;
        self.down_reported = false;
    }

    /// A try failed or the connection was lost: the next try waits the backoff's next
    /// delay (returned). `true` the first time in an outage: report it now.
    pub fn failed(&mut self) -> (Duration, bool) {
        let delay = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + delay);
        (delay, !std::mem::replace(&mut self.down_reported, true))
    }

    /// A new config: try at once, with the first delay after it.
    pub fn start_over(&mut self) {
        self.backoff.reset();
        self.retry_at = None;
    }

    /// Another place to connect to: an outage there is a new one.
    pub fn forget_outage(&mut self) {
        self.down_reported = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_outage_is_reported_once_and_a_connection_starts_over() {
        let mut reconnect = Reconnect::new(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(reconnect.retry_at(), None);
        assert_eq!(reconnect.failed(), (Duration::from_millis(100), true));
        assert_eq!(reconnect.failed(), (Duration::from_millis(200), false));
        assert_eq!(
            reconnect.retry_at(),
            Some(Instant::now() + Duration::from_millis(200))
        );
        reconnect.waited();
        assert_eq!(reconnect.retry_at(), None);
        reconnect.connected();
        assert_eq!(reconnect.failed(), (Duration::from_millis(100), true));
        reconnect.start_over();
        assert_eq!(reconnect.failed(), (Duration::from_millis(100), false));
        reconnect.forget_outage();
        assert_eq!(reconnect.failed(), (Duration::from_millis(200), true));
    }
}
