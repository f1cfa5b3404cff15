//! Checks on every systemd unit (`service` checks named `*`): one condition in the engine
//! per unit that failed, `service <check>/<unit>`, CRITICAL while the unit is failed.
//!
//! As for the subjects of `monitorctl raise`, no check file makes them: a unit's condition
//! is configured when the unit is first seen failed and leaves the engine with its OK, so
//! the engine (and each checkpoint) holds only the units that are failed now, however many
//! units the manager has. A reload keeps them while their check is enabled; disabling the
//! check removes them, which sends their OKs. The `/` keeps their names apart from every
//! check a file can name.

use monitor_config::{CheckKind, ServiceCheck};
use monitor_engine::{CheckSpec, Engine};
use monitor_wire::control::{CheckState, CheckStatus};
use monitor_wire::{CheckId, Subsystem, Timestamp};

use super::Agent;
use crate::clock;
use crate::plan::Plan;

/// The engine's check for `unit` of the check on every unit `check`.
pub(crate) fn unit_subject(check: &CheckId, unit: &str) -> CheckId {
    CheckId::new(check.subsystem, format!("{}/{unit}", check.name))
}

/// The check on every unit and the unit of one of its subjects.
pub(crate) fn split_unit_subject(subject: &CheckId) -> Option<(CheckId, &str)> {
    if subject.subsystem != Subsystem::Service {
        return None;
    }
    let (check, unit) = subject.name.split_once('/')?;
    Some((CheckId::new(Subsystem::Service, check), unit))
}

/// Whether `check` is an enabled check on every unit.
fn watches_every_unit(plan: &Plan, check: &CheckId) -> bool {
    plan.failed_units.iter().any(|watch| watch.check == *check)
}

/// Whether `subject` is a unit of a check on every unit that the plan has: kept by a reload.
pub(super) fn is_kept_unit_subject(plan: &Plan, subject: &CheckId) -> bool {
    split_unit_subject(subject).is_some_and(|(check, _)| watches_every_unit(plan, &check))
}

/// The units the engine holds failed for `check` (each a subject not OK yet).
pub(super) fn failed_units_of(engine: &Engine, check: &CheckId) -> Vec<String> {
    engine
        .check_ids()
        .filter_map(|subject| {
            let (of, unit) = split_unit_subject(subject)?;
            (of == *check).then(|| unit.to_owned())
        })
        .collect()
}

/// The failed units, CRITICAL, as `monitorctl status` shows them.
pub(super) fn statuses(plan: &Plan, engine: &Engine) -> Vec<CheckStatus> {
    let now = clock::now();
    engine
        .check_ids()
        .filter(|subject| is_kept_unit_subject(plan, subject))
        .filter_map(|subject| {
            let view = engine.view(subject, now)?;
            let (check, unit) = split_unit_subject(subject)?;
            (view.state == CheckState::Critical).then(|| CheckStatus {
                check: subject.clone(),
                state: CheckState::Critical,
                since: view.since.map(Timestamp),
                expires: None,
                detail: Some(format!(
                    "{unit} is failed (check {check}); OK once it runs again or after `systemctl reset-failed {unit}`"
                )),
            })
        })
        .collect()
}

impl Agent {
    /// Before a unit's state is observed: a unit of an enabled check on every unit, newly
    /// failed, gets its condition in the engine.
    pub(super) fn prepare_unit_subject(&mut self, subject: &CheckId, failed: bool) {
        if !failed || self.engine.spec(subject).is_some() {
            return;
        }
        let Some((check, unit)) = split_unit_subject(subject) else {
            return;
        };
        let every_unit = self.plan.checks.iter().any(|(id, kind)| {
            *id == check && matches!(kind, CheckKind::Service(service) if service.is_all_units())
        });
        if every_unit {
            let spec = CheckSpec::Condition(ServiceCheck::failed_unit_spec(unit));
            let emitted = self.engine.configure(subject.clone(), spec, clock::now());
            debug_assert!(emitted.is_empty(), "a new condition starts without alerts");
        }
    }

    /// After a unit's state is observed: a unit no longer failed leaves the engine (its OK
    /// is sent by then).
    pub(super) fn forget_unit_subject(&mut self, subject: &CheckId, failed: bool) {
        if failed || split_unit_subject(subject).is_none() {
            return;
        }
        if self.engine.spec(subject).is_some() {
            let closing = self.engine.remove(subject, clock::now());
            debug_assert!(closing.is_empty(), "an OK unit closes without an alert");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_subject_names_its_check_and_its_unit() {
        let check = CheckId::new(Subsystem::Service, "failed_units");
        let subject = unit_subject(&check, "getty@tty1.service");
        assert_eq!(
            subject.to_string(),
            "service failed_units/getty@tty1.service"
        );
        assert_eq!(
            split_unit_subject(&subject),
            Some((check, "getty@tty1.service"))
        );
        assert_eq!(
            split_unit_subject(&CheckId::new(Subsystem::Service, "crasher")),
            None
        );
        assert_eq!(
            split_unit_subject(&CheckId::new(Subsystem::Monitor, "a/b")),
            None
        );
    }
}
