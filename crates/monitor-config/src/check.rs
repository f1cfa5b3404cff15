//! One check: its file model ([`CheckDefinition`]) and its validated form ([`CheckKind`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use monitor_wire::{CheckId, Subsystem};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::problem::{deserialize_all, nested_problems, parse_yaml, NestedCheck, Problem};
use crate::settings::MAX_CONTEXT_LINES;
use monitor_wire::duration::Expiration;

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

/// What a log check's alerts say instead of the defaults (Mender's `LOG_ALERT_*`).
/// Also the `alert:` map of a log check file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertOverrides {
    /// The alert name; default `Log file contains <pattern>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `details.description` of the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free text for the alert details; may hold `%line_matching`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// `subject.status`; default `LOGCONTAINS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `subject.type`; default `log` (`docker_event` for dockerevents checks).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl AlertOverrides {
    /// Nothing overridden.
    pub fn is_empty(&self) -> bool {
        *self == AlertOverrides::default()
    }
}

/// A validated log (or dockerevents) check.
#[derive(Debug, Clone)]
pub struct LogCheck {
    /// The regex as written; Mender's alert name quotes it.
    pub pattern: String,
    /// `pattern`, compiled. Lines are matched as bytes, so invalid UTF-8 does not hide a match.
    pub regex: regex::bytes::Regex,
    pub source: LogSource,
    /// `None`: use the settings' `default_log_pattern_expiration`.
    pub expiration: Option<Expiration>,
    /// `None`: use the settings' `log_lines_before`.
    pub lines_before: Option<usize>,
    /// `None`: use the settings' `log_lines_after`.
    pub lines_after: Option<usize>,
    pub alert: AlertOverrides,
}

/// How a service is managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    /// A systemd unit (written `systemd`).
    Systemd,
    /// A SysV init script (written `sysV`; `sysv` is accepted too).
    SysV,
    /// A Docker container, by name or id (written `docker`; beyond Mender).
    Docker,
}

impl ServiceKind {
    /// As Mender writes it: `systemd` or `sysV` (and `docker`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Systemd => "systemd",
            ServiceKind::SysV => "sysV",
            ServiceKind::Docker => "docker",
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service type that is neither `systemd` nor `sysV`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown service type \"{0}\": use systemd, sysV or docker")]
pub struct UnknownServiceKind(pub String);

impl FromStr for ServiceKind {
    type Err = UnknownServiceKind;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            text if text.eq_ignore_ascii_case("systemd") => Ok(ServiceKind::Systemd),
            text if text.eq_ignore_ascii_case("sysv") => Ok(ServiceKind::SysV),
            text if text.eq_ignore_ascii_case("docker") => Ok(ServiceKind::Docker),
            _ => Err(UnknownServiceKind(text.to_owned())),
        }
    }
}

impl Serialize for ServiceKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ServiceKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A validated service check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCheck {
    /// The service as the user wrote it (`crasher` or `crasher.service`); never empty, no
    /// spaces or slashes.
    pub name: String,
    pub kind: ServiceKind,
    /// Restart the unit when it is found not running, within limits.
    pub restart: Option<RestartPolicy>,
}

/// Unit name suffixes that systemd knows and a service check may watch.
const UNIT_SUFFIXES: [&str; 7] = [
    ".service", ".socket", ".timer", ".mount", ".target", ".path", ".scope",
];

impl ServiceCheck {
    /// The systemd unit: `crasher` is `crasher.service`; `cron.timer` stays as it is.
    pub fn unit_name(&self) -> String {
        if UNIT_SUFFIXES
            .iter()
            .any(|suffix| self.name.ends_with(suffix))
        {
            self.name.clone()
        } else {
            format!("{}.service", self.name)
        }
    }
}

/// A validated D-Bus check.
#[derive(Debug, Clone)]
pub struct DbusCheck {
    /// The bus name to watch (Mender's `DBUS_NAME`); may be empty. No whitespace.
    pub bus_name: String,
    /// The regex over signals as `dbus-monitor` prints them; empty matches every signal.
    pub pattern: String,
    /// `pattern`, compiled; `None` when the pattern is empty.
    pub regex: Option<regex::bytes::Regex>,
    /// A D-Bus match rule (`type='signal',interface='...'`); empty watches the whole system bus.
    pub watch_expression: String,
    /// `None`: use the settings' `default_log_pattern_expiration`.
    pub expiration: Option<Expiration>,
}

