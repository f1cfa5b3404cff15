//! The watchers, started, reconfigured and stopped as the plan says. Each kind of source
//! is one file here, registered in [`Sources::new`]; every watcher's events reach the loop
//! as [`SourceEvent`]s on one bounded channel.
//!
//! A watcher keeps its own event type and channel (small and bounded); a forwarding task
//! next to it turns its events into `SourceEvent`s about checks (building a match's
//! details, looking up a unit's journal, restarting a unit), so the loop never waits on a
//! subprocess and never learns a watcher's types. A full channel makes the forwarder wait,
//! and so the watcher: the data waits in the files, the bus or the pipe.

mod commands;
mod containers;
mod logs;
mod on_demand;
mod services;
mod signals;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use monitor_config::Settings;
use monitor_source::{FilePosition, SourceEvent};
use monitor_wire::CheckId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::plan::Plan;

pub use commands::DeadCommands;
use logs::LogFiles;

/// How many events wait for the loop; beyond, watchers wait.
pub const EVENT_CAPACITY: usize = 256;
/// How many events of one watcher wait for its forwarder.
const FORWARD_CAPACITY: usize = 16;

/// What a source reads to follow the plan.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub settings: &'a Settings,
    /// Where each log file was read to: a file followed anew resumes there.
    pub positions: &'a BTreeMap<PathBuf, FilePosition>,
    /// `@command` sources reported down and not up again.
    pub dead_commands: &'a DeadCommands,
    /// Number of this config, echoed by the watchers once it is live.
    pub generation: u64,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// One kind of source: its watcher follows the plan.
trait Source {
    /// Start, reconfigure or stop the watcher for `context.plan`. Returns events to handle
    /// at once (checks that cannot be watched at all).
    fn configure<'a>(&'a mut self, context: &'a Context<'a>) -> Boxed<'a, Vec<SourceEvent>>;
    /// Wait for the watcher to end (after the parent token was cancelled).
    fn finish(&mut self) -> Boxed<'_, ()>;
}

pub struct Sources {
    generation: u64,
    sources: Vec<Box<dyn Source>>,
}

impl Sources {
    /// The sources, sending on `events`; every watcher stops when `tasks` is cancelled.
    pub fn new(
        events: mpsc::Sender<SourceEvent>,
        tasks: &CancellationToken,
    ) -> anyhow::Result<Sources> {
        let sources: Vec<Box<dyn Source>> = vec![
            Box::new(LogFiles::start(events.clone(), tasks)?),
            Box::new(services::Services::new(events.clone(), tasks)),
            Box::new(signals::Signals::new(events.clone(), tasks)),
            Box::new(commands::Commands::new(events.clone(), tasks)),
            Box::new(containers::Containers::new(events, tasks)),
        ];
        Ok(Sources {
            generation: 0,
            sources,
        })
    }

    /// Bring every watcher in line with `plan`; returns the generation the watchers echo
    /// once it is live, and events to handle at once.
    pub async fn configure(
        &mut self,
        plan: &Plan,
        settings: &Settings,
        positions: &BTreeMap<PathBuf, FilePosition>,
        dead_commands: &DeadCommands,
    ) -> (u64, Vec<SourceEvent>) {
        self.generation += 1;
        let context = Context {
            plan,
            settings,
            positions,
            dead_commands,
            generation: self.generation,
        };
        let mut found = Vec::new();
        for source in &mut self.sources {
            found.extend(source.configure(&context).await);
        }
        (self.generation, found)
    }

    /// Wait for every watcher and forwarder to end (after the parent token was cancelled).
    pub async fn finish(&mut self) {
        for source in &mut self.sources {
            source.finish().await;
        }
    }
}

/// Runs a watcher (`run`, given the sending side of its own small channel) with its
/// forwarder (`forward`, given the receiving side) on a task of its own; ends when both
/// have ended, so nothing the watcher sent is left behind at shutdown.
async fn with_forwarder<E, Running, Forwarding>(
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
async fn forward<E>(
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
struct ProblemLog(HashMap<CheckId, String>);

impl ProblemLog {
    fn problem(&mut self, check: CheckId, message: String) -> SourceEvent {
        if self.0.get(&check) != Some(&message) {
            tracing::warn!(check = %check, "{message}");
        }
        self.0.insert(check.clone(), message.clone());
        SourceEvent::Problem { check, message }
    }

    /// The check's source is watched again; `true` if it had a problem.
    fn resolved(&mut self, check: &CheckId) -> bool {
        self.0.remove(check).is_some()
    }
}
