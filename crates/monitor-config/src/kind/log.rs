//! Log checks (and `dockerevents` checks, which are log checks over `@docker events`, as in
//! Mender): a regex over the lines of a file or of a command's output. CRITICAL on the first
//! match, OK once nothing matched for the expiration.

use std::path::Path;

use monitor_engine::{AlertText, CheckSpec, PatternCheck, SourceAlerts};
use monitor_wire::config_push::{CheckStatus, ConfigCheck, LogCheckConfig};
use monitor_wire::duration::Expiration;
use monitor_wire::{CheckId, Subsystem};
use serde::{Deserialize, Serialize};
use serde_norway::Value;

use crate::create::{CreateArgument, CreateCommand, CreateValues};
use crate::mender::MenderValues;
use crate::pattern::compile_pattern;
use crate::problem::{deserialize_all, nested_problems, NestedCheck, Problem};
use crate::settings::{Settings, MAX_CONTEXT_LINES};
use crate::watch::{LogSource, ReadFrom, Watch};

/// What a log check's alerts say instead of the defaults (Mender's `LOG_ALERT_*`).
/// Also the `alert:` map of a log check file.
///
/// Mender's names are confusing: its `LOG_ALERT_DESCRIPTION` is the alert's *name* (the
/// `alert_description` argument of `monitor_send_alert`, an email's subject), and its
/// `LOG_ALERT_DETAILS` is the alert's description text. Here `name` is the name and
/// `description` the text, so `LOG_ALERT_DESCRIPTION` reads into `name` and
/// `LOG_ALERT_DETAILS` into `description`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertOverrides {
    /// The alert name (Mender's `LOG_ALERT_DESCRIPTION`); default `Log file contains
    /// <pattern>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The alert's `details.description` (Mender's `LOG_ALERT_DETAILS`); `%line_matching`
    /// in it becomes the matching line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The old name of `description`, still read so that existing files keep working;
    /// never written, and refused next to `description`.
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

    /// The description template: `description`, or the old `details`.
    pub fn description_template(&self) -> Option<&str> {
        self.description.as_deref().or(self.details.as_deref())
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
    /// Where the check begins on a file it has not read yet.
    pub from: ReadFrom,
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
    /// `start` (the default): a check new to a file reads what the file holds (at most
    /// the settings' `log_first_read_limit`); `end`: only lines written from then on.
    /// `@command` output is read from when the command starts either way.
    #[serde(default, skip_serializing_if = "ReadFrom::is_start")]
    pub from: ReadFrom,
}

impl LogDefinition {
    /// `monitorctl create log <check> <pattern> <file or @command> [expiration]`.
    pub fn new(pattern: impl Into<String>, source: &str, expiration: Option<Expiration>) -> Self {
        LogDefinition {
            pattern: pattern.into(),
            source: source.to_owned(),
            expiration,
            lines_before: None,
            lines_after: None,
            alert: AlertOverrides::default(),
            from: ReadFrom::Start,
        }
    }

    /// `monitorctl create dockerevents <check> <container> <action> [expiration]`: a log
    /// check over `docker events`, exactly as Mender builds it. The container and action are
    /// put into the pattern unescaped, as Mender does, so `die|kill` works as a regex.
    ///
    /// Mender's `ctl-lib.sh` writes `LOG_ALERT_DESCRIPTION="Docker container <c> <a>"` (the
    /// alert's name), `LOG_ALERT_DETAILS="Alert was raised due to:%line_matching"`,
    /// `LOG_ALERT_STATUS=DOCKEREVENTS_CONTAINER_EVENT` and `LOG_ALERT_TYPE=docker_event`.
    pub fn docker_events(container: &str, action: &str, expiration: Option<Expiration>) -> Self {
        LogDefinition {
            pattern: format!(".*container {action}.*name={container}.*"),
            source: "@docker events".to_owned(),
            expiration,
            lines_before: None,
            lines_after: None,
            alert: AlertOverrides {
                name: Some(format!("Docker container {container} {action}")),
                description: Some("Alert was raised due to:%line_matching".to_owned()),
                details: None,
                status: Some("DOCKEREVENTS_CONTAINER_EVENT".to_owned()),
                kind: Some("docker_event".to_owned()),
            },
            from: ReadFrom::Start,
        }
    }

