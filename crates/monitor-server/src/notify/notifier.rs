//! [`Notifier`]: sends what the outbox holds, through one sender per channel kind.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::sender::{digest, ChannelSender, Outgoing, SendFailure, SenderSettings};
use super::{ChannelKind, TargetPolicy};

use crate::settings::{PublicUrl, SmtpSettings};
use crate::storage::{ClaimedNotification, Store};

/// How long a claim lasts before another replica may take the notification over.
const LEASE: Duration = Duration::from_secs(120);
/// The longest sleep: notifications another replica queued but did not send are picked up
/// within this.
const SWEEP: Duration = Duration::from_secs(60);
/// After a database error, wait this long before trying again.
const DATABASE_RETRY: Duration = Duration::from_secs(5);

/// Sends what the outbox holds, for as long as the server runs.
pub struct Notifier {
    store: Store,
    /// A sender per kind this replica can send (every kind but email without SMTP).
    senders: HashMap<ChannelKind, Box<dyn ChannelSender>>,
    /// Messages link the dashboard's page of their device under it, when given.
    public_url: Option<PublicUrl>,
    wake: Arc<Notify>,
}

impl Notifier {
    /// A notifier; email channels are served only when `smtp` is given, and messages link
    /// the dashboard only when `public_url` is.
    pub fn new(
        store: Store,
        smtp: Option<&SmtpSettings>,
        targets: TargetPolicy,
        public_url: Option<PublicUrl>,
        wake: Arc<Notify>,
    ) -> Result<Notifier, String> {
        let settings = SenderSettings { smtp, targets };
        let mut senders = HashMap::new();
        for kind in ChannelKind::ALL {
            if let Some(sender) = kind.new_sender(&settings)? {
                senders.insert(kind, sender);
            }
        }
        Ok(Notifier {
            store,
            senders,
            public_url,
            wake,
        })
    }

    fn kinds(&self) -> Vec<ChannelKind> {
        ChannelKind::ALL
            .into_iter()
            .filter(|kind| self.senders.contains_key(kind))
            .collect()
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let kinds = self.kinds();
        self.open_channels().await;
        loop {
            self.forget_removed_channels().await;
            let pause = match self.send_due(&kinds, &shutdown).await {
                Ok(()) => match self.store.next_notification_due(&kinds).await {
                    Ok(next) => until(next).min(SWEEP),
                    Err(error) => {
                        tracing::warn!(
                            "notifications: {error}; trying again in {DATABASE_RETRY:?}"
                        );
                        DATABASE_RETRY
                    }
                },
                Err(error) => {
                    tracing::warn!("notifications: {error}; trying again in {DATABASE_RETRY:?}");
                    DATABASE_RETRY
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until((Instant::now() + pause).into()) => {}
            }
        }
    }

    /// Lets each sender open what it keeps open for its channels (see
    /// [`ChannelSender::open`]); a channel it cannot open now waits for its first message.
    async fn open_channels(&mut self) {
        let channels = match self.store.channels().await {
            Ok(channels) => channels,
            Err(error) => {
                tracing::warn!("notifications: cannot list the channels to open them: {error}");
                return;
            }
        };
        for channel in &channels {
            if let Some(sender) = self.senders.get_mut(&channel.kind) {
                sender.open(channel);
            }
        }
    }

    /// Lets each sender drop what it keeps for channels removed meanwhile (see
    /// [`ChannelSender::keep_only`]): at once for a removal through this replica's API
    /// (which wakes the notifier), within [`SWEEP`] for one made elsewhere.
    async fn forget_removed_channels(&mut self) {
        let channels = match self.store.channels().await {
            Ok(channels) => channels,
            Err(error) => {
                tracing::warn!("notifications: cannot list the channels: {error}");
                return;
            }
        };
        let ids: HashSet<&str> = channels.iter().map(|channel| channel.id.as_str()).collect();
        for sender in self.senders.values_mut() {
            sender.keep_only(&ids);
        }
    }

    async fn send_due(
        &mut self,
        kinds: &[ChannelKind],
        shutdown: &CancellationToken,
    ) -> Result<(), crate::storage::StorageError> {
        while !shutdown.is_cancelled() {
            let now = SystemTime::now();
            let Some(notification) = self
                .store
                .claim_notification(kinds, now, now + LEASE)
                .await?
            else {
                return Ok(());
            };
            let outcome = self.send(&notification).await;
            let now = SystemTime::now();
            match outcome {
                Ok(()) => {
                    tracing::info!(
                        device = %notification.device_name,
                        channel = %notification.channel.name,
                        kind = notification.channel.kind.as_str(),
                        alerts = notification.alerts.len(),
                        "notification sent"
                    );
                    self.store.notification_sent(notification.id, now).await?;
                }
                Err(SendFailure::Retry { after, reason }) => {
                    tracing::warn!(
                        channel = %notification.channel.name,
                        attempt = notification.attempts,
                        "notification not sent, trying again in {after:?}: {reason}"
                    );
                    self.store
                        .notification_retry(notification.id, now + after, &reason)
                        .await?;
                }
                Err(SendFailure::Refused { reason }) => {
                    tracing::error!(
                        channel = %notification.channel.name,
                        "notification refused for good: {reason}"
                    );
                    self.store
                        .notification_failed(notification.id, now, &reason)
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn send(&mut self, notification: &ClaimedNotification) -> Result<(), SendFailure> {
        let digest = digest(&notification.alerts);
        if digest.is_empty() {
            return Ok(());
        }
        let channel = &notification.channel;
        let Some(sender) = self.senders.get_mut(&channel.kind) else {
            return Err(SendFailure::Retry {
                after: SWEEP,
                reason: format!(
                    "this replica cannot send to {} channels (email needs an SMTP server)",
                    channel.kind.as_str()
                ),
            });
        };
        let device_page = self
            .public_url
            .as_ref()
            .map(|url| url.device_page(&notification.device_id));
        let message = Outgoing {
            channel_id: &channel.id,
            channel_name: &channel.name,
            target: &channel.target,
            device_id: &notification.device_id,
            device_name: &notification.device_name,
            device_page: device_page.as_deref(),
            attempts: notification.attempts,
        };
        sender.send(&message, &digest).await
    }
}

fn until(next: Option<SystemTime>) -> Duration {
    next.map_or(SWEEP, |at| {
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoredAlert;
    use monitor_wire::{Alert, Details, Level, Subject, Timestamp};
    use std::time::UNIX_EPOCH;

    fn stored(id: i64, subject: &str, level: Level, second: u64) -> StoredAlert {
        StoredAlert {
            id,
            device_id: "d".into(),
            alert: Alert {
                name: format!("{subject} {level}"),
                level,
                timestamp: Timestamp(UNIX_EPOCH + Duration::from_secs(second)),
                subject: Subject {
                    name: subject.into(),
                    kind: "log".into(),
                    status: "LOGCONTAINS".into(),
                    details: Details::default(),
                },
            },
            received_at: UNIX_EPOCH,
        }
    }

    #[test]
    fn a_flapping_subject_is_one_entry_with_its_latest_state() {
        let alerts = [
            stored(1, "app", Level::Critical, 1),
            stored(2, "db", Level::Critical, 2),
            stored(3, "app", Level::Ok, 3),
            stored(4, "app", Level::Critical, 4),
            stored(5, "db", Level::Ok, 5),
        ];
        let digest = digest(&alerts);
        let entries: Vec<_> = digest
            .iter()
            .map(|entry| (entry.latest.id, entry.changes))
            .collect();
        assert_eq!(entries, [(4, 3), (5, 2)], "CRITICAL first, then by time");
    }
}
