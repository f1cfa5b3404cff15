//! The persisted form of the engine's state, and its time encoding.

use std::time::SystemTime;

use monitor_wire::CheckId;
use serde::{Deserialize, Deserializer, Serialize};

use crate::Check;

/// Every check's spec and state, as [`Engine::snapshot`](crate::Engine::snapshot) took it.
///
/// The format is versioned: a snapshot of another version does not deserialize (the error
/// says so), and the agent then starts without saved alert state. Version 1, as JSON:
///
/// ```json
/// {"version": 1,
///  "checks": [
///   {"check": {"subsystem": "log", "name": "app"},
///    "kind": "pattern",
///    "spec": {"alert_name": "Log file contains ERROR", "subject_name": "app",
///             "subject_type": "log", "subject_status": "LOGCONTAINS", "description": null,
///             "expiration": {"after": {"secs": 300, "nanos": 0}}},
///    "state": {"critical": {"since": 1700000000000, "last_match": 1700000060000,
///                           "expires": 1700000360000}}},
///   {"check": {"subsystem": "service", "name": "nginx"},
///    "kind": "service",
///    "spec": {"service_name": "nginx", "subject_type": "systemd"},
///    "state": {"running": false, "details": {"state": "failed"},
///              "changes": [1700000100000], "flapping": false, "since": 1700000100000}}]}
/// ```
///
/// - Times are milliseconds since the Unix epoch (times before it are written as 0).
/// - A pattern `state` is `{"ok": {"since": t}}` or `{"critical": {"since": t, "last_match":
///   t, "expires": t or null}}`; `expiration` is `{"after": duration}` or `"never"`.
/// - A service `state` holds the last observed `running` (null before the first
///   observation), that observation's `details`, the remembered state `changes` (oldest
///   first), whether it is `flapping`, and `since` when its current state began.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(deserialize_with = "deserialize_version")]
    version: u32,
    checks: Vec<SnapshotEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SnapshotEntry {
    check: CheckId,
    #[serde(flatten)]
    state: Check,
}

impl Snapshot {
    /// The format version this build writes and reads.
    pub const VERSION: u32 = 1;

    pub(crate) fn new(checks: impl Iterator<Item = (CheckId, Check)>) -> Self {
        Snapshot {
            version: Self::VERSION,
            checks: checks
                .map(|(check, state)| SnapshotEntry { check, state })
                .collect(),
        }
    }

    pub(crate) fn into_checks(self) -> impl Iterator<Item = (CheckId, Check)> {
        self.checks
            .into_iter()
            .map(|entry| (entry.check, entry.state))
    }

    /// The ids of the checks in the snapshot.
    pub fn check_ids(&self) -> impl Iterator<Item = &CheckId> {
        self.checks.iter().map(|entry| &entry.check)
    }
}

fn deserialize_version<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let version = u32::deserialize(deserializer)?;
    if version == Snapshot::VERSION {
        Ok(version)
    } else {
        Err(serde::de::Error::custom(format!(
            "engine snapshot version {version} is not supported (this build reads version {}): \
             start without the saved alert state",
            Snapshot::VERSION
        )))
    }
}

/// Milliseconds since the Unix epoch; times before it become 0, since a snapshot must
/// always be writable and such a clock is wrong anyway.
fn to_epoch_millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|since_epoch| u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn from_epoch_millis<E: serde::de::Error>(millis: u64) -> Result<SystemTime, E> {
    SystemTime::UNIX_EPOCH
        .checked_add(std::time::Duration::from_millis(millis))
        .ok_or_else(|| {
            E::custom(format!(
                "time {millis} ms after the unix epoch is out of range"
            ))
        })
}

/// `#[serde(with)]` for a `SystemTime` as epoch milliseconds.
pub(crate) mod epoch_millis {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        time: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(super::to_epoch_millis(*time))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        super::from_epoch_millis(u64::deserialize(deserializer)?)
    }
}

/// `#[serde(with)]` for an `Option<SystemTime>` as epoch milliseconds or null.
pub(crate) mod optional_epoch_millis {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        time: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        time.map(super::to_epoch_millis).serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Option::<u64>::deserialize(deserializer)?
            .map(super::from_epoch_millis)
            .transpose()
    }
}

/// `#[serde(with)]` for a `VecDeque<SystemTime>` as a list of epoch milliseconds.
pub(crate) mod epoch_millis_deque {
    use std::collections::VecDeque;
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        times: &VecDeque<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(times.iter().map(|&time| super::to_epoch_millis(time)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<VecDeque<SystemTime>, D::Error> {
        let mut times = Vec::<u64>::deserialize(deserializer)?
            .into_iter()
            .map(super::from_epoch_millis)
            .collect::<Result<Vec<_>, _>>()?;
        // The flapping deadline relies on the order; a snapshot edited by hand may lack it.
        times.sort_unstable();
        Ok(times.into())
    }
}
