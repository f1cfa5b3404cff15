//! The check list pushed to `POST /api/devices/v1/devicemonitor/config`, in Mender's shape:
//! a JSON array of [`ConfigCheck`], each `{name, status, type}` plus the one settings object
//! its `type` names (`log`, `service` or `dbus`). Absent optional fields are left out.
//!
//! As Mender's agent does, the agent pushes its enabled checks only, each named after its
//! Mender check file, `<check>.sh` (Mender's `test_monitorclient_send_configuration_data`
//! expects `crond.sh`, `syslog.sh`, ... all `enabled`); `status` stays in the shape, which
//! allows `disabled`, for servers that keep what older agents pushed.
//!
//! Docker-events checks are pushed as `log` checks (they are log checks over `@docker events`
//! underneath, as in Mender). Build checks with [`ConfigCheck::log`], [`ConfigCheck::service`]
//! and [`ConfigCheck::dbus`], which keep `type` and the settings object consistent.

use serde::{Deserialize, Serialize};

/// One check as the backend shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigCheck {
    pub name: String,
    pub status: CheckStatus,
    #[serde(rename = "type")]
    pub kind: ConfigCheckKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogCheckConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceCheckConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbus: Option<DbusCheckConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled: Option<SampledCheckConfig>,
}

impl ConfigCheck {
    /// A `log` check (also how docker-events checks are pushed).
    pub fn log(name: impl Into<String>, status: CheckStatus, log: LogCheckConfig) -> Self {
        ConfigCheck {
            name: name.into(),
            status,
            kind: ConfigCheckKind::Log,
            log: Some(log),
            service: None,
            dbus: None,
            sampled: None,
        }
    }

    /// A `service` check.
    pub fn service(
        name: impl Into<String>,
        status: CheckStatus,
        service: ServiceCheckConfig,
    ) -> Self {
        ConfigCheck {
            name: name.into(),
            status,
            kind: ConfigCheckKind::Service,
            log: None,
            service: Some(service),
            dbus: None,
            sampled: None,
        }
    }

    /// A `dbus` check.
    pub fn dbus(name: impl Into<String>, status: CheckStatus, dbus: DbusCheckConfig) -> Self {
        ConfigCheck {
            name: name.into(),
            status,
            kind: ConfigCheckKind::Dbus,
            log: None,
            service: None,
            dbus: Some(dbus),
            sampled: None,
        }
    }
}

impl ConfigCheck {
    /// A check the agent samples, of the kind named `kind` (its subsystem).
    pub fn sampled(
        name: impl Into<String>,
        status: CheckStatus,
        kind: &str,
        sampled: SampledCheckConfig,
    ) -> Self {
        ConfigCheck {
            name: name.into(),
            status,
            kind: ConfigCheckKind::Other(kind.to_owned()),
            log: None,
            service: None,
            dbus: None,
            sampled: Some(sampled),
        }
    }
}

/// Whether the check is enabled (symlinked into `enabled/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Enabled,
    Disabled,
}

/// The `type` of a pushed check: Mender's three, or a kind of this agent's own
/// (`diskusage`, `temperature`...: [`ConfigCheckKind::Other`], with a [`SampledCheckConfig`]),
/// which only this project's server is sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConfigCheckKind {
    Log,
    Service,
    Dbus,
    /// A kind Mender's config push has no type for, by its subsystem's name.
    Other(String),
}

impl ConfigCheckKind {
    pub fn as_str(&self) -> &str {
        match self {
            ConfigCheckKind::Log => "log",
            ConfigCheckKind::Service => "service",
            ConfigCheckKind::Dbus => "dbus",
            ConfigCheckKind::Other(name) => name,
        }
    }

    /// Whether Mender's devicemonitor service knows the type (it refuses others).
    pub fn is_mender(&self) -> bool {
        !matches!(self, ConfigCheckKind::Other(_))
    }
}

impl Serialize for ConfigCheckKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ConfigCheckKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(match name.as_str() {
            "log" => ConfigCheckKind::Log,
            "service" => ConfigCheckKind::Service,
            "dbus" => ConfigCheckKind::Dbus,
            _ => ConfigCheckKind::Other(name),
        })
    }
}

