//! The agent's own check on its state folder (`monitor state_dir`): a condition in the
//! engine like any other, CRITICAL while the folder refuses writes and OK once a round of
//! writes succeeds, so its state is checkpointed with the rest.

use std::path::PathBuf;

use monitor_engine::{AlertText, CheckSpec, ConditionCheck, Engine, Moment, Observation};
use monitor_wire::control::{CheckState, CheckStatus};
use monitor_wire::{CheckId, Details, Subsystem};

use crate::persist::{StorageHealth, MAX_UNWRITTEN_ALERTS};

/// The name of the agent's own check on its state folder (`monitor state_dir`).
const STATE_DIR_CHECK: &str = "state_dir";
/// The alert's name, CRITICAL and OK alike.
const ALERT_NAME: &str = "Monitor state folder not writable";

pub struct StateDirCheck {
    state_dir: PathBuf,
    /// Why the folder refused writes, as last said (the detail `status` shows).
    reason: Option<String>,
}

impl StateDirCheck {
    pub fn new(state_dir: PathBuf) -> StateDirCheck {
        StateDirCheck {
            state_dir,
            reason: None,
        }
    }

    pub fn id() -> CheckId {
        CheckId::new(Subsystem::Monitor, STATE_DIR_CHECK)
    }

    /// The engine's spec of the check: no flapping, the folder's own texts.
    pub fn spec() -> CheckSpec {
        let text = |status: &str| AlertText {
            name: ALERT_NAME.into(),
            status: status.into(),
        };
        CheckSpec::Condition(ConditionCheck {
            subject_name: STATE_DIR_CHECK.into(),
            subject_type: "monitor".into(),
            critical: text("NOT_WRITABLE"),
            ok: text("WRITABLE"),
            flapping: None,
        })
    }

    /// The state folder stopped or started taking writes: what the engine observes.
    pub fn observe(&mut self, health: StorageHealth) -> Observation {
        let (holds, message) = match health {
            Err(reason) => {
                let message = format!(
                    "{} does not take writes: {reason}; alerts are still delivered, and up to {MAX_UNWRITTEN_ALERTS} wait in memory for the history. Free space or repair the disk",
                    self.state_dir.display()
                );
                // The first reason of an episode is the one its CRITICAL gave.
                (true, self.reason.get_or_insert(message).clone())
            }
            Ok(()) => {
                self.reason = None;
                (
                    false,
                    format!("{} takes writes again", self.state_dir.display()),
                )
            }
        };
        Observation::Condition {
            holds,
            details: Details {
                description: Some(message),
                ..Details::default()
            },
        }
    }

    /// Shown in `status` while it is CRITICAL.
    pub fn status(&self, engine: &Engine, now: Moment) -> Option<CheckStatus> {
        let view = engine.view(&Self::id(), now)?;
        (view.state == CheckState::Critical).then(|| CheckStatus {
            check: Self::id(),
            state: CheckState::Critical,
            since: None,
            expires: None,
            detail: Some(self.reason.clone().unwrap_or_else(|| {
                format!(
                    "{} did not take writes before monitord restarted; writing is retried",
                    self.state_dir.display()
                )
            })),
        })
    }
}
