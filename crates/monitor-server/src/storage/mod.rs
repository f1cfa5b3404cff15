//! Everything the server keeps, behind one type over two engines.
//!
//! [`Store`] speaks SQL that SQLite (3.35+) and PostgreSQL both accept, through sqlx's `Any`
//! driver; only the schema ([`migrations`]) is written twice. SQLite runs in WAL mode for a
//! single server; PostgreSQL lets several replicas share one database, so nothing that
//! matters lives only in a server's memory.
//!
//! Conventions that keep the two engines alike: times are `BIGINT` milliseconds since the
//! Unix epoch, flags are `BIGINT` 0/1, JSON is `TEXT`. A write transaction starts with a
//! write, so SQLite takes its lock at once instead of failing to upgrade a read.

mod migrations;
mod notifications;

use notifications::notification_targets;
pub use notifications::{Channel, ChannelKind, ClaimedNotification};

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monitor_wire::{Alert, Details, Level, Subject, Timestamp};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

/// Which database engine a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "the database's schema is at version {applied}, newer than this server knows ({known}): \
         run a newer monitor-server"
    )]
    SchemaTooNew { applied: i64, known: i64 },
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

impl StorageError {
    fn from_unique_violation(error: sqlx::Error, conflict: impl FnOnce() -> String) -> Self {
        match &error {
            sqlx::Error::Database(database) if database.is_unique_violation() => {
                StorageError::Conflict(conflict())
            }
            _ => StorageError::Database(error),
        }
    }
}

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
}

/// An alert as stored: the device's alert plus the server's id and arrival time.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub id: i64,
    pub device_id: String,
    pub alert: Alert,
    pub received_at: SystemTime,
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

/// What [`Store::record_alerts`] did.
#[derive(Debug, Default)]
pub struct RecordedAlerts {
    /// The alerts that were new (not resends).
    pub stored: Vec<StoredAlert>,
    /// Some of them changed a subject's state and wait in the notification outbox.
    pub notifications_queued: bool,
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

/// A user of the management API.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: String,
}

/// What the server keeps, on SQLite or PostgreSQL.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    /// SQLite has one writer at a time; writers in this process queue here, in order,
    /// instead of in SQLite's busy handler, which sleeps and retries (seconds under load).
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
}

const DEVICE_COLUMNS: &str = "d.id, d.name, d.status, d.muted, d.created_at, d.last_seen_at, \
     (SELECT COUNT(*) FROM subjects s WHERE s.device_id = d.id AND s.level = 'CRITICAL') AS alert_count";

pub(super) const ALERT_COLUMNS: &str =
    "a.id, a.device_id, a.name, a.level, a.subject_name, a.subject_type, \
     a.subject_status, a.details, a.timestamp, a.received_at";

