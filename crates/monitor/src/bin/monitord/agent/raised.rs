//! Alerts raised by scripts (`monitorctl raise`, Mender's `monitor_send_alert`): one
//! condition check per subject in the engine, `monitor <subject>`, CRITICAL while raised.
//!
//! The engine gives them everything other checks have: one CRITICAL however often a cron
//! script raises it, the OK once, state in the checkpoint (so a restart or a kill -9 keeps
//! a subject CRITICAL and sends no second CRITICAL), the history and every destination.
//! No check file makes them, so a reload keeps them; a subject that turned OK is forgotten,
//! so the engine holds only the subjects that are CRITICAL.

use monitor_engine::{AlertText, CheckSpec, ConditionCheck, Engine, Observation};
use monitor_wire::control::{CheckState, CheckStatus, Response};
use monitor_wire::{CheckId, Details, Level, Subsystem, Timestamp};

use super::Agent;
use crate::clock;
use crate::own_alerts::StateDirCheck;

/// `subject.type` unless the script says otherwise.
const DEFAULT_SUBJECT_TYPE: &str = "script";
const DEFAULT_CRITICAL_STATUS: &str = "raised";
const DEFAULT_OK_STATUS: &str = "cleared";
/// The most subjects CRITICAL at once: a script raising a new subject per run must not grow
/// the engine and every checkpoint without bound.
const MAX_RAISED: usize = 1000;
/// As monitor-server keeps them (Mender's own limits are not published).
const MAX_SUBJECT_CHARS: usize = 256;
const MAX_NAME_CHARS: usize = 1024;

/// What a script asked for, as `Request::Raise` carries it.
pub(super) struct Raise {
    pub level: Level,
    pub subject: String,
    pub name: Option<String>,
    pub details: Option<String>,
    pub status: Option<String>,
    pub subject_type: Option<String>,
}

/// Whether `check` is one a script raised (the agent's own `monitor state_dir` is not).
pub(super) fn is_raised(check: &CheckId) -> bool {
    check.subsystem == Subsystem::Monitor && *check != StateDirCheck::id()
}

/// The subjects raised now, CRITICAL, as `monitorctl status` shows them.
pub(super) fn statuses(engine: &Engine) -> Vec<CheckStatus> {
    let now = clock::now();
    engine
        .check_ids()
        .filter(|check| is_raised(check))
        .filter_map(|check| {
            let view = engine.view(check, now)?;
            (view.state == CheckState::Critical).then(|| CheckStatus {
                check: check.clone(),
                state: CheckState::Critical,
                since: view.since.map(Timestamp),
                expires: None,
                detail: Some(format!(
                    "raised by monitorctl raise; clear it with `monitorctl raise OK {}`",
                    check.name
                )),
            })
        })
        .collect()
}

fn checked(field: &str, text: &str, max_chars: usize) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err(format!("{field} is empty: give it some text"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!(
            "{field} has a control character (a newline?): give it one line of text"
        ));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(format!(
            "{field} has {chars} characters: give it at most {max_chars}"
        ));
    }
    Ok(())
}

impl Raise {
    fn validate(&self) -> Result<(), String> {
        checked("the subject", &self.subject, MAX_SUBJECT_CHARS)?;
        if CheckId::new(Subsystem::Monitor, self.subject.as_str()) == StateDirCheck::id() {
            return Err(format!(
                "the subject `{}` is the agent's own check: raise another subject",
                self.subject
            ));
        }
        if let Some(name) = &self.name {
            checked("--name", name, MAX_NAME_CHARS)?;
        }
        if let Some(status) = &self.status {
            checked("--status", status, MAX_SUBJECT_CHARS)?;
        }
        if let Some(subject_type) = &self.subject_type {
            checked("--type", subject_type, MAX_SUBJECT_CHARS)?;
        }
        Ok(())
    }

    /// The subject's spec: what the script said now, else what the subject's CRITICAL
    /// said (`current`), else the defaults.
    fn spec(&self, current: Option<&ConditionCheck>) -> ConditionCheck {
        let name = self
            .name
            .clone()
            .or_else(|| current.map(|spec| spec.critical.name.clone()))
            .unwrap_or_else(|| format!("{} raised by a script", self.subject));
        // `--status` is the status of this raise's level; the other level keeps its own.
        let status = |level: Level, current: Option<&AlertText>, default: &str| {
            let given = self.status.clone().filter(|_| self.level == level);
            given.unwrap_or_else(|| current.map_or(default.to_owned(), |text| text.status.clone()))
        };
        ConditionCheck {
            subject_name: self.subject.clone(),
            subject_type: self
                .subject_type
                .clone()
                .or_else(|| current.map(|spec| spec.subject_type.clone()))
                .unwrap_or_else(|| DEFAULT_SUBJECT_TYPE.to_owned()),
            critical: AlertText {
                name: name.clone(),
                status: status(
                    Level::Critical,
                    current.map(|spec| &spec.critical),
                    DEFAULT_CRITICAL_STATUS,
                ),
            },
            ok: AlertText {
                name,
                status: status(Level::Ok, current.map(|spec| &spec.ok), DEFAULT_OK_STATUS),
            },
            flapping: None,
        }
    }
}

impl Agent {
    /// Raises a script's CRITICAL or OK through the engine.
    pub(super) fn raise(&mut self, raise: Raise) -> Response {
        if let Err(message) = raise.validate() {
            return Response::Error { message };
        }
        let check = CheckId::new(Subsystem::Monitor, raise.subject.as_str());
        let now = clock::now();
        // What the subject's CRITICAL said: kept in the engine, and so in the checkpoint.
        let current = match self.engine.spec(&check) {
            Some(CheckSpec::Condition(spec)) => Some(spec),
            _ => None,
        };
        if current.is_none() {
            if raise.level == Level::Ok {
                // Not CRITICAL: nothing to clear, as a cron script says OK run after run.
                return Response::Done;
            }
            let raised = self.engine.check_ids().filter(|id| is_raised(id)).count();
            if raised >= MAX_RAISED {
                return Response::Error {
                    message: format!(
                        "{raised} subjects are raised already, the most the agent keeps: \
                         raise OK for some of them (see monitorctl status)"
                    ),
                };
            }
        }
        let spec = raise.spec(current.as_ref());
        let mut emitted = self
            .engine
            .configure(check.clone(), CheckSpec::Condition(spec), now);
        let details = Details {
            description: raise.details.clone(),
            ..Details::default()
        };
        let holds = raise.level == Level::Critical;
        emitted.extend(
            self.engine
                .observe(&check, Observation::Condition { holds, details }, now),
        );
        if !holds {
            self.forget_raised(&check);
        }
        self.emit(emitted);
        Response::Done
    }

    /// `monitorctl clear monitor <subject>`: the subject's OK, as `raise OK` sends it.
    pub(super) fn clear_raised(&mut self, check: &CheckId) -> Response {
        if self.engine.spec(check).is_none() {
            return Response::Error {
                message: format!(
                    "\"{check}\" is not raised; `monitorctl status` lists the raised subjects"
                ),
            };
        }
        self.raise(Raise {
            level: Level::Ok,
            subject: check.name.clone(),
            name: None,
            details: Some("cleared by hand (monitorctl clear)".into()),
            status: None,
            subject_type: None,
        })
    }

    /// A subject that is OK again leaves the engine (its OK is sent by then).
    fn forget_raised(&mut self, check: &CheckId) {
        let closing = self.engine.remove(check, clock::now());
        debug_assert!(closing.is_empty(), "an OK subject closes without an alert");
    }
}
