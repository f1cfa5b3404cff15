//! Delivery: one task per destination (each Discord webhook, the backend, ...), each taking
//! what the outbox holds for it, at its own pace, with its own retries, all through the one
//! `monitor_destination::Destination` interface.
//!
//! The loop puts every alert in the outbox's memory and bumps a watch channel; each
//! destination task wakes on it, keeps what its filter wants, sends that, and acknowledges
//! what the destination is done with, in memory too: the persist thread writes both to disk
//! in parallel, so no delivery ever waits on an fsync (a crash in between resends, never
//! loses). A destination that fails keeps its records (retry after the delay it was given);
//! a batch it refuses for good is split until only the alerts it refuses on their own are
//! left, and those go to the dead-letter file (`state_dir/rejected.jsonl`, shown by
//! `monitorctl alerts --rejected`), never silently away; one that is gone (a deleted
//! Discord webhook) disables itself, loudly.
//!
//! A destination that takes heartbeats (the backend in `auth: token` mode) gets one at start
//! and every interval after, between batches: a failed one is tried again after the
//! destination's backoff, alerts going on meanwhile; one the destination does not serve
//! (an older server: 404) ends them, with one line in the log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use monitor::destinations::{outbox_limits, plan_destinations};
use monitor_config::Settings;
use monitor_destination::{
    Destination, Filter, Heartbeats, Outcome, PlannedDestination, Rejection, Verdict,
};
use monitor_wire::config_push::ConfigCheck;
use monitor_wire::control::{DestinationStatus, HeartbeatState, HeartbeatStatus};
use monitor_wire::rejected::RejectedRecord;
use monitor_wire::{HistoryRecord, Timestamp};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::persist::{lock, OutboxWriter, SharedOutbox};

/// When pushing the configuration failed, try again after at least this long.
const CONFIG_RETRY: Duration = Duration::from_secs(30);
/// When the dead-letter file cannot be written, try the refused alerts again after this long.
const DEAD_LETTER_RETRY: Duration = Duration::from_secs(30);

/// A running destination task, as the loop knows it.
struct Running {
    /// What it was built from, to notice a change of settings.
    identity: String,
    status: Arc<Mutex<DestinationStatus>>,
    stop: CancellationToken,
    /// For a destination that takes the check configuration.
    config_push: Option<watch::Sender<Vec<ConfigCheck>>>,
}

pub struct Delivery {
    outbox: SharedOutbox,
    /// Bumped by the loop whenever it put alerts in the outbox.
    enqueued: watch::Receiver<u64>,
    writer: OutboxWriter,
    destinations: BTreeMap<String, Running>,
    tasks: CancellationToken,
    device_id: String,
}

impl Delivery {
    pub fn new(
        outbox: SharedOutbox,
        enqueued: watch::Receiver<u64>,
        writer: OutboxWriter,
        tasks: CancellationToken,
        device_id: String,
    ) -> Delivery {
        Delivery {
            outbox,
            enqueued,
            writer,
            destinations: BTreeMap::new(),
            tasks,
            device_id,
        }
    }

    /// Bring the destinations in line with the settings; push `checks` to those that take
    /// them.
    pub fn configure(&mut self, settings: &Settings, checks: Vec<ConfigCheck>) {
        let (planned, problems) = plan_destinations(settings);
        for problem in problems {
            tracing::error!("{problem}");
        }
        let wanted: BTreeMap<String, PlannedDestination> = planned
            .into_iter()
            .map(|destination| (destination.name.clone(), destination))
            .collect();

        self.destinations.retain(|name, running| {
            let keep = wanted
                .get(name)
                .is_some_and(|planned| planned.identity == running.identity);
            if !keep {
                running.stop.cancel();
            }
            keep
        });
        let names: Vec<String> = wanted.keys().cloned().collect();
        {
            let mut outbox = lock(&self.outbox);
            let newest = outbox.last_seq().unwrap_or(0);
            outbox.set_destinations(&names, newest);
            outbox.set_limits(outbox_limits(settings));
        }
        // New or forgotten destinations: the persist thread writes their progress.
        self.writer.outbox_changed();
        for (name, planned) in wanted {
            if let Some(running) = self.destinations.get(&name) {
                if let Some(push) = &running.config_push {
                    push.send_replace(checks.clone());
                }
                continue;
            }
            let PlannedDestination {
                identity,
                filter,
                start,
                ..
            } = planned;
            let destination = match start() {
                Ok(destination) => destination,
                Err(message) => {
                    tracing::error!(destination = %name, "{message}");
                    continue;
                }
            };
            let heartbeat = destination.heartbeats().map(|heartbeats| HeartbeatStatus {
                state: match heartbeats {
                    Heartbeats::Every(_) => HeartbeatState::On,
                    Heartbeats::Stopped => HeartbeatState::Off,
                },
                interval_seconds: match heartbeats {
                    Heartbeats::Every(every) => Some(every.as_secs()),
                    Heartbeats::Stopped => None,
                },
                last_answered: None,
                last_error: None,
            });
            let status = Arc::new(Mutex::new(DestinationStatus {
                name: name.clone(),
                heartbeat,
                ..DestinationStatus::default()
            }));
            let stop = self.tasks.child_token();
            let (config_push, pushes) = match destination.config_push_interval() {
                Some(_) => {
                    let (push, pushes) = watch::channel(checks.clone());
                    (Some(push), Some(pushes))
                }
                None => (None, None),
            };
            let worker = Worker {
                name: name.clone(),
                outbox: self.outbox.clone(),
                enqueued: self.enqueued.clone(),
                writer: self.writer.clone(),
                status: status.clone(),
                stop: stop.clone(),
                state_dir: settings.state_dir.clone(),
            };
            tokio::spawn(worker.run(destination, filter, self.device_id.clone(), pushes));
            tracing::info!(destination = %name, "delivering alerts");
            self.destinations.insert(
                name,
                Running {
                    identity,
                    status,
                    stop,
                    config_push,
                },
            );
        }
    }

