//! Alerts the agent makes itself, about a condition rather than a match: its state folder
//! not taking writes (check `monitor state_dir`), and (through `sources::commands`) an
//! `@command` source that stopped.

use std::path::PathBuf;
use std::time::SystemTime;

use monitor_engine::Emitted;
use monitor_wire::control::{CheckState, CheckStatus};
use monitor_wire::{Alert, CheckId, Details, Level, Subject, Subsystem, Timestamp};

use crate::persist::{StorageHealth, MAX_UNWRITTEN_ALERTS};

/// The name of the agent's own check on its state folder (`monitor state_dir`).
const STATE_DIR_CHECK: &str = "state_dir";

/// What a condition is called, and its subject's status while it holds and once it is over.
pub struct ConditionAlert<'a> {
    pub check: CheckId,
    pub name: String,
    pub kind: &'a str,
    pub statuses: [&'a str; 2],
}

impl ConditionAlert<'_> {
    pub fn at(self, level: Level, message: String, now: SystemTime) -> Emitted {
        let [holds, over] = self.statuses;
        let alert = Alert {
            name: self.name,
            level,
            timestamp: Timestamp(now),
            subject: Subject {
                name: self.check.name.clone(),
                kind: self.kind.into(),
                status: if level == Level::Critical {
                    holds
                } else {
                    over
                }
                .into(),
                details: Details {
                    description: Some(message),
                    ..Details::default()
                },
            },
        };
        Emitted {
            check: self.check,
            alert,
        }
    }
}

/// The agent's own check on its state folder.
pub struct StateDirCheck {
    state_dir: PathBuf,
    /// Why the state folder does not take writes, while the agent says so (CRITICAL sent).
    pub unwritable: Option<String>,
}

impl StateDirCheck {
    pub fn new(state_dir: PathBuf, unwritable: Option<String>) -> StateDirCheck {
        StateDirCheck {
            state_dir,
            unwritable,
        }
    }

    /// The state folder stopped or started taking writes: the agent's own CRITICAL or OK.
    pub fn on_health(&mut self, health: StorageHealth, now: SystemTime) -> Option<Emitted> {
        let (level, message) = match (health, &self.unwritable) {
            (Err(reason), None) => {
                let message = format!(
                    "{} does not take writes: {reason}; alerts are still delivered, and up to {MAX_UNWRITTEN_ALERTS} wait in memory for the history. Free space or repair the disk",
                    self.state_dir.display()
                );
                self.unwritable = Some(message.clone());
                (Level::Critical, message)
            }
            (Ok(()), Some(_)) => {
                self.unwritable = None;
                let message = format!("{} takes writes again", self.state_dir.display());
                (Level::Ok, message)
            }
            _ => return None,
        };
        Some(
            ConditionAlert {
                check: CheckId::new(Subsystem::Monitor, STATE_DIR_CHECK),
                name: "Monitor state folder not writable".into(),
                kind: "monitor",
                statuses: ["NOT_WRITABLE", "WRITABLE"],
            }
            .at(level, message, now),
        )
    }

    /// Shown in `status` while it has something to say.
    pub fn status(&self) -> Option<CheckStatus> {
        self.unwritable.as_ref().map(|reason| CheckStatus {
            check: CheckId::new(Subsystem::Monitor, STATE_DIR_CHECK),
            state: CheckState::Critical,
            since: None,
            expires: None,
            detail: Some(reason.clone()),
        })
    }
}
