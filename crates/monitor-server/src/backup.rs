//! `monitor-server backup <file>`: a consistent copy of the SQLite database, taken while the
//! server keeps serving (see `storage::backup`). PostgreSQL has pg_dump for that.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use monitor_server::settings::Database;
use monitor_server::storage::{BackupError, Overwrite};

#[derive(Args)]
pub struct BackupArgs {
    /// The file to write (readable by its owner only); it must not exist, unless --force.
    file: PathBuf,
    /// Replace the file if it exists.
    #[arg(long)]
    force: bool,
}

pub async fn backup(database: &Database, args: BackupArgs) -> anyhow::Result<()> {
    let path = match database {
        Database::Sqlite(path) => path,
        Database::Url(url) if url.starts_with("sqlite:") => anyhow::bail!(
            "backup needs the SQLite database as --data-dir (or MONITOR_SERVER_DATA_DIR), not as a URL"
        ),
        Database::Url(_) => return Err(BackupError::Postgres.into()),
    };
    // Opening would create an empty database: a typo in --data-dir must not back that up.
    if !path.exists() {
        anyhow::bail!(
            "no database at {}: give the server's --data-dir (or MONITOR_SERVER_DATA_DIR)",
            path.display()
        );
    }
    let store = monitor_server::open_store(database).await?;
    let overwrite = if args.force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    };
    let result = store.backup_sqlite(&args.file, overwrite).await;
    store.close().await;
    result.with_context(|| format!("no backup of {database:?} was made"))?;
    eprintln!("backed up {database:?} to {}", args.file.display());
    // The key is kept apart on purpose (a leaked backup lets nobody report as a device),
    // and a restore needs it: a server refuses a database whose key file is missing.
    let key_file = path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(monitor_server::device_key::KEY_FILE_NAME);
    eprintln!(
        "the device-token key is not in the backup: keep a copy of {} (or of your --key-file) with it; a restore needs both",
        key_file.display()
    );
    Ok(())
}
