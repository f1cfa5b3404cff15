//! D-Bus checks: a signal on the system bus (matching a match rule, its text matching a
//! regex, optionally from one sender), CRITICAL on arrival and OK after the expiration, as in
//! Mender.
//!
//! Mender's `DBUS_NAME` (our `bus_name`, the key kept for compatibility) is "the name of the
//! watcher": a label, never a filter (Mender's own examples use `test`, `u-power`, `upower`).
//! Restricting a check to one sender is our optional `sender:`, which no Mender key sets.

use std::path::Path;

use monitor_engine::{CheckSpec, PatternCheck};
use monitor_wire::config_push::{CheckStatus, ConfigCheck, DbusCheckConfig};
use monitor_wire::duration::Expiration;
use monitor_wire::{CheckId, Subsystem};
use serde::{Deserialize, Serialize};
use serde_norway::Value;

use crate::create::{CreateArgument, CreateCommand, CreateValues};
use crate::mender::MenderValues;
use crate::pattern::compile_pattern;
use crate::problem::{deserialize_all, Problem};
use crate::settings::Settings;
use crate::watch::Watch;

/// A validated D-Bus check.
#[derive(Debug, Clone)]
pub struct DbusCheck {
    /// Mender's `DBUS_NAME`: the watcher's label, any text; it filters nothing.
    pub bus_name: String,
    /// Only signals from this sender (a valid well-known or unique bus name) count; `None`:
    /// any sender.
    pub sender: Option<String>,
    /// The regex over signals as `dbus-monitor` prints them; empty matches every signal.
    pub pattern: String,
    /// `pattern`, compiled; `None` when the pattern is empty.
    pub regex: Option<regex::bytes::Regex>,
    /// A D-Bus match rule (`type='signal',interface='...'`); empty watches the whole system bus.
    pub watch_expression: String,
    /// `None`: use the settings' `default_dbus_alert_expiration`.
    pub expiration: Option<Expiration>,
}

/// A D-Bus check file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbusDefinition {
    /// The watcher's label (Mender's `DBUS_NAME`); any text, it filters nothing.
    pub bus_name: String,
    /// Only signals from this bus name count (`sender=` in the match rule); absent: any
    /// sender. Not a Mender key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
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

impl DbusDefinition {
    /// `monitorctl create dbus <check> <bus name> <pattern> <watch expression> [expiration]`.
    pub fn new(
        bus_name: impl Into<String>,
        pattern: impl Into<String>,
        watch_expression: impl Into<String>,
        expiration: Option<Expiration>,
    ) -> Self {
        DbusDefinition {
            bus_name: bus_name.into(),
            sender: None,
            pattern: pattern.into(),
            watch_expression: watch_expression.into(),
            expiration,
        }
    }

    /// Reads a check file in our YAML format, reporting every wrong key.
    pub(crate) fn from_yaml(value: Value, file: &Path) -> Result<Self, Vec<Problem>> {
        deserialize_all(value, file, "", &[])
    }

    /// Validates the definition: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<DbusCheck, Vec<Problem>> {
        let mut problems = Vec::new();
        if let Some(sender) = &self.sender {
            if let Err(reason) = check_bus_name(sender) {
                problems.push(Problem::at_field(
                    file,
                    "sender",
                    format!(
                        "\"{sender}\" is not a D-Bus bus name ({reason}): write a name such as org.freedesktop.UPower or :1.42, or remove the line to accept any sender"
                    ),
                ));
            }
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
            sender: self.sender.clone(),
            pattern: self.pattern.clone(),
            regex,
            watch_expression: self.watch_expression.clone(),
            expiration: self.expiration,
        })
    }
}

/// The keys a Mender D-Bus check file may set. Mender's docs name the expiration both
/// `DBUS_ALERT_EXPIRATION` and `DBUS_PATTERN_EXPIRATION`; both are read, the first winning.
pub const MENDER_DBUS_KEYS: [&str; 5] = [
    "DBUS_NAME",
    "DBUS_PATTERN",
    "DBUS_WATCH_EXPRESSION",
    "DBUS_ALERT_EXPIRATION",
    "DBUS_PATTERN_EXPIRATION",
];

impl DbusDefinition {
    /// Converts a Mender D-Bus check file's values; problems name Mender's keys.
    pub(crate) fn from_mender(values: &mut MenderValues) -> Option<Self> {
        let bus_name = values.required("DBUS_NAME", "<label>");
        let expiration = values
            .expiration("DBUS_ALERT_EXPIRATION")
            .or_else(|| values.expiration("DBUS_PATTERN_EXPIRATION"));
        Some(DbusDefinition {
            bus_name: bus_name?,
            sender: None,
            pattern: values.optional("DBUS_PATTERN").unwrap_or_default(),
            watch_expression: values.optional("DBUS_WATCH_EXPRESSION").unwrap_or_default(),
            expiration,
        })
    }