/// What a check watches, validated.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// Log and dockerevents checks.
    Log(LogCheck),
    Service(ServiceCheck),
    Dbus(DbusCheck),
}

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

/// A log (or dockerevents) check file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogDefinition {
    /// The regex a line must match.
    pub pattern: String,
    /// An absolute file path, or `@command` to match a command's output.
    pub source: String,
    /// How long the alert stays CRITICAL after the last match; absent: the settings' default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Expiration>,
    /// Context lines before the match; absent: the settings' `log_lines_before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines_before: Option<usize>,
    /// Context lines after the match; absent: the settings' `log_lines_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines_after: Option<usize>,
    /// What the alert says instead of the defaults.
    #[serde(default, skip_serializing_if = "AlertOverrides::is_empty")]
    pub alert: AlertOverrides,
}

/// A service check file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDefinition {
    /// The service (`crasher` or `crasher.service`).
    pub name: String,
    /// `systemd` or `sysV`.
    #[serde(rename = "type")]
    pub kind: ServiceKind,
    /// Remediation besides the alert, for units without `Restart=` (monit's classic job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
}

/// The `on_failure:` map of a service check file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnFailure {
    /// What to do when the service is found not running: `restart`.
    pub action: RemediationAction,
    /// At most this many restarts within `window`; then only alerts. Default 3.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// The window of `max_restarts`. Default 10 minutes.
    #[serde(default = "default_restart_window")]
    pub window: Expiration,
}

fn default_max_restarts() -> u32 {
    3
}

fn default_restart_window() -> Expiration {
    Expiration::After(std::time::Duration::from_secs(600))
}

/// What the agent does about a service that is not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemediationAction {
    /// `systemctl restart` the unit.
    Restart,
}

/// A validated restart policy: at most `max_restarts` within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub max_restarts: u32,
    pub window: std::time::Duration,
}

/// A D-Bus check file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbusDefinition {
    /// The bus name to watch (Mender's `DBUS_NAME`).
    pub bus_name: String,
    /// The regex over signals; empty (or absent) matches every signal.
    #[serde(default = "empty_text")]
    pub pattern: String,
    /// A D-Bus match rule; empty (or absent) watches the whole system bus.
    #[serde(default = "empty_text")]
    pub watch_expression: String,
    /// How long the alert stays CRITICAL after the last signal; absent: the settings' default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Expiration>,
}

fn empty_text() -> String {
    String::new()
}

/// A check file's content, before validation: what `monitorctl create` builds and writes,
/// and what a `.yaml` (or converted `.sh`) file reads into. The subsystem is not in the file
/// but in its name, so this serializes without a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CheckDefinition {
    /// For the `log` and `dockerevents` subsystems.
    Log(LogDefinition),
    Service(ServiceDefinition),
    Dbus(DbusDefinition),
}

impl CheckDefinition {
    /// `monitorctl create log <check> <pattern> <file or @command> [expiration]`.
    pub fn log(pattern: impl Into<String>, source: &str, expiration: Option<Expiration>) -> Self {
        CheckDefinition::Log(LogDefinition {
            pattern: pattern.into(),
            source: source.to_owned(),
            expiration,
            lines_before: None,
            lines_after: None,
            alert: AlertOverrides::default(),
        })
    }

    /// `monitorctl create service <name> <systemd|sysV>`.
    pub fn service(name: impl Into<String>, kind: ServiceKind) -> Self {
        CheckDefinition::Service(ServiceDefinition {
            name: name.into(),
            kind,
            on_failure: None,
        })
    }

    /// `monitorctl create dockerevents <check> <container> <action> [expiration]`: a log
    /// check over `docker events`, exactly as Mender builds it. The container and action are
    /// put into the pattern unescaped, as Mender does, so `die|kill` works as a regex.
    pub fn docker_events(container: &str, action: &str, expiration: Option<Expiration>) -> Self {
        let title = format!("Docker container {container} {action}");
        CheckDefinition::Log(LogDefinition {
            pattern: format!(".*container {action}.*name={container}.*"),
            source: "@docker events".to_owned(),
            expiration,
            lines_before: None,
            lines_after: None,
            alert: AlertOverrides {
                name: Some(title.clone()),
                description: Some(title),
                kind: Some("docker_event".to_owned()),
                ..AlertOverrides::default()
            },
        })
    }