impl Store {
    /// Opens (creating it if needed) the SQLite database at `path`, in WAL mode.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StorageError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Store::open(&url, Engine::Sqlite).await
    }

    /// Opens a database by URL: `postgres://…` / `postgresql://…` or `sqlite://…`.
    pub async fn open_url(url: &str) -> Result<Store, StorageError> {
        let engine = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else {
            return Err(StorageError::Database(sqlx::Error::Configuration(
                "the database URL must start with postgres:// or sqlite://".into(),
            )));
        };
        Store::open(url, engine).await
    }

    async fn open(url: &str, engine: Engine) -> Result<Store, StorageError> {
        sqlx::any::install_default_drivers();
        let options = AnyPoolOptions::new()
            .max_connections(match engine {
                Engine::Sqlite => 4,
                Engine::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        // WAL: readers never wait for the writer; NORMAL is durable in WAL
                        // mode but for the last commits on a power cut.
                        connection
                            .execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                    }
                    Ok(())
                })
            });
        let pool = options.connect(url).await?;
        migrations::migrate(&pool, engine).await?;
        Ok(Store {
            pool,
            engine,
            sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Held while writing on SQLite (see `sqlite_writer`); nothing on PostgreSQL, whose
    /// writers do not exclude each other.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.engine {
            Engine::Sqlite => Some(self.sqlite_writer.lock().await),
            Engine::Postgres => None,
        }
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The schema version, and that the database answers.
    pub async fn schema_version(&self) -> Result<i64, StorageError> {
        Ok(
            sqlx::query("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?
                .try_get("version")?,
        )
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- devices

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
        })
    }

    /// The device with this (canonical) identity, and the public key it was admitted with.
    pub async fn device_by_identity(
        &self,
        identity: &str,
    ) -> Result<Option<(Device, Option<String>)>, StorageError> {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS}, d.public_key FROM devices d WHERE d.identity_data = $1"
        );
        let row = sqlx::query(&sql)
            .bind(identity)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((device_from_row(&row)?, row.try_get("public_key")?)))
            .transpose()
    }

    /// Adds a device that asked to join with an identity and a public key. Its name is
    /// `name`, or `name` with a suffix when another device has that name; a device with the
    /// same identity made meanwhile (by another request or replica) is a conflict.
    pub async fn add_identified_device(
        &self,
        name: &str,
        identity: &str,
        public_key: &str,
        status: DeviceStatus,
    ) -> Result<Device, StorageError> {
        let id = new_id();
        let now = now_millis();
        let mut candidate = name.to_owned();
        for attempt in 0.. {
            let result = sqlx::query(
                "INSERT INTO devices (id, name, status, identity_data, public_key, muted, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6)",
            )
            .bind(&id)
            .bind(&candidate)
            .bind(status.as_str())
            .bind(identity)
            .bind(public_key)
            .bind(now)
            .execute(&self.pool)
            .await;
            match result {
                Ok(_) => break,
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() && attempt < 5 => {
                    if self.device_by_identity(identity).await?.is_some() {
                        return Err(StorageError::Conflict(
                            "a device with this identity exists already".into(),
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
        })
    }

    /// Stores an enrollment token's hash: devices presenting it are accepted at once.
    pub async fn add_enrollment_token(
        &self,
        name: &str,
        token_hash: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO enrollment_tokens (id, name, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_id())
        .bind(name)
        .bind(token_hash)
        .bind(now_millis())
        .bind(expires_at.map(to_millis))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether an enrollment token exists and has not expired at `now`.
    pub async fn enrollment_token_valid(
        &self,
        token_hash: &str,
        now: SystemTime,
    ) -> Result<bool, StorageError> {
        let row = sqlx::query(
            "SELECT id FROM enrollment_tokens \
             WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(token_hash)
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// A random secret every replica shares: made by the first one that asks.
    pub async fn shared_secret(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let fresh = hex::encode(crate::credentials::random_bytes::<32>());
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(&fresh)
        .execute(&self.pool)
        .await?;
        let stored = self
            .setting(key)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("the setting {key} vanished")))?;
        hex::decode(&stored).map_err(|error| StorageError::Corrupt(format!("{key}: {error}")))
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

    /// Records that the device was heard from.
    pub async fn touch_device(&self, id: &str, at: SystemTime) -> Result<(), StorageError> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2")
            .bind(to_millis(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- alerts

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
        let channels = notification_targets(&mut transaction, device_id).await?;
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
            .fetch_optional(&mut *transaction)
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
            .fetch_optional(&mut *transaction)
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
            .execute(&mut *transaction)
            .await?;
            if changes_state {
                for channel in &channels {
                    self.queue_notification(
                        &mut transaction,
                        device_id,
                        channel,
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
        transaction.commit().await?;
        Ok(recorded)
    }

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

    // ---- what devices push about themselves

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

    // ---- users and their tokens

    pub async fn add_user(&self, email: &str, password_hash: &str) -> Result<User, StorageError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(email)
        .bind(password_hash)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(|error| {
            StorageError::from_unique_violation(error, || {
                format!("a user with the email `{email}` exists already")
            })
        })?;
        Ok(User {
            id,
            email: email.to_owned(),
            password_hash: password_hash.to_owned(),
        })
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StorageError> {
        let row = sqlx::query("SELECT id, email, password_hash FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    /// Stores a token's hash for a user; `expires_at` None never expires.
    pub async fn add_api_token(
        &self,
        user_id: &str,
        name: &str,
        token_hash: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<String, StorageError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(name)
        .bind(token_hash)
        .bind(now_millis())
        .bind(expires_at.map(to_millis))
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Forgets tokens that expired before `now` (old sessions); returns how many.
    pub async fn remove_expired_tokens(&self, now: SystemTime) -> Result<u64, StorageError> {
        let result =
            sqlx::query("DELETE FROM api_tokens WHERE expires_at IS NOT NULL AND expires_at <= $1")
                .bind(to_millis(now))
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected())
    }

    /// The user a token belongs to, if the token exists and has not expired at `now`.
    pub async fn user_by_token_hash(
        &self,
        token_hash: &str,
        now: SystemTime,
    ) -> Result<Option<User>, StorageError> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.password_hash FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(token_hash)
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    // ---- settings shared by every replica

    pub async fn setting(&self, key: &str) -> Result<Option<String>, StorageError> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("value")?),
            None => None,
        })
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn device_from_row(row: &AnyRow) -> Result<Device, StorageError> {
    let status: String = row.try_get("status")?;
    Ok(Device {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        status: status.parse().map_err(StorageError::Corrupt)?,
        muted: row.try_get::<i64, _>("muted")? != 0,
        created_at: from_millis(row.try_get("created_at")?),
        last_seen_at: row
            .try_get::<Option<i64>, _>("last_seen_at")?
            .map(from_millis),
        alert_count: u64::try_from(row.try_get::<i64, _>("alert_count")?).unwrap_or(0),
    })
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

fn user_from_row(row: &AnyRow) -> Result<User, StorageError> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
    })
}

fn level_str(level: Level) -> &'static str {
    match level {
        Level::Ok => "OK",
        Level::Critical => "CRITICAL",
    }
}

/// A random id in UUID v4 form.
pub fn new_id() -> String {
    let mut bytes = crate::credentials::random_bytes::<16>();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub(crate) fn now_millis() -> i64 {
    to_millis(SystemTime::now())
}

pub(crate) fn to_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn from_millis(millis: i64) -> SystemTime {
    if millis >= 0 {
        UNIX_EPOCH + Duration::from_millis(millis.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
    }
}
