//! The persisted form of the engine's state, its time encoding, and how its times are
//! carried across a reboot.

mod carry;
pub(crate) mod service;
mod wall;

use std::time::SystemTime;

use monitor_wire::CheckId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::boot_time::BootTime;
use crate::check::Check;
use crate::spec::Moment;
use carry::{epoch_millis, CarryOver};
use wall::{WallCheck, WallSnapshot};

/// Every check's spec and state, as [`Engine::snapshot`](crate::Engine::snapshot) took it.
///
/// The format is versioned: this build writes version 2 and reads versions 2 and 1; a
/// snapshot of another version does not deserialize (the error says so), and the agent then
/// starts without saved alert state. Version 2, as JSON:
///
/// ```json
/// {"version": 2,
///  "taken": {"boot_id": "0f5c…", "wall": 1700000100000, "boot": 100000},
///  "checks": [
///   {"check": {"subsystem": "log", "name": "app"},
///    "kind": "pattern",
///    "spec": {"alert_name": "Log file contains ERROR", "subject_name": "app",
///             "subject_type": "log", "subject_status": "LOGCONTAINS", "description": null,
///             "expiration": {"after": {"secs": 300, "nanos": 0}}},
///    "state": {"critical": {"since": 0, "last_match": 60000, "expires": 360000}}},
///   {"check": {"subsystem": "service", "name": "nginx"},
///    "kind": "service",
///    "spec": {"service_name": "nginx", "subject_type": "systemd"},
///    "state": {"running": false, "details": {"state": "failed"},
///              "changes": [100000], "flapping": false, "since": 100000}}]}
/// ```
///
/// - `taken`: the boot the snapshot was taken in (`boot_id`, null when unknown) and both
///   clocks then: `wall` in milliseconds since the Unix epoch (times before it as 0),
///   `boot` in milliseconds since boot.
/// - Every time in `state` is on the boot clock, in milliseconds since boot: negative for
///   times before it, carried over from an earlier boot.
/// - A pattern `state` is `{"ok": {"since": t}}` or `{"critical": {"since": t, "last_match":
///   t, "expires": t or null}}`; `expiration` is `{"after": duration}` or `"never"`.
/// - A service `state` holds the last observed `running` (null before the first
///   observation), that observation's `details`, the remembered state `changes` (oldest
///   first), whether it is `flapping`, and `since` when its current state began.
/// - A service check is a condition check with a service's alert texts, stored this way
///   since before there were condition checks. Any other condition check is `"kind":
///   "condition"`, its `spec` a [`ConditionCheck`](crate::ConditionCheck) (`subject_name`,
///   `subject_type`, `critical`, `ok` and `flapping` texts, each `{"name", "status"}`,
///   `flapping` null when not counted), its `state` as a service's with `holds` (whether the
///   condition held) in place of `running`.
/// - A pattern check whose source stopped (and has not run again) has `"source_down":
///   true` next to its `state`, and its spec the `source` alerts.
///
/// Restored in the boot it was taken in, the times are kept. Restored in another boot (the
/// boot clock started again), each time is placed by its wall time at the snapshot
/// (`taken.wall` plus its distance from `taken.boot`) against the wall clock now, as if the
/// device had been off for the wall time between the two, or for no time when the wall clock
/// now is behind the snapshot's: what happened keeps its age (before this boot if need be),
/// an expiry keeps what was left of it minus that time, never more than its configured
/// expiration, and is due at once only when it ran out by the wall clocks. Those are the only
/// link between two boots: a snapshot taken with a wall clock far behind (before NTP set it)
/// and restored after NTP did still finds every expiry run out.
///
/// Version 1 (devices wrote it before version 2) has no `taken`, and its times are wall
/// times in milliseconds since the Unix epoch; it is carried over like a snapshot of
/// another boot, against the wall clock now.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    format: Format,
}

#[derive(Clone, Debug, PartialEq)]
enum Format {
    Boot(BootSnapshot),
    Wall(WallSnapshot),
}

