//! What every source shares: the [`Source`] shape, the [`Context`] it configures from, and
//! the forwarding of a watcher's events into [`SourceEvent`]s (for the watchers of units,
//! containers and signals alike: [`watcher_event`]).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;

use monitor_config::Settings;
use monitor_source::{Observed, SourceEvent, SourceKind, WatchedStatus, WatcherEvent};
use monitor_wire::{CheckId, Details};
use tokio::sync::mpsc;

use crate::checkpoint::Positions;
use crate::plan::Plan;

/// How many events of one watcher wait for its forwarder.
pub const FORWARD_CAPACITY: usize = 16;

/// What a source reads to follow the plan.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub settings: &'a Settings,
    /// Where each log file was read to: a file followed anew resumes there.
    pub positions: &'a Positions,
    /// `@command` sources reported down and not up again.
    pub dead_commands: &'a BTreeSet<String>,
    /// Number of this config, echoed by the watchers once it is live.
    pub generation: u64,
}

pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// One kind of source: its watcher follows the plan.
pub trait Source {
    /// Start, reconfigure or stop the watcher for `context.plan`. Returns events to handle
    /// at once (checks that cannot be watched at all).
    fn configure<'a>(&'a mut self, context: &'a Context<'a>) -> Boxed<'a, Vec<SourceEvent>>;
    /// Wait for the watcher to end (after the parent token was cancelled).
    fn finish(&mut self) -> Boxed<'_, ()>;
}

/// Runs a watcher (`run`, given the sending side of its own small channel) with its
/// forwarder (`forward`, given the receiving side) on a task of its own; ends when both
/// have ended, so nothing the watcher sent is left behind at shutdown.
pub async fn with_forwarder<E, Running, Forwarding>(
    run: impl FnOnce(mpsc::Sender<E>) -> Running,
    forward: impl FnOnce(mpsc::Receiver<E>) -> Forwarding,
) -> Running::Output
where
    Running: Future,
    Forwarding: Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(FORWARD_CAPACITY);
    let forwarder = tokio::spawn(forward(receiver));
    let result = run(sender).await;
    let _ = forwarder.await;
    result
}

/// Hand each of a watcher's events, made into `SourceEvent`s by `map`, to the loop, until
/// the watcher drops its sender or the loop is gone.
pub async fn forward<E>(
    mut raw: mpsc::Receiver<E>,
    events: mpsc::Sender<SourceEvent>,
    mut map: impl FnMut(E) -> Vec<SourceEvent>,
) {
    while let Some(event) = raw.recv().await {
        for event in map(event) {
            if events.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// A check whose source cannot be watched is logged once per distinct message (the loop
/// only records it for `status`).
#[derive(Default)]
pub struct ProblemLog(HashMap<CheckId, String>);

impl ProblemLog {
    pub fn problem(&mut self, check: CheckId, message: String) -> SourceEvent {
        if self.0.get(&check) != Some(&message) {
            tracing::warn!(check = %check, "{message}");
        }
        self.0.insert(check.clone(), message.clone());
        SourceEvent::Problem { check, message }
    }

    /// The check's thing is not on this device, and the check allows it: logged once per
    /// distinct message, at info (it is no fault).
    pub fn not_here(&mut self, check: CheckId, message: String) -> SourceEvent {
        if self.0.get(&check) != Some(&message) {
            tracing::info!(check = %check, "not on this device, ignored: {message}");
        }
        self.0.insert(check.clone(), message.clone());
        SourceEvent::NotHere { check, message }
    }

    /// The check's source is watched again; `true` if it had a problem.
    pub fn resolved(&mut self, check: &CheckId) -> bool {
        self.0.remove(check).is_some()
    }
}

/// How a watcher's connection events read in the log: `connected` as is, a loss as
/// "lost {lost} ({reason}); reconnecting".
pub struct Connection {
    pub source: SourceKind,
    pub connected: &'static str,
    pub lost: &'static str,
}

/// Hand a watcher's events, made into `SourceEvent`s by [`watcher_event`], to the loop.
pub async fn forward_watcher<S: WatchedStatus>(
    raw: mpsc::Receiver<WatcherEvent<S>>,
    events: mpsc::Sender<SourceEvent>,
    connection: &'static Connection,
) {
    let mut problems = ProblemLog::default();
    forward(raw, events, move |event| {
        watcher_event(&mut problems, connection, event)
    })
    .await
}

/// A watcher's event as the loop takes it: a state (after `Resolved` when the watched thing
/// is there) or a match is an observation of its check, a problem is logged once.
pub fn watcher_event<S: WatchedStatus>(
    problems: &mut ProblemLog,
    connection: &Connection,
    event: WatcherEvent<S>,
) -> Vec<SourceEvent> {
    match event {
        WatcherEvent::State {
            check,
            running,
            status,
        } => {
            let found = status.found();
            if found {
                problems.resolved(&check);
            }
            state_events(check, running, found, status.details())
        }
        WatcherEvent::Matched { check, details, .. } => vec![SourceEvent::Observed {
            observations: vec![(check, Observed::Matched { details })],
            position: None,
        }],
        WatcherEvent::Problem { check, message } => vec![problems.problem(check, message)],
        WatcherEvent::Connected => vec![SourceEvent::Connected {
            source: connection.source,
            message: connection.connected,
        }],
        WatcherEvent::Disconnected { reason } => vec![SourceEvent::Disconnected {
            source: connection.source,
            message: format!("lost {} ({reason}); reconnecting", connection.lost),
        }],
    }
}

/// A watched thing's state with its alert's `details`, preceded by `Resolved` when it was
/// `found` (its check's problem, if any, is over).
pub fn state_events(
    check: CheckId,
    running: bool,
    found: bool,
    details: Details,
) -> Vec<SourceEvent> {
    let mut events = Vec::with_capacity(2);
    if found {
        events.push(SourceEvent::Resolved {
            check: check.clone(),
        });
    }
    events.push(SourceEvent::Observed {
        observations: vec![(check, Observed::State { running, details })],
        position: None,
    });
    events
}
