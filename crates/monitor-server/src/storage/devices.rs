//! Devices: admission status, lookups, mute, and the documents they push about themselves.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use sqlx::any::AnyRow;
use sqlx::Row;

use super::silence::SilentAfter;
use super::sql::{from_millis, now_millis, to_millis, StorageError};
use super::store::Store;
use crate::credentials::new_id;
use crate::device_auth::key_fingerprint;

/// Where a device stands in admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Asked to join (`auth_requests`), waiting for a user to accept it.
    Pending,
    Accepted,
    Rejected,
    /// Taken out of service for good; its history stays.
    Decommissioned,
}

impl DeviceStatus {
    pub const ALL: [DeviceStatus; 4] = [
        DeviceStatus::Pending,
        DeviceStatus::Accepted,
        DeviceStatus::Rejected,
        DeviceStatus::Decommissioned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Accepted => "accepted",
            DeviceStatus::Rejected => "rejected",
            DeviceStatus::Decommissioned => "decommissioned",
        }
    }
}

impl FromStr for DeviceStatus {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pending" => Ok(DeviceStatus::Pending),
            "accepted" => Ok(DeviceStatus::Accepted),
            "rejected" => Ok(DeviceStatus::Rejected),
            "decommissioned" => Ok(DeviceStatus::Decommissioned),
            other => Err(format!(
                "unknown device status `{other}`: use pending, accepted, rejected or decommissioned"
            )),
        }
    }
}

/// A device, with how many of its subjects are CRITICAL now.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub status: DeviceStatus,
    pub muted: bool,
    pub created_at: SystemTime,
    pub last_seen_at: Option<SystemTime>,
    /// Subjects whose latest alert is CRITICAL.
    pub alert_count: u64,
    /// The identity it asked to join with (canonical JSON), for devices that asked.
    pub identity: Option<String>,
    /// Its key's fingerprint ([`key_fingerprint`]), for devices that asked with a key.
    pub key_fingerprint: Option<String>,
    /// The time between heartbeats it announced last; `None`: it sends none and never goes
    /// silent.
    pub heartbeat_interval: Option<Duration>,
    /// How many missed heartbeats make it silent.
    pub silent_after: SilentAfter,
    /// While it is silent: since when (the last time it was heard).
    pub silent_since: Option<SystemTime>,
}

impl Device {
    /// The MAC address in its identity, if it has one.
    pub fn identity_mac(&self) -> Option<String> {
        let identity: serde_json::Value = serde_json::from_str(self.identity.as_deref()?).ok()?;
        identity.get("mac")?.as_str().map(str::to_owned)
    }
}

/// What a device pushes about itself, kept as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceDocument {
    /// The check list (`POST …/devicemonitor/config`).
    Config,
    /// A Mender client's inventory attributes.
    Inventory,
}

impl DeviceDocument {
    fn column(self) -> &'static str {
        match self {
            DeviceDocument::Config => "config",
            DeviceDocument::Inventory => "inventory",
        }
    }
}

const DEVICE_COLUMNS: &str = "d.id, d.name, d.status, d.muted, d.created_at, d.last_seen_at, \
     d.identity_data, d.public_key, d.heartbeat_interval_ms, d.silent_after, d.silent_at, \
     (SELECT COUNT(*) FROM subjects s WHERE s.device_id = d.id AND s.level = 'CRITICAL') AS alert_count";

impl Store {
    /// Adds a device; `token_hash` is set for devices that report with a server-issued token.
    pub async fn add_device(
        &self,
        name: &str,
        status: DeviceStatus,
        token_hash: Option<&str>,
    ) -> Result<Device, StorageError> {
        let id = new_id();
        let now = now_millis();
        sqlx::query(
            "INSERT INTO devices (id, name, status, token_hash, muted, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5)",
        )
        .bind(&id)
        .bind(name)
        .bind(status.as_str())
        .bind(token_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|error| {
            StorageError::from_unique_violation(error, || {
                format!("a device named `{name}` exists already: choose another name")
            })
        })?;
        Ok(Device {
            id,
            name: name.to_owned(),
            status,
            muted: false,
            created_at: from_millis(now),
            last_seen_at: None,
            alert_count: 0,
            identity: None,
            key_fingerprint: None,
            heartbeat_interval: None,
            silent_after: SilentAfter::ServerDefault,
            silent_since: None,
        })
    }