    /// `monitorctl create dbus <check> <bus name> <pattern> <watch expression> [expiration]`.
    pub fn dbus(
        bus_name: impl Into<String>,
        pattern: impl Into<String>,
        watch_expression: impl Into<String>,
        expiration: Option<Expiration>,
    ) -> Self {
        CheckDefinition::Dbus(DbusDefinition {
            bus_name: bus_name.into(),
            pattern: pattern.into(),
            watch_expression: watch_expression.into(),
            expiration,
        })
    }

    /// Reads a check file in our YAML format; the subsystem comes from the file's name.
    /// Every unknown, missing or mistyped key is reported.
    pub fn from_yaml(subsystem: Subsystem, text: &str, file: &Path) -> Result<Self, Vec<Problem>> {
        let value = parse_yaml(text, file)?;
        match subsystem {
            Subsystem::Log | Subsystem::Dockerevents => {
                let nested: [(&str, NestedCheck); 1] =
                    [("alert", nested_problems::<AlertOverrides>)];
                deserialize_all::<LogDefinition>(value, file, "", &nested).map(CheckDefinition::Log)
            }
            Subsystem::Service => {
                let nested: [(&str, NestedCheck); 1] =
                    [("on_failure", nested_problems::<OnFailure>)];
                deserialize_all::<ServiceDefinition>(value, file, "", &nested)
                    .map(CheckDefinition::Service)
            }
            Subsystem::Dbus => {
                deserialize_all::<DbusDefinition>(value, file, "", &[]).map(CheckDefinition::Dbus)
            }
            Subsystem::Monitor => Err(vec![agent_only(file)]),
        }
    }

    /// Reads a Mender check file (`KEY="value"` lines) into a definition, without running
    /// it. Problems name Mender's keys (`LOG_PATTERN`) and lines.
    pub fn from_mender_shell(
        subsystem: Subsystem,
        text: &str,
        file: &Path,
    ) -> Result<Self, Vec<Problem>> {
        crate::mender::definition_from_shell(subsystem, text, file)
    }

    /// The file `monitorctl create` writes: a comment naming the check, then the keys that
    /// are set.
    pub fn to_yaml(&self, id: &CheckId) -> Result<String, serde_norway::Error> {
        let body = serde_norway::to_string(self)?;
        Ok(format!("# {} check {}\n{body}", id.subsystem, id.name))
    }

    /// Whether this definition can be stored under `subsystem` (a log definition serves
    /// `log` and `dockerevents`).
    pub fn fits(&self, subsystem: Subsystem) -> bool {
        matches!(
            (self, subsystem),
            (
                CheckDefinition::Log(_),
                Subsystem::Log | Subsystem::Dockerevents
            ) | (CheckDefinition::Service(_), Subsystem::Service)
                | (CheckDefinition::Dbus(_), Subsystem::Dbus)
        )
    }

    /// The subsystem a definition is usually stored under, for messages.
    pub fn subsystem(&self) -> Subsystem {
        match self {
            CheckDefinition::Log(_) => Subsystem::Log,
            CheckDefinition::Service(_) => Subsystem::Service,
            CheckDefinition::Dbus(_) => Subsystem::Dbus,
        }
    }

    /// Validates the definition: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<CheckKind, Vec<Problem>> {
        match self {
            CheckDefinition::Log(definition) => definition.resolve(file).map(CheckKind::Log),
            CheckDefinition::Service(definition) => {
                definition.resolve(file).map(CheckKind::Service)
            }
            CheckDefinition::Dbus(definition) => definition.resolve(file).map(CheckKind::Dbus),
        }
    }
}

