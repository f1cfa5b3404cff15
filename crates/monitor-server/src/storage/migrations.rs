//! Versioned schema migrations, one list with each step written for both engines.
//!
//! A step is applied once, in order, in its own transaction, and recorded in
//! `schema_migrations`. On PostgreSQL an advisory lock makes replicas that start together
//! take turns; SQLite serialises writers itself. A database newer than this binary (a
//! version it does not know) is refused rather than used half-understood.

use sqlx::{AnyPool, Row};

use super::{Engine, StorageError};

pub(super) struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// Any number the other users of a shared PostgreSQL are unlikely to pick.
const POSTGRES_MIGRATION_LOCK: i64 = 0x006d_6f6e_6974_6f72;

/// Written once when both engines take the same SQL.
const V2_ADMISSION: &str = r#"
CREATE UNIQUE INDEX devices_identity ON devices (identity_data);
CREATE TABLE enrollment_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
"#;

const V3_NOTIFICATIONS_SQLITE: &str = r#"
CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (kind, target)
);
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    due_at INTEGER NOT NULL,
    claimed_until INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at INTEGER,
    failed INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX notifications_pending ON notifications (sent_at, due_at);
CREATE INDEX notifications_per_channel ON notifications (device_id, channel_id, due_at);
CREATE TABLE notification_alerts (
    notification_id INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    alert_id INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    PRIMARY KEY (notification_id, alert_id)
);
"#;

const V3_NOTIFICATIONS_POSTGRES: &str = r#"
CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (kind, target)
);
CREATE TABLE notifications (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    due_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    sent_at BIGINT,
    failed BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX notifications_pending ON notifications (sent_at, due_at);
CREATE INDEX notifications_per_channel ON notifications (device_id, channel_id, due_at);
CREATE TABLE notification_alerts (
    notification_id BIGINT NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    alert_id BIGINT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    PRIMARY KEY (notification_id, alert_id)
);
"#;

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "devices, alerts, subjects, users and tokens",
        sqlite: r#"
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    token_hash TEXT UNIQUE,
    identity_data TEXT,
    public_key TEXT,
    muted INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER,
    config TEXT,
    config_updated_at INTEGER
);
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    level TEXT NOT NULL,
    subject_name TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_status TEXT NOT NULL,
    details TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX alerts_once ON alerts (device_id, subject_type, subject_name, level, timestamp);
CREATE INDEX alerts_by_time ON alerts (device_id, timestamp);
CREATE TABLE subjects (
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    subject_type TEXT NOT NULL,
    subject_name TEXT NOT NULL,
    level TEXT NOT NULL,
    alert_id INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (device_id, subject_type, subject_name)
);
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
        postgres: r#"
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    token_hash TEXT UNIQUE,
    identity_data TEXT,
    public_key TEXT,
    muted BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT,
    config TEXT,
    config_updated_at BIGINT
);
CREATE TABLE alerts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    level TEXT NOT NULL,
    subject_name TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_status TEXT NOT NULL,
    details TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX alerts_once ON alerts (device_id, subject_type, subject_name, level, timestamp);
CREATE INDEX alerts_by_time ON alerts (device_id, timestamp);
CREATE TABLE subjects (
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    subject_type TEXT NOT NULL,
    subject_name TEXT NOT NULL,
    level TEXT NOT NULL,
    alert_id BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    PRIMARY KEY (device_id, subject_type, subject_name)
);
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    },
    Migration {
        version: 2,
        description: "device admission: identities and enrollment tokens",
        sqlite: V2_ADMISSION,
        postgres: V2_ADMISSION,
    },
    Migration {
        version: 3,
        description: "notification channels and the notification outbox",
        sqlite: V3_NOTIFICATIONS_SQLITE,
        postgres: V3_NOTIFICATIONS_POSTGRES,
    },
];

/// Brings the schema up to date; returns the version it is at.
pub(super) async fn migrate(pool: &AnyPool, engine: Engine) -> Result<i64, StorageError> {
    let mut connection = pool.acquire().await?;
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(POSTGRES_MIGRATION_LOCK)
            .execute(&mut *connection)
            .await?;
    }
    let result = apply_missing(&mut connection, engine).await;
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(POSTGRES_MIGRATION_LOCK)
            .execute(&mut *connection)
            .await?;
    }
    result
}

async fn apply_missing(
    connection: &mut sqlx::AnyConnection,
    engine: Engine,
) -> Result<i64, StorageError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *connection)
    .await?;
    let applied: i64 =
        sqlx::query("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations")
            .fetch_one(&mut *connection)
            .await?
            .try_get("version")?;
    let known = MIGRATIONS.last().map_or(0, |migration| migration.version);
    if applied > known {
        return Err(StorageError::SchemaTooNew { applied, known });
    }
    for migration in MIGRATIONS
        .iter()
        .filter(|migration| migration.version > applied)
    {
        let mut transaction = sqlx::Connection::begin(&mut *connection).await?;
        let sql = match engine {
            Engine::Sqlite => migration.sqlite,
            Engine::Postgres => migration.postgres,
        };
        sqlx::raw_sql(sql).execute(&mut *transaction).await?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(migration.version)
        .bind(migration.description)
        .bind(super::now_millis())
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        tracing::info!(version = migration.version, "{}", migration.description);
    }
    Ok(known)
}
