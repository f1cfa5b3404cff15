//! The control socket protocol: `monitorctl` writes one [`Request`] as a JSON line to
//! `runtime_dir/monitord.sock`, the agent answers with one [`Response`] line and closes.

use serde::{Deserialize, Serialize};

use crate::{Alert, CheckId, Level, Timestamp};

/// The socket's file name inside `runtime_dir`.
pub const SOCKET_FILE_NAME: &str = "monitord.sock";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// The live state of every enabled check.
    Status,
    /// Re-read the check folders now (the agent also notices changes by itself).
    Reload,
    /// Clear a CRITICAL check by hand: the agent sends its OK.
    Clear { check: CheckId },
    /// Record an alert made outside the agent (`monitorctl notify-failure`), unless the
    /// agent watches that service itself and so has made its own.
    Record {
        check: CheckId,
        unit: String,
        alert: Box<Alert>,
    },
    /// `monitorctl raise`: a script's own alert about `subject` (Mender's
    /// `monitor_send_alert`), through the engine: CRITICAL once until an OK (a `raise OK`, or
    /// `monitorctl clear monitor <subject>`); an OK for a subject that is not CRITICAL sends
    /// nothing. Fields left out keep what the subject's CRITICAL said, or the defaults.
    Raise {
        level: Level,
        subject: String,
        /// The alert's name (Mender's "alert_description").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// `details.description` (Mender's "alert_details").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<String>,
        /// `subject.status`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
        /// `subject.type`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject_type: Option<String>,
    },
    /// What each delivery destination has not taken yet, and why.
    Pending,
    /// The alerts newer than `after` (a `seq`), from the agent's memory (the newest
    /// thousand). With `wait`, when there are none yet: as soon as one is made, or an empty
    /// answer after a few seconds, to ask again. `monitorctl alerts` shows alerts this way
    /// before the disk has them.
    Alerts {
        after: u64,
        #[serde(default)]
        wait: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Status {
        agent: AgentStatus,
        checks: Vec<CheckStatus>,
        /// Problems in check files, each naming the file and field; such checks are not watched.
        #[serde(default)]
        problems: Vec<String>,
        /// The heartbeats to the backend (`auth: token` only); `None`: no destination sends
        /// any.
        #[serde(default)]
        heartbeat: Option<HeartbeatStatus>,
    },
    Done,
    Error {
        message: String,
    },
    Pending {
        destinations: Vec<DestinationStatus>,
    },
    Alerts {
        records: Vec<crate::HistoryRecord>,
    },
}

/// One delivery destination (a Discord webhook, the backend) as `monitorctl alerts
/// --pending` shows it. Never carries a secret: webhooks are named by their id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DestinationStatus {
    /// `backend`, or `discord:<webhook id>`.
    pub name: String,
    /// Alerts waiting for it.
    pub pending: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_pending: Option<Timestamp>,
    /// Why the last attempt failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it is tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Timestamp>,
    /// Given up on (a deleted webhook) until the agent restarts or its settings change.
    #[serde(default)]
    pub disabled: bool,
    /// Its heartbeats, for a destination that sends them (the backend in `auth: token`
    /// mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatStatus>,
}

/// The heartbeats a destination sends so that monitor-server notices a silent device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatStatus {
    pub state: HeartbeatState,
    /// The interval announced with each heartbeat, while they are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    /// When the backend last took one.
    #[serde(default)]
    pub last_answered: Option<Timestamp>,
    /// Why the last one failed, if it did (cleared by the next one taken).
    #[serde(default)]
    pub last_error: Option<String>,
}

/// Whether heartbeats are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeartbeatState {
    /// One every interval.
    On,
    /// `heartbeat_interval: never`: the backend was told so once; none are sent.
    Off,
    /// The backend has no heartbeat endpoint (an older server: 404); none are sent.
    NotServed,
}

/// About the running agent itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub version: String,
    pub device_id: String,
    pub pid: u32,
    pub started: Timestamp,
}

/// What the agent knows of one check right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    pub check: CheckId,
    pub state: CheckState,
    /// Since when the check is in this state, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// When a CRITICAL pattern check turns OK unless it matches again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
    /// Why the check is not watched (`error`), or what its watcher last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The live state of a check, as `monitorctl list` and `status` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    /// Nothing observed yet.
    Unknown,
    Ok,
    Critical,
    /// A service going up and down.
    Flapping,
    /// The check's watcher cannot run (no such unit, no bus, a dead command ...).
    Error,
}

impl CheckState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Unknown => "unknown",
            CheckState::Ok => "ok",
            CheckState::Critical => "critical",
            CheckState::Flapping => "flapping",
            CheckState::Error => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Subsystem;

    #[test]
    fn requests_are_tagged_json_lines() {
        let request = Request::Clear {
            check: CheckId::new(Subsystem::Log, "app"),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            json,
            r#"{"request":"clear","check":{"subsystem":"log","name":"app"}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"request":"status"}"#
        );
        let raise = Request::Raise {
            level: Level::Critical,
            subject: "disk_root".into(),
            name: Some("Disk / above 90%".into()),
            details: None,
            status: None,
            subject_type: None,
        };
        let json = serde_json::to_string(&raise).unwrap();
        assert_eq!(
            json,
            r#"{"request":"raise","level":"CRITICAL","subject":"disk_root","name":"Disk / above 90%"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), raise);
    }
}