impl LogDefinition {
    /// Validates the definition: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<LogCheck, Vec<Problem>> {
        let mut problems = Vec::new();
        let regex = if self.pattern.is_empty() {
            problems.push(Problem::at_field(
                file,
                "pattern",
                "empty pattern: write a regex for the lines to alert on",
            ));
            None
        } else {
            compile_pattern(&self.pattern)
                .map_err(|message| problems.push(Problem::at_field(file, "pattern", message)))
                .ok()
        };
        let source = self
            .source
            .parse::<LogSource>()
            .map_err(|error| problems.push(Problem::at_field(file, "source", error.to_string())))
            .ok();
        for (field, lines) in [
            ("lines_before", self.lines_before),
            ("lines_after", self.lines_after),
        ] {
            if let Some(lines) = lines.filter(|lines| *lines > MAX_CONTEXT_LINES) {
                problems.push(Problem::at_field(
                    file,
                    field,
                    format!("{lines} lines is too many: use at most {MAX_CONTEXT_LINES}"),
                ));
            }
        }
        for (field, value) in [
            ("alert.name", &self.alert.name),
            ("alert.status", &self.alert.status),
            ("alert.type", &self.alert.kind),
        ] {
            if value
                .as_deref()
                .is_some_and(|value| value.trim().is_empty())
            {
                problems.push(Problem::at_field(
                    file,
                    field,
                    "empty: remove the line to use the default, or write a value",
                ));
            }
        }
        match (regex, source) {
            (Some(regex), Some(source)) if problems.is_empty() => Ok(LogCheck {
                pattern: self.pattern.clone(),
                regex,
                source,
                expiration: self.expiration,
                lines_before: self.lines_before,
                lines_after: self.lines_after,
                alert: self.alert.clone(),
            }),
            _ => Err(problems),
        }
    }
}

impl ServiceDefinition {
    /// Validates the definition: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<ServiceCheck, Vec<Problem>> {
        let name = self.name.trim();
        let message = if name.is_empty() {
            Some(
                "empty service name: write the unit, for example crasher or crasher.service"
                    .to_owned(),
            )
        } else if name.contains(char::is_whitespace) || name.contains('/') {
            Some(format!(
                "invalid service name \"{name}\": write the unit name without spaces or slashes, for example crasher.service"
            ))
        } else {
            None
        };
        let mut problems = Vec::new();
        if let Some(message) = message {
            problems.push(Problem::at_field(file, "name", message));
        }
        let restart = self.on_failure.as_ref().and_then(|on_failure| {
            let RemediationAction::Restart = on_failure.action;
            match on_failure.window {
                Expiration::After(window) if !window.is_zero() => Some(RestartPolicy {
                    max_restarts: on_failure.max_restarts,
                    window,
                }),
                _ => {
                    problems.push(Problem::at_field(
                        file,
                        "on_failure.window",
                        "must be a length of time such as 10m: restarts are counted within it",
                    ));
                    None
                }
            }
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ServiceCheck {
            name: name.to_owned(),
            kind: self.kind,
            restart,
        })
    }
}

impl DbusDefinition {
    /// Validates the definition: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<DbusCheck, Vec<Problem>> {
        let mut problems = Vec::new();
        if self.bus_name.contains(char::is_whitespace) {
            problems.push(Problem::at_field(
                file,
                "bus_name",
                format!(
                    "invalid bus name \"{}\": write a D-Bus name without spaces, for example io.mender.AuthenticationManager",
                    self.bus_name
                ),
            ));
        }
        let regex = if self.pattern.is_empty() {
            None
        } else {
            compile_pattern(&self.pattern)
                .map_err(|message| problems.push(Problem::at_field(file, "pattern", message)))
                .ok()
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(DbusCheck {
            bus_name: self.bus_name.clone(),
            pattern: self.pattern.clone(),
            regex,
            watch_expression: self.watch_expression.clone(),
            expiration: self.expiration,
        })
    }
}

/// Compiles a check's pattern; the error is one line quoting the regex error and the pattern.
/// `monitor` checks are the agent's own alerts; no file defines one.
pub(crate) fn agent_only(file: &Path) -> Problem {
    Problem::in_file(
        file,
        "`monitor` is the agent's own subsystem, not a kind of check: name the file log_*, service_*, dbus_* or dockerevents_*",
    )
}

pub(crate) fn compile_pattern(pattern: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::Regex::new(pattern).map_err(|error| regex_error_message(pattern, &error))
}

