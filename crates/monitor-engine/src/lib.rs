//! The alert engine: turns what the watchers observe into Mender alerts.
//!
//! Watchers report [`Observation`]s for a check (a log line matched, whether a condition
//! holds, a source that stopped or runs again, a hand-made clear); the [`Engine`] keeps
//! every check's state and decides which [`Alert`]s follow, with Mender Monitor's semantics:
//!
//! - a pattern check ([`PatternCheck`]: log file, `@command`, docker events, D-Bus) turns
//!   CRITICAL on its first match and OK once it has not matched for its expiration
//!   (`monitor_wire::duration::Expiration`), or when cleared by hand; one whose source can
//!   stop also says so, once per stop ([`SourceAlerts`]);
//! - a condition check ([`ConditionCheck`]: a service not running, the agent's state
//!   folder refusing writes) is CRITICAL while its condition holds, and, if it counts
//!   flapping, CRITICAL "going up and down" while it changes at least
//!   [`EngineSettings::flapping_count_threshold`] times within
//!   [`EngineSettings::flapping_interval`]; nothing else is sent while it flaps. Its alert
//!   names and statuses come with the spec, so a new kind of condition needs no change here.
//!
//! Time is an argument: every method takes `now`, a [`Moment`] on two clocks. Every duration
//! (expiries, flapping windows) is measured on the boot clock, which counts suspend and never
//! jumps; the wall clock only dates alerts and what [`CheckView`] shows, so a device that
//! boots in 1970 and gets the date from NTP later makes nothing due at once.
//! [`Engine::next_deadline`] tells the caller when (on the boot clock) to call
//! [`Engine::advance`] next (expiries, flapping episodes ending), so the agent sleeps until
//! then instead of polling. [`Engine::snapshot`] and [`Engine::restore`] carry the state
//! across restarts and reboots (see [`Snapshot`] for the format and how a reboot is handled).
//!
//! What it deliberately does not do: no I/O, no clock reads, no async runtime, no threads.
//! It does not match patterns or talk to systemd (the watchers do), does not deliver, retry
//! or persist alerts (delivery and the store do), and does not validate check files (the
//! config crate hands it specs that are already resolved). It never sends alerts because the
//! agent shuts down: dropping an engine emits nothing.
//!
//! Files: `spec.rs` what callers hand in and get back; `check.rs` a configured check;
//! `pattern.rs` and `condition.rs` the rules of each kind of check; `snapshot.rs` (with
//! `snapshot/`) the persisted form, old forms included.

mod boot_time;
mod check;
mod condition;
mod pattern;
mod snapshot;
mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use monitor_wire::{Alert, CheckId};

use boot_time::BootTime;
use check::Check;
pub use snapshot::Snapshot;
pub use spec::{
    AlertText, CheckSpec, CheckView, ConditionCheck, Emitted, EngineSettings, Moment, Observation,
    PatternCheck, SourceAlerts, REASON_FIELD,
};

/// The reason of the OK sent when a check is removed (disabled or deleted) while not OK.
const REASON_CHECK_DISABLED: &str = "check disabled";
/// The reason of the OK sent when a check is replaced by one of another kind, or a condition
/// check is pointed at another subject.
const REASON_CHECK_RECONFIGURED: &str = "check reconfigured";

/// The state of every configured check, and the rules that turn observations into alerts.
///
/// Every call that may raise alerts returns them in the order they happened (within one
/// `advance`, in check id order); the engine keeps no queue of its own.
#[derive(Clone, Debug)]
pub struct Engine {
    settings: EngineSettings,
    checks: BTreeMap<CheckId, Check>,
    /// Every check's next deadline, earliest first. The agent asks for the earliest at
    /// every turn of its loop (every log line): a look at every check there would make
    /// each line cost more the more checks there are.
    deadlines: BTreeSet<(BootTime, CheckId)>,
}