    /// Reads a check file in our YAML format, reporting every wrong key.
    pub(crate) fn from_yaml(value: Value, file: &Path) -> Result<Self, Vec<Problem>> {
        let nested: [(&str, NestedCheck); 1] = [("alert", nested_problems::<AlertOverrides>)];
        deserialize_all(value, file, "", &nested)
    }

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
        if self.alert.description.is_some() && self.alert.details.is_some() {
            problems.push(Problem::at_field(
                file,
                "alert.details",
                "the old name of alert.description, which is set too: keep only alert.description",
            ));
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
                from: self.from,
            }),
            _ => Err(problems),
        }
    }
}

/// What a description template says for "the matching line", as in Mender.
const LINE_MATCHING: &str = "%line_matching";

/// The keys a Mender log (or dockerevents) check file may set.
pub const MENDER_LOG_KEYS: [&str; 13] = [
    "SERVICE_NAME",
    "LOG_PATTERN",
    "LOG_FILE",
    "LOG_PATTERN_EXPIRATION",
    "LOG_ALERT_LEVEL",
    "LOG_ALERT_DESCRIPTION",
    "LOG_ALERT_DETAILS",
    "LOG_ALERT_STATUS",
    "LOG_ALERT_TYPE",
    "DEFAULT_LOG_LINES_BEFORE",
    "DEFAULT_LOG_LINES_AFTER",
    "LOG_LINES_BEFORE",
    "LOG_LINES_AFTER",
];

impl LogDefinition {
    /// Converts a Mender log check file's values; problems name Mender's keys.
    pub(crate) fn from_mender(values: &mut MenderValues) -> Option<Self> {
        let pattern = values.required("LOG_PATTERN", "<regex>");
        let source = values.required("LOG_FILE", "/var/log/<file> or @<command>");
        let expiration = values.expiration("LOG_PATTERN_EXPIRATION");
        values.parsed("LOG_ALERT_LEVEL", |level| {
            if level.trim().eq_ignore_ascii_case("CRITICAL") {
                Ok(())
            } else {
                Err(format!(
                    "alert level \"{level}\" is not supported, only CRITICAL: set LOG_ALERT_LEVEL=\"CRITICAL\" or remove the line"
                ))
            }
        });
        let lines_before = values
            .lines("LOG_LINES_BEFORE")
            .or_else(|| values.lines("DEFAULT_LOG_LINES_BEFORE"));
        let lines_after = values
            .lines("LOG_LINES_AFTER")
            .or_else(|| values.lines("DEFAULT_LOG_LINES_AFTER"));
        // Mender's LOG_ALERT_DESCRIPTION is the alert's name, its LOG_ALERT_DETAILS the
        // description text (see `AlertOverrides`).
        let alert = AlertOverrides {
            name: values.optional("LOG_ALERT_DESCRIPTION"),
            description: values.optional("LOG_ALERT_DETAILS"),
            details: None,
            status: values.optional("LOG_ALERT_STATUS"),
            kind: values.optional("LOG_ALERT_TYPE"),
        };
        Some(LogDefinition {
            pattern: pattern?,
            source: source?,
            expiration,
            lines_before,
            lines_after,
            alert,
            from: ReadFrom::Start,
        })
    }

