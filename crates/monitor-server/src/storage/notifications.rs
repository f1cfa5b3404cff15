//! Notification channels and the outbox of notifications to send through them.
//!
//! A notification is one message to one channel about one device: the alerts that changed a
//! subject's state since the device's previous message to that channel. The first change
//! is due at once; later ones join the next message, due one `notify_interval` after the
//! previous one, so a flapping device sends at most one message per interval and channel,
//! and that message carries the latest state. Rows are claimed with a lease
//! (`claimed_until`) so that replicas never send one twice and a crashed replica's claims
//! are taken over when the lease ends.

use std::time::{Duration, SystemTime};

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::alerts::{alert_from_row, StoredAlert, ALERT_COLUMNS};
use super::settings::GLOBAL_MUTE;
use super::sql::{from_millis, now_millis, to_millis, Engine, StorageError};
use super::store::Store;
use crate::credentials::new_id;
use crate::notify::{ChannelFilter, ChannelKind};

/// A notification channel. `target` (an address, a webhook URL) may be a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: String,
    pub kind: ChannelKind,
    pub name: String,
    pub target: String,
    /// Which alerts it takes (applied when they are queued).
    pub filter: ChannelFilter,
}

/// The columns [`channel_from_row`] reads.
const CHANNEL_COLUMNS: &str = "id, kind, name, target, min_level, checks, devices";

impl Channel {
    /// The target as it may be shown: an address as it is, a webhook URL (a secret)
    /// redacted.
    pub fn shown_target(&self) -> String {
        self.kind.shown_target(&self.target)
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("target", &"<redacted>")
            .field("filter", &self.filter)
            .finish()
    }
}

/// A notification this replica claimed, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct ClaimedNotification {
    pub id: i64,
    pub channel: Channel,
    pub device_id: String,
    pub device_name: String,
    /// The alerts in it, oldest first.
    pub alerts: Vec<StoredAlert>,
    /// Including this one.
    pub attempts: u32,
}

/// A channel a device's alerts may go to, with its filter.
pub(super) struct NotificationTarget {
    pub channel_id: String,
    pub filter: ChannelFilter,
}

/// The channels a new alert of `device_id` may go to (each as its filter lets it), and the
/// device's name for those filters: none while the device or everything is muted, and none
/// of a kind that is muted.
pub(super) async fn notification_targets(
    transaction: &mut Transaction<'_, Any>,
    device_id: &str,
) -> Result<(String, Vec<NotificationTarget>), StorageError> {
    let muted = sqlx::query(
        "SELECT d.name, d.muted, (SELECT s.value FROM settings s WHERE s.key = $2) AS global_mute \
         FROM devices d WHERE d.id = $1",
    )
    .bind(device_id)
    .bind(GLOBAL_MUTE)
    .fetch_one(&mut **transaction)
    .await?;
    let device_name: String = muted.try_get("name")?;
    if muted.try_get::<i64, _>("muted")? != 0
        || muted
            .try_get::<Option<String>, _>("global_mute")?
            .as_deref()
            == Some("true")
    {
        return Ok((device_name, Vec::new()));
    }
    // A kind muted tenant-wide (`notifications.<kind>.muted`) leaves its channels out.
    let rows = sqlx::query(&format!(
        "SELECT {CHANNEL_COLUMNS} FROM channels c WHERE NOT EXISTS (SELECT 1 FROM settings s \
         WHERE s.key = 'notifications.' || c.kind || '.muted' AND s.value = 'true') \
         ORDER BY c.id"
    ))
    .fetch_all(&mut **transaction)
    .await?;
    let targets = rows
        .iter()
        .map(|row| {
            let channel = channel_from_row(row)?;
            Ok(NotificationTarget {
                channel_id: channel.id,
                filter: channel.filter,
            })
        })
        .collect::<Result<_, StorageError>>()?;
    Ok((device_name, targets))
}

fn channel_from_row(row: &AnyRow) -> Result<Channel, StorageError> {
    let kind: String = row.try_get("kind")?;
    let id: String = row.try_get("id")?;
    let list = |column: &str| -> Result<Vec<String>, StorageError> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text)
            .map_err(|error| StorageError::Corrupt(format!("channel {id}: {column}: {error}")))
    };
    let min_level: String = row.try_get("min_level")?;
    let filter = ChannelFilter::new(Some(&min_level), &list("checks")?, &list("devices")?)
        .map_err(|error| StorageError::Corrupt(format!("channel {id}: {error}")))?;
    Ok(Channel {
        kind: kind.parse().map_err(StorageError::Corrupt)?,
        name: row.try_get("name")?,
        target: row.try_get("target")?,
        filter,
        id,
    })
}

