//! The formats that cross a process boundary, and nothing else.
//!
//! - [`Alert`]: the Mender devicemonitor alert (`POST /api/devices/v1/devicemonitor/alert`
//!   takes a JSON array of these). The same shape is written, one per line, to the
//!   device's local alert history as a [`HistoryRecord`].
//! - [`CheckId`] and [`Subsystem`]: how a check is named everywhere (file names, CLI,
//!   control socket, history).
//! - [`control`]: the JSON-lines protocol between `monitorctl` and `monitord` over the
//!   agent's control socket.
//! - [`config_push`]: the check list pushed to `POST /api/devices/v1/devicemonitor/config`.
//! - [`management`]: what monitor-server's management API answers.
//! - [`rejected`]: the agent's dead-letter file, alerts a destination refused on their own.
//! - [`backoff`]: the one capped exponential backoff every watcher and client retries with.
//! - [`duration`]: durations as users write them (`30`, `5m`, `2h30m`) and
//!   [`duration::Expiration`], shared by check files, `monitorctl` and the alert engine.
//!
//! This crate is the only one that derives `Serialize` for data leaving the process; it does
//! no I/O and knows nothing of how alerts are produced or delivered.

pub mod backoff;
pub mod config_push;
pub mod control;
pub mod duration;
pub mod host;
pub mod management;
pub mod rejected;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kind of a check, as in Mender's `<subsystem>_<check>` file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subsystem {
    /// A regex over a log file or over a command's output (`@command`).
    Log,
    /// A systemd (or sysV) service.
    Service,
    /// A D-Bus signal.
    Dbus,
    /// `docker events` for one container and action (a log check underneath).
    Dockerevents,
    /// How full a file system is (sampled by the agent; Mender's demo subsystem).
    Diskusage,
    /// A file system turned read-only, its ext4 errors, its eMMC's wear (sampled).
    Storage,
    /// Memory available, or swap used (sampled).
    Memory,
    /// The load average per core, or CPU use (sampled).
    Load,
    /// A temperature sensor, the SoC's by default (sampled).
    Temperature,
    /// A Raspberry Pi's under-voltage and throttling, from the firmware (sampled).
    Power,
    /// A host answers: TCP, HTTP(S) or DNS (sampled; Mender's demo subsystem's name).
    Connectivity,
    /// A process that is not a systemd unit runs (sampled).
    Process,
    /// A Nagios / Monitoring Plugins compatible command's verdict (sampled).
    Plugin,
    /// The agent itself (its state folder not taking writes, say): no check file makes
    /// one, so it is not in [`Subsystem::ALL`] and does not parse from a file name.
    Monitor,
}

impl Subsystem {
    /// Every subsystem a check file can have.
    pub const ALL: [Subsystem; 13] = [
        Subsystem::Log,
        Subsystem::Service,
        Subsystem::Dbus,
        Subsystem::Dockerevents,
        Subsystem::Diskusage,
        Subsystem::Storage,
        Subsystem::Memory,
        Subsystem::Load,
        Subsystem::Temperature,
        Subsystem::Power,
        Subsystem::Connectivity,
        Subsystem::Process,
        Subsystem::Plugin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Subsystem::Log => "log",
            Subsystem::Service => "service",
            Subsystem::Dbus => "dbus",
            Subsystem::Dockerevents => "dockerevents",
            Subsystem::Diskusage => "diskusage",
            Subsystem::Storage => "storage",
            Subsystem::Memory => "memory",
            Subsystem::Load => "load",
            Subsystem::Temperature => "temperature",
            Subsystem::Power => "power",
            Subsystem::Connectivity => "connectivity",
            Subsystem::Process => "process",
            Subsystem::Plugin => "plugin",
            Subsystem::Monitor => "monitor",
        }
    }
}

impl fmt::Display for Subsystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown subsystem name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSubsystem(pub String);

impl fmt::Display for UnknownSubsystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown subsystem `{}`: use one of ", self.0)?;
        for (index, subsystem) in Subsystem::ALL.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            f.write_str(subsystem.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownSubsystem {}

impl FromStr for Subsystem {
    type Err = UnknownSubsystem;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Subsystem::ALL
            .into_iter()
            .find(|subsystem| subsystem.as_str() == text)
            .ok_or_else(|| UnknownSubsystem(text.to_owned()))
    }
}

/// A check's identity: its subsystem and its name (`log crasher_app`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CheckId {
    pub subsystem: Subsystem,
    pub name: String,
}

impl CheckId {
    pub fn new(subsystem: Subsystem, name: impl Into<String>) -> Self {
        CheckId {
            subsystem,
            name: name.into(),
        }
    }

    /// The file stem Mender and this agent use: `<subsystem>_<check>`.
    pub fn file_stem(&self) -> String {
        format!("{}_{}", self.subsystem, self.name)
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.subsystem, self.name)
    }
}

