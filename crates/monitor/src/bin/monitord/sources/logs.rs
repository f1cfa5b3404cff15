//! Log files: one watcher thread for every file (`monitor_logwatch::spawn`), always running.

use std::collections::HashMap;
use std::sync::Arc;

use monitor_config::LogSource;
use monitor_logwatch::{
    LogEvent, LogMatch, LogWatchConfig, LogWatchError, PatternSpec, WatchedFile,
};
use monitor_source::{Observed, SourceEvent};
use monitor_wire::{CheckId, Details};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{forward, Boxed, Context, Source, FORWARD_CAPACITY};
use crate::plan::{LogCheckExtras, Plan};

/// What a match needs to become an alert's details, and a path's checks; kept current by
/// [`LogFiles::configure`] before the watcher gets the new config.
#[derive(Default)]
pub struct MatchContext {
    /// Per log check: its source and `alert.details` template.
    pub checks: HashMap<CheckId, LogCheckExtras>,
    /// Per followed file, or per command: the checks reading it.
    pub readers: HashMap<String, Vec<CheckId>>,
}

impl MatchContext {
    /// For the sources `readers` (a file's path or a command, with its checks' patterns).
    pub fn new<'a>(
        plan: &Plan,
        readers: impl Iterator<Item = (String, &'a Vec<PatternSpec>)>,
    ) -> MatchContext {
        MatchContext {
            checks: plan.log_checks.clone(),
            readers: readers
                .map(|(source, patterns)| {
                    let checks = patterns.iter().map(|pattern| pattern.check.clone());
                    (source, checks.collect())
                })
                .collect(),
        }
    }

    /// Matches as the engine takes them.
    pub fn observations(&self, matches: Vec<LogMatch>) -> Vec<(CheckId, Observed)> {
        matches
            .into_iter()
            .map(|found| {
                let check = found.check.clone();
                let details = match_details(found, self.checks.get(&check));
                (check, Observed::Matched { details })
            })
            .collect()
    }

    pub fn readers(&self, source: &str) -> Vec<CheckId> {
        self.readers.get(source).cloned().unwrap_or_default()
    }
}

/// A matched line as an alert's details: the line and its context, the file or command it
/// came from, and the check's `alert.details` template filled in (`message`).
fn match_details(found: LogMatch, extras: Option<&LogCheckExtras>) -> Details {
    let mut details = Details {
        description: None,
        line_matching: Some(found.line),
        lines_before: found.before,
        lines_after: found.after,
        fields: Default::default(),
    };
    match extras.map(|extras| &extras.source) {
        Some(LogSource::File(path)) => {
            details
                .fields
                .insert("path".into(), path.display().to_string().into());
        }
        Some(LogSource::Command(command)) => {
            details
                .fields
                .insert("command".into(), command.clone().into());
        }
        None => {}
    }
    let template = extras.and_then(|extras| extras.details_template.as_ref());
    if let (Some(template), Some(line)) = (template, &details.line_matching) {
        details.fields.insert(
            "message".into(),
            template.replace("%line_matching", &line.data).into(),
        );
    }
    details
}

pub struct LogFiles {
    configs: mpsc::Sender<LogWatchConfig>,
    context: watch::Sender<Arc<MatchContext>>,
    watcher: Option<oneshot::Receiver<Result<(), LogWatchError>>>,
    forwarder: Option<JoinHandle<()>>,
}

impl LogFiles {
    /// On a thread of its own: a read that blocks (NFS, a dying SD card) holds up the log
    /// checks only, never the loop, its timers or the control socket.
    pub fn start(
        events: mpsc::Sender<SourceEvent>,
        tasks: &CancellationToken,
    ) -> anyhow::Result<LogFiles> {
        let (configs, config_receiver) = mpsc::channel(4);
        // Bounded: a slow loop makes the log watcher wait, and the data waits in the files.
        let (raw_sender, raw) = mpsc::channel(FORWARD_CAPACITY);
        let watcher = monitor_logwatch::spawn(config_receiver, raw_sender, tasks.clone())?;
        let (context, current) = watch::channel(Arc::new(MatchContext::default()));
        let forwarder = tokio::spawn(forward(raw, events, move |event| {
            log_event(&current.borrow(), event)
        }));
        Ok(LogFiles {
            configs,
            context,
            watcher: Some(watcher),
            forwarder: Some(forwarder),
        })
    }
}

fn log_event(context: &MatchContext, event: LogEvent) -> Vec<SourceEvent> {
    match event {
        LogEvent::CaughtUp { generation } => vec![SourceEvent::CaughtUp { generation }],
        LogEvent::Read {
            path,
            position,
            matches,
        } => vec![SourceEvent::Observed {
            observations: context.observations(matches),
            position: position.map(|position| (path, position)),
        }],
        // Already logged by the watcher: shown in `status` for every check on the path.
        LogEvent::Problem { path, message } => readers_of(context, &path)
            .into_iter()
            .map(|check| SourceEvent::Problem {
                check,
                message: message.clone(),
            })
            .collect(),
        LogEvent::ProblemResolved { path } => readers_of(context, &path)
            .into_iter()
            .map(|check| SourceEvent::Resolved { check })
            .collect(),
    }
}

fn readers_of(context: &MatchContext, path: &std::path::Path) -> Vec<CheckId> {
    context.readers(&path.display().to_string())
}

impl Source for LogFiles {
    fn configure<'a>(&'a mut self, context: &'a Context<'a>) -> Boxed<'a, Vec<SourceEvent>> {
        Box::pin(async move {
            let files = context
                .plan
                .log_files
                .iter()
                .map(|(path, checks)| WatchedFile {
                    path: path.clone(),
                    checks: checks.clone(),
                    resume: context.positions.get(path).copied(),
                })
                .collect();
            self.context.send_replace(Arc::new(MatchContext::new(
                context.plan,
                context
                    .plan
                    .log_files
                    .iter()
                    .map(|(path, patterns)| (path.display().to_string(), patterns)),
            )));
            let config = LogWatchConfig {
                generation: context.generation,
                files,
            };
            if self.configs.send(config).await.is_err() {
                tracing::error!(
                    "the log watcher stopped; log checks are not watched until monitord restarts"
                );
            }
            Vec::new()
        })
    }

    fn finish(&mut self) -> Boxed<'_, ()> {
        Box::pin(async move {
            if let Some(watcher) = self.watcher.take() {
                let _ = watcher.await;
            }
            if let Some(forwarder) = self.forwarder.take() {
                let _ = forwarder.await;
            }
        })
    }
}
