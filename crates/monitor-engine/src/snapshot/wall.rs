//! The engine's state with its times on the wall clock: snapshot version 1, which devices
//! wrote before version 2, and the form in which a snapshot of another boot is carried
//! over (see [`Snapshot`](super::Snapshot)).

use std::collections::VecDeque;
use std::time::SystemTime;

use monitor_wire::{CheckId, Details};
use serde::{Deserialize, Serialize};

use super::{epoch_millis, epoch_millis_deque, optional_epoch_millis, CarryOver};
use crate::pattern::PatternState;
use crate::service::ServiceState;
use crate::{Check, Moment, PatternCheck, ServiceCheck};

/// Version 1, as JSON:
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
/// The same as version 2 without `taken`, and with every time in milliseconds since the
/// Unix epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct WallSnapshot {
    version: u32,
    checks: Vec<WallEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct WallEntry {
    check: CheckId,
    #[serde(flatten)]
    state: WallCheck,
}

impl WallSnapshot {
    pub(crate) fn check_ids(&self) -> impl Iterator<Item = &CheckId> {
        self.checks.iter().map(|entry| &entry.check)
    }

    pub(crate) fn into_checks(
        self,
        carry: &CarryOver,
    ) -> impl Iterator<Item = (CheckId, Check)> + '_ {
        self.checks
            .into_iter()
            .map(|entry| (entry.check, entry.state.carried_over(carry)))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum WallCheck {
    Pattern {
        spec: PatternCheck,
        state: WallPatternState,
    },
    Service {
        spec: ServiceCheck,
        state: WallServiceState,
    },
}

impl WallCheck {
    /// `check` with its times on the wall clock of `taken`, the moment of its snapshot.
    pub(crate) fn of(check: &Check, taken: Moment) -> Self {
        match check {
            Check::Pattern { spec, state } => WallCheck::Pattern {
                spec: spec.clone(),
                state: state.to_wall(taken),
            },
            Check::Service { spec, state } => WallCheck::Service {
                spec: spec.clone(),
                state: state.to_wall(taken),
            },
        }
    }

    /// The check with its times on this boot's clock.
    pub(crate) fn carried_over(self, carry: &CarryOver) -> Check {
        match self {
            WallCheck::Pattern { spec, state } => Check::Pattern {
                state: PatternState::carried_over(state, &spec, carry),
                spec,
            },
            WallCheck::Service { spec, state } => Check::Service {
                spec,
                state: ServiceState::carried_over(state, carry),
            },
        }
    }
}

/// `PatternState` on the wall clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WallPatternState {
    Ok {
        #[serde(with = "epoch_millis")]
        since: SystemTime,
    },
    Critical {
        #[serde(with = "epoch_millis")]
        since: SystemTime,
        #[serde(with = "epoch_millis")]
        last_match: SystemTime,
        #[serde(with = "optional_epoch_millis")]
        expires: Option<SystemTime>,
    },
}

/// `ServiceState` on the wall clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct WallServiceState {
    pub(crate) running: Option<bool>,
    pub(crate) details: Details,
    #[serde(with = "epoch_millis_deque")]
    pub(crate) changes: VecDeque<SystemTime>,
    pub(crate) flapping: bool,
    #[serde(with = "epoch_millis")]
    pub(crate) since: SystemTime,
}
