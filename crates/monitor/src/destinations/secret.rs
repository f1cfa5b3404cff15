//! Secrets kept out of monitor.yaml: read from the file or the environment variable a
//! setting names. Errors name the setting, never the secret.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A secret file is a token or a URL: a line. More is not a secret file.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The text of the file `setting` names. A file its group or others can read is used, with
/// a warning in the log that names it and the fix (`monitorctl validate` says the same).
pub(super) fn from_file(file: &Path, setting: &str) -> Result<String, String> {
    let cannot_read =
        |error: std::io::Error| format!("cannot read {setting} {}: {error}", file.display());
    let mut opened = std::fs::File::open(file).map_err(cannot_read)?;
    // The mode of the file read, not of whatever the path names a moment later.
    let metadata = opened.metadata().map_err(cannot_read)?;
    if let Some(exposure) =
        monitor_config::secret_file_exposure(file, metadata.permissions().mode())
    {
        tracing::warn!("{setting}: {exposure}; it is used anyway");
    }
    let mut text = String::new();
    opened
        .by_ref()
        .take(MAX_SECRET_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot_read)?;
    if text.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!(
            "{setting} {} is larger than {} KiB: it should hold one line",
            file.display(),
            MAX_SECRET_BYTES / 1024
        ));
    }
    Ok(text)
}

/// The value of the environment variable `setting` names.
pub(super) fn from_env(variable: &str, setting: &str) -> Result<String, String> {
    std::env::var(variable)
        .map_err(|_| format!("the environment variable {variable} ({setting}) is not set"))
}
