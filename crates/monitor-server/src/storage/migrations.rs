//! Versioned schema migrations: one list, each step one SQL text for both engines.
//!
//! A step is applied once, in order, in its own transaction, and recorded in
//! `schema_migrations`. On PostgreSQL an advisory lock makes replicas that start together
//! take turns; SQLite serialises writers itself. A database newer than this binary (a
//! version it does not know) is refused rather than used half-understood.

use sqlx::{AnyPool, Row};

use super::sql::{now_millis, Engine, StorageError};

pub(super) struct Migration {
    pub version: i64,
    pub description: &'static str,
    /// Written for both engines: `BIGINT` columns (SQLite takes them as INTEGER) and
    /// `{auto_id}` for a generated integer primary key, the one thing they spell apart.
    pub sql: &'static str,
}

impl Migration {
    fn sql_for(&self, engine: Engine) -> String {
        let auto_id = match engine {
            // Only this exact spelling makes SQLite's rowid the key.
            Engine::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Engine::Postgres => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        };
        self.sql.replace("{auto_id}", auto_id)
    }
}

/// Any number the other users of a shared PostgreSQL are unlikely to pick.
const POSTGRES_MIGRATION_LOCK: i64 = 0x006d_6f6e_6974_6f72;

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "devices, alerts, subjects, users and tokens",
        sql: r#"
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
    id {auto_id},
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
        sql: r#"
CREATE UNIQUE INDEX devices_identity ON devices (identity_data);
CREATE TABLE enrollment_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
"#,
    },
    Migration {
        version: 3,
        description: "notification channels and the notification outbox",
        sql: r#"
CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (kind, target)
);
CREATE TABLE notifications (
    id {auto_id},
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
"#,
    },
    Migration {
        version: 4,
        description: "device inventory (Mender clients' attributes)",
        sql: "ALTER TABLE devices ADD COLUMN inventory TEXT;",
    },
    Migration {
        version: 5,
        description: "admission: one device per identity and key, the device token issued last",
        // Two devices may claim one identity (an impostor and the real one): each identity
        // and key is a device of its own, told apart by its key's fingerprint. Devices
        // admitted before have no fingerprint stored (NULLs never collide); it is computed
        // from their key wherever it is shown or compared.
        sql: r#"
DROP INDEX devices_identity;
ALTER TABLE devices ADD COLUMN key_fingerprint TEXT;
ALTER TABLE devices ADD COLUMN device_token_id TEXT;
ALTER TABLE devices ADD COLUMN device_token_issued_at BIGINT;
CREATE UNIQUE INDEX devices_identity_key ON devices (identity_data, key_fingerprint);
CREATE INDEX devices_by_status_age ON devices (status, created_at);
"#,
    },
    Migration {
        version: 6,
        description: "user tokens say whether they are a login session or an API token",
        // Sessions were the tokens named after the login surface, with an expiry.
        sql: r#"
ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
UPDATE api_tokens SET kind = 'session'
    WHERE expires_at IS NOT NULL AND name IN ('session', 'dashboard');
"#,
    },
    Migration {
        version: 7,
        description: "heartbeats: a device's announced interval and its silence",
        // `silent_after`: NULL the server's `--silent-after`, 0 never, else that many
        // missed heartbeats. `silent_at`: when the silence was raised, NULL while heard.
        sql: r#"
ALTER TABLE devices ADD COLUMN heartbeat_interval_ms BIGINT;
ALTER TABLE devices ADD COLUMN silent_after BIGINT;
ALTER TABLE devices ADD COLUMN silent_at BIGINT;
"#,
    },
    Migration {
        version: 8,
        description: "a channel's filter: min_level, checks and devices",
        // `checks` and `devices`: JSON arrays of strings. The defaults take every alert of
        // every device, as channels did before.
        sql: r#"
ALTER TABLE channels ADD COLUMN min_level TEXT NOT NULL DEFAULT 'OK';
ALTER TABLE channels ADD COLUMN checks TEXT NOT NULL DEFAULT '[]';
ALTER TABLE channels ADD COLUMN devices TEXT NOT NULL DEFAULT '[]';
"#,
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
        let sql = migration.sql_for(engine);
        sqlx::raw_sql(&sql).execute(&mut *transaction).await?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(migration.version)
        .bind(migration.description)
        .bind(now_millis())
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        tracing::info!(version = migration.version, "{}", migration.description);
    }
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store;

    #[test]
    fn both_spellings_leave_no_placeholder() {
        for migration in MIGRATIONS {
            for engine in [Engine::Sqlite, Engine::Postgres] {
                assert!(
                    !migration.sql_for(engine).contains('{'),
                    "{}",
                    migration.version
                );
            }
        }
    }

    #[tokio::test]
    async fn a_database_migrated_by_a_newer_server_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("monitor-server.db");
        let store = Store::open_sqlite(&path).await.unwrap();
        let known = MIGRATIONS.last().unwrap().version;
        assert_eq!(store.schema_version().await.unwrap(), known);
        sqlx::query("INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, 'later', 0)")
            .bind(known + 1)
            .execute(&store.pool)
            .await
            .unwrap();
        store.close().await;
        let error = Store::open_sqlite(&path).await.err().expect("refused");
        assert_eq!(
            error.to_string(),
            format!("the database's schema is at version {}, newer than this server knows ({known}): run a newer monitor-server", known + 1)
        );
        // Opening again at the same version changes nothing.
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("monitor-server.db");
        Store::open_sqlite(&path).await.unwrap().close().await;
        let again = Store::open_sqlite(&path).await.unwrap();
        assert_eq!(again.schema_version().await.unwrap(), known);
    }
}