/// `c.kind = 'email' OR …` for the kinds a replica can send (fixed strings, never input).
fn kinds_condition(kinds: &[ChannelKind]) -> String {
    if kinds.is_empty() {
        return "1 = 0".into();
    }
    let alternatives: Vec<String> = kinds
        .iter()
        .map(|kind| format!("c.kind = '{}'", kind.as_str()))
        .collect();
    format!("({})", alternatives.join(" OR "))
}

impl Store {
    /// Adds the alert to the device's next message to the channel, or makes that message.
    pub(super) async fn queue_notification(
        &self,
        transaction: &mut Transaction<'_, Any>,
        device_id: &str,
        channel_id: &str,
        alert_id: i64,
        now: i64,
        interval: Duration,
    ) -> Result<(), StorageError> {
        // The open message: not sent and not being sent. On PostgreSQL the row is locked, so
        // a replica claiming it waits and then sends this alert with it.
        let lock = if self.engine == Engine::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let open = sqlx::query(&format!(
            "SELECT id FROM notifications \
             WHERE device_id = $1 AND channel_id = $2 AND sent_at IS NULL AND claimed_until <= $3 \
             ORDER BY id DESC LIMIT 1{lock}"
        ))
        .bind(device_id)
        .bind(channel_id)
        .bind(now)
        .fetch_optional(&mut **transaction)
        .await?;
        let notification_id: i64 = match open {
            Some(row) => row.try_get("id")?,
            None => {
                let last_due: Option<i64> = sqlx::query(
                    "SELECT MAX(due_at) AS last_due FROM notifications \
                     WHERE device_id = $1 AND channel_id = $2",
                )
                .bind(device_id)
                .bind(channel_id)
                .fetch_one(&mut **transaction)
                .await?
                .try_get("last_due")?;
                let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
                let due = last_due.map_or(now, |last| now.max(last.saturating_add(interval)));
                sqlx::query(
                    "INSERT INTO notifications (device_id, channel_id, due_at) \
                     VALUES ($1, $2, $3) RETURNING id",
                )
                .bind(device_id)
                .bind(channel_id)
                .bind(due)
                .fetch_one(&mut **transaction)
                .await?
                .try_get("id")?
            }
        };
        sqlx::query(
            "INSERT INTO notification_alerts (notification_id, alert_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(notification_id)
        .bind(alert_id)
        .execute(&mut **transaction)
        .await?;
        Ok(())
    }

    pub async fn add_channel(
        &self,
        kind: ChannelKind,
        name: &str,
        target: &str,
        filter: &ChannelFilter,
    ) -> Result<Channel, StorageError> {
        let id = new_id();
        let list = |entries: &[String]| {
            serde_json::to_string(entries).map_err(|error| StorageError::Corrupt(error.to_string()))
        };
        sqlx::query(
            "INSERT INTO channels (id, kind, name, target, created_at, min_level, checks, devices) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(kind.as_str())
        .bind(name)
        .bind(target)
        .bind(now_millis())
        .bind(filter.min_level().as_str())
        .bind(list(filter.checks())?)
        .bind(list(filter.devices())?)
        .execute(&self.pool)
        .await
        .map_err(|error| {
            StorageError::from_unique_violation(error, || {
                format!("this {} channel exists already", kind.as_str())
            })
        })?;
        Ok(Channel {
            id,
            kind,
            name: name.to_owned(),
            target: target.to_owned(),
            filter: filter.clone(),
        })
    }

    pub async fn channels(&self) -> Result<Vec<Channel>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels ORDER BY kind, name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(channel_from_row).collect()
    }

    /// Replaces a channel's filter (alerts queued already stay); the channel, if it exists.
    pub async fn set_channel_filter(
        &self,
        id: &str,
        filter: &ChannelFilter,
    ) -> Result<Option<Channel>, StorageError> {
        let list = |entries: &[String]| {
            serde_json::to_string(entries).map_err(|error| StorageError::Corrupt(error.to_string()))
        };
        let row = sqlx::query(&format!(
            "UPDATE channels SET min_level = $1, checks = $2, devices = $3 WHERE id = $4 \
             RETURNING {CHANNEL_COLUMNS}"
        ))
        .bind(filter.min_level().as_str())
        .bind(list(filter.checks())?)
        .bind(list(filter.devices())?)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(channel_from_row).transpose()
    }

    /// Removes a channel and what waits for it; returns whether it existed.
    pub async fn remove_channel(&self, id: &str) -> Result<bool, StorageError> {
        let result = sqlx::query("DELETE FROM channels WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Claims the most overdue notification for one of `kinds` until `lease_until`.
    pub async fn claim_notification(
        &self,
        kinds: &[ChannelKind],
        now: SystemTime,
        lease_until: SystemTime,
    ) -> Result<Option<ClaimedNotification>, StorageError> {
        let now = to_millis(now);
        let condition = kinds_condition(kinds);
        let turn = self.write_turn().await;
        // The outer conditions are checked again on the row itself, so of two replicas
        // picking the same row only one updates it.
        let claimed = sqlx::query(&format!(
            "UPDATE notifications SET claimed_until = $1, attempts = attempts + 1 \
             WHERE id = (SELECT n.id FROM notifications n JOIN channels c ON c.id = n.channel_id \
                         WHERE n.sent_at IS NULL AND n.due_at <= $2 AND n.claimed_until <= $2 \
                         AND {condition} ORDER BY n.due_at, n.id LIMIT 1) \
             AND sent_at IS NULL AND claimed_until <= $2 \
             RETURNING id, device_id, channel_id, attempts"
        ))
        .bind(to_millis(lease_until))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        drop(turn);
        let Some(row) = claimed else {
            return Ok(None);
        };
        let id: i64 = row.try_get("id")?;
        let device_id: String = row.try_get("device_id")?;
        let channel_id: String = row.try_get("channel_id")?;
        let attempts: i64 = row.try_get("attempts")?;
        let channel = sqlx::query(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1"
        ))
        .bind(&channel_id)
        .fetch_one(&self.pool)
        .await?;
        let device_name: String = sqlx::query("SELECT name FROM devices WHERE id = $1")
            .bind(&device_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("name")?;
        let alerts = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM notification_alerts na JOIN alerts a ON a.id = na.alert_id \
             WHERE na.notification_id = $1 ORDER BY a.timestamp, a.id"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(ClaimedNotification {
            id,
            channel: channel_from_row(&channel)?,
            device_id,
            device_name,
            alerts: alerts
                .iter()
                .map(alert_from_row)
                .collect::<Result<_, _>>()?,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        }))
    }