    /// The devices that asked with this (canonical) identity, each with its own key.
    pub async fn devices_by_identity(&self, identity: &str) -> Result<Vec<Device>, StorageError> {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.identity_data = $1 ORDER BY d.created_at"
        );
        let rows = sqlx::query(&sql)
            .bind(identity)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(device_from_row).collect()
    }

    /// Adds a device that asked to join with an identity and a public key. Its name is
    /// `name`, or `name` with a suffix when another device has that name; a device with the
    /// same identity and key made meanwhile (by another request or replica) is a conflict.
    pub async fn add_identified_device(
        &self,
        name: &str,
        identity: &str,
        public_key: &str,
        fingerprint: &str,
        status: DeviceStatus,
    ) -> Result<Device, StorageError> {
        let id = new_id();
        let now = now_millis();
        let mut candidate = name.to_owned();
        for attempt in 0.. {
            let result = sqlx::query(
                "INSERT INTO devices (id, name, status, identity_data, public_key, key_fingerprint, muted, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
            )
            .bind(&id)
            .bind(&candidate)
            .bind(status.as_str())
            .bind(identity)
            .bind(public_key)
            .bind(fingerprint)
            .bind(now)
            .execute(&self.pool)
            .await;
            match result {
                Ok(_) => break,
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() && attempt < 5 => {
                    let twins = self.devices_by_identity(identity).await?;
                    if twins
                        .iter()
                        .any(|twin| twin.key_fingerprint.as_deref() == Some(fingerprint))
                    {
                        return Err(StorageError::Conflict(
                            "a device with this identity and key exists already".into(),
                        ));
                    }
                    candidate = format!("{name}-{}", &id[..4 + attempt]);
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Device {
            id,
            name: candidate,
            status,
            muted: false,
            created_at: from_millis(now),
            last_seen_at: None,
            alert_count: 0,
            identity: Some(identity.to_owned()),
            key_fingerprint: Some(fingerprint.to_owned()),
            heartbeat_interval: None,
            silent_after: SilentAfter::ServerDefault,
            silent_since: None,
        })
    }

    /// Drops the oldest pending devices beyond the newest `keep`; returns how many went.
    pub async fn drop_oldest_pending(&self, keep: u64) -> Result<u64, StorageError> {
        let result = sqlx::query(
            "DELETE FROM devices WHERE status = 'pending' AND id NOT IN \
             (SELECT id FROM devices WHERE status = 'pending' \
              ORDER BY created_at DESC, id DESC LIMIT $1)",
        )
        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// The device token issued last to a device: its id (`jti`) and when it was issued.
    pub async fn device_token_issued(
        &self,
        device_id: &str,
    ) -> Result<Option<(String, SystemTime)>, StorageError> {
        let row = sqlx::query(
            "SELECT device_token_id, device_token_issued_at FROM devices WHERE id = $1",
        )
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: Option<String> = row.try_get("device_token_id")?;
        let at: Option<i64> = row.try_get("device_token_issued_at")?;
        Ok(id.zip(at).map(|(id, at)| (id, from_millis(at))))
    }

    /// Notes the device token issued last to a device (its id and time, never the token).
    pub async fn set_device_token_issued(
        &self,
        device_id: &str,
        token_id: &str,
        at: SystemTime,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE devices SET device_token_id = $1, device_token_issued_at = $2 WHERE id = $3",
        )
        .bind(token_id)
        .bind(to_millis(at))
        .bind(device_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces a device's token (for `device token`), returning whether the device exists.
    pub async fn set_device_token(&self, id: &str, token_hash: &str) -> Result<bool, StorageError> {
        let result = sqlx::query("UPDATE devices SET token_hash = $1 WHERE id = $2")
            .bind(token_hash)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn device(&self, id: &str) -> Result<Option<Device>, StorageError> {
        self.device_where("d.id = $1", id).await
    }

    /// The device by id, or else by its (unique) name.
    pub async fn device_by_id_or_name(&self, key: &str) -> Result<Option<Device>, StorageError> {
        self.device_where("d.id = $1 OR d.name = $1", key).await
    }

    pub async fn device_by_token_hash(&self, hash: &str) -> Result<Option<Device>, StorageError> {
        self.device_where("d.token_hash = $1", hash).await
    }

    /// The device matching `condition` (a fixed SQL condition on `d` with one parameter).
    async fn device_where(
        &self,
        condition: &str,
        parameter: &str,
    ) -> Result<Option<Device>, StorageError> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices d WHERE {condition}");
        let row = sqlx::query(&sql)
            .bind(parameter)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| device_from_row(&row)).transpose()
    }

    /// Devices by name, optionally only those with a status, or with open alerts.
    pub async fn devices(
        &self,
        status: Option<DeviceStatus>,
        with_open_alerts: bool,
    ) -> Result<Vec<Device>, StorageError> {
        let sql = format!(
            "SELECT * FROM (SELECT {DEVICE_COLUMNS} FROM devices d WHERE ($1 = '' OR d.status = $1)) listed \
             WHERE ($2 = 0 OR listed.alert_count > 0) ORDER BY listed.name"
        );
        let rows = sqlx::query(&sql)
            .bind(status.map_or("", DeviceStatus::as_str))
            .bind(i64::from(with_open_alerts))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(device_from_row).collect()
    }

    /// Every device with the inventory its Mender client reported last (JSON), by name.
    pub async fn devices_with_inventory(
        &self,
    ) -> Result<Vec<(Device, Option<String>)>, StorageError> {
        let sql =
            format!("SELECT {DEVICE_COLUMNS}, d.inventory FROM devices d ORDER BY d.name, d.id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok((device_from_row(row)?, row.try_get("inventory")?)))
            .collect()
    }

    /// Sets a device's status; returns whether it exists.
    pub async fn set_device_status(
        &self,
        id: &str,
        status: DeviceStatus,
    ) -> Result<bool, StorageError> {
        let result = sqlx::query("UPDATE devices SET status = $1 WHERE id = $2")
            .bind(status.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Mutes or unmutes a device's notifications; returns whether it exists.
    pub async fn set_device_muted(&self, id: &str, muted: bool) -> Result<bool, StorageError> {
        let result = sqlx::query("UPDATE devices SET muted = $1 WHERE id = $2")
            .bind(i64::from(muted))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Keeps a document a device pushed (already validated JSON).
    pub async fn set_device_document(
        &self,
        device_id: &str,
        document: DeviceDocument,
        json: &str,
        at: SystemTime,
    ) -> Result<(), StorageError> {
        let _turn = self.write_turn().await;
        let column = document.column();
        let stamp = match document {
            DeviceDocument::Config => ", config_updated_at = $2",
            DeviceDocument::Inventory => "",
        };
        sqlx::query(&format!(
            "UPDATE devices SET {column} = $1, last_seen_at = $2{stamp} WHERE id = $3"
        ))
        .bind(json)
        .bind(to_millis(at))
        .bind(device_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The document a device pushed last, if any.
    pub async fn device_document(
        &self,
        device_id: &str,
        document: DeviceDocument,
    ) -> Result<Option<String>, StorageError> {
        let column = document.column();
        let row = sqlx::query(&format!("SELECT {column} FROM devices WHERE id = $1"))
            .bind(device_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<Option<String>, _>(column)?,
            None => None,
        })
    }
}

fn device_from_row(row: &AnyRow) -> Result<Device, StorageError> {
    let status: String = row.try_get("status")?;
    let last_seen_at = row
        .try_get::<Option<i64>, _>("last_seen_at")?
        .map(from_millis);
    let silent = row.try_get::<Option<i64>, _>("silent_at")?.is_some();
    Ok(Device {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        status: status.parse().map_err(StorageError::Corrupt)?,
        muted: row.try_get::<i64, _>("muted")? != 0,
        created_at: from_millis(row.try_get("created_at")?),
        last_seen_at,
        alert_count: u64::try_from(row.try_get::<i64, _>("alert_count")?).unwrap_or(0),
        identity: row.try_get("identity_data")?,
        key_fingerprint: row
            .try_get::<Option<String>, _>("public_key")?
            .and_then(|pem| key_fingerprint(&pem).ok()),
        heartbeat_interval: row
            .try_get::<Option<i64>, _>("heartbeat_interval_ms")?
            .and_then(|millis| u64::try_from(millis).ok())
            .map(Duration::from_millis),
        silent_after: SilentAfter::from_column(row.try_get("silent_after")?),
        silent_since: if silent { last_seen_at } else { None },
    })
}
