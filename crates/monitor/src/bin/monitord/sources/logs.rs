//! Log files: one watcher thread for every file (`monitor_logwatch::spawn`), always running.

use std::collections::HashMap;
use std::sync::Arc;

use monitor_logwatch::{
    LogEvent, LogMatch, LogWatchConfig, LogWatchError, PatternSpec, WatchedFile,
};
use monitor_source::{FileProgress, Observed, SourceEvent, SourceKind};
use monitor_wire::CheckId;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::source::{forward, Boxed, Context, Source, FORWARD_CAPACITY};

/// The checks reading each source (a followed file's path, or a command), kept current by
/// `configure` before the watcher gets the new config.
#[derive(Default)]
pub struct Readers(HashMap<String, Vec<CheckId>>);

impl Readers {
    /// For the sources `readers` (a file's path or a command, with its checks' patterns).
    pub fn new<'a>(readers: impl Iterator<Item = (String, &'a Vec<PatternSpec>)>) -> Readers {
        Readers(
            readers
                .map(|(source, patterns)| {
                    let checks = patterns.iter().map(|pattern| pattern.check.clone());
                    (source, checks.collect())
                })
                .collect(),
        )
    }

    pub fn of(&self, source: &str) -> Vec<CheckId> {
        self.0.get(source).cloned().unwrap_or_default()
    }
}

/// Matches as the engine takes them (the watcher gave each match its check's details).
pub fn observations(matches: Vec<LogMatch>) -> Vec<(CheckId, Observed)> {
    matches
        .into_iter()
        .map(|found| {
            let check = found.check.clone();
            let details = found.into_details();
            (check, Observed::Matched { details })
        })
        .collect()
}

pub struct LogFiles {
    configs: mpsc::Sender<LogWatchConfig>,
    readers: watch::Sender<Arc<Readers>>,
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
        let (readers, current) = watch::channel(Arc::new(Readers::default()));
        let forwarder = tokio::spawn(forward(raw, events, move |event| {
            log_event(&current.borrow(), event)
        }));
        Ok(LogFiles {
            configs,
            readers,
            watcher: Some(watcher),
            forwarder: Some(forwarder),
        })
    }
}

fn log_event(readers: &Readers, event: LogEvent) -> Vec<SourceEvent> {
    match event {
        LogEvent::CaughtUp { generation } => vec![SourceEvent::CaughtUp {
            source: SourceKind::LogFiles,
            generation,
        }],
        LogEvent::Read {
            path,
            position,
            seen_by,
            matches,
        } => vec![SourceEvent::Observed {
            observations: observations(matches),
            position: position.map(|position| FileProgress {
                path,
                position,
                seen_by,
            }),
        }],
        // Already logged by the watcher: shown in `status` for every check on the path.
        LogEvent::Problem { path, message } => readers
            .of(&path.display().to_string())
            .into_iter()
            .map(|check| SourceEvent::Problem {
                check,
                message: message.clone(),
            })
            .collect(),
        LogEvent::ProblemResolved { path } => readers
            .of(&path.display().to_string())
            .into_iter()
            .map(|check| SourceEvent::Resolved { check })
            .collect(),
    }
}

impl Source for LogFiles {
    fn configure<'a>(&'a mut self, context: &'a Context<'a>) -> Boxed<'a, Vec<SourceEvent>> {
        Box::pin(async move {
            let files = context
                .plan
                .log_files
                .iter()
                .map(|(path, checks)| {
                    let saved = context.positions.get(path);
                    WatchedFile {
                        path: path.clone(),
                        checks: checks.clone(),
                        resume: saved.map(|saved| saved.position),
                        // A checkpoint of an older version: every check then on the file
                        // had read to its position.
                        seen_by: saved
                            .and_then(|saved| saved.seen_by.clone())
                            .unwrap_or_else(|| {
                                checks.iter().map(|check| check.check.clone()).collect()
                            }),
                    }
                })
                .collect();
            let readers = context.plan.log_files.iter();
            let readers = readers.map(|(path, patterns)| (path.display().to_string(), patterns));
            self.readers.send_replace(Arc::new(Readers::new(readers)));
            let config = LogWatchConfig {
                generation: context.generation,
                files,
                first_read_limit: context.settings.log_first_read_limit,
                coalesce: context.settings.log_coalesce,
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
