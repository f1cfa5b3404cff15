//! Service checks: whether a systemd unit, a SysV init script (through the unit systemd
//! makes for it) or a Docker container runs. A condition for the engine: CRITICAL while not
//! running, "going up and down" while it flaps; optionally restarted (`on_failure`).
//!
//! A systemd service check named `*` ([`ALL_UNITS`]) watches every unit for the `failed`
//! state instead: one subject per failed unit ([`ServiceCheck::failed_unit_spec`]), the
//! job of a per-unit `OnFailure=` handler without one.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use monitor_engine::{AlertText, CheckSpec, ConditionCheck};
use monitor_wire::config_push::{CheckStatus, ConfigCheck, ServiceCheckConfig, ServiceType};
use monitor_wire::duration::Expiration;
use monitor_wire::{CheckId, Subsystem};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_norway::Value;

use crate::create::{CreateArgument, CreateCommand, CreateValues};
use crate::mender::MenderValues;
use crate::problem::{deserialize_all, nested_problems, NestedCheck, Problem};
use crate::watch::{RestartPolicy, Watch};

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

/// The service name of a check that watches every systemd unit for `failed`.
pub const ALL_UNITS: &str = "*";

/// The check name `monitorctl create service '*' systemd` gives such a check, and the one
/// the embedded default has (so a check file of that name overrides it).
pub const ALL_UNITS_CHECK_NAME: &str = "failed_units";

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
const UNIT_SUFFIXES: [&str; 11] = [
    ".service",
    ".socket",
    ".timer",
    ".mount",
    ".target",
    ".path",
    ".scope",
    ".device",
    ".swap",
    ".automount",
    ".slice",
];

impl ServiceCheck {
    /// Whether the check watches every systemd unit for `failed` (its name is `*`).
    pub fn is_all_units(&self) -> bool {
        self.name == ALL_UNITS
    }

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

impl ServiceDefinition {
    /// `monitorctl create service <name> <systemd|sysV>`.
    pub fn new(name: impl Into<String>, kind: ServiceKind) -> Self {
        ServiceDefinition {
            name: name.into(),
            kind,
            on_failure: None,
        }
    }

