//! A check as loaded from the config directory: its id, file, format and validated kind.

use std::path::{Path, PathBuf};

use monitor_wire::{CheckId, Subsystem};

use crate::kind::{rename_fields_to_mender, CheckDefinition, CheckKind};
use crate::problem::Problem;

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
    /// The file it was read from (in `available/`, or in `enabled/` when only there).
    pub file: PathBuf,
    pub format: CheckFormat,
    /// Whether `enabled/` has an entry for it.
    pub enabled: bool,
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
