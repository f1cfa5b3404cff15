//! What the agent must watch for a check: the sources its kind reads, in terms of the
//! watchers the agent has (lines of a file or a command, a systemd unit, a container,
//! D-Bus signals). The agent's plan maps each to its watcher; a kind says which it needs.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one check asks the agent to watch.
#[derive(Debug, Clone)]
pub enum Watch {
    /// Lines of a log file or of a command's output, matched against `regex`.
    Lines {
        source: LogSource,
        regex: regex::bytes::Regex,
        /// `None`: the settings' `log_lines_before`.
        lines_before: Option<usize>,
        /// `None`: the settings' `log_lines_after`.
        lines_after: Option<usize>,
        /// The check's `alert.description` (Mender's `LOG_ALERT_DETAILS`): the alert's
        /// `details.description`, with `%line_matching` replaced by the line of each match.
        details_template: Option<String>,
        /// Where the check begins on a file it has not read yet (a command's output is a
        /// stream, read from when the command starts).
        from: ReadFrom,
    },
    /// Whether a systemd unit runs (a SysV init script through the unit systemd makes
    /// for it), restarting it when found not running if `restart` says so.
    Unit {
        unit: String,
        restart: Option<RestartPolicy>,
    },
    /// Every systemd unit that enters `failed`, one subject per unit.
    FailedUnits,
    /// Whether a container of the local Docker (or Podman) engine runs.
    Container { name: String },
    /// D-Bus signals matching a match rule and a regex over their text, from `sender` when
    /// it is set (a valid bus name), else from anybody.
    Signal {
        sender: Option<String>,
        regex: Option<regex::bytes::Regex>,
        watch_expression: String,
    },
}

/// Where a log check begins on a file it has not read yet (`from:` in our YAML; Mender's
/// agent reads what the file holds). Lines a check has read are never read again for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// What the file already holds (its last `log_first_read_limit` bytes), then what comes.
    #[default]
    Start,
    /// Only the lines written once the check is live.
    End,
}

impl ReadFrom {
    pub fn is_start(&self) -> bool {
        *self == ReadFrom::Start
    }
}

/// A validated restart policy: at most `max_restarts` within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub max_restarts: u32,
    pub window: Duration,
}

/// Where a log check reads lines from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogSource {
    /// A log file, followed across rotation and truncation. Always absolute.
    File(PathBuf),
    /// A long-running command whose stdout lines are matched (`@docker events` is
    /// `Command("docker events")`). Never empty.
    Command(String),
}

/// Why a log source was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogSourceError {
    #[error("empty source: write an absolute file path such as /var/log/app.log, or @command such as @journalctl -f")]
    Empty,
    #[error("empty command after @: write the command to run, for example @journalctl -f")]
    EmptyCommand,
    #[error("relative path \"{path}\": use an absolute path (starting with /), or @command to read a command's output")]
    RelativePath { path: String },
}

impl FromStr for LogSource {
    type Err = LogSourceError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Some(command) = text.strip_prefix('@') {
            let command = command.trim();
            if command.is_empty() {
                return Err(LogSourceError::EmptyCommand);
            }
            return Ok(LogSource::Command(command.to_owned()));
        }
        if text.is_empty() {
            return Err(LogSourceError::Empty);
        }
        let path = PathBuf::from(text);
        if !path.is_absolute() {
            return Err(LogSourceError::RelativePath {
                path: text.to_owned(),
            });
        }
        Ok(LogSource::File(path))
    }
}

/// As written in check files: the path, or `@command`.
impl fmt::Display for LogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogSource::File(path) => write!(f, "{}", path.display()),
            LogSource::Command(command) => write!(f, "@{command}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sources_are_absolute_paths_or_commands() {
        assert_eq!(
            "@docker events".parse(),
            Ok(LogSource::Command("docker events".to_owned()))
        );
        assert_eq!(
            "/var/log/syslog".parse(),
            Ok(LogSource::File(PathBuf::from("/var/log/syslog")))
        );
        assert_eq!(
            "app.log".parse::<LogSource>().unwrap_err().to_string(),
            "relative path \"app.log\": use an absolute path (starting with /), or @command to read a command's output"
        );
        assert_eq!(
            "@ ".parse::<LogSource>().unwrap_err(),
            LogSourceError::EmptyCommand
        );
        assert_eq!(
            LogSource::Command("journalctl -f".into()).to_string(),
            "@journalctl -f"
        );
    }
}