/// Alert level. Mender knows `OK` and `CRITICAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Level {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "CRITICAL")]
    Critical,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Ok => "OK",
            Level::Critical => "CRITICAL",
        })
    }
}

/// A point in time, serialized as RFC 3339 UTC with milliseconds (`2026-11-21T12:22:36.120Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub SystemTime);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(SystemTime::now())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339_weak(&text)
            .map(Timestamp)
            .map_err(|error| serde::de::Error::custom(format!("timestamp `{text}`: {error}")))
    }
}

/// One alert, exactly in Mender's wire shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub name: String,
    pub level: Level,
    /// When the alert was first observed on the device; kept when it is resent later.
    pub timestamp: Timestamp,
    pub subject: Subject,
}

/// What the alert is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// The check name for log checks, the service name for services.
    pub name: String,
    /// `log`, `systemd`, `docker_event`, `dbus`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// `LOGCONTAINS`, `not-running`, `running`, ...
    pub status: String,
    #[serde(default)]
    pub details: Details,
}

/// Free-form details; the fields Mender's UI knows are typed, others go to `fields`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Details {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_matching: Option<LogLine>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines_before: Vec<LogLine>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines_after: Vec<LogLine>,
    /// Anything else a watcher knows (a service's state, exit code, restart count ...).
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// A numbered log line, as Mender sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub line_number: u64,
    pub data: String,
}

/// One line of the device's local alert history (`state_dir/alerts.jsonl`): the Mender alert
/// with a sequence number and the check that raised it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// Increases by one for every alert the agent emits, across restarts.
    pub seq: u64,
    pub check: CheckId,
    #[serde(flatten)]
    pub alert: Alert,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn alert_serializes_in_mender_shape() {
        let alert = Alert {
            name: "Log file contains session opened for user [a-z]*".into(),
            level: Level::Critical,
            timestamp: Timestamp(UNIX_EPOCH + Duration::from_secs(1_795_263_756)),
            subject: Subject {
                name: "mylog".into(),
                kind: "log".into(),
                status: "LOGCONTAINS".into(),
                details: Details {
                    description: Some("a session was opened".into()),
                    line_matching: Some(LogLine {
                        line_number: 3,
                        data: "a new session opened for user root now".into(),
                    }),
                    lines_before: vec![LogLine {
                        line_number: 2,
                        data: "some line 2".into(),
                    }],
                    lines_after: vec![],
                    fields: BTreeMap::new(),
                },
            },
        };
        let json = serde_json::to_string(&alert).unwrap();
        assert_eq!(
            json,
            r#"{"name":"Log file contains session opened for user [a-z]*","level":"CRITICAL","timestamp":"2026-11-21T12:22:36.000Z","subject":{"name":"mylog","type":"log","status":"LOGCONTAINS","details":{"description":"a session was opened","line_matching":{"line_number":3,"data":"a new session opened for user root now"},"lines_before":[{"line_number":2,"data":"some line 2"}]}}}"#
        );
        let back: Alert = serde_json::from_str(&json).unwrap();
        assert_eq!(back, alert);
    }

    #[test]
    fn history_record_is_a_flat_mender_alert_with_seq_and_check() {
        let record = HistoryRecord {
            seq: 7,
            check: CheckId::new(Subsystem::Service, "crasher"),
            alert: Alert {
                name: "Service crasher not running".into(),
                level: Level::Ok,
                timestamp: Timestamp(UNIX_EPOCH),
                subject: Subject {
                    name: "crasher".into(),
                    kind: "systemd".into(),
                    status: "running".into(),
                    details: Details::default(),
                },
            },
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            r#"{"seq":7,"check":{"subsystem":"service","name":"crasher"},"name":"Service crasher not running","level":"OK","timestamp":"1970-01-01T00:00:00.000Z","subject":{"name":"crasher","type":"systemd","status":"running","details":{}}}"#
        );
        assert_eq!(
            serde_json::from_str::<HistoryRecord>(&json).unwrap(),
            record
        );
    }

    #[test]
    fn mender_timestamps_without_fraction_parse() {
        let alert: Timestamp = serde_json::from_str(r#""2026-11-21T12:22:36Z""#).unwrap();
        assert_eq!(alert.to_string(), "2026-11-21T12:22:36.000Z");
    }

    #[test]
    fn subsystems_parse_and_reject_unknown_names() {
        assert_eq!("dbus".parse::<Subsystem>().unwrap(), Subsystem::Dbus);
        let error = "files".parse::<Subsystem>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown subsystem `files`: use one of log, service, dbus, dockerevents, diskusage, storage, memory, load, temperature, power, connectivity, process, plugin"
        );
    }
}