impl Engine {
    pub fn new(settings: EngineSettings) -> Self {
        Engine {
            settings,
            checks: BTreeMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Takes effect at the next `observe`/`advance`; `next_deadline` reflects it at once.
    pub fn set_settings(&mut self, settings: EngineSettings) {
        self.settings = settings;
        self.index_every_deadline();
    }

    /// Adds a check, or updates one.
    ///
    /// Updating a pattern check keeps its state: a CRITICAL one then expires at its last
    /// match plus the new expiration, which may already be due; the OK comes from the next
    /// `advance`, not from here; a changed source forgets that the old one stopped (without
    /// an OK, as before the engine knew sources). Updating a condition check keeps its state
    /// unless it now has another subject. A spec of the other kind, or another subject,
    /// starts afresh, with an OK first for what the old check held open.
    pub fn configure(&mut self, check: CheckId, spec: CheckSpec, now: Moment) -> Vec<Emitted> {
        self.unindex_deadline(&check);
        let emitted = self.configure_unindexed(&check, spec, now);
        self.index_deadline(&check);
        emitted
    }

    fn configure_unindexed(
        &mut self,
        check: &CheckId,
        spec: CheckSpec,
        now: Moment,
    ) -> Vec<Emitted> {
        match (self.checks.get_mut(check), spec) {
            (
                Some(Check::Pattern {
                    spec,
                    state,
                    source_down,
                }),
                CheckSpec::Pattern(new_spec),
            ) => {
                state.reconfigure(&new_spec);
                // Another source (or none) is not the one that stopped.
                if spec.source != new_spec.source {
                    *source_down = false;
                }
                *spec = new_spec;
                Vec::new()
            }
            (Some(Check::Condition { spec, .. }), CheckSpec::Condition(new_spec))
                if spec.subject_name == new_spec.subject_name =>
            {
                *spec = new_spec;
                Vec::new()
            }
            (_, new_spec) => {
                let closed = self
                    .checks
                    .insert(check.clone(), Check::fresh(new_spec, now))
                    .and_then(|old| old.close(REASON_CHECK_RECONFIGURED, now));
                emitted(check, closed)
            }
        }
    }

    /// Forgets a check (disabled or deleted), with an OK if it was not OK: nobody would
    /// ever clear its CRITICAL otherwise.
    pub fn remove(&mut self, check: &CheckId, now: Moment) -> Vec<Emitted> {
        self.unindex_deadline(check);
        let closed = self
            .checks
            .remove(check)
            .and_then(|old| old.close(REASON_CHECK_DISABLED, now));
        emitted(check, closed)
    }

    /// Applies what a watcher saw. Unknown check ids are ignored (the watcher may report
    /// after its check was removed).
    ///
    /// Whatever was due for this check at or before `now` happens first, so the outcome does
    /// not depend on whether the caller ran `advance(now)` before: a match arriving after an
    /// expiry gives the OK and then a new CRITICAL.
    pub fn observe(
        &mut self,
        check: &CheckId,
        observation: Observation,
        now: Moment,
    ) -> Vec<Emitted> {
        self.unindex_deadline(check);
        let Some(state) = self.checks.get_mut(check) else {
            return Vec::new();
        };
        let due = state.settle(&self.settings, now);
        let observed = state.observe(&self.settings, observation, now);
        self.index_deadline(check);
        due.into_iter()
            .chain(observed)
            .map(|alert| Emitted {
                check: check.clone(),
                alert,
            })
            .collect()
    }

    /// Does everything due at or before `now`: expiries of pattern checks, ends of
    /// flapping episodes.
    pub fn advance(&mut self, now: Moment) -> Vec<Emitted> {
        let settings = &self.settings;
        let emitted = self
            .checks
            .iter_mut()
            .filter_map(|(check, state)| {
                state.settle(settings, now).map(|alert| Emitted {
                    check: check.clone(),
                    alert,
                })
            })
            .collect();
        // Runs when something is due (an expiry, the end of a flapping episode), not per
        // line: building the index again costs what the pass above did.
        self.index_every_deadline();
        emitted
    }

    /// The earliest time, on the boot clock, at which `advance` has work; `None` when nothing
    /// is pending.
    ///
    /// After `advance(now)` it is later than `now.boot`. It can be in the past after
    /// `set_settings`, `configure` or `restore` made something due: call `advance` at once
    /// then.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.deadlines
            .first()
            .map(|(deadline, _)| deadline.since_boot())
    }

    /// What `monitorctl status` shows of `check`, with times on `now`'s wall clock.
    pub fn view(&self, check: &CheckId, now: Moment) -> Option<CheckView> {
        self.checks.get(check).map(|state| state.view(now))
    }

    /// The spec `check` was configured with, e.g. to change one field of a check that no
    /// file describes (a subject raised by `monitorctl raise`, restored from a snapshot).
    pub fn spec(&self, check: &CheckId) -> Option<CheckSpec> {
        self.checks.get(check).map(|state| match state {
            Check::Pattern { spec, .. } => CheckSpec::Pattern(spec.clone()),
            Check::Condition { spec, .. } => CheckSpec::Condition(spec.clone()),
        })
    }

    /// Whether `check`'s source stopped ([`Observation::SourceDown`]) and its OK is still owed.
    pub fn source_down(&self, check: &CheckId) -> bool {
        matches!(
            self.checks.get(check),
            Some(Check::Pattern {
                source_down: true,
                ..
            })
        )
    }

    /// The configured checks, in order.
    pub fn check_ids(&self) -> impl Iterator<Item = &CheckId> {
        self.checks.keys()
    }

    /// Every check's spec and state, to be persisted and handed to [`Engine::restore`].
    ///
    /// `boot_id` names the boot the boot clock counts from (Linux's
    /// `/proc/sys/kernel/random/boot_id`; `None` when unknown): `restore` keeps the times
    /// as they are in the same boot and carries them over by the wall clock after a reboot.
    pub fn snapshot(&self, now: Moment, boot_id: Option<&str>) -> Snapshot {
        Snapshot::new(
            now,
            boot_id,
            self.checks
                .iter()
                .map(|(check, state)| (check.clone(), state.clone())),
        )
    }

    /// An engine with the checks of `snapshot`. The caller then configures the checks it
    /// has now and removes the others, which sends their OKs.
    ///
    /// In the boot the snapshot was taken in (same `boot_id`), every time is kept as it
    /// was. After a reboot (or when either boot is unknown) the boot clock started again,
    /// so each time is carried over by how long ago (or ahead) it was on the wall clock:
    /// a remaining expiry keeps what was left at the snapshot minus the wall time passed
    /// since, never more than the configured duration; a wall clock behind the snapshot's
    /// counts as no time passed. See [`Snapshot`].
    pub fn restore(
        settings: EngineSettings,
        snapshot: Snapshot,
        now: Moment,
        boot_id: Option<&str>,
    ) -> Self {
        let checks = snapshot.into_checks(now, boot_id).collect();
        let mut engine = Engine {
            settings,
            checks,
            deadlines: BTreeSet::new(),
        };
        engine.index_every_deadline();
        engine
    }

    /// Takes `check` out of `deadlines`, before a change to its state or spec. Its deadline
    /// is computed as when it was indexed: the settings and the state have not changed since.
    fn unindex_deadline(&mut self, check: &CheckId) {
        let deadline = self
            .checks
            .get(check)
            .and_then(|state| state.deadline(&self.settings));
        if let Some(deadline) = deadline {
            self.deadlines.remove(&(deadline, check.clone()));
        }
    }

    /// Puts `check` in `deadlines` after a change, if it has a deadline now.
    fn index_deadline(&mut self, check: &CheckId) {
        let deadline = self
            .checks
            .get(check)
            .and_then(|state| state.deadline(&self.settings));
        if let Some(deadline) = deadline {
            self.deadlines.insert((deadline, check.clone()));
        }
    }

    fn index_every_deadline(&mut self) {
        let settings = &self.settings;
        self.deadlines = self
            .checks
            .iter()
            .filter_map(|(check, state)| Some((state.deadline(settings)?, check.clone())))
            .collect();
    }
}

fn emitted(check: &CheckId, alert: Option<Alert>) -> Vec<Emitted> {
    alert
        .map(|alert| Emitted {
            check: check.clone(),
            alert,
        })
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests;
