//! What SQL on both engines shares: which engine, the error type, and times as
//! milliseconds since the Unix epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monitor_wire::Level;

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
    #[error("{}: {error}: the server must be able to create and change its database files", path.display())]
    File {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
}

impl StorageError {
    pub(super) fn from_unique_violation(
        error: sqlx::Error,
        conflict: impl FnOnce() -> String,
    ) -> Self {
        match &error {
            sqlx::Error::Database(database) if database.is_unique_violation() => {
                StorageError::Conflict(conflict())
            }
            _ => StorageError::Database(error),
        }
    }
}

pub(super) fn level_str(level: Level) -> &'static str {
    match level {
        Level::Ok => "OK",
        Level::Critical => "CRITICAL",
    }
}

pub(super) fn now_millis() -> i64 {
    to_millis(SystemTime::now())
}

pub(super) fn to_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

pub(super) fn from_millis(millis: i64) -> SystemTime {
    if millis >= 0 {
        UNIX_EPOCH + Duration::from_millis(millis.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
    }
}
