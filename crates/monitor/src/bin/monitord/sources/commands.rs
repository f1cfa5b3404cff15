//! `@command` sources: one process per command, run while some check reads it; a command
//! that dies is reported to the engine (`Observation::SourceDown`) for each check reading
//! it, which alerts once per failure streak.

use std::sync::Arc;
use std::time::Duration;

use monitor_logwatch::{CommandEvent, CommandWatchConfig, WatchedCommand};
use monitor_source::{SourceEvent, SourceKind};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::logs::{observations, Readers};
use super::on_demand::OnDemand;
use super::source::{forward, with_forwarder, Boxed, Context, Source};

pub struct Commands {
    events: mpsc::Sender<SourceEvent>,
    tasks: CancellationToken,
    /// Running while some `@command` check is enabled.
    watcher: OnDemand<CommandWatchConfig>,
    readers: watch::Sender<Arc<Readers>>,
}

impl Commands {
    pub fn new(events: mpsc::Sender<SourceEvent>, tasks: &CancellationToken) -> Commands {
        Commands {
            events,
            tasks: tasks.clone(),
            watcher: OnDemand::new("@command"),
            readers: watch::channel(Arc::new(Readers::default())).0,
        }
    }
}

fn command_event(readers: &Readers, event: CommandEvent) -> Vec<SourceEvent> {
    match event {
        CommandEvent::Matched { matches, .. } => vec![SourceEvent::Observed {
            observations: observations(matches),
            position: None,
        }],
        CommandEvent::Died {
            command,
            reason,
            retry_in,
        } => vec![SourceEvent::SourceDown {
            checks: readers.of(&command),
            source: command,
            reason,
            retry_in,
        }],
        CommandEvent::Recovered { command } => vec![SourceEvent::SourceUp {
            checks: readers.of(&command),
            source: command,
        }],
        // Every command of the config started: the first read of its checks.
        CommandEvent::Applied { generation } => vec![SourceEvent::CaughtUp {
            source: SourceKind::Commands,
            generation,
        }],
    }
}

impl Source for Commands {
    fn configure<'a>(&'a mut self, context: &'a Context<'a>) -> Boxed<'a, Vec<SourceEvent>> {
        Box::pin(async move {
            let plan = context.plan;
            let commands = plan.commands.iter();
            let readers = commands.map(|(command, patterns)| (command.clone(), patterns));
            self.readers.send_replace(Arc::new(Readers::new(readers)));
            let config = (!plan.commands.is_empty()).then(|| CommandWatchConfig {
                generation: context.generation,
                commands: plan
                    .commands
                    .iter()
                    .map(|(command, checks)| WatchedCommand {
                        command: command.clone(),
                        checks: checks.clone(),
                        reported_down: context.dead_commands.contains(command),
                    })
                    .collect(),
            });
            let events = self.events.clone();
            let current = self.readers.subscribe();
            self.watcher
                .configure(config, &self.tasks, |configs, stop| {
                    with_forwarder(
                        |raw| monitor_logwatch::run_commands(configs, raw, stop),
                        |raw| {
                            forward(raw, events, move |event| {
                                command_event(&current.borrow(), event)
                            })
                        },
                    )
                })
                .await;
            Vec::new()
        })
    }

    fn finish(&mut self) -> Boxed<'_, ()> {
        Box::pin(self.watcher.finish())
    }
}

/// A command that stopped, as `status` shows it and its CRITICAL says (the engine sends
/// one per failure streak, for each check reading it).
pub fn stopped(command: &str, reason: &str, retry_in: Duration) -> String {
    tracing::warn!(command = %command, retry_in = ?retry_in, "the command of an @command check stopped: {reason}");
    format!(
        "@{command} stopped: {reason}; restarting it in {}s",
        retry_in.as_secs().max(1)
    )
}

/// A command that runs again, as its OK says.
pub fn runs_again(command: &str) -> String {
    tracing::info!(command = %command, "the command of an @command check runs again");
    format!("@{command} runs again")
}
