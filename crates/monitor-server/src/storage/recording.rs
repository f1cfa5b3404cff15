//! Recording a device's alerts: the alert, its subject's latest state and the notification
//! outbox change in one transaction.

use std::time::{Duration, SystemTime};

use monitor_wire::{Alert, Level};
use sqlx::{Any, Row, Transaction};

use super::alerts::StoredAlert;
use super::notifications::notification_targets;
use super::sql::{from_millis, level_str, to_millis, StorageError};
use super::store::Store;

/// What [`Store::record_alerts`] did.
#[derive(Debug, Default)]
pub struct RecordedAlerts {
    /// The alerts that were new (not resends).
    pub stored: Vec<StoredAlert>,
    /// Some of them changed a subject's state and wait in the notification outbox.
    pub notifications_queued: bool,
}

impl Store {
    /// Stores a device's alerts in one transaction and returns those that are new: an alert
    /// sent again (same subject, level and device time, as after a lost reply) is kept once.
    /// The latest alert of each subject moves only forward in device time, so a late resend
    /// of an old alert does not reopen a subject that is OK since.
    pub async fn record_alerts(
        &self,
        device_id: &str,
        alerts: &[Alert],
        received_at: SystemTime,
        notify_interval: Duration,
    ) -> Result<RecordedAlerts, StorageError> {
        let received = to_millis(received_at);
        let _turn = self.write_turn().await;
        let mut transaction = self.pool.begin().await?;
        // A write first: SQLite takes the write lock now, not on a later upgrade.
        sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2")
            .bind(received)
            .bind(device_id)
            .execute(&mut *transaction)
            .await?;
        let recorded = self
            .record_in(
                &mut transaction,
                device_id,
                alerts,
                received,
                notify_interval,
            )
            .await?;
        transaction.commit().await?;
        Ok(recorded)
    }

    /// [`Store::record_alerts`]' work inside the caller's write transaction, without
    /// touching `last_seen_at` (the server's own alerts about a device, such as its silence,
    /// are not word from it). `received` is in milliseconds.
    pub(super) async fn record_in(
        &self,
        transaction: &mut Transaction<'_, Any>,
        device_id: &str,
        alerts: &[Alert],
        received: i64,
        notify_interval: Duration,
    ) -> Result<RecordedAlerts, StorageError> {
        let (device_name, channels) = notification_targets(transaction, device_id).await?;
        let mut recorded = RecordedAlerts::default();
        for alert in alerts {
            let details = serde_json::to_string(&alert.subject.details)
                .map_err(|error| StorageError::Corrupt(error.to_string()))?;
            let timestamp = to_millis(alert.timestamp.0);
            let level = level_str(alert.level);
            let inserted = sqlx::query(
                "INSERT INTO alerts (device_id, name, level, subject_name, subject_type, \
                 subject_status, details, timestamp, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(device_id)
            .bind(&alert.name)
            .bind(level)
            .bind(&alert.subject.name)
            .bind(&alert.subject.kind)
            .bind(&alert.subject.status)
            .bind(&details)
            .bind(timestamp)
            .bind(received)
            .fetch_optional(&mut **transaction)
            .await?;
            let Some(row) = inserted else { continue };
            let id: i64 = row.try_get("id")?;
            let previous = sqlx::query(
                "SELECT level, timestamp FROM subjects \
                 WHERE device_id = $1 AND subject_type = $2 AND subject_name = $3",
            )
            .bind(device_id)
            .bind(&alert.subject.kind)
            .bind(&alert.subject.name)
            .fetch_optional(&mut **transaction)
            .await?;
            // A change of state is news; a repeat, or an older alert arriving late, is not.
            let changes_state = match &previous {
                None => alert.level == Level::Critical,
                Some(row) => {
                    row.try_get::<i64, _>("timestamp")? <= timestamp
                        && row.try_get::<String, _>("level")? != level
                }
            };
            sqlx::query(
                "INSERT INTO subjects (device_id, subject_type, subject_name, level, alert_id, timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (device_id, subject_type, subject_name) DO UPDATE \
                 SET level = excluded.level, alert_id = excluded.alert_id, timestamp = excluded.timestamp \
                 WHERE excluded.timestamp >= subjects.timestamp",
            )
            .bind(device_id)
            .bind(&alert.subject.kind)
            .bind(&alert.subject.name)
            .bind(level)
            .bind(id)
            .bind(timestamp)
            .execute(&mut **transaction)
            .await?;
            if changes_state {
                for channel in channels
                    .iter()
                    .filter(|channel| channel.filter.wants(&device_name, alert))
                {
                    self.queue_notification(
                        transaction,
                        device_id,
                        &channel.channel_id,
                        id,
                        received,
                        notify_interval,
                    )
                    .await?;
                    recorded.notifications_queued = true;
                }
            }
            recorded.stored.push(StoredAlert {
                id,
                device_id: device_id.to_owned(),
                alert: alert.clone(),
                received_at: from_millis(received),
            });
        }
        Ok(recorded)
    }
}