/// `regex parse error: unclosed group at column 1 of "(abc" — fix the pattern`.
///
/// The regex crate's message spans lines (the pattern, a caret line, `error: ...`); a problem
/// is one line, so the reason and the caret's column are taken out of it.
fn regex_error_message(pattern: &str, error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let reason = lines
                .iter()
                .rev()
                .find_map(|line| line.strip_prefix("error: "))
                .unwrap_or(text.as_str());
            // Single-line patterns are shown as: header, "    <pattern>", "    ^^^", "error: ...".
            let column = match lines.as_slice() {
                [_, _, carets, _] if !pattern.contains('\n') => carets
                    .find('^')
                    .and_then(|position| position.checked_sub(3)),
                _ => None,
            };
            match column {
                Some(column) => format!(
                    "regex parse error: {reason} at column {column} of \"{pattern}\" — fix the pattern"
                ),
                None => format!("regex parse error: {reason} in \"{pattern}\" — fix the pattern"),
            }
        }
        regex::Error::CompiledTooBig(limit) => format!(
            "regex \"{pattern}\" is too big once compiled (over {limit} bytes) — simplify the pattern"
        ),
        other => format!("invalid regex \"{pattern}\": {other} — fix the pattern"),
    }
}

/// Reads a check file's text in either format into a definition.
pub(crate) fn parse_check_text(
    id: &CheckId,
    format: CheckFormat,
    text: &str,
    file: &Path,
) -> Result<CheckDefinition, Vec<Problem>> {
    match format {
        CheckFormat::Yaml => CheckDefinition::from_yaml(id.subsystem, text, file),
        CheckFormat::MenderShell => crate::mender::definition_from_shell(id.subsystem, text, file),
    }
}

