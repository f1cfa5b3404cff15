//! [`SilenceWatcher`]: raises "Device <name> silent" when a device that announced a
//! heartbeat interval misses enough of them.
//!
//! No polling tick: the task sleeps until the earliest deadline in the database, and is
//! woken when a device announces a new interval or comes back (its deadline counts again).
//! What another replica or an admin command changed behind this one's back (a device's
//! `silent_after`, a replica gone with the device it heard) is picked up within [`SWEEP`],
//! and only while some device can go silent at all. The transition itself is a conditional
//! `UPDATE` ([`Store::raise_silence`]): of several replicas due at once, one records it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::storage::{StorageError, Store};

/// The longest sleep while some device can go silent.
const SWEEP: Duration = Duration::from_secs(60);
/// After a database error, wait this long before trying again.
const DATABASE_RETRY: Duration = Duration::from_secs(5);

pub struct SilenceWatcher {
    pub store: Store,
    /// The server's `--silent-after`: missed heartbeats, for devices without their own.
    pub silent_after: u32,
    pub notify_interval: Duration,
    /// Woken when a device announced a new interval or came back.
    pub wake: Arc<Notify>,
    /// This replica's notifier, woken when a silence was queued for notification.
    pub notifier_wake: Arc<Notify>,
}

impl SilenceWatcher {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let pause = match self.raise_due().await {
                Ok(Some(next)) => next
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
                    .min(SWEEP),
                Ok(None) => Duration::MAX,
                Err(error) => {
                    tracing::warn!("silent devices: {error}; trying again in {DATABASE_RETRY:?}");
                    DATABASE_RETRY
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = sleep(pause) => {}
            }
        }
    }

    /// Raises every silence due now; returns the next deadline.
    async fn raise_due(&self) -> Result<Option<SystemTime>, StorageError> {
        let now = SystemTime::now();
        for device in self.store.silent_due(now, self.silent_after).await? {
            let raised = self
                .store
                .raise_silence(&device, now, self.silent_after, self.notify_interval)
                .await?;
            let Some(recorded) = raised else { continue };
            tracing::warn!(
                device = %device.name,
                interval_seconds = device.interval.as_secs(),
                missed = device.missed,
                "device silent"
            );
            if recorded.notifications_queued {
                self.notifier_wake.notify_one();
            }
        }
        self.store.next_silence_deadline(self.silent_after).await
    }
}

async fn sleep(pause: Duration) {
    match tokio::time::Instant::now().checked_add(pause) {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