/// `sampled: {...}`: a check the agent samples (disk usage, temperature...), as a person
/// reads it on the server's device page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampledCheckConfig {
    /// The alerts' subject (`/`, `soc`, a host).
    pub subject: String,
    /// What it reads: "/ used (%)", "the SoC's thermal zone".
    pub source: String,
    /// How it is sampled and judged: "every 30s, threshold 90%, clear 85%".
    pub sampling: String,
    pub interval_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_threshold: Option<f64>,
    /// The threshold's unit (`%`, `°C`, `B`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// `log: {pattern, path, expire_seconds?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCheckConfig {
    /// The regex as written.
    pub pattern: String,
    /// The log file, or `@command` for a command's output.
    pub path: String,
    /// How long after the last match the check turns OK; `None`: it stays CRITICAL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_seconds: Option<u64>,
}

/// `service: {name, type}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCheckConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ServiceType,
}

/// How a service is managed, written as Mender's `SERVICE_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceType {
    #[serde(rename = "systemd")]
    Systemd,
    #[serde(rename = "sysV", alias = "sysv")]
    SysV,
    /// A Docker container watched natively (beyond Mender, which knows the first two).
    #[serde(rename = "docker")]
    Docker,
}

/// `dbus: {name, pattern, watch, alert_expiration?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbusCheckConfig {
    /// `DBUS_NAME`.
    pub name: String,
    /// `DBUS_PATTERN`.
    pub pattern: String,
    /// `DBUS_WATCH_EXPRESSION`.
    pub watch: String,
    /// Seconds after the signal until the check turns OK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_expiration: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_serialize_in_mender_shape_without_absent_fields() {
        let checks = vec![
            ConfigCheck::log(
                "auth.sh",
                CheckStatus::Enabled,
                LogCheckConfig {
                    pattern: "session opened for user [a-z]*".into(),
                    path: "/var/log/auth.log".into(),
                    expire_seconds: Some(300),
                },
            ),
            ConfigCheck::log(
                "app.sh",
                CheckStatus::Disabled,
                LogCheckConfig {
                    pattern: "panic".into(),
                    path: "@journalctl -f".into(),
                    expire_seconds: None,
                },
            ),
            ConfigCheck::service(
                "sshd.sh",
                CheckStatus::Enabled,
                ServiceCheckConfig {
                    name: "sshd".into(),
                    kind: ServiceType::SysV,
                },
            ),
            ConfigCheck::dbus(
                "usb.sh",
                CheckStatus::Enabled,
                DbusCheckConfig {
                    name: "org.freedesktop.UDisks2".into(),
                    pattern: "InterfacesAdded".into(),
                    watch: "type='signal'".into(),
                    alert_expiration: None,
                },
            ),
        ];
        let json = serde_json::to_string(&checks).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"[{"name":"auth.sh","status":"enabled","type":"log","log":{"pattern":"session opened for user [a-z]*","path":"/var/log/auth.log","expire_seconds":300}},"#,
                r#"{"name":"app.sh","status":"disabled","type":"log","log":{"pattern":"panic","path":"@journalctl -f"}},"#,
                r#"{"name":"sshd.sh","status":"enabled","type":"service","service":{"name":"sshd","type":"sysV"}},"#,
                r#"{"name":"usb.sh","status":"enabled","type":"dbus","dbus":{"name":"org.freedesktop.UDisks2","pattern":"InterfacesAdded","watch":"type='signal'"}}]"#
            )
        );
        assert_eq!(
            serde_json::from_str::<Vec<ConfigCheck>>(&json).unwrap(),
            checks
        );
    }

    #[test]
    fn a_sampled_check_has_its_kind_as_type_and_is_not_for_mender() {
        let check = ConfigCheck::sampled(
            "root_space.sh",
            CheckStatus::Enabled,
            "diskusage",
            SampledCheckConfig {
                subject: "/".into(),
                source: "/ used (%)".into(),
                sampling: "every 30s, threshold 90%, clear 85%".into(),
                interval_seconds: 30,
                threshold: Some(90.0),
                clear_threshold: Some(85.0),
                unit: Some("%".into()),
            },
        );
        let json = serde_json::to_string(&check).unwrap();
        assert_eq!(
            json,
            r#"{"name":"root_space.sh","status":"enabled","type":"diskusage","sampled":{"subject":"/","source":"/ used (%)","sampling":"every 30s, threshold 90%, clear 85%","interval_seconds":30,"threshold":90.0,"clear_threshold":85.0,"unit":"%"}}"#
        );
        let read: ConfigCheck = serde_json::from_str(&json).unwrap();
        assert_eq!(read, check);
        assert!(!read.kind.is_mender());
        assert!(ConfigCheckKind::Dbus.is_mender());
    }
}
