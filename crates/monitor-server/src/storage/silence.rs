//! Heartbeats and silence: the interval a device announced, and its going silent and coming
//! back, each made by one conditional `UPDATE`, so that of several replicas only the one
//! whose `UPDATE` changed the row records the alert.
//!
//! A device is due to go silent when it is accepted, announced an interval, is not silent
//! already, and was last heard `interval × N` ago or more (N: its own `silent_after`, else
//! the server's; a `silent_after` of 0 is never). The silence is an alert of the device like
//! its own (subject `monitor heartbeat`, status `silent`), stored and queued for
//! notification in the transaction that marks the device; being heard again clears the mark
//! and records the OK the same way. Every time here is the server's.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use monitor_wire::{Alert, Details, Level, Subject, Timestamp};
use sqlx::{Any, Row, Transaction};

use super::recording::RecordedAlerts;
use super::sql::{from_millis, to_millis, StorageError};
use super::store::Store;

/// The subject of the silence alerts: a type and name no check of the agent uses.
pub const SILENCE_SUBJECT_TYPE: &str = "monitor";
pub const SILENCE_SUBJECT_NAME: &str = "heartbeat";

/// How many missed heartbeats make a device silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilentAfter {
    /// The server's `--silent-after`.
    ServerDefault,
    /// This device never goes silent (switched off on purpose, on a metered line...).
    Never,
    /// This many, at least 1.
    Missed(u32),
}

impl SilentAfter {
    /// From the `silent_after` column: NULL the server's default, 0 never.
    pub(super) fn from_column(value: Option<i64>) -> SilentAfter {
        match value {
            None => SilentAfter::ServerDefault,
            Some(0) => SilentAfter::Never,
            Some(missed) => SilentAfter::Missed(u32::try_from(missed).unwrap_or(u32::MAX)),
        }
    }

    fn to_column(self) -> Option<i64> {
        match self {
            SilentAfter::ServerDefault => None,
            SilentAfter::Never => Some(0),
            SilentAfter::Missed(missed) => Some(i64::from(missed)),
        }
    }

    /// As the management API shows it: a number, 0 for never, none for the server's default.
    pub fn as_number(self) -> Option<u32> {
        self.to_column()
            .map(|value| u32::try_from(value).unwrap_or(u32::MAX))
    }

    /// From the management API's number: 0 never, none the server's default.
    pub fn from_number(number: Option<u32>) -> SilentAfter {
        SilentAfter::from_column(number.map(i64::from))
    }
}

/// `default`, `never` (or 0), or a number of missed heartbeats.
impl FromStr for SilentAfter {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "default" => Ok(SilentAfter::ServerDefault),
            "never" | "0" => Ok(SilentAfter::Never),
            number => number.parse().map(SilentAfter::Missed).map_err(|_| {
                format!("`{text}`: give a number of missed heartbeats such as 3, never, or default")
            }),
        }
    }
}

impl fmt::Display for SilentAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SilentAfter::ServerDefault => f.write_str("the server's default"),
            SilentAfter::Never => f.write_str("never"),
            SilentAfter::Missed(missed) => write!(f, "{missed} missed heartbeats"),
        }
    }
}

/// A device whose silence is due, as [`Store::silent_due`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilentDevice {
    pub id: String,
    pub name: String,
    /// When it was heard last.
    pub last_seen_at: SystemTime,
    pub interval: Duration,
    /// The missed heartbeats that made it silent.
    pub missed: u32,
}

/// The deadline of a device (in the columns of `devices`, with `$1` the server's default):
/// when it was heard last plus its missed heartbeats' worth.
const DEADLINE: &str = "last_seen_at + heartbeat_interval_ms * COALESCE(silent_after, $1)";
/// Devices that can go silent now and are not (with `$1` the server's default).
const WATCHED: &str = "status = 'accepted' AND heartbeat_interval_ms IS NOT NULL \
     AND silent_at IS NULL AND last_seen_at IS NOT NULL AND COALESCE(silent_after, $1) > 0";