    /// The Mender key one of our fields came from.
    pub(crate) fn mender_key(field: &str) -> Option<&'static str> {
        match field {
            "bus_name" => Some("DBUS_NAME"),
            "pattern" => Some("DBUS_PATTERN"),
            "watch_expression" => Some("DBUS_WATCH_EXPRESSION"),
            "expiration" => Some("DBUS_ALERT_EXPIRATION"),
            _ => None,
        }
    }

    /// `monitorctl create dbus`.
    pub(crate) const CREATE: CreateCommand = CreateCommand {
        subsystem: Subsystem::Dbus,
        about: "A D-Bus signal",
        examples:
            "Example:\n  monitorctl create dbus battery upower '' \"type='signal',interface='org.freedesktop.UPower'\"",
        arguments: &[
            CreateArgument::text("check", "CHECK", None),
            CreateArgument::text(
                "dbus_name",
                "DBUS_NAME",
                Some("A label for the watcher, as in Mender; it does not filter signals (add sender: to the check file for that)"),
            ),
            CreateArgument::text(
                "pattern",
                "PATTERN",
                Some("Regular expression matched against the signal's text; empty: every signal"),
            ),
            CreateArgument::text("watch_expression", "WATCH_EXPRESSION", None),
            CreateArgument::expiration(None),
        ],
    };

    /// The check's name and definition from [`DbusDefinition::CREATE`]'s arguments.
    pub(crate) fn from_create(values: CreateValues) -> Result<(String, Self), String> {
        let expiration = values.expiration(4)?;
        let definition =
            DbusDefinition::new(values.text(1), values.text(2), values.text(3), expiration);
        Ok((values.text(0), definition))
    }
}

impl DbusCheck {
    /// The engine's pattern check, with Mender's alert name.
    pub fn engine_spec(&self, id: &CheckId, settings: &Settings) -> CheckSpec {
        CheckSpec::Pattern(PatternCheck {
            alert_name: alert_name(&self.watch_expression),
            subject_name: id.name.clone(),
            subject_type: "dbus".into(),
            subject_status: "SIGNAL".into(),
            description: None,
            expiration: settings.dbus_alert_expiration(self.expiration),
            source: None,
        })
    }

    /// As the backend's config push shows it.
    pub fn config_push(
        &self,
        id: &CheckId,
        status: CheckStatus,
        settings: &Settings,
    ) -> ConfigCheck {
        ConfigCheck::dbus(
            id.name.clone(),
            status,
            DbusCheckConfig {
                name: self.bus_name.clone(),
                pattern: self.pattern.clone(),
                watch: self.watch_expression.clone(),
                alert_expiration: settings.dbus_expire_seconds(self.expiration),
            },
        )
    }

    pub fn watch(&self) -> Watch {
        Watch::Signal {
            sender: self.sender.clone(),
            regex: self.regex.clone(),
            watch_expression: self.watch_expression.clone(),
        }
    }

    /// What `monitorctl list` shows as its source: the label, the sender when there is
    /// one, and the match rule.
    pub fn describe_source(&self) -> String {
        match &self.sender {
            Some(sender) => format!(
                "{} sender={sender} {}",
                self.bus_name, self.watch_expression
            ),
            None => format!("{} {}", self.bus_name, self.watch_expression),
        }
    }
}

/// Whether `name` is a D-Bus bus name as the specification defines it: a unique name
/// (`:1.42`) or a well-known one (`org.freedesktop.UPower`), at most 255 bytes, of two or
/// more dot-separated elements of `[A-Za-z0-9_-]`, a well-known one's not starting with a
/// digit. The error says which rule is broken.
fn check_bus_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 255 {
        return Err("it is longer than 255 bytes");
    }
    let (unique, elements) = match name.strip_prefix(':') {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    let elements: Vec<&str> = elements.split('.').collect();
    if elements.len() < 2 {
        return Err("it needs at least two elements separated by dots");
    }
    for element in elements {
        if element.is_empty() {
            return Err("an element between dots is empty");
        }
        if !element
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
        {
            return Err("only letters, digits, _ and - may appear between the dots");
        }
        if !unique && element.starts_with(|first: char| first.is_ascii_digit()) {
            return Err("an element of a well-known name cannot start with a digit");
        }
    }
    Ok(())
}

/// Mender's alert name for a `dbus` check: `D-Bus signal arrived on bus <watch expression
/// without quotes>`, or `D-Bus signal arrived on bus system bus` when the expression is empty.
fn alert_name(watch_expression: &str) -> String {
    let unquoted: String = watch_expression
        .chars()
        .filter(|character| !matches!(character, '\'' | '"'))
        .collect();
    let unquoted = unquoted.trim();
    if unquoted.is_empty() {
        "D-Bus signal arrived on bus system bus".to_owned()
    } else {
        format!("D-Bus signal arrived on bus {unquoted}")
    }
}

#[cfg(test)]
mod tests;
