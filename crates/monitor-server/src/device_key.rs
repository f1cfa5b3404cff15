//! Where the device-token signing key lives, apart from the data it protects.
//!
//! The key signs the JWTs devices get from `auth_requests`; whoever holds it can report as
//! any device. So it is kept in its own file (`<data_dir>/device-token.key`, or
//! `--key-file`), 0600, and never in the database: a leaked database (or backup of it)
//! alone lets nobody report. The database keeps only a *check* of the key (an HMAC of a
//! fixed text under it), so replicas given different key files, or a server whose key file
//! went missing, refuse to start instead of signing tokens the others refuse.
//!
//! A database from before this split has the key in its `settings`: the first start with a
//! key file moves it out (written to the file, then removed from the database), so the
//! tokens devices hold keep working. Without a key file (PostgreSQL without `--key-file`)
//! the key stays in the database, as before, and the server warns.
//!
//! `monitor-server key rotate` writes a new key (file replaced atomically, check updated);
//! a running server notices the file changed at its next device request and uses the new
//! key, so devices get 401 with their old JWT and authenticate again. Device tokens made by
//! `device add` are random secrets kept hashed, not JWTs: rotation does not touch them.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use ring::hmac;

use crate::jwt::{JwtError, JwtKeys};
use crate::storage::{StorageError, Store};

/// The `settings` key the signing key had before it moved to a file (and still has when
/// no key file is given).
const KEY_IN_DATABASE: &str = "device_jwt.hs256_key";
/// The `settings` key of the key's check (never the key itself).
const KEY_CHECK: &str = "device_jwt.key_check";
/// The key file's name in the data directory.
pub const KEY_FILE_NAME: &str = "device-token.key";

/// Where the key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceKeyLocation {
    /// A 0600 file holding the key in hex.
    File(PathBuf),
    /// The database's `settings` (PostgreSQL without `--key-file`): a leaked database then
    /// leaks the key.
    Database,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceKeyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{}: {error}: the device-token key file must be readable and writable by the server", path.display())]
    File {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: not a device-token key (64 hex digits): restore the file, or run `monitor-server key rotate` (devices then authenticate again)", path.display())]
    Malformed { path: PathBuf },
    #[error("{}: this is not the device-token key the database was used with (another replica's or an older one): give every replica the same key file, or run `monitor-server key rotate` (devices then authenticate again)", path.display())]
    Mismatch { path: PathBuf },
    #[error("{}: the device-token key file is missing, but the database was used with one: restore it (from a backup or another replica), or run `monitor-server key rotate` (devices then authenticate again)", path.display())]
    Missing { path: PathBuf },
    #[error("the device-token key was moved out of the database into a file: give its path with --key-file")]
    MovedOut,
}

/// The check of a key kept in the database: proves which key without revealing it.
fn key_check(key: &[u8]) -> String {
    let check = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        b"monitor-server device-token key check",
    );
    hex::encode(check.as_ref())
}

/// What identifies a version of the key file, so a change is noticed without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    modified: Option<SystemTime>,
    length: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        inode: metadata.ino(),
        modified: metadata.modified().ok(),
        length: metadata.len(),
    })
}

/// Reads the key file, if there is one; a file others may read is made private (and said).
fn read_key_file(path: &Path) -> Result<Option<Vec<u8>>, DeviceKeyError> {
    let file_error = |error| DeviceKeyError::File {
        path: path.to_owned(),
        error,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(file_error(error)),
    };
    let mode = std::fs::metadata(path).map_err(file_error)?.mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "the device-token key file was readable by others: made it 0600");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(file_error)?;
    }
    match hex::decode(text.trim()) {
        Ok(key) if key.len() >= 32 => Ok(Some(key)),
        _ => Err(DeviceKeyError::Malformed {
            path: path.to_owned(),
        }),
    }
}

/// Writes the key file atomically (a 0600 temporary file, fsynced, renamed over it).
fn write_key_file(path: &Path, key: &[u8]) -> Result<(), DeviceKeyError> {
    let file_error = |error| DeviceKeyError::File {
        path: path.to_owned(),
        error,
    };
    let directory = path.parent().unwrap_or(Path::new("."));
    let temporary = directory.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map_or_else(|| KEY_FILE_NAME.into(), |name| name.to_string_lossy()),
        std::process::id()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        // The mode above is masked by the umask only to be narrower; make sure anyway.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(file, "{}", hex::encode(key))?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(directory)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(file_error)
}

