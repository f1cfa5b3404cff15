//! The alert engine: turns what the watchers observe into Mender alerts.
//!
//! Watchers report [`Observation`]s for a check (a log line matched, a service's current
//! state, a hand-made clear); the [`Engine`] keeps every check's state and decides which
//! [`Alert`]s follow, with Mender Monitor's semantics:
//!
//! - a pattern check ([`PatternCheck`]: log file, `@command`, docker events, D-Bus) turns
//!   CRITICAL on its first match and OK once it has not matched for its expiration
//!   (`monitor_wire::duration::Expiration`), or when cleared by hand; one whose source can
//!   stop also says so, once per stop ([`SourceAlerts`]);
//! - a condition check ([`ConditionCheck`]: a service not running, the agent's state
//!   folder refusing writes) is CRITICAL while its condition holds, and, if it counts
//!   flapping, CRITICAL "going up and down" while it changes more than
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

mod boot_time;
mod check;
mod condition;
mod pattern;
mod snapshot;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use monitor_wire::control::CheckState;
use monitor_wire::duration::Expiration;
use monitor_wire::{Alert, CheckId, Details};
use serde::{Deserialize, Serialize};

use boot_time::BootTime;
use check::Check;
pub use snapshot::Snapshot;

/// The `fields` key under which the engine says why it raised an OK.
pub const REASON_FIELD: &str = "reason";

/// The reason of the OK sent when a check is removed (disabled or deleted) while not OK.
const REASON_CHECK_DISABLED: &str = "check disabled";
/// The reason of the OK sent when a check is replaced by one of another kind, or a condition
/// check is pointed at another subject.
const REASON_CHECK_RECONFIGURED: &str = "check reconfigured";

/// The agent-wide settings of the engine (Mender's `config.sh`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSettings {
    /// `FLAPPING_INTERVAL`: the sliding window in which a service's state changes are
    /// counted.
    pub flapping_interval: Duration,
    /// `FLAPPING_COUNT_THRESHOLD`: a service with more state changes than this within the
    /// window is flapping.
    pub flapping_count_threshold: u32,
    /// `ALERT_LOG_MAX_AGE`: how long state changes are remembered for flap counting. When
    /// shorter than `flapping_interval` it narrows the window to itself.
    pub alert_log_max_age: Duration,
}

impl Default for EngineSettings {
    /// Mender does not publish its defaults; these are ours.
    ///
    /// - `flapping_interval` 600 s and `flapping_count_threshold` 5: a service must go down
    ///   and up three times within ten minutes (six changes) to be flapping. A crash loop
    ///   under `Restart=always` gets there within seconds, while an administrator restarting
    ///   a service by hand once or twice (two changes each) does not.
    /// - `alert_log_max_age` 3600 s: comfortably longer than the window, so it does not
    ///   narrow it, and with the cap of 1024 remembered changes per service it bounds memory.
    fn default() -> Self {
        EngineSettings {
            flapping_interval: Duration::from_secs(600),
            flapping_count_threshold: 5,
            alert_log_max_age: Duration::from_secs(3600),
        }
    }
}

/// The time of a call, on both clocks the engine uses.
///
/// Durations are measured on `boot` only: it counts from boot, includes suspend (Linux's
/// `CLOCK_BOOTTIME`) and never jumps, whereas the wall clock of a device without a real-time
/// clock starts in 1970 (or at fake-hwclock's last save) and is stepped forward by NTP later.
/// `wall` dates the alerts and the times shown in [`CheckView`], nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moment {
    pub wall: SystemTime,
    /// Time since boot.
    pub boot: Duration,
}

/// A check that raises an alert when something matches: log files, `@command` output,
/// docker events, D-Bus signals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatternCheck {
    /// The alert name, e.g. `Log file contains ERROR`.
    pub alert_name: String,
    /// `subject.name`: the check name.
    pub subject_name: String,
    /// `subject.type`: `log`, `docker_event`, `dbus`.
    pub subject_type: String,
    /// `subject.status`, e.g. `LOGCONTAINS`; the OK keeps it, as Mender does.
    pub subject_status: String,
    /// Goes to `details.description` of every alert of this check (unless the watcher set
    /// one on a match).
    pub description: Option<String>,
    /// How long the check stays CRITICAL after its last match. In a snapshot:
    /// `{"after": {"secs": 300, "nanos": 0}}` or `"never"`.
    #[serde(with = "snapshot::expiration")]
    pub expiration: Expiration,
    /// For a check whose source can stop (an `@command`): the alerts about the source
    /// itself, raised on [`Observation::SourceDown`] and [`Observation::SourceUp`]. `None`:
    /// those observations are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceAlerts>,
}

/// The name and `subject.status` of one of a check's alerts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertText {
    pub name: String,
    pub status: String,
}

/// What a pattern check says about its source: CRITICAL once when it stops (`Log source
/// @journalctl -f stopped`, `SOURCE_DOWN`), OK once it runs again (`SOURCE_UP`). The
/// subject is the pattern check's `subject_name`; the description is the observation's
/// message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceAlerts {
    /// `subject.type` of these alerts (`log`, whatever the check's own alerts say).
    pub subject_type: String,
    /// The CRITICAL when the source stops.
    pub down: AlertText,
    /// The OK when it runs again.
    pub up: AlertText,
}