/// Version 2: times on the boot clock of the boot `taken` names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct BootSnapshot {
    version: u32,
    taken: Taken,
    checks: Vec<SnapshotEntry>,
}

/// When a snapshot was taken, on both clocks, and in which boot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Taken {
    boot_id: Option<String>,
    #[serde(with = "epoch_millis")]
    wall: SystemTime,
    boot: BootTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SnapshotEntry {
    check: CheckId,
    #[serde(flatten)]
    state: Check,
}

impl Snapshot {
    /// The format version this build writes.
    pub const VERSION: u32 = 2;

    pub(crate) fn new(
        now: Moment,
        boot_id: Option<&str>,
        checks: impl Iterator<Item = (CheckId, Check)>,
    ) -> Self {
        Snapshot {
            format: Format::Boot(BootSnapshot {
                version: Self::VERSION,
                taken: Taken {
                    boot_id: boot_id.map(str::to_owned),
                    wall: now.wall,
                    boot: BootTime::of(now.boot),
                },
                checks: checks
                    .map(|(check, state)| SnapshotEntry { check, state })
                    .collect(),
            }),
        }
    }

    /// The checks with their times on the boot clock of `now` (see the type's docs).
    pub(crate) fn into_checks(
        self,
        now: Moment,
        boot_id: Option<&str>,
    ) -> impl Iterator<Item = (CheckId, Check)> {
        let checks: Vec<(CheckId, Check)> = match self.format {
            Format::Boot(snapshot)
                if boot_id.is_some() && snapshot.taken.boot_id.as_deref() == boot_id =>
            {
                snapshot
                    .checks
                    .into_iter()
                    .map(|entry| (entry.check, entry.state))
                    .collect()
            }
            Format::Boot(snapshot) => {
                let taken = Moment {
                    wall: snapshot.taken.wall,
                    boot: snapshot.taken.boot.since_boot(),
                };
                // A wall clock behind the snapshot's (back in 1970, or at fake-hwclock's
                // last save) says nothing of how long the device was off: no time.
                let carry = CarryOver {
                    boot: BootTime::of(now.boot),
                    wall: now.wall.max(taken.wall),
                };
                snapshot
                    .checks
                    .into_iter()
                    .map(|entry| {
                        let state = WallCheck::of(&entry.state, taken);
                        (entry.check, state.carried_over(&carry))
                    })
                    .collect()
            }
            Format::Wall(snapshot) => {
                let carry = CarryOver {
                    boot: BootTime::of(now.boot),
                    wall: now.wall,
                };
                snapshot.into_checks(&carry).collect()
            }
        };
        checks.into_iter()
    }

    /// The ids of the checks in the snapshot.
    pub fn check_ids(&self) -> impl Iterator<Item = &CheckId> {
        let ids: Vec<&CheckId> = match &self.format {
            Format::Boot(snapshot) => snapshot.checks.iter().map(|entry| &entry.check).collect(),
            Format::Wall(snapshot) => snapshot.check_ids().collect(),
        };
        ids.into_iter()
    }
}

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.format {
            Format::Boot(snapshot) => snapshot.serialize(serializer),
            Format::Wall(snapshot) => snapshot.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Snapshot {
    /// Reads the version first, then the format of that version.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;

        let value = serde_json::Value::deserialize(deserializer)?;
        let format = match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(2) => serde_json::from_value(value).map(Format::Boot),
            Some(1) => serde_json::from_value(value).map(Format::Wall),
            version => {
                let version = version.map_or("without a number".to_owned(), |v| v.to_string());
                return Err(D::Error::custom(format!(
                    "engine snapshot version {version} is not supported (this build reads \
                     versions 1 and {}): start without the saved alert state",
                    Snapshot::VERSION
                )));
            }
        };
        format
            .map(|format| Snapshot { format })
            .map_err(D::Error::custom)
    }
}