    pub async fn notification_sent(&self, id: i64, at: SystemTime) -> Result<(), StorageError> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE notifications SET sent_at = $1, last_error = NULL WHERE id = $2")
            .bind(to_millis(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives a claimed notification back, to be tried again at `retry_at`.
    pub async fn notification_retry(
        &self,
        id: i64,
        retry_at: SystemTime,
        error: &str,
    ) -> Result<(), StorageError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE notifications SET claimed_until = 0, due_at = $1, last_error = $2 WHERE id = $3",
        )
        .bind(to_millis(retry_at))
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up on a notification that can never be sent (the channel refused it for good).
    pub async fn notification_failed(
        &self,
        id: i64,
        at: SystemTime,
        error: &str,
    ) -> Result<(), StorageError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE notifications SET sent_at = $1, failed = 1, last_error = $2 WHERE id = $3",
        )
        .bind(to_millis(at))
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// When the next notification for `kinds` is due, or a claim on one runs out.
    pub async fn next_notification_due(
        &self,
        kinds: &[ChannelKind],
    ) -> Result<Option<SystemTime>, StorageError> {
        let condition = kinds_condition(kinds);
        // A row is claimable at its due time, or when another replica's claim on it runs
        // out (that replica may have crashed).
        let row = sqlx::query(&format!(
            "SELECT MIN(CASE WHEN n.claimed_until > n.due_at THEN n.claimed_until ELSE n.due_at END) \
             AS next FROM notifications n JOIN channels c ON c.id = n.channel_id \
             WHERE n.sent_at IS NULL AND {condition}"
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("next")?.map(from_millis))
    }

    /// How many notifications were sent, failed, or wait (for tests and metrics).
    pub async fn notification_counts(&self) -> Result<(u64, u64, u64), StorageError> {
        let row = sqlx::query(
            "SELECT COUNT(CASE WHEN sent_at IS NOT NULL AND failed = 0 THEN 1 END) AS sent, \
                    COUNT(CASE WHEN failed = 1 THEN 1 END) AS failed, \
                    COUNT(CASE WHEN sent_at IS NULL THEN 1 END) AS waiting \
             FROM notifications",
        )
        .fetch_one(&self.pool)
        .await?;
        let count = |name: &str| -> Result<u64, StorageError> {
            Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
        };
        Ok((count("sent")?, count("failed")?, count("waiting")?))
    }
}
