//! A check as loaded from the config directory: its id, file, format and validated kind.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use monitor_wire::{CheckId, Subsystem};

use crate::kind::{rename_fields_to_mender, CheckDefinition, CheckKind};
use crate::problem::{lowercase_first, Problem};
use crate::settings::MAX_CONFIG_FILE_BYTES;

/// The file a check came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckFormat {
    /// Our `<subsystem>_<check>.yaml`.
    Yaml,
    /// Mender's `<subsystem>_<check>.sh` with `KEY="value"` lines (parsed, never run).
    MenderShell,
}

impl CheckFormat {
    /// The file extension, without the dot: `yaml` or `sh`.
    pub fn extension(self) -> &'static str {
        match self {
            CheckFormat::Yaml => "yaml",
            CheckFormat::MenderShell => "sh",
        }
    }

    /// `<subsystem>_<check>.<extension>`.
    pub fn file_name(self, id: &CheckId) -> String {
        format!("{}.{}", id.file_stem(), self.extension())
    }
}

/// A check as loaded from the config directory.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: CheckId,
    /// The file it was read from (in `available/`, or in `enabled/` when only there;
    /// `(built in)/<file>` for a default check).
    pub file: PathBuf,
    pub format: CheckFormat,
    /// Whether `enabled/` has an entry for it (a default check without a file: always).
    pub enabled: bool,
    /// A built-in default check (`config/defaults/`), not a file of the config directory.
    pub default: bool,
    pub kind: CheckKind,
}

impl Check {
    /// Whether this check is among those `<subsystem>` names on a command line: its own
    /// subsystem's, and for `dockerevents` also a log check over docker events (alert type
    /// `docker_event`), which is how `create dockerevents` and Mender store them.
    pub fn is_in(&self, subsystem: Subsystem) -> bool {
        self.id.subsystem == subsystem
            || (subsystem == Subsystem::Dockerevents
                && matches!(&self.kind, CheckKind::Log(log) if log.alert.kind.as_deref() == Some("docker_event")))
    }
}

/// Reads a check file's text in either format into a definition, with its warnings.
pub(crate) fn parse_check_text(
    id: &CheckId,
    format: CheckFormat,
    text: &str,
    file: &Path,
) -> Result<(CheckDefinition, Vec<Problem>), Vec<Problem>> {
    match format {
        CheckFormat::Yaml => CheckDefinition::from_yaml(id.subsystem, text, file)
            .map(|checked| (checked, Vec::new())),
        CheckFormat::MenderShell => {
            CheckDefinition::from_mender_shell_with_warnings(id.subsystem, text, file)
        }
    }
}

/// Reads and validates a check file's text in either format: the check and its warnings
/// (problems that do not stop it), or every problem. Problems in a Mender file name its keys
/// (`LOG_PATTERN`), not ours.
pub(crate) fn resolve_check_text(
    id: &CheckId,
    format: CheckFormat,
    text: &str,
    file: &Path,
) -> Result<(CheckKind, Vec<Problem>), Vec<Problem>> {
    let (definition, warnings) = parse_check_text(id, format, text, file)?;
    match definition.resolve(file) {
        Ok(kind) => Ok((kind, warnings)),
        Err(problems) => {
            let problems = problems.into_iter().map(|problem| match format {
                CheckFormat::Yaml => problem,
                CheckFormat::MenderShell => rename_fields_to_mender(id.subsystem, problem),
            });
            Err(warnings.into_iter().chain(problems).collect())
        }
    }
}

/// Why a configuration file (a check file, monitor.yaml) was not read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Larger than [`MAX_CONFIG_FILE_BYTES`]: not read at all (`size` is what was seen).
    TooLarge {
        size: u64,
    },
    /// A folder, a FIFO, a device: nothing a configuration file can be.
    NotAFile,
    Io(io::Error),
}

impl ReadError {
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(error) if error.kind() == io::ErrorKind::NotFound)
    }
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> Self {
        ReadError::Io(error)
    }
}

/// Says what is wrong and what to do, for a problem about the file.
impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::TooLarge { size } => write!(
                f,
                "{size} bytes is more than the {} MiB a configuration file may hold, so it is not read: check and settings files are a few lines; remove this one or move it out of the config directory",
                MAX_CONFIG_FILE_BYTES / (1024 * 1024)
            ),
            ReadError::NotAFile => write!(f, "not a regular file: replace it with a file, or remove it"),
            ReadError::Io(error) => write!(
                f,
                "cannot read: {}: check the file's permissions",
                lowercase_first(error)
            ),
        }
    }
}

/// A configuration file's text, read only when it holds at most [`MAX_CONFIG_FILE_BYTES`]:
/// its size is checked before reading, and the read stops past the limit in case the file
/// grows meanwhile, so a huge or endless file (a log dropped into `available/` by mistake)
/// never costs more memory than the limit.
pub(crate) fn read_config_file(file: &Path) -> Result<String, ReadError> {
    let metadata = fs::metadata(file)?;
    if !metadata.is_file() {
        return Err(ReadError::NotAFile);
    }
    if metadata.len() > MAX_CONFIG_FILE_BYTES {
        return Err(ReadError::TooLarge {
            size: metadata.len(),
        });
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    fs::File::open(file)?
        .take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
        });
    }
    String::from_utf8(bytes).map_err(|_| {
        ReadError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_file_over_the_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("log_huge.yaml");
        // Sparse: the size is what is checked, so no gigabyte is written.
        fs::File::create(&file).unwrap().set_len(1 << 30).unwrap();
        let error = read_config_file(&file).unwrap_err();
        assert_eq!(
            error.to_string(),
            "1073741824 bytes is more than the 1 MiB a configuration file may hold, so it is not read: check and settings files are a few lines; remove this one or move it out of the config directory"
        );

        fs::File::create(&file)
            .unwrap()
            .set_len(MAX_CONFIG_FILE_BYTES)
            .unwrap();
        assert_eq!(
            read_config_file(&file).unwrap().len() as u64,
            MAX_CONFIG_FILE_BYTES
        );
        assert!(read_config_file(&dir.path().join("missing.yaml"))
            .unwrap_err()
            .is_not_found());
        assert_eq!(
            read_config_file(dir.path()).unwrap_err().to_string(),
            "not a regular file: replace it with a file, or remove it"
        );
    }

    #[test]
    fn secret_files_others_can_read_get_a_warning_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        fs::write(&token, "t").unwrap();
        let settings_file = dir.path().join("monitor.yaml");
        let settings = crate::Settings::from_yaml(
            &format!(
                "delivery:\n  backend:\n    url: http://127.0.0.1:9\n    auth: token\n    token_file: {}\n",
                token.display()
            ),
            &settings_file,
        )
        .unwrap();
        for (mode, warned) in [(0o600, false), (0o400, false), (0o640, true), (0o604, true)] {
            fs::set_permissions(&token, fs::Permissions::from_mode(mode)).unwrap();
            let warnings = settings.secret_file_warnings(&settings_file);
            assert_eq!(!warnings.is_empty(), warned, "mode {mode:o}: {warnings:?}");
            if warned {
                assert!(warnings[0].is_warning());
                assert_eq!(
                    warnings[0].to_string(),
                    format!(
                        "{}: delivery.backend.token_file: {} holds a secret and can be read by its group or others (mode {mode:04o}): run chmod 600 {}",
                        settings_file.display(),
                        token.display(),
                        token.display()
                    )
                );
            }
        }
    }
}
