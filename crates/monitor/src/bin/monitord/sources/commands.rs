//! `@command` sources: one process per command, run while some check reads it; a command
//! that dies is the agent's own alert about the source, once per failure streak.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use monitor_engine::Emitted;
use monitor_logwatch::{CommandEvent, CommandWatchConfig, WatchedCommand};
use monitor_source::SourceEvent;
use monitor_wire::{CheckId, Level};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::logs::{observations, Readers};
use super::on_demand::OnDemand;
use super::source::{forward, with_forwarder, Boxed, Context, Source};
use crate::own_alerts::ConditionAlert;
use crate::plan::Plan;

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
        CommandEvent::Applied { .. } => Vec::new(),
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

/// Commands reported dead (once per failure streak: a CRITICAL sent) and not recovered
/// yet; their OK is still owed after a restart, so the checkpoint carries them.
#[derive(Debug, Default, Clone)]
pub struct DeadCommands(pub BTreeSet<String>);

impl DeadCommands {
    /// A source that died: a CRITICAL for each check reading it, once per failure streak.
    /// Returns the alerts and the problem to show in `status`.
    pub fn down(
        &mut self,
        command: &str,
        checks: &[CheckId],
        reason: &str,
        retry_in: Duration,
        now: SystemTime,
    ) -> (Vec<Emitted>, String) {
        tracing::warn!(command = %command, retry_in = ?retry_in, "the command of an @command check stopped: {reason}");
        let message = format!(
            "@{command} stopped: {reason}; restarting it in {}s",
            retry_in.as_secs().max(1)
        );
        let alerts = if self.0.insert(command.to_owned()) {
            checks
                .iter()
                .map(|check| {
                    source_alert_for(check.clone(), command, Level::Critical, &message, now)
                })
                .collect()
        } else {
            Vec::new()
        };
        (alerts, message)
    }

    /// A source that runs again: its OK, if its CRITICAL was sent.
    pub fn up(&mut self, command: &str, checks: &[CheckId], now: SystemTime) -> Vec<Emitted> {
        tracing::info!(command = %command, "the command of an @command check runs again");
        if !self.0.remove(command) {
            return Vec::new();
        }
        let message = format!("@{command} runs again");
        checks
            .iter()
            .map(|check| source_alert_for(check.clone(), command, Level::Ok, &message, now))
            .collect()
    }

    /// Commands no check reads any more are forgotten.
    pub fn keep_only(&mut self, plan: &Plan) {
        self.0.retain(|command| plan.commands.contains_key(command));
    }
}

/// The alert about an `@command` source itself (not about what it printed).
pub fn source_alert_for(
    check: CheckId,
    command: &str,
    level: Level,
    message: &str,
    now: SystemTime,
) -> Emitted {
    ConditionAlert {
        check,
        name: format!("Log source @{command} stopped"),
        kind: "log",
        statuses: ["SOURCE_DOWN", "SOURCE_UP"],
    }
    .at(level, message.to_owned(), now)
}
