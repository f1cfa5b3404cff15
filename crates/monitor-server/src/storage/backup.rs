//! A consistent copy of a SQLite database while the server keeps serving.
//!
//! `VACUUM INTO` reads the database in one read transaction, which in WAL mode never waits
//! for the writer nor stops it, and writes a compact copy of that snapshot. The copy goes
//! to a new file in the target's directory, created 0600 before SQLite writes to it (the
//! data holds hashes and the device-token key), synced, and only then put in place: a
//! half-made backup never carries the target's name.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use super::sql::{Engine, StorageError};
use super::Store;

/// Whether a backup may replace a file that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    Refuse,
    Replace,
}

/// Why a backup was not made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists already: choose another file, or pass --force to replace it")]
    Exists(PathBuf),
    #[error(
        "backup copies a SQLite database; for PostgreSQL use pg_dump, e.g. \
         `pg_dump --format=custom --file=monitor-server.dump <database URL>`"
    )]
    Postgres,
    #[error("{path}: {error}")]
    File { path: PathBuf, error: io::Error },
    #[error("{0}: the path must be valid UTF-8 for SQLite; choose another file name")]
    NotUtf8(PathBuf),
    #[error("cannot copy the database: {0}")]
    Storage(#[from] StorageError),
}

impl Store {
    /// Writes a consistent copy of this SQLite database to `target` (0600).
    pub async fn backup_sqlite(
        &self,
        target: &Path,
        overwrite: Overwrite,
    ) -> Result<(), BackupError> {
        if self.engine == Engine::Postgres {
            return Err(BackupError::Postgres);
        }
        if overwrite == Overwrite::Refuse && target.symlink_metadata().is_ok() {
            return Err(BackupError::Exists(target.to_owned()));
        }
        let partial = partial_path(target);
        let file_error = |path: &Path| {
            let path = path.to_owned();
            move |error| BackupError::File { path, error }
        };
        // SQLite writes into an empty file that exists; created here, it is private from
        // the start.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(file_error(&partial))?;
        let result = self.vacuum_into(&partial, target, overwrite).await;
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    async fn vacuum_into(
        &self,
        partial: &Path,
        target: &Path,
        overwrite: Overwrite,
    ) -> Result<(), BackupError> {
        let file_error = |path: &Path| {
            let path = path.to_owned();
            move |error| BackupError::File { path, error }
        };
        let partial_text = partial
            .to_str()
            .ok_or_else(|| BackupError::NotUtf8(target.to_owned()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(partial_text)
            .execute(&self.pool)
            .await
            .map_err(StorageError::from)?;
        // VACUUM INTO does not sync what it wrote.
        File::open(partial)
            .and_then(|file| file.sync_all())
            .map_err(file_error(partial))?;
        match overwrite {
            Overwrite::Replace => std::fs::rename(partial, target).map_err(file_error(target))?,
            // A link fails if the target appeared meanwhile, where a rename would replace it.
            Overwrite::Refuse => {
                std::fs::hard_link(partial, target).map_err(|error| {
                    if error.kind() == io::ErrorKind::AlreadyExists {
                        BackupError::Exists(target.to_owned())
                    } else {
                        BackupError::File {
                            path: target.to_owned(),
                            error,
                        }
                    }
                })?;
                std::fs::remove_file(partial).map_err(file_error(partial))?;
            }
        }
        if let Some(directory) = target
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            File::open(directory)
                .and_then(|directory| directory.sync_all())
                .map_err(file_error(directory))?;
        }
        Ok(())
    }
}

/// `<target>.partial-<pid>`, next to the target so that the rename stays on one filesystem.
fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(format!(".partial-{}", std::process::id()));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[tokio::test]
    async fn a_backup_is_private_and_never_replaces_a_file_unless_asked() {
        let directory = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&directory.path().join("monitor-server.db"))
            .await
            .unwrap();
        let target = directory.path().join("backup.db");
        store
            .backup_sqlite(&target, Overwrite::Refuse)
            .await
            .unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let copy = Store::open_sqlite(&target).await.unwrap();
        assert_eq!(
            copy.schema_version().await.unwrap(),
            store.schema_version().await.unwrap()
        );
        copy.close().await;

        std::fs::write(&target, "keep me").unwrap();
        let error = store
            .backup_sqlite(&target, Overwrite::Refuse)
            .await
            .unwrap_err();
        assert!(matches!(error, BackupError::Exists(_)), "{error}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        store
            .backup_sqlite(&target, Overwrite::Replace)
            .await
            .unwrap();
        assert_ne!(std::fs::read(&target).unwrap(), b"keep me");
        let left: Vec<_> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.contains(".partial-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
