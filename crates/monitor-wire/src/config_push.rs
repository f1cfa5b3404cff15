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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The `type` of a pushed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigCheckKind {
    Log,
    Service,
    Dbus,
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
}