    /// The Mender key one of our fields came from.
    pub(crate) fn mender_key(field: &str) -> Option<&'static str> {
        match field {
            "pattern" => Some("LOG_PATTERN"),
            "source" => Some("LOG_FILE"),
            "expiration" => Some("LOG_PATTERN_EXPIRATION"),
            "lines_before" => Some("LOG_LINES_BEFORE"),
            "lines_after" => Some("LOG_LINES_AFTER"),
            "alert.name" => Some("LOG_ALERT_DESCRIPTION"),
            "alert.description" | "alert.details" => Some("LOG_ALERT_DETAILS"),
            "alert.status" => Some("LOG_ALERT_STATUS"),
            "alert.type" => Some("LOG_ALERT_TYPE"),
            _ => None,
        }
    }

    /// `monitorctl create log`.
    pub(crate) const CREATE: CreateCommand = CreateCommand {
        subsystem: Subsystem::Log,
        about: "A regex over a log file, or over a command's output with @command",
        examples: "Examples:\n  monitorctl create log crasher_app ERROR /root/crasher.log 5\n  monitorctl create log kernel 'Out of memory' '@journalctl -kf'",
        arguments: &[
            CreateArgument::text("check", "CHECK", None),
            CreateArgument::text("pattern", "PATTERN", Some("Regular expression matched against each line")),
            CreateArgument::text("source", "SOURCE",
                Some("Absolute path of a log file, or @command whose output is read"),
            ),
            CreateArgument::expiration(Some(
                "Seconds (or 30s, 5m) without a match before the OK; 0 or never: until cleared",
            )),
        ],
    };

    /// `monitorctl create dockerevents`.
    pub(crate) const CREATE_DOCKER_EVENTS: CreateCommand = CreateCommand {
        subsystem: Subsystem::Dockerevents,
        about: "A container event from `docker events`",
        examples: "Example:\n  monitorctl create dockerevents crasher crasher-container die 15",
        arguments: &[
            CreateArgument::text("check", "CHECK", None),
            CreateArgument::text("container", "CONTAINER", None),
            CreateArgument::text("action", "ACTION", Some("die, oom, kill, restart, ...")),
            CreateArgument::expiration(None),
        ],
    };

    /// The check's name and definition from [`LogDefinition::CREATE`]'s arguments.
    pub(crate) fn from_create(values: CreateValues) -> Result<(String, Self), String> {
        let expiration = values.expiration(3)?;
        let definition = LogDefinition::new(values.text(1), &values.text(2), expiration);
        Ok((values.text(0), definition))
    }

    /// The same from [`LogDefinition::CREATE_DOCKER_EVENTS`]'s arguments.
    pub(crate) fn from_create_docker_events(
        values: CreateValues,
    ) -> Result<(String, Self), String> {
        let expiration = values.expiration(3)?;
        let definition = LogDefinition::docker_events(&values.text(1), &values.text(2), expiration);
        Ok((values.text(0), definition))
    }
}

impl LogCheck {
    /// The engine's pattern check: Mender's alert name and status unless overridden, and,
    /// for a command, the alerts about the command itself.
    pub fn engine_spec(&self, id: &CheckId, settings: &Settings) -> CheckSpec {
        let source = match &self.source {
            LogSource::File(_) => None,
            LogSource::Command(command) => {
                let text = |status: &str| AlertText {
                    name: format!("Log source @{command} stopped"),
                    status: status.to_owned(),
                };
                Some(SourceAlerts {
                    subject_type: "log".to_owned(),
                    down: text("SOURCE_DOWN"),
                    up: text("SOURCE_UP"),
                })
            }
        };
        CheckSpec::Pattern(PatternCheck {
            alert_name: self
                .alert
                .name
                .clone()
                .unwrap_or_else(|| format!("Log file contains {}", self.pattern)),
            subject_name: id.name.clone(),
            subject_type: self.alert.kind.clone().unwrap_or_else(|| "log".into()),
            subject_status: self
                .alert
                .status
                .clone()
                .unwrap_or_else(|| "LOGCONTAINS".into()),
            // A template naming the line is filled in by the watcher for each match; the
            // engine's own alerts (the OK) then carry no description.
            description: self
                .alert
                .description_template()
                .filter(|template| !template.contains(LINE_MATCHING))
                .map(str::to_owned),
            expiration: settings.pattern_expiration(self.expiration),
            source,
        })
    }

    /// As the backend's config push shows it (docker events too, as in Mender).
    pub fn config_push(
        &self,
        id: &CheckId,
        status: CheckStatus,
        settings: &Settings,
    ) -> ConfigCheck {
        ConfigCheck::log(
            id.name.clone(),
            status,
            LogCheckConfig {
                pattern: self.pattern.clone(),
                path: self.source.to_string(),
                expire_seconds: settings.expire_seconds(self.expiration),
            },
        )
    }

    pub fn watch(&self) -> Watch {
        Watch::Lines {
            source: self.source.clone(),
            regex: self.regex.clone(),
            lines_before: self.lines_before,
            lines_after: self.lines_after,
            details_template: self.alert.description_template().map(str::to_owned),
            from: self.from,
        }
    }

    /// What `monitorctl list` shows as its source: the file or `@command`.
    pub fn describe_source(&self) -> String {
        self.source.to_string()
    }
}

#[cfg(test)]
mod tests;