/// A check that follows whether a condition holds: a service not running, a disk too full,
/// the agent's state folder refusing writes. CRITICAL while it holds, OK once it no longer
/// does, and, when `flapping` is set, one CRITICAL "going up and down" while it changes more
/// than [`EngineSettings::flapping_count_threshold`] times within
/// [`EngineSettings::flapping_interval`] (nothing else is sent while it flaps).
///
/// Every text comes from the check's kind; the engine knows no kind of condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionCheck {
    /// `subject.name`: the service, or the check's name. A check reconfigured with another
    /// subject starts afresh.
    pub subject_name: String,
    /// `subject.type`: `systemd`, `docker`, `monitor` ...
    pub subject_type: String,
    /// The CRITICAL while the condition holds (`Service nginx not running`, `not-running`).
    pub critical: AlertText,
    /// The OK once it no longer holds (`Service nginx not running`, `running`).
    pub ok: AlertText,
    /// The CRITICAL of a condition that comes and goes too often (`Service nginx going up
    /// and down`, `flapping`); `None`: changes are not counted and it never flaps.
    pub flapping: Option<AlertText>,
}

/// What a check is, as resolved from its check file.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckSpec {
    Pattern(PatternCheck),
    Condition(ConditionCheck),
}

/// What a watcher (or the user) reports about one check.
///
/// An observation of the wrong kind for the check (`Matched` for a condition, `Condition`
/// for a pattern check) is ignored, as are `Clear` for a condition and `SourceDown` /
/// `SourceUp` for a pattern check without [`PatternCheck::source`].
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// A pattern check matched. `details` carries what the watcher knows (line_matching,
    /// lines_before/after, fields); the engine fills details.description from the spec when
    /// the watcher left it None.
    Matched { details: Details },
    /// Whether a condition holds now (a service is not running), with details for a person
    /// (state, exit code...). Sent on every change and on (re)connect re-reads; repeated
    /// equal states are not changes.
    Condition { holds: bool, details: Details },
    /// `monitorctl clear`: a CRITICAL pattern check turns OK now.
    Clear,
    /// A pattern check's source stopped (an `@command` died): one CRITICAL per streak, with
    /// `message` as its description.
    SourceDown { message: String },
    /// The source runs again: the OK, when its stop raised a CRITICAL.
    SourceUp { message: String },
}

/// An alert and the check that raised it.
#[derive(Clone, Debug, PartialEq)]
pub struct Emitted {
    pub check: CheckId,
    pub alert: Alert,
}

/// What `monitorctl status` shows of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckView {
    /// `Unknown` only for a condition never observed; the engine never reports `Error`
    /// (that is the watcher's to say).
    pub state: CheckState,
    /// When the check entered its current state (for `Unknown` and a fresh OK pattern
    /// check: when it was configured), on the wall clock of the `now` given to
    /// [`Engine::view`], so a wall clock set since then shows it at its right date.
    pub since: Option<SystemTime>,
    /// When a CRITICAL pattern check turns OK unless it matches again; wall clock as `since`.
    pub expires: Option<SystemTime>,
}

/// The state of every configured check, and the rules that turn observations into alerts.
///
/// Every call that may raise alerts returns them in the order they happened (within one
/// `advance`, in check id order); the engine keeps no queue of its own.
#[derive(Clone, Debug)]
pub struct Engine {
    settings: EngineSettings,
    checks: BTreeMap<CheckId, Check>,
}

impl Engine {
    pub fn new(settings: EngineSettings) -> Self {
        Engine {
            settings,
            checks: BTreeMap::new(),
        }
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Takes effect at the next `observe`/`advance`; `next_deadline` reflects it at once.
    pub fn set_settings(&mut self, settings: EngineSettings) {
        self.settings = settings;
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
        match (self.checks.get_mut(&check), spec) {
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
                emitted(&check, closed)
            }
        }
    }

    /// Forgets a check (disabled or deleted), with an OK if it was not OK: nobody would
    /// ever clear its CRITICAL otherwise.
    pub fn remove(&mut self, check: &CheckId, now: Moment) -> Vec<Emitted> {
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
        let Some(state) = self.checks.get_mut(check) else {
            return Vec::new();
        };
        let due = state.settle(&self.settings, now);
        let observed = state.observe(&self.settings, observation, now);
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
        self.checks
            .iter_mut()
            .filter_map(|(check, state)| {
                state.settle(settings, now).map(|alert| Emitted {
                    check: check.clone(),
                    alert,
                })
            })
            .collect()
    }

    /// The earliest time, on the boot clock, at which `advance` has work; `None` when nothing
    /// is pending.
    ///
    /// After `advance(now)` it is later than `now.boot`. It can be in the past after
    /// `set_settings`, `configure` or `restore` made something due: call `advance` at once
    /// then.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.checks
            .values()
            .filter_map(|check| check.deadline(&self.settings))
            .min()
            .map(BootTime::since_boot)
    }

    /// What `monitorctl status` shows of `check`, with times on `now`'s wall clock.
    pub fn view(&self, check: &CheckId, now: Moment) -> Option<CheckView> {
        self.checks.get(check).map(|state| state.view(now))
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
        Engine { settings, checks }
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

/// `details` with the engine's reason for an OK added to its fields.
fn with_reason(mut details: Details, reason: impl Into<String>) -> Details {
    details.fields.insert(
        REASON_FIELD.to_owned(),
        serde_json::Value::String(reason.into()),
    );
    details
}

#[cfg(test)]
mod tests;
