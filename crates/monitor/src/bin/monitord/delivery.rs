//! Delivery: one task per destination (each Discord webhook, the backend), each taking
//! what the outbox holds for it, at its own pace, with its own retries.
//!
//! The loop puts every alert in the outbox's memory and bumps a watch channel; each
//! destination task wakes on it, sends what is pending, and acknowledges what the
//! destination took, in memory too: the persist thread writes both to disk in parallel,
//! so no delivery ever waits on an fsync (a crash in between resends, never loses). A destination that fails keeps its records (retry after the delay
//! it was given); one that refuses them for good has them dropped and logged; a deleted
//! Discord webhook disables itself, loudly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use monitor::destinations::{plan_destinations, DestinationPlan, Filter};
use monitor_backend::{BackendClient, BackendFailureKind};
use monitor_config::Settings;
use monitor_discord::{DiscordClient, FailureKind};
use monitor_store::Outbox;
use monitor_wire::config_push::ConfigCheck;
use monitor_wire::control::DestinationStatus;
use monitor_wire::{HistoryRecord, Timestamp};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::persist::OutboxWriter;

const DISCORD_BATCH: usize = 50;
const BACKEND_BATCH: usize = 16;
/// When a destination is misconfigured (no token yet, say), look again after this long.
const CONFIG_RETRY: Duration = Duration::from_secs(30);

pub type SharedOutbox = Arc<Mutex<Outbox>>;

pub fn lock(outbox: &SharedOutbox) -> std::sync::MutexGuard<'_, Outbox> {
    outbox
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Destination {
    /// What it was built from, to notice a change of settings.
    identity: String,
    status: Arc<Mutex<DestinationStatus>>,
    stop: CancellationToken,
    config_push: Option<watch::Sender<Vec<ConfigCheck>>>,
}

