//! A configured check: its spec and its state, of the same kind by construction.

use monitor_wire::Alert;
use serde::{Deserialize, Serialize};

use crate::boot_time::BootTime;
use crate::condition::{ConditionState, Course};
use crate::pattern::{self, PatternState};
use crate::snapshot::service::{ServiceSpec, ServiceState};
use crate::spec::{
    CheckSpec, CheckView, ConditionCheck, EngineSettings, Moment, Observation, PatternCheck,
};

/// In a snapshot, as [`StoredCheck`] writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "StoredCheck", from = "StoredCheck")]
pub(crate) enum Check {
    Pattern {
        spec: PatternCheck,
        state: PatternState,
        /// Whether the stop of the check's source raised a CRITICAL that its OK has not
        /// followed yet.
        source_down: bool,
    },
    Condition {
        spec: ConditionCheck,
        state: ConditionState,
    },
}

impl Check {
    pub(crate) fn fresh(spec: CheckSpec, now: Moment) -> Check {
        match spec {
            CheckSpec::Pattern(spec) => Check::Pattern {
                spec,
                state: PatternState::fresh(BootTime::of(now.boot)),
                source_down: false,
            },
            CheckSpec::Condition(spec) => Check::Condition {
                spec,
                state: ConditionState::fresh(BootTime::of(now.boot)),
            },
        }
    }

    pub(crate) fn observe(
        &mut self,
        settings: &EngineSettings,
        observation: Observation,
        now: Moment,
    ) -> Option<Alert> {
        match (self, observation) {
            (Check::Pattern { spec, state, .. }, Observation::Matched { details }) => {
                state.observe_match(spec, details, now)
            }
            (Check::Pattern { spec, state, .. }, Observation::Clear) => state.clear(spec, now),
            (
                Check::Pattern {
                    spec, source_down, ..
                },
                Observation::SourceDown { message },
            ) => pattern::source_changed(spec, source_down, true, message, now),
            (
                Check::Pattern {
                    spec, source_down, ..
                },
                Observation::SourceUp { message },
            ) => pattern::source_changed(spec, source_down, false, message, now),
            (Check::Condition { spec, state }, Observation::Condition { holds, details }) => {
                state.observe(spec, settings, holds, details, now)
            }
            _ => None,
        }
    }

    /// Does what is due at or before `now`.
    pub(crate) fn settle(&mut self, settings: &EngineSettings, now: Moment) -> Option<Alert> {
        match self {
            Check::Pattern { spec, state, .. } => state.settle(spec, now),
            Check::Condition { spec, state } => state.settle(spec, settings, now),
        }
    }

    pub(crate) fn deadline(&self, settings: &EngineSettings) -> Option<BootTime> {
        match self {
            Check::Pattern { state, .. } => state.deadline(),
            Check::Condition { state, .. } => state.deadline(settings),
        }
    }

    /// The OK that closes whatever the check holds open, when it goes away. A stopped
    /// source gets none: the agent never sent one for it before the engine knew sources.
    pub(crate) fn close(&self, reason: &str, now: Moment) -> Option<Alert> {
        match self {
            Check::Pattern { spec, state, .. } => state.close(spec, reason, now),
            Check::Condition { spec, state } => state.close(spec, reason, now),
        }
    }

    pub(crate) fn view(&self, now: Moment) -> CheckView {
        match self {
            Check::Pattern { state, .. } => state.view(now),
            Check::Condition { state, .. } => state.view(now),
        }
    }
}

/// A check as a snapshot holds it: `{"kind": "pattern", "spec": ..., "state": ...}`, with
/// `"source_down": true` while the source's stop holds a CRITICAL open; a condition with a
/// service's texts as `"kind": "service"` (see [`ServiceSpec`]), any other as `"kind":
/// "condition"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum StoredCheck {
    Pattern {
        spec: PatternCheck,
        state: PatternState,
        #[serde(default, skip_serializing_if = "is_false")]
        source_down: bool,
    },
    Service {
        spec: ServiceSpec,
        state: ServiceState<Course>,
    },
    Condition {
        spec: ConditionCheck,
        state: ConditionState,
    },
}

impl From<Check> for StoredCheck {
    fn from(check: Check) -> Self {
        match check {
            Check::Pattern {
                spec,
                state,
                source_down,
            } => StoredCheck::Pattern {
                spec,
                state,
                source_down,
            },
            Check::Condition { spec, state } => match ServiceSpec::of(&spec) {
                Some(service) => StoredCheck::Service {
                    spec: service,
                    state: ServiceState::new(state.holds, state.course),
                },
                None => StoredCheck::Condition { spec, state },
            },
        }
    }
}

impl From<StoredCheck> for Check {
    fn from(stored: StoredCheck) -> Self {
        match stored {
            StoredCheck::Pattern {
                spec,
                state,
                source_down,
            } => Check::Pattern {
                spec,
                state,
                source_down,
            },
            StoredCheck::Service { spec, state } => {
                let (holds, course) = state.into_condition();
                Check::Condition {
                    spec: spec.condition(),
                    state: ConditionState { holds, course },
                }
            }
            StoredCheck::Condition { spec, state } => Check::Condition { spec, state },
        }
    }
}

/// For `skip_serializing_if`: a flag that is off is left out.
pub(crate) fn is_false(flag: &bool) -> bool {
    !*flag
}
