//! Secrets kept out of monitor.yaml: read from the file or the environment variable a
//! setting names. Errors name the setting, never the secret.

use std::path::Path;

/// The text of the file `setting` names.
pub(super) fn from_file(file: &Path, setting: &str) -> Result<String, String> {
    std::fs::read_to_string(file)
        .map_err(|error| format!("cannot read {setting} {}: {error}", file.display()))
}

/// The value of the environment variable `setting` names.
pub(super) fn from_env(variable: &str, setting: &str) -> Result<String, String> {
    std::env::var(variable)
        .map_err(|_| format!("the environment variable {variable} ({setting}) is not set"))
}