pub struct Delivery {
    outbox: SharedOutbox,
    /// Bumped by the loop whenever it put alerts in the outbox.
    enqueued: watch::Receiver<u64>,
    writer: OutboxWriter,
    destinations: BTreeMap<String, Destination>,
    tasks: CancellationToken,
    device_id: String,
    /// A global 429 or a Cloudflare ban pauses every webhook until then: they share the
    /// agent's address.
    discord_pause: Arc<Mutex<Option<tokio::time::Instant>>>,
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
            discord_pause: Arc::new(Mutex::new(None)),
        }
    }

    /// Bring the destinations in line with the settings; push `checks` to the backend.
    pub fn configure(&mut self, settings: &Settings, checks: Vec<ConfigCheck>) {
        let (planned, problems) = plan_destinations(settings);
        for problem in problems {
            tracing::error!("{problem}");
        }
        let wanted: BTreeMap<String, (String, DestinationPlan)> = planned
            .into_iter()
            .map(|destination| (destination.name, (destination.identity, destination.plan)))
            .collect();

        self.destinations.retain(|name, destination| {
            let keep = wanted
                .get(name)
                .is_some_and(|(identity, _)| *identity == destination.identity);
            if !keep {
                destination.stop.cancel();
            }
            keep
        });
        let names: Vec<String> = wanted.keys().cloned().collect();
        {
            let mut outbox = lock(&self.outbox);
            let newest = outbox.last_seq().unwrap_or(0);
            outbox.set_destinations(&names, newest);
            outbox.set_limits(monitor_store::OutboxLimits {
                max_count: settings.delivery.alert_offline_store_max_count,
                max_age: settings.delivery.alert_store_max_record_age,
            });
        }
        // New or forgotten destinations: the persist thread writes their progress.
        self.writer.outbox_changed();
        for (name, (identity, plan)) in wanted {
            if let Some(destination) = self.destinations.get(&name) {
                if let Some(push) = &destination.config_push {
                    push.send_replace(checks.clone());
                }
                continue;
            }
            let status = Arc::new(Mutex::new(DestinationStatus {
                name: name.clone(),
                ..DestinationStatus::default()
            }));
            let stop = self.tasks.child_token();
            let worker = Worker {
                name: name.clone(),
                outbox: self.outbox.clone(),
                enqueued: self.enqueued.clone(),
                writer: self.writer.clone(),
                status: status.clone(),
                stop: stop.clone(),
            };
            let config_push = match plan {
                DestinationPlan::Discord { config, filter } => {
                    let http = match monitor_backend::http_client(None) {
                        Ok(http) => http,
                        Err(error) => {
                            tracing::error!("{error}");
                            continue;
                        }
                    };
                    let client = DiscordClient::new(config, http);
                    tokio::spawn(worker.run_discord(
                        client,
                        filter,
                        self.device_id.clone(),
                        self.discord_pause.clone(),
                    ));
                    None
                }
                DestinationPlan::Backend {
                    auth,
                    ca_file,
                    push_every,
                } => {
                    let http = match monitor_backend::http_client(ca_file.as_deref()) {
                        Ok(http) => http,
                        Err(error) => {
                            tracing::error!("monitor.yaml: delivery.backend.ca_file: {error}");
                            continue;
                        }
                    };
                    let (push, pushes) = watch::channel(checks.clone());
                    tokio::spawn(worker.run_backend(
                        BackendClient::new(http, auth),
                        pushes,
                        push_every,
                    ));
                    Some(push)
                }
            };
            tracing::info!(destination = %name, "delivering alerts");
            self.destinations.insert(
                name,
                Destination {
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
            .map(|(name, destination)| {
                let mut status = destination
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
}

enum Outcome {
    /// Everything up to `through` is done with (taken, or refused for good).
    Done { through: u64 },
    /// Keep the records from `from` on; try again after the delay.
    Retry {
        through: Option<u64>,
        after: Duration,
        message: String,
    },
    /// Stop delivering to this destination.
    Disable { message: String },
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

    /// Wait until something is pending, or shutdown (`false`).
    async fn next_batch(&mut self, size: usize) -> Option<Vec<HistoryRecord>> {
        loop {
            // Marked seen before looking, so an append after the look wakes us.
            self.enqueued.borrow_and_update();
            let batch = lock(&self.outbox).pending(&self.name, size);
            if !batch.is_empty() {
                return Some(batch);
            }
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                changed = self.enqueued.changed() => if changed.is_err() { return None },
            }
        }
    }

    /// Apply an outcome; `false` when the destination is done for.
    async fn settle(&mut self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Done { through } => {
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
            } => {
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

    async fn run_discord(
        mut self,
        mut client: DiscordClient,
        filter: Filter,
        device_id: String,
        pause: Arc<Mutex<Option<tokio::time::Instant>>>,
    ) {
        while let Some(batch) = self.next_batch(DISCORD_BATCH).await {
            let paused_until = *pause
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(until) = paused_until.filter(|until| *until > tokio::time::Instant::now()) {
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = tokio::time::sleep_until(until) => {}
                }
            }
            let last = batch.last().map_or(0, |record| record.seq);
            let wanted: Vec<HistoryRecord> = batch
                .into_iter()
                .filter(|record| filter.wants(record))
                .collect();
            let outcome = if wanted.is_empty() {
                Outcome::Done { through: last }
            } else {
                match client.deliver(&device_id, &wanted).await {
                    Ok(()) => Outcome::Done { through: last },
                    Err(failure) => {
                        let through = failure
                            .delivered
                            .checked_sub(1)
                            .map(|index| wanted[index].seq);
                        match failure.kind {
                            FailureKind::Retry { after, global } => {
                                if global {
                                    let until = tokio::time::Instant::now() + after;
                                    let mut paused = pause
                                        .lock()
                                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                                    *paused =
                                        Some(paused.map_or(until, |current| current.max(until)));
                                }
                                Outcome::Retry {
                                    through,
                                    after,
                                    message: failure.message,
                                }
                            }
                            FailureKind::Rejected { status } => {
                                tracing::error!(destination = %self.name, status, "Discord refused these alerts for good; dropping them: {}", failure.message);
                                Outcome::Done { through: last }
                            }
                            FailureKind::WebhookGone => Outcome::Disable {
                                message: format!(
                                    "the Discord webhook was deleted (404 Unknown Webhook): {}",
                                    failure.message
                                ),
                            },
                        }
                    }
                }
            };
            if !self.settle(outcome).await {
                return;
            }
        }
    }

    async fn run_backend(
        mut self,
        mut client: BackendClient,
        mut pushes: watch::Receiver<Vec<ConfigCheck>>,
        push_every: Duration,
    ) {
        // The configuration is pushed at start, on every change, and every `push_every`.
        let mut push_due = Some(tokio::time::Instant::now());
        loop {
            let batch = {
                self.enqueued.borrow_and_update();
                lock(&self.outbox).pending(&self.name, BACKEND_BATCH)
            };
            if !batch.is_empty() {
                let last = batch.last().map_or(0, |record| record.seq);
                let outcome = match client.send_alerts(&batch).await {
                    Ok(()) => Outcome::Done { through: last },
                    Err(failure) => match failure.kind {
                        BackendFailureKind::Retry { after } => Outcome::Retry {
                            through: None,
                            after,
                            message: failure.message,
                        },
                        BackendFailureKind::Discard { status } => {
                            tracing::error!(destination = %self.name, status, "the backend refused these alerts as invalid; dropping them: {}", failure.message);
                            Outcome::Done { through: last }
                        }
                    },
                };
                if !self.settle(outcome).await {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                changed = self.enqueued.changed() => if changed.is_err() { return },
                changed = pushes.changed() => {
                    if changed.is_err() { return }
                    push_due = Some(tokio::time::Instant::now());
                }
                _ = sleep_until(push_due) => {
                    let checks = pushes.borrow_and_update().clone();
                    push_due = match client.push_config(&checks).await {
                        Ok(()) => Some(tokio::time::Instant::now() + push_every),
                        Err(failure) => {
                            tracing::warn!(destination = %self.name, "pushing the check configuration failed: {}", failure.message);
                            match failure.kind {
                                BackendFailureKind::Retry { after } => Some(tokio::time::Instant::now() + after.max(CONFIG_RETRY)),
                                BackendFailureKind::Discard { .. } => Some(tokio::time::Instant::now() + push_every),
                            }
                        }
                    };
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