    pub fn statuses(&self) -> Vec<DestinationStatus> {
        let outbox = lock(&self.outbox);
        self.destinations
            .iter()
            .map(|(name, running)| {
                let mut status = running
                    .status
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .clone();
                let pending = outbox.pending(name, usize::MAX);
                status.pending = pending.len();
                status.oldest_pending = pending.first().map(|record| record.alert.timestamp);
                status
            })
            .collect()
    }
}

/// One destination's loop.
struct Worker {
    name: String,
    outbox: SharedOutbox,
    enqueued: watch::Receiver<u64>,
    writer: OutboxWriter,
    status: Arc<Mutex<DestinationStatus>>,
    stop: CancellationToken,
    /// Where the dead-letter file is.
    state_dir: PathBuf,
}

impl Worker {
    fn status(&self) -> std::sync::MutexGuard<'_, DestinationStatus> {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// In memory at once; the persist thread writes it (a crash before resends).
    fn acknowledge(&self, through: u64) {
        lock(&self.outbox).take(&self.name, through);
        self.writer.outbox_changed();
    }

    /// Delivers what is pending, waits for more, and pushes the check configuration (at
    /// start, on every change and every `config_push_interval`) to a destination that
    /// takes it, until stopped or disabled.
    async fn run(
        mut self,
        mut destination: Box<dyn Destination>,
        filter: Filter,
        device_id: String,
        mut pushes: Option<watch::Receiver<Vec<ConfigCheck>>>,
    ) {
        let push_every = destination.config_push_interval();
        let mut push_due = push_every.map(|_| Instant::now());
        let heartbeats = destination.heartbeats();
        let mut heartbeat_due = heartbeats.map(|_| Instant::now());
        loop {
            let records = {
                // Marked seen before looking, so an append after the look wakes us.
                self.enqueued.borrow_and_update();
                lock(&self.outbox).pending(&self.name, destination.batch_size())
            };
            if !records.is_empty() {
                let batch = filter.select(&records);
                if !batch.is_empty() {
                    if let Some(until) = destination.paused_until() {
                        tokio::select! {
                            _ = self.stop.cancelled() => return,
                            _ = tokio::time::sleep_until(until) => {}
                        }
                    }
                }
                let outcome = batch.deliver(destination.as_mut(), &device_id).await;
                if !self.settle(outcome, &records).await {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                changed = self.enqueued.changed() => if changed.is_err() { return },
                changed = changed_or_never(&mut pushes) => {
                    if changed.is_err() { return }
                    push_due = Some(Instant::now());
                }
                _ = sleep_until(push_due) => {
                    let checks = pushes.as_mut().map(|pushes| pushes.borrow_and_update().clone()).unwrap_or_default();
                    let verdict = destination.push_config(&checks).await;
                    let every = push_every.unwrap_or(CONFIG_RETRY);
                    push_due = Some(Instant::now() + self.next_push(verdict, every));
                }
                _ = sleep_until(heartbeat_due) => {
                    let verdict = destination.heartbeat().await;
                    heartbeat_due = self.next_heartbeat(verdict, heartbeats);
                }
            }
        }
    }

    /// After a heartbeat, when the next one is due; `None`: no more. What it came to shows
    /// in `monitorctl status`.
    fn next_heartbeat(&self, verdict: Verdict, heartbeats: Option<Heartbeats>) -> Option<Instant> {
        if let Some(heartbeat) = self.status().heartbeat.as_mut() {
            match &verdict {
                Verdict::Delivered => {
                    heartbeat.last_answered = Some(Timestamp::now());
                    heartbeat.last_error = None;
                }
                Verdict::Retry { message, .. } => heartbeat.last_error = Some(message.clone()),
                Verdict::Gone { message } | Verdict::Rejected { message, .. } => {
                    heartbeat.state = HeartbeatState::NotServed;
                    heartbeat.interval_seconds = None;
                    heartbeat.last_error = Some(message.clone());
                }
            }
        }
        match verdict {
            Verdict::Delivered => match heartbeats {
                Some(Heartbeats::Every(every)) => Some(Instant::now() + every),
                // `Stopped` is said once.
                Some(Heartbeats::Stopped) | None => None,
            },
            Verdict::Retry { after, message, .. } => {
                tracing::warn!(destination = %self.name, retry_in = ?after, "{message}");
                Some(Instant::now() + after)
            }
            Verdict::Gone { message } | Verdict::Rejected { message, .. } => {
                tracing::info!(destination = %self.name, "the backend takes no heartbeats ({message}); sending none, alerts go on");
                None
            }
        }
    }

    /// After a push of the configuration, how long until the next one.
    fn next_push(&self, verdict: Verdict, every: Duration) -> Duration {
        let (after, message) = match verdict {
            Verdict::Delivered => return every,
            Verdict::Retry { after, message, .. } => (after.max(CONFIG_RETRY), message),
            Verdict::Rejected { message, .. } | Verdict::Gone { message } => (every, message),
        };
        tracing::warn!(destination = %self.name, "pushing the check configuration failed: {message}");
        after
    }

    /// Apply an outcome for `records` (what the batch was made of); `false` when the
    /// destination is done for.
    async fn settle(&mut self, outcome: Outcome, records: &[HistoryRecord]) -> bool {
        match outcome {
            Outcome::Done { through, rejected } => {
                if !self.dead_letter(&rejected, records).await {
                    return self.retry_rejected(&rejected, records).await;
                }
                self.acknowledge(through);
                let mut status = self.status();
                status.last_error = None;
                status.retry_at = None;
                true
            }
            Outcome::Retry {
                through,
                after,
                message,
                rejected,
            } => {
                if !self.dead_letter(&rejected, records).await {
                    return self.retry_rejected(&rejected, records).await;
                }
                if let Some(through) = through {
                    self.acknowledge(through);
                }
                tracing::warn!(destination = %self.name, retry_in = ?after, "delivery failed: {message}");
                {
                    let mut status = self.status();
                    status.last_error = Some(message);
                    status.retry_at = Some(Timestamp(SystemTime::now() + after));
                }
                tokio::select! {
                    _ = self.stop.cancelled() => false,
                    _ = tokio::time::sleep(after) => true,
                }
            }
            Outcome::Disable { message } => {
                tracing::error!(destination = %self.name, "{message}; this destination is disabled until monitord restarts or its settings change");
                let mut status = self.status();
                status.disabled = true;
                status.last_error = Some(message);
                false
            }
        }
    }

    /// Keeps the alerts the destination refused on their own in the dead-letter file (off
    /// the loop: it fsyncs); `false` when that could not be written.
    async fn dead_letter(&self, rejected: &[Rejection], records: &[HistoryRecord]) -> bool {
        if rejected.is_empty() {
            return true;
        }
        let now = Timestamp::now();
        let letters: Vec<RejectedRecord> = rejected
            .iter()
            .filter_map(|rejection| {
                let record = records.iter().find(|record| record.seq == rejection.seq)?;
                Some(RejectedRecord {
                    destination: self.name.clone(),
                    rejected_at: now,
                    reason: rejection.message.clone(),
                    shortened: false,
                    record: record.clone(),
                })
            })
            .collect();
        for letter in &letters {
            tracing::error!(
                destination = %self.name,
                seq = letter.record.seq,
                "the destination refused alert {} `{}` ({}) even on its own; it will not be sent again and is kept in {}: see `monitorctl alerts --rejected`: {}",
                letter.record.seq,
                letter.record.alert.name,
                letter.record.check,
                self.state_dir.join(monitor_store::REJECTED_FILE_NAME).display(),
                letter.reason
            );
        }
        let state_dir = self.state_dir.clone();
        let written = tokio::task::spawn_blocking(move || {
            monitor_store::append_rejected(&state_dir, &letters)
        })
        .await;
        match written {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::error!(destination = %self.name, "cannot keep the refused alerts aside: {error}; make sure {} is writable and not full: they stay in the outbox and are tried again in {}s", self.state_dir.display(), DEAD_LETTER_RETRY.as_secs());
                false
            }
            Err(error) => {
                tracing::error!(destination = %self.name, "cannot keep the refused alerts aside: {error}; they stay in the outbox");
                false
            }
        }
    }

    /// The dead-letter file could not be written: what came before the first refused alert
    /// is done with, the rest stays in the outbox and is tried again later.
    async fn retry_rejected(&mut self, rejected: &[Rejection], records: &[HistoryRecord]) -> bool {
        let first = rejected.iter().map(|rejection| rejection.seq).min();
        let before = records
            .iter()
            .take_while(|record| Some(record.seq) < first)
            .last()
            .map(|record| record.seq);
        if let Some(through) = before {
            self.acknowledge(through);
        }
        {
            let mut status = self.status();
            status.last_error =
                Some("refused alerts cannot be written to the dead-letter file".to_owned());
            status.retry_at = Some(Timestamp(SystemTime::now() + DEAD_LETTER_RETRY));
        }
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(DEAD_LETTER_RETRY) => true,
        }
    }
}

/// The next change of the configuration to push, or never for a destination without one.
async fn changed_or_never(
    pushes: &mut Option<watch::Receiver<Vec<ConfigCheck>>>,
) -> Result<(), watch::error::RecvError> {
    match pushes {
        Some(pushes) => pushes.changed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
