//! Sending notifications: email over SMTP and Discord webhooks, from the outbox in the
//! database (see `storage::notifications`).
//!
//! [`Notifier::run`] claims due notifications, sends each, and records the outcome: sent,
//! to be retried later (a network failure, a rate limit), or failed for good (the channel
//! refused it). It sleeps until the next one is due or until the API wakes it for a new
//! one; a slow sweep picks up what another replica queued and could not send (it crashed).
//! A notification is sent at least once: a crash after sending and before recording it
//! sends it again when the lease runs out.

mod discord;
mod email;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::storage::{ChannelKind, ClaimedNotification, Store, StoredAlert};

pub use email::{SmtpSettings, EMAIL_DEFAULT_FROM};

/// How long a claim lasts before another replica may take the notification over.
const LEASE: Duration = Duration::from_secs(120);
/// The longest sleep: notifications another replica queued but did not send are picked up
/// within this.
const SWEEP: Duration = Duration::from_secs(60);
/// After a database error, wait this long before trying again.
const DATABASE_RETRY: Duration = Duration::from_secs(5);

/// What a failed send means for the notification.
#[derive(Debug)]
pub(crate) enum SendFailure {
    /// Try again after this long.
    Retry { after: Duration, reason: String },
    /// The channel refused it for good.
    Refused { reason: String },
}

/// The latest alert of each subject in a notification, and how many state changes of that
/// subject the notification carries (more than one when a subject flapped meanwhile).
#[derive(Debug, Clone)]
pub(crate) struct SubjectDigest {
    pub latest: StoredAlert,
    pub changes: usize,
}

/// One entry per subject, ordered by their latest alert; CRITICAL subjects first.
pub(crate) fn digest(alerts: &[StoredAlert]) -> Vec<SubjectDigest> {
    let mut subjects: Vec<SubjectDigest> = Vec::new();
    for alert in alerts {
        let subject = &alert.alert.subject;
        match subjects.iter_mut().find(|entry| {
            entry.latest.alert.subject.kind == subject.kind
                && entry.latest.alert.subject.name == subject.name
        }) {
            Some(entry) => {
                entry.changes += 1;
                if alert.alert.timestamp >= entry.latest.alert.timestamp {
                    entry.latest = alert.clone();
                }
            }
            None => subjects.push(SubjectDigest {
                latest: alert.clone(),
                changes: 1,
            }),
        }
    }
    subjects.sort_by_key(|entry| {
        (
            entry.latest.alert.level != monitor_wire::Level::Critical,
            std::cmp::Reverse(entry.latest.alert.timestamp),
        )
    });
    subjects
}

/// Sends what the outbox holds, for as long as the server runs.
pub struct Notifier {
    store: Store,
    email: Option<email::EmailSender>,
    discord_http: reqwest::Client,
    /// One client per Discord channel, so each keeps its webhook's rate-limit state.
    discord: HashMap<String, monitor_discord::DiscordClient>,
    wake: Arc<Notify>,
}

impl Notifier {
    /// A notifier; email channels are served only when `smtp` is given.
    pub fn new(
        store: Store,
        smtp: Option<&SmtpSettings>,
        wake: Arc<Notify>,
    ) -> Result<Notifier, String> {
        let email = smtp.map(email::EmailSender::new).transpose()?;
        let discord_http = reqwest::Client::builder()
            .build()
            .map_err(|error| format!("cannot make the HTTP client for Discord: {error}"))?;
        Ok(Notifier {
            store,
            email,
            discord_http,
            discord: HashMap::new(),
            wake,
        })
    }

    fn kinds(&self) -> Vec<ChannelKind> {
        let mut kinds = vec![ChannelKind::Discord];
        if self.email.is_some() {
            kinds.push(ChannelKind::Email);
        }
        kinds
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let kinds = self.kinds();
        loop {
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
        match notification.channel.kind {
            ChannelKind::Email => {
                let Some(email) = &self.email else {
                    return Err(SendFailure::Retry {
                        after: SWEEP,
                        reason: "this replica has no SMTP server configured".into(),
                    });
                };
                email
                    .send(notification, &digest)
                    .await
                    .map_err(|failure| with_backoff(failure, notification.attempts))
            }
            ChannelKind::Discord => {
                let client = match self.discord.get_mut(&notification.channel.id) {
                    Some(client) => client,
                    None => {
                        let client = discord::client(&notification.channel, &self.discord_http)?;
                        self.discord
                            .entry(notification.channel.id.clone())
                            .or_insert(client)
                    }
                };
                discord::send(client, notification, &digest).await
            }
        }
    }
}

/// A retry without its own wait gets an exponential one: 30 s doubling to 30 min.
fn with_backoff(failure: SendFailure, attempts: u32) -> SendFailure {
    match failure {
        SendFailure::Retry { after, reason } if after.is_zero() => {
            let doubling = 2u32.saturating_pow(attempts.saturating_sub(1).min(6));
            SendFailure::Retry {
                after: (Duration::from_secs(30) * doubling).min(Duration::from_secs(1800)),
                reason,
            }
        }
        other => other,
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

    #[test]
    fn retries_back_off_exponentially_unless_the_channel_said_when() {
        let retry = |after| SendFailure::Retry {
            after,
            reason: String::new(),
        };
        let wait = |failure| match failure {
            SendFailure::Retry { after, .. } => after,
            SendFailure::Refused { .. } => panic!(),
        };
        assert_eq!(
            wait(with_backoff(retry(Duration::ZERO), 1)),
            Duration::from_secs(30)
        );
        assert_eq!(
            wait(with_backoff(retry(Duration::ZERO), 3)),
            Duration::from_secs(120)
        );
        assert_eq!(
            wait(with_backoff(retry(Duration::ZERO), 40)),
            Duration::from_secs(1800)
        );
        assert_eq!(
            wait(with_backoff(retry(Duration::from_secs(7)), 3)),
            Duration::from_secs(7)
        );
    }
}