/// Reads and validates a check file's text in either format. Problems in a Mender file name
/// its keys (`LOG_PATTERN`), not ours.
pub(crate) fn resolve_check_text(
    id: &CheckId,
    format: CheckFormat,
    text: &str,
    file: &Path,
) -> Result<CheckKind, Vec<Problem>> {
    let definition = parse_check_text(id, format, text, file)?;
    definition.resolve(file).map_err(|problems| match format {
        CheckFormat::Yaml => problems,
        CheckFormat::MenderShell => problems
            .into_iter()
            .map(|problem| crate::mender::rename_fields_to_mender(id.subsystem, problem))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn file() -> PathBuf {
        PathBuf::from("/etc/monitor/available/log_app.yaml")
    }

    #[test]
    fn a_service_may_ask_to_be_restarted_within_limits() {
        let file = PathBuf::from("/etc/monitor/available/service_telldusd.yaml");
        let text = "name: telldusd\ntype: sysV\non_failure:\n  action: restart\n  window: 5m\n";
        let definition = CheckDefinition::from_yaml(Subsystem::Service, text, &file).unwrap();
        let CheckKind::Service(service) = definition.resolve(&file).unwrap() else {
            panic!("a service check")
        };
        assert_eq!(
            service.restart,
            Some(RestartPolicy {
                max_restarts: 3,
                window: Duration::from_secs(300)
            })
        );
        let wrong = "name: telldusd\ntype: systemd\non_failure:\n  action: reboot\n  windw: 5m\n";
        let problems: Vec<String> = CheckDefinition::from_yaml(Subsystem::Service, wrong, &file)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("on_failure.action: unknown variant `reboot`"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("on_failure.windw: unknown key"),
            "{problems:?}"
        );
    }

    #[test]
    fn unit_names_get_service_unless_they_have_a_suffix() {
        let unit = |name: &str| {
            ServiceCheck {
                name: name.to_owned(),
                kind: ServiceKind::Systemd,
                restart: None,
            }
            .unit_name()
        };
        assert_eq!(unit("crasher"), "crasher.service");
        assert_eq!(unit("crasher.service"), "crasher.service");
        assert_eq!(unit("cron.timer"), "cron.timer");
        assert_eq!(unit("docker.socket"), "docker.socket");
        assert_eq!(unit("getty@tty1"), "getty@tty1.service");
        assert_eq!(unit("my.app"), "my.app.service");
    }

    #[test]
    fn service_kinds_parse_mender_spellings() {
        assert_eq!("systemd".parse(), Ok(ServiceKind::Systemd));
        assert_eq!("sysV".parse(), Ok(ServiceKind::SysV));
        assert_eq!("sysv".parse(), Ok(ServiceKind::SysV));
        assert_eq!(
            "upstart".parse::<ServiceKind>().unwrap_err().to_string(),
            "unknown service type \"upstart\": use systemd, sysV or docker"
        );
    }

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

    #[test]
    fn regex_errors_are_one_line_with_the_reason_and_the_fix() {
        let problems = CheckDefinition::log("(abc", "/var/log/app.log", None)
            .resolve(&file())
            .unwrap_err();
        assert_eq!(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["/etc/monitor/available/log_app.yaml: pattern: regex parse error: unclosed group at column 1 of \"(abc\" — fix the pattern"]
        );
        let message = compile_pattern("a{2,1}").unwrap_err();
        assert_eq!(
            message,
            "regex parse error: invalid repetition count range, the start must be <= the end at column 2 of \"a{2,1}\" — fix the pattern"
        );
    }

    #[test]
    fn a_log_definition_reports_every_problem() {
        let definition = LogDefinition {
            pattern: "[".to_owned(),
            source: "var/log/app.log".to_owned(),
            expiration: None,
            lines_before: Some(5000),
            lines_after: None,
            alert: AlertOverrides {
                status: Some(" ".to_owned()),
                ..AlertOverrides::default()
            },
        };
        let fields: Vec<Option<String>> = CheckDefinition::Log(definition)
            .resolve(&file())
            .unwrap_err()
            .into_iter()
            .map(|problem| problem.field)
            .collect();
        assert_eq!(
            fields,
            [
                Some("pattern".to_owned()),
                Some("source".to_owned()),
                Some("lines_before".to_owned()),
                Some("alert.status".to_owned())
            ]
        );
    }

    #[test]
    fn docker_events_are_log_checks_like_menders() {
        let definition = CheckDefinition::docker_events(
            "web",
            "die",
            Some(Expiration::After(Duration::from_secs(60))),
        );
        let CheckKind::Log(check) = definition.resolve(&file()).unwrap() else {
            panic!("not a log check");
        };
        assert_eq!(check.pattern, ".*container die.*name=web.*");
        assert_eq!(check.source, LogSource::Command("docker events".to_owned()));
        assert!(check
            .regex
            .is_match(b"2024-01-01 container die 0a1b (image=nginx, name=web)"));
        assert_eq!(
            check.alert.name.as_deref(),
            Some("Docker container web die")
        );
        assert_eq!(
            check.alert.description.as_deref(),
            Some("Docker container web die")
        );
        assert_eq!(check.alert.kind.as_deref(), Some("docker_event"));
        assert!(definition.fits(Subsystem::Dockerevents));
        assert!(definition.fits(Subsystem::Log));
        assert!(!definition.fits(Subsystem::Service));
    }

    #[test]
    fn dbus_empty_pattern_matches_every_signal() {
        let definition = CheckDefinition::dbus("io.mender.AuthenticationManager", "", "", None);
        let CheckKind::Dbus(check) = definition.resolve(&file()).unwrap() else {
            panic!("not a dbus check");
        };
        assert!(check.regex.is_none());
        let problems = CheckDefinition::dbus("io mender", "(", "", None)
            .resolve(&file())
            .unwrap_err();
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn written_yaml_is_short_and_reads_back() {
        let id = CheckId::new(Subsystem::Log, "crasher_app");
        let definition = CheckDefinition::log(
            "ERROR",
            "/root/crasher.log",
            Some(Expiration::After(Duration::from_secs(5))),
        );
        let yaml = definition.to_yaml(&id).unwrap();
        assert_eq!(
            yaml,
            "# log check crasher_app\npattern: ERROR\nsource: /root/crasher.log\nexpiration: 5s\n"
        );
        assert_eq!(
            CheckDefinition::from_yaml(Subsystem::Log, &yaml, &file()),
            Ok(definition)
        );
    }

    #[test]
    fn yaml_problems_cover_every_key() {
        let problems = CheckDefinition::from_yaml(
            Subsystem::Log,
            "pattren: x\nexpiration: soon\nalert:\n  colour: red\n  type: x\n",
            &file(),
        )
        .unwrap_err();
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "/etc/monitor/available/log_app.yaml: pattren: unknown key: use one of pattern, source, expiration, lines_before, lines_after, alert",
                "/etc/monitor/available/log_app.yaml: expiration: invalid duration \"soon\": write seconds (30) or a number followed by a unit, for example 30s, 5m, 2h30m, or never",
                "/etc/monitor/available/log_app.yaml: alert.colour: unknown key: use one of name, description, details, status, type",
                "/etc/monitor/available/log_app.yaml: pattern: missing: add a `pattern:` line",
                "/etc/monitor/available/log_app.yaml: source: missing: add a `source:` line",
            ]
        );
    }
}