/// Reads the key where it lives, moving it out of the database once, and checks it is the
/// key the database was used with.
async fn load(store: &Store, location: &DeviceKeyLocation) -> Result<Vec<u8>, DeviceKeyError> {
    let path = match location {
        DeviceKeyLocation::Database => {
            if store.setting(KEY_CHECK).await?.is_some()
                && store.setting(KEY_IN_DATABASE).await?.is_none()
            {
                return Err(DeviceKeyError::MovedOut);
            }
            return Ok(store.shared_secret(KEY_IN_DATABASE).await?);
        }
        DeviceKeyLocation::File(path) => path,
    };
    let in_file = read_key_file(path)?;
    let in_database = match store.setting(KEY_IN_DATABASE).await? {
        Some(text) => Some(
            hex::decode(&text)
                .map_err(|error| StorageError::Corrupt(format!("{KEY_IN_DATABASE}: {error}")))?,
        ),
        None => None,
    };
    let file_existed = in_file.is_some();
    let key = match (in_file, &in_database) {
        (Some(key), _) => key,
        (None, Some(key)) => key.clone(),
        (None, None) => crate::credentials::random_bytes::<32>().to_vec(),
    };
    let check = key_check(&key);
    if store.claim_setting(KEY_CHECK, &check).await? != check {
        return Err(if file_existed {
            DeviceKeyError::Mismatch { path: path.clone() }
        } else {
            DeviceKeyError::Missing { path: path.clone() }
        });
    }
    if !file_existed {
        write_key_file(path, &key)?;
    }
    if in_database.is_some() {
        store.remove_setting(KEY_IN_DATABASE).await?;
        tracing::info!(path = %path.display(), "moved the device-token key out of the database into its own file");
    }
    Ok(key)
}

/// Makes a new key where the key lives: devices holding a JWT signed with the old one get
/// 401 and authenticate again. With a key file, every replica needs the new file.
pub async fn rotate(store: &Store, location: &DeviceKeyLocation) -> Result<(), DeviceKeyError> {
    let key = crate::credentials::random_bytes::<32>();
    match location {
        DeviceKeyLocation::File(path) => {
            write_key_file(path, &key)?;
            store.set_setting(KEY_CHECK, &key_check(&key)).await?;
            store.remove_setting(KEY_IN_DATABASE).await?;
        }
        DeviceKeyLocation::Database => {
            store
                .set_setting(KEY_IN_DATABASE, &hex::encode(key))
                .await?;
            store.remove_setting(KEY_CHECK).await?;
        }
    }
    Ok(())
}

struct Loaded {
    keys: Arc<JwtKeys>,
    stamp: Option<FileStamp>,
    secret: Vec<u8>,
}

/// The device-token key in use, reloaded when it is rotated.
pub struct DeviceKeys {
    store: Store,
    location: DeviceKeyLocation,
    loaded: RwLock<Loaded>,
}

impl DeviceKeys {
    /// Loads the key (moving it out of the database once, making it at first start).
    pub async fn open(
        store: Store,
        location: DeviceKeyLocation,
    ) -> Result<DeviceKeys, DeviceKeyError> {
        let secret = load(&store, &location).await?;
        let stamp = match &location {
            DeviceKeyLocation::File(path) => stamp(path),
            DeviceKeyLocation::Database => None,
        };
        Ok(DeviceKeys {
            store,
            location,
            loaded: RwLock::new(Loaded {
                keys: Arc::new(JwtKeys::new(&secret)),
                stamp,
                secret,
            }),
        })
    }

    /// The keys now: the file is read again when it changed (a rotation).
    fn current(&self) -> Arc<JwtKeys> {
        if let DeviceKeyLocation::File(path) = &self.location {
            let now = stamp(path);
            let known = self.loaded.read().expect("key lock").stamp;
            if now.is_some() && now != known {
                match read_key_file(path) {
                    Ok(Some(secret)) => self.replace(secret, now),
                    Ok(None) => {}
                    Err(error) => tracing::error!("keeping the key in use: {error}"),
                }
            }
        }
        self.loaded.read().expect("key lock").keys.clone()
    }

    fn replace(&self, secret: Vec<u8>, stamp: Option<FileStamp>) {
        let mut loaded = self.loaded.write().expect("key lock");
        if loaded.secret != secret {
            tracing::info!(
                "the device-token key changed: devices with older tokens authenticate again"
            );
        }
        *loaded = Loaded {
            keys: Arc::new(JwtKeys::new(&secret)),
            stamp,
            secret,
        };
    }

    /// A device JWT for `device_id`.
    pub fn issue(&self, device_id: &str, now: SystemTime) -> String {
        self.current().issue(device_id, now)
    }

    /// The device JWT with id `token_id` issued at `issued_at`, signed with the key in use:
    /// the same inputs give the same token (see `JwtKeys::issue_with_id`).
    pub fn issue_with_id(&self, device_id: &str, token_id: &str, issued_at: SystemTime) -> String {
        self.current().issue_with_id(device_id, token_id, issued_at)
    }

    /// The device id of a valid JWT. A signature that does not verify with a key kept in
    /// the database may be a rotation by another process: the key is read again once.
    pub async fn verify(&self, token: &str, now: SystemTime) -> Result<String, JwtError> {
        let result = self.current().verify(token, now);
        if result != Err(JwtError::Signature) || self.location != DeviceKeyLocation::Database {
            return result;
        }
        match self.store.setting(KEY_IN_DATABASE).await {
            Ok(Some(text)) => match hex::decode(text) {
                Ok(secret) if secret != self.loaded.read().expect("key lock").secret => {
                    self.replace(secret, None);
                    self.current().verify(token, now)
                }
                _ => result,
            },
            _ => result,
        }
    }
}
