//! The watchers, started, reconfigured and stopped as the plan says. Each kind of source
//! is one file here, registered in [`Sources::new`]; every watcher's events reach the loop
//! as [`SourceEvent`]s on one bounded channel.
//!
//! A watcher sends on a small bounded channel of its own (the unit, container and signal
//! watchers alike a `monitor_source::WatcherEvent`); a forwarding task next to it turns
//! its events into `SourceEvent`s about checks (one mapping for those three,
//! `source::watcher_event`; building a match's details, looking up a unit's journal,
//! restarting a unit), so the loop never waits on a subprocess and never learns a
//! watcher's types. A full channel makes the forwarder wait,
//! and so the watcher: the data waits in the files, the bus or the pipe.

pub mod commands;
mod containers;
mod logs;
mod on_demand;
mod sampled;
mod services;
mod signals;
mod source;

use std::collections::BTreeSet;

use monitor_config::Settings;
use monitor_source::SourceEvent;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Positions;
use crate::plan::Plan;

use logs::LogFiles;
use source::{Context, Source};

/// How many events wait for the loop; beyond, watchers wait.
pub const EVENT_CAPACITY: usize = 256;
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
            Box::new(containers::Containers::new(events.clone(), tasks)),
            Box::new(sampled::Sampled::new(events, tasks)),
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
        positions: &Positions,
        dead_commands: &BTreeSet<String>,
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
