//! [`Store`]: the pool, opening it (and migrating), and SQLite's one-writer queue.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor, Row};

use super::migrations;
use super::sql::{Engine, StorageError};

/// What the server keeps, on SQLite or PostgreSQL.
#[derive(Clone)]
pub struct Store {
    pub(super) pool: AnyPool,
    pub(super) engine: Engine,
    /// SQLite has one writer at a time; writers in this process queue here, in order,
    /// instead of in SQLite's busy handler, which sleeps and retries (seconds under load).
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    /// Opens (creating it if needed) the SQLite database at `path`, in WAL mode; it and its
    /// `-wal` and `-shm` files are 0600 whatever the umask.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StorageError> {
        make_private(path).map_err(|error| StorageError::File {
            path: path.to_owned(),
            error,
        })?;
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
}

/// Creates the database file 0600 if missing, and makes it and its companions 0600. SQLite
/// creates `-wal` and `-shm` with the database file's mode, so they follow.
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    Ok(())
}