    /// Reads a check file in our YAML format, reporting every wrong key.
    pub(crate) fn from_yaml(value: Value, file: &Path) -> Result<Self, Vec<Problem>> {
        let nested: [(&str, NestedCheck); 1] = [("on_failure", nested_problems::<OnFailure>)];
        deserialize_all(value, file, "", &nested)
    }

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
        if name == ALL_UNITS && self.kind != ServiceKind::Systemd {
            problems.push(Problem::at_field(
                file,
                "type",
                format!(
                    "name \"*\" watches every systemd unit: set type: systemd, or name one {} service",
                    self.kind
                ),
            ));
        }
        if name == ALL_UNITS && self.on_failure.is_some() {
            problems.push(Problem::at_field(
                file,
                "on_failure",
                "a check on every unit (name \"*\") restarts nothing: remove on_failure, or write a check per unit to restart",
            ));
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

/// The keys a Mender service check file may set.
pub const MENDER_SERVICE_KEYS: [&str; 2] = ["SERVICE_NAME", "SERVICE_TYPE"];

impl ServiceDefinition {
    /// Converts a Mender service check file's values; problems name Mender's keys.
    pub(crate) fn from_mender(values: &mut MenderValues) -> Option<Self> {
        let name = values.required("SERVICE_NAME", "<service>");
        let kind_text = values.required("SERVICE_TYPE", "systemd");
        if kind_text.as_deref() == Some("") {
            values.problems.push(Problem::at_field(
                values.file,
                "SERVICE_TYPE",
                "empty: set SERVICE_TYPE=\"systemd\" or SERVICE_TYPE=\"sysV\"",
            ));
        }
        let kind = values.parsed("SERVICE_TYPE", |text| {
            text.parse::<ServiceKind>()
                .map_err(|error| error.to_string())
        });
        Some(ServiceDefinition {
            name: name?,
            kind: kind?,
            on_failure: None,
        })
    }

    /// The Mender key one of our fields came from.
    pub(crate) fn mender_key(field: &str) -> Option<&'static str> {
        match field {
            "name" => Some("SERVICE_NAME"),
            "type" => Some("SERVICE_TYPE"),
            _ => None,
        }
    }

    /// `monitorctl create service`: the check is named after the service.
    pub(crate) const CREATE: CreateCommand = CreateCommand {
        subsystem: Subsystem::Service,
        about: "A systemd or SysV service (the check is named after the service)",
        examples: "Examples:\n  monitorctl create service crasher systemd\n  monitorctl create service '*' systemd    (every unit that fails: check failed_units)",
        arguments: &[
            CreateArgument::text("name", "NAME", None),
            CreateArgument {
                name: "kind",
                value_name: "KIND",
                help: Some("systemd or sysV"),
                required: true,
                check: Some(check_service_kind),
            },
        ],
    };

    /// The check's name and definition from [`ServiceDefinition::CREATE`]'s arguments.
    pub(crate) fn from_create(values: CreateValues) -> Result<(String, Self), String> {
        let name = values.text(0);
        let kind = values
            .text(1)
            .parse()
            .map_err(|error: UnknownServiceKind| error.to_string())?;
        // `*` is no file name: the check on every unit has a name of its own.
        let check = if name.trim() == ALL_UNITS {
            ALL_UNITS_CHECK_NAME.to_owned()
        } else {
            name.clone()
        };
        Ok((check, ServiceDefinition::new(name.trim(), kind)))
    }
}

fn check_service_kind(text: &str) -> Result<(), String> {
    text.parse::<ServiceKind>()
        .map(|_| ())
        .map_err(|error| error.to_string())
}

impl ServiceCheck {
    /// The engine's condition: the service not running, with Mender's alert texts. A check
    /// on every unit is never observed itself: its units are, each with
    /// [`ServiceCheck::failed_unit_spec`].
    pub fn engine_spec(&self) -> CheckSpec {
        if self.is_all_units() {
            let text = |status: &str| AlertText {
                name: "A systemd unit failed".to_owned(),
                status: status.to_owned(),
            };
            return CheckSpec::Condition(ConditionCheck {
                subject_name: ALL_UNITS.to_owned(),
                subject_type: "systemd".to_owned(),
                critical: text("failed"),
                ok: text("recovered"),
                flapping: None,
            });
        }
        let subject_type = match self.kind {
            ServiceKind::Docker => "docker".to_owned(),
            kind => kind.as_str().to_lowercase(),
        };
        let not_running = format!("Service {} not running", self.name);
        let text = |name: &str, status: &str| AlertText {
            name: name.to_owned(),
            status: status.to_owned(),
        };
        CheckSpec::Condition(ConditionCheck {
            subject_name: self.name.clone(),
            subject_type,
            critical: text(&not_running, "not-running"),
            ok: text(&not_running, "running"),
            flapping: Some(text(
                &format!("Service {} going up and down", self.name),
                "flapping",
            )),
        })
    }

    /// The condition of one unit of a check on every unit: CRITICAL while `unit` is failed,
    /// OK once it left `failed` (restarted, or `systemctl reset-failed`). It does not flap:
    /// a unit that restarts itself (`Restart=`) never stays failed.
    pub fn failed_unit_spec(unit: &str) -> ConditionCheck {
        let name = format!("Service {unit} failed");
        let text = |status: &str| AlertText {
            name: name.clone(),
            status: status.to_owned(),
        };
        ConditionCheck {
            subject_name: unit.to_owned(),
            subject_type: "systemd".to_owned(),
            critical: text("failed"),
            ok: text("recovered"),
            flapping: None,
        }
    }

    /// As the backend's config push shows it.
    pub fn config_push(&self, id: &CheckId, status: CheckStatus) -> ConfigCheck {
        ConfigCheck::service(
            id.name.clone(),
            status,
            ServiceCheckConfig {
                name: self.name.clone(),
                kind: match self.kind {
                    ServiceKind::Systemd => ServiceType::Systemd,
                    ServiceKind::SysV => ServiceType::SysV,
                    ServiceKind::Docker => ServiceType::Docker,
                },
            },
        )
    }

    /// A container for `docker`; otherwise the unit (a SysV init script is watched through
    /// the unit systemd generates for it).
    pub fn watch(&self) -> Watch {
        if self.is_all_units() {
            return Watch::FailedUnits;
        }
        match self.kind {
            ServiceKind::Docker => Watch::Container {
                name: self.name.clone(),
            },
            ServiceKind::Systemd | ServiceKind::SysV => Watch::Unit {
                unit: self.unit_name(),
                restart: self.restart,
            },
        }
    }

    /// What `monitorctl list` shows as its source: `crasher.service (systemd)`.
    pub fn describe_source(&self) -> String {
        if self.is_all_units() {
            return "every unit that fails (systemd)".to_owned();
        }
        format!("{} ({})", self.unit_name(), self.kind.as_str())
    }
}

#[cfg(test)]
mod tests;