impl Store {
    /// Keeps the interval a device announced (`None`: it sends no more heartbeats), and
    /// that it was heard at `at`.
    pub async fn set_heartbeat_interval(
        &self,
        device_id: &str,
        interval: Option<Duration>,
        at: SystemTime,
    ) -> Result<(), StorageError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE devices SET heartbeat_interval_ms = $1, last_seen_at = $2 WHERE id = $3",
        )
        .bind(interval.map(|interval| i64::try_from(interval.as_millis()).unwrap_or(i64::MAX)))
        .bind(to_millis(at))
        .bind(device_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Notes that a device was heard at `at`; if it was silent, records its return (an OK
    /// alert, queued for notification) in the same transaction, and returns it.
    pub async fn device_heard(
        &self,
        device_id: &str,
        device_name: &str,
        at: SystemTime,
        notify_interval: Duration,
    ) -> Result<Option<RecordedAlerts>, StorageError> {
        let now = to_millis(at);
        let _turn = self.write_turn().await;
        let mut transaction = self.pool.begin().await?;
        // Only the request whose UPDATE clears the mark records the return.
        let back = sqlx::query(
            "UPDATE devices SET silent_at = NULL WHERE id = $1 AND silent_at IS NOT NULL \
             RETURNING last_seen_at",
        )
        .bind(device_id)
        .fetch_optional(&mut *transaction)
        .await?;
        sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(device_id)
            .execute(&mut *transaction)
            .await?;
        let Some(back) = back else {
            transaction.commit().await?;
            return Ok(None);
        };
        let silent_since = back
            .try_get::<Option<i64>, _>("last_seen_at")?
            .map(from_millis);
        let timestamp = after_latest(&mut transaction, device_id, now).await?;
        let description = match silent_since {
            Some(since) => format!(
                "{device_name} is heard again; it was silent since {}",
                Timestamp(since)
            ),
            None => format!("{device_name} is heard again"),
        };
        let alert = silence_alert(
            format!("Device {device_name} back"),
            Level::Ok,
            "heard",
            timestamp,
            description,
        );
        let recorded = self
            .record_in(&mut transaction, device_id, &[alert], now, notify_interval)
            .await?;
        transaction.commit().await?;
        Ok(Some(recorded))
    }

    /// The devices whose silence is due at `now`.
    pub async fn silent_due(
        &self,
        now: SystemTime,
        server_default: u32,
    ) -> Result<Vec<SilentDevice>, StorageError> {
        let sql = format!(
            "SELECT id, name, last_seen_at, heartbeat_interval_ms, \
             COALESCE(silent_after, $1) AS missed FROM devices \
             WHERE {WATCHED} AND {DEADLINE} <= $2 ORDER BY name"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(server_default))
            .bind(to_millis(now))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SilentDevice {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    last_seen_at: from_millis(row.try_get("last_seen_at")?),
                    interval: Duration::from_millis(
                        u64::try_from(row.try_get::<i64, _>("heartbeat_interval_ms")?).unwrap_or(0),
                    ),
                    missed: u32::try_from(row.try_get::<i64, _>("missed")?).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// Marks `device` silent and records its CRITICAL (queued for notification), if it is
    /// still due at `now`: another replica, or the device heard meanwhile, may have changed
    /// the row, and then nothing is recorded (`None`).
    pub async fn raise_silence(
        &self,
        device: &SilentDevice,
        now: SystemTime,
        server_default: u32,
        notify_interval: Duration,
    ) -> Result<Option<RecordedAlerts>, StorageError> {
        let now = to_millis(now);
        let _turn = self.write_turn().await;
        let mut transaction = self.pool.begin().await?;
        let sql = format!(
            "UPDATE devices SET silent_at = $2 WHERE id = $3 AND {WATCHED} AND {DEADLINE} <= $2"
        );
        let marked = sqlx::query(&sql)
            .bind(i64::from(server_default))
            .bind(now)
            .bind(&device.id)
            .execute(&mut *transaction)
            .await?;
        if marked.rows_affected() != 1 {
            transaction.rollback().await?;
            return Ok(None);
        }
        let timestamp = after_latest(&mut transaction, &device.id, now).await?;
        let description = format!(
            "no word from {} since {}: it announced a heartbeat every {}s and {} were missed",
            device.name,
            Timestamp(device.last_seen_at),
            device.interval.as_secs(),
            device.missed
        );
        let alert = silence_alert(
            format!("Device {} silent", device.name),
            Level::Critical,
            "silent",
            timestamp,
            description,
        );
        let recorded = self
            .record_in(&mut transaction, &device.id, &[alert], now, notify_interval)
            .await?;
        transaction.commit().await?;
        Ok(Some(recorded))
    }

    /// When the next device goes silent if it stays quiet; `None`: no device can.
    pub async fn next_silence_deadline(
        &self,
        server_default: u32,
    ) -> Result<Option<SystemTime>, StorageError> {
        let sql = format!("SELECT MIN({DEADLINE}) AS next FROM devices WHERE {WATCHED}");
        let row = sqlx::query(&sql)
            .bind(i64::from(server_default))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("next")?.map(from_millis))
    }

    /// Sets how many missed heartbeats make one device silent; returns whether it exists.
    pub async fn set_device_silent_after(
        &self,
        device_id: &str,
        silent_after: SilentAfter,
    ) -> Result<bool, StorageError> {
        let _turn = self.write_turn().await;
        let result = sqlx::query("UPDATE devices SET silent_after = $1 WHERE id = $2")
            .bind(silent_after.to_column())
            .bind(device_id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }
}

/// `now`, or just after the silence subject's latest alert when that is not older (another
/// replica's clock may be ahead): its alerts must follow each other in time, since a
/// subject's latest alert only moves forward.
async fn after_latest(
    transaction: &mut Transaction<'_, Any>,
    device_id: &str,
    now: i64,
) -> Result<i64, StorageError> {
    let latest = sqlx::query(
        "SELECT timestamp FROM subjects \
         WHERE device_id = $1 AND subject_type = $2 AND subject_name = $3",
    )
    .bind(device_id)
    .bind(SILENCE_SUBJECT_TYPE)
    .bind(SILENCE_SUBJECT_NAME)
    .fetch_optional(&mut **transaction)
    .await?;
    Ok(match latest {
        Some(row) => now.max(row.try_get::<i64, _>("timestamp")? + 1),
        None => now,
    })
}

fn silence_alert(
    name: String,
    level: Level,
    status: &str,
    timestamp: i64,
    description: String,
) -> Alert {
    Alert {
        name,
        level,
        timestamp: Timestamp(from_millis(timestamp)),
        subject: Subject {
            name: SILENCE_SUBJECT_NAME.to_owned(),
            kind: SILENCE_SUBJECT_TYPE.to_owned(),
            status: status.to_owned(),
            details: Details {
                description: Some(description),
                ..Details::default()
            },
        },
    }
}
