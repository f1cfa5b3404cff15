//! Reading alerts: a device's history, one alert, the latest per subject (all, or a page
//! from a level on), counts per hour.

use std::time::SystemTime;

use monitor_wire::{Alert, Details, Level, Subject, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::sql::{from_millis, to_millis, StorageError};
use super::store::Store;

/// An alert as stored: the device's alert plus the server's id and arrival time.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub id: i64,
    pub device_id: String,
    pub alert: Alert,
    pub received_at: SystemTime,
}

/// A page of a device's alert history, filtered by the device time of the alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertQuery {
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
    pub issued_after: Option<SystemTime>,
    pub issued_before: Option<SystemTime>,
    pub ascending: bool,
}

/// A page of the latest alert of each of a device's subjects, oldest first, as Mender's
/// `…/alerts/latest` answers.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestQuery {
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
    /// Only subjects whose latest alert is at least this severe.
    pub level_from: Level,
}

pub(super) const ALERT_COLUMNS: &str =
    "a.id, a.device_id, a.name, a.level, a.subject_name, a.subject_type, \
     a.subject_status, a.details, a.timestamp, a.received_at";

impl Store {
    /// A page of a device's alerts and how many match in all.
    pub async fn alerts(
        &self,
        device_id: &str,
        query: &AlertQuery,
    ) -> Result<(Vec<StoredAlert>, u64), StorageError> {
        let after = query.issued_after.map_or(i64::MIN, to_millis);
        let before = query.issued_before.map_or(i64::MAX, to_millis);
        let filter = "a.device_id = $1 AND a.timestamp >= $2 AND a.timestamp < $3";
        let total: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS total FROM alerts a WHERE {filter}"
        ))
        .bind(device_id)
        .bind(after)
        .bind(before)
        .fetch_one(&self.pool)
        .await?
        .try_get("total")?;
        let order = if query.ascending { "ASC" } else { "DESC" };
        let per_page = query.per_page.clamp(1, 500);
        let offset = query.page.saturating_sub(1).saturating_mul(per_page);
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a WHERE {filter} \
             ORDER BY a.timestamp {order}, a.id {order} LIMIT $4 OFFSET $5"
        ))
        .bind(device_id)
        .bind(after)
        .bind(before)
        .bind(i64::try_from(per_page).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let alerts = rows.iter().map(alert_from_row).collect::<Result<_, _>>()?;
        Ok((alerts, u64::try_from(total).unwrap_or(0)))
    }

    /// One alert by its id.
    pub async fn alert(&self, id: i64) -> Result<Option<StoredAlert>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a WHERE a.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(alert_from_row).transpose()
    }

    /// Alerts per hour of device time from `since` on, for one device or the whole fleet:
    /// (start of the hour, CRITICAL count, OK count), hours without alerts left out.
    pub async fn alerts_per_hour(
        &self,
        device_id: Option<&str>,
        since: SystemTime,
    ) -> Result<Vec<(SystemTime, u64, u64)>, StorageError> {
        let rows = sqlx::query(
            "SELECT a.timestamp / 3600000 AS hour, \
                    COUNT(CASE WHEN a.level = 'CRITICAL' THEN 1 END) AS critical, \
                    COUNT(CASE WHEN a.level = 'OK' THEN 1 END) AS ok \
             FROM alerts a WHERE a.timestamp >= $1 AND ($2 = '' OR a.device_id = $2) \
             GROUP BY a.timestamp / 3600000 ORDER BY hour",
        )
        .bind(to_millis(since))
        .bind(device_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let hour: i64 = row.try_get("hour")?;
                let count = |name: &str| -> Result<u64, StorageError> {
                    Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
                };
                Ok((
                    from_millis(hour * 3_600_000),
                    count("critical")?,
                    count("ok")?,
                ))
            })
            .collect()
    }

    /// The latest alert of each of the device's subjects, newest first.
    pub async fn latest_alerts(&self, device_id: &str) -> Result<Vec<StoredAlert>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM subjects s JOIN alerts a ON a.id = s.alert_id \
             WHERE s.device_id = $1 ORDER BY a.timestamp DESC, a.id DESC"
        ))
        .bind(device_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_from_row).collect()
    }
    /// A page of the latest alert of each of the device's subjects at `level_from` or
    /// above, oldest first, and how many there are in all.
    pub async fn latest_alerts_page(
        &self,
        device_id: &str,
        query: &LatestQuery,
    ) -> Result<(Vec<StoredAlert>, u64), StorageError> {
        // Constants only, never the request's text.
        let levels = match query.level_from {
            Level::Ok => "'OK', 'CRITICAL'",
            Level::Critical => "'CRITICAL'",
        };
        let from = "FROM subjects s JOIN alerts a ON a.id = s.alert_id";
        let filter = format!("s.device_id = $1 AND a.level IN ({levels})");
        let total: i64 = sqlx::query(&format!("SELECT COUNT(*) AS total {from} WHERE {filter}"))
            .bind(device_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("total")?;
        let per_page = query.per_page.clamp(1, 500);
        let offset = query.page.saturating_sub(1).saturating_mul(per_page);
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} {from} WHERE {filter} \
             ORDER BY a.timestamp ASC, a.id ASC LIMIT $2 OFFSET $3"
        ))
        .bind(device_id)
        .bind(i64::try_from(per_page).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let alerts = rows.iter().map(alert_from_row).collect::<Result<_, _>>()?;
        Ok((alerts, u64::try_from(total).unwrap_or(0)))
    }
}

pub(super) fn alert_from_row(row: &AnyRow) -> Result<StoredAlert, StorageError> {
    let level: String = row.try_get("level")?;
    let details: String = row.try_get("details")?;
    let details: Details = serde_json::from_str(&details)
        .map_err(|error| StorageError::Corrupt(format!("alert details: {error}")))?;
    Ok(StoredAlert {
        id: row.try_get("id")?,
        device_id: row.try_get("device_id")?,
        alert: Alert {
            name: row.try_get("name")?,
            level: match level.as_str() {
                "CRITICAL" => Level::Critical,
                "OK" => Level::Ok,
                other => return Err(StorageError::Corrupt(format!("alert level `{other}`"))),
            },
            timestamp: Timestamp(from_millis(row.try_get("timestamp")?)),
            subject: Subject {
                name: row.try_get("subject_name")?,
                kind: row.try_get("subject_type")?,
                status: row.try_get("subject_status")?,
                details,
            },
        },
        received_at: from_millis(row.try_get("received_at")?),
    })
}
