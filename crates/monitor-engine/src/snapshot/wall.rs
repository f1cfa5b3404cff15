//! The engine's state with its times on the wall clock: snapshot version 1, which devices
//! wrote before version 2, and the form in which a snapshot of another boot is carried
//! over (see [`Snapshot`](super::Snapshot)).

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use monitor_wire::duration::Expiration;
use monitor_wire::{CheckId, Details};
use serde::{Deserialize, Serialize};

use super::carry::{epoch_millis, epoch_millis_deque, optional_epoch_millis, CarryOver};
use super::service::{ServiceSpec, ServiceState};
use crate::check::{is_false, Check};
use crate::condition::{ConditionState, Course};
use crate::pattern::PatternState;
use crate::spec::{ConditionCheck, Moment, PatternCheck};

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

/// A check with its times on the wall clock; stored as [`StoredWallCheck`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "StoredWallCheck", from = "StoredWallCheck")]
pub(crate) enum WallCheck {
    Pattern {
        spec: PatternCheck,
        state: WallPatternState,
        source_down: bool,
    },
    Condition {
        spec: ConditionCheck,
        state: WallConditionState,
    },
}

impl WallCheck {
    /// `check` with its times on the wall clock of `taken`, the moment of its snapshot.
    pub(crate) fn of(check: &Check, taken: Moment) -> Self {
        match check {
            Check::Pattern {
                spec,
                state,
                source_down,
            } => WallCheck::Pattern {
                spec: spec.clone(),
                state: WallPatternState::of(state, taken),
                source_down: *source_down,
            },
            Check::Condition { spec, state } => WallCheck::Condition {
                spec: spec.clone(),
                state: WallConditionState::of(state, taken),
            },
        }
    }

    /// The check with its times on this boot's clock.
    pub(crate) fn carried_over(self, carry: &CarryOver) -> Check {
        match self {
            WallCheck::Pattern {
                spec,
                state,
                source_down,
            } => Check::Pattern {
                state: state.carried_over(&spec, carry),
                spec,
                source_down,
            },
            WallCheck::Condition { spec, state } => Check::Condition {
                spec,
                state: state.carried_over(carry),
            },
        }
    }
}

/// As [`StoredCheck`](crate::check::StoredCheck), with wall times.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum StoredWallCheck {
    Pattern {
        spec: PatternCheck,
        state: WallPatternState,
        #[serde(default, skip_serializing_if = "is_false")]
        source_down: bool,
    },
    Service {
        spec: ServiceSpec,
        state: ServiceState<WallCourse>,
    },
    Condition {
        spec: ConditionCheck,
        state: WallConditionState,
    },
}

impl From<WallCheck> for StoredWallCheck {
    fn from(check: WallCheck) -> Self {
        match check {
            WallCheck::Pattern {
                spec,
                state,
                source_down,
            } => StoredWallCheck::Pattern {
                spec,
                state,
                source_down,
            },
            WallCheck::Condition { spec, state } => match ServiceSpec::of(&spec) {
                Some(service) => StoredWallCheck::Service {
                    spec: service,
                    state: ServiceState::new(state.holds, state.course),
                },
                None => StoredWallCheck::Condition { spec, state },
            },
        }
    }
}

impl From<StoredWallCheck> for WallCheck {
    fn from(stored: StoredWallCheck) -> Self {
        match stored {
            StoredWallCheck::Pattern {
                spec,
                state,
                source_down,
            } => WallCheck::Pattern {
                spec,
                state,
                source_down,
            },
            StoredWallCheck::Service { spec, state } => {
                let (holds, course) = state.into_condition();
                WallCheck::Condition {
                    spec: spec.condition(),
                    state: WallConditionState { holds, course },
                }
            }
            StoredWallCheck::Condition { spec, state } => WallCheck::Condition { spec, state },
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

impl WallPatternState {
    /// The same state with its times on the wall clock of `taken`, the moment of a snapshot.
    fn of(state: &PatternState, taken: Moment) -> Self {
        match *state {
            PatternState::Ok { since } => WallPatternState::Ok {
                since: since.wall(taken),
            },
            PatternState::Critical {
                since,
                last_match,
                expires,
            } => WallPatternState::Critical {
                since: since.wall(taken),
                last_match: last_match.wall(taken),
                expires: expires.map(|expires| expires.wall(taken)),
            },
        }
    }

    /// A state kept on the wall clock (an old snapshot, or one from another boot) on this
    /// boot's clock. The expiry keeps what was left of it, at most the configured expiration.
    fn carried_over(self, spec: &PatternCheck, carry: &CarryOver) -> PatternState {
        match self {
            WallPatternState::Ok { since } => PatternState::Ok {
                since: carry.event(since),
            },
            WallPatternState::Critical {
                since,
                last_match,
                expires,
            } => {
                let longest = match spec.expiration {
                    Expiration::After(duration) => duration,
                    // An expiry on a never-expiring check is a hand edit; keep what it says.
                    Expiration::Never => Duration::MAX,
                };
                PatternState::Critical {
                    since: carry.event(since),
                    last_match: carry.event(last_match),
                    expires: expires.map(|expires| carry.deadline(expires, longest)),
                }
            }
        }
    }
}

/// `ConditionState` on the wall clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct WallConditionState {
    pub(crate) holds: Option<bool>,
    #[serde(flatten)]
    pub(crate) course: WallCourse,
}

/// `Course` on the wall clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct WallCourse {
    pub(crate) details: Details,
    #[serde(with = "epoch_millis_deque")]
    pub(crate) changes: VecDeque<SystemTime>,
    pub(crate) flapping: bool,
    #[serde(with = "epoch_millis")]
    pub(crate) since: SystemTime,
}

impl WallConditionState {
    /// The same state with its times on the wall clock of `taken`, the moment of a snapshot.
    fn of(state: &ConditionState, taken: Moment) -> Self {
        let course = &state.course;
        WallConditionState {
            holds: state.holds,
            course: WallCourse {
                details: course.details.clone(),
                changes: course.changes.iter().map(|at| at.wall(taken)).collect(),
                flapping: course.flapping,
                since: course.since.wall(taken),
            },
        }
    }

    /// A state kept on the wall clock (an old snapshot, or one from another boot) on this
    /// boot's clock.
    fn carried_over(self, carry: &CarryOver) -> ConditionState {
        let course = self.course;
        ConditionState {
            holds: self.holds,
            course: Course {
                details: course.details,
                // Still sorted: a later wall time carries to a boot time no earlier.
                changes: course
                    .changes
                    .into_iter()
                    .map(|at| carry.event(at))
                    .collect(),
                flapping: course.flapping,
                since: carry.event(course.since),
            },
        }
    }
}
