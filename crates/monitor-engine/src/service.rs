//! Service checks: CRITICAL while not running, "going up and down" while flapping.

use std::collections::VecDeque;
use std::time::Duration;

use monitor_wire::control::CheckState;
use monitor_wire::{Alert, Details, Level, Subject, Timestamp};
use serde::{Deserialize, Serialize};

use crate::boot_time::BootTime;
use crate::snapshot::wall::WallServiceState;
use crate::snapshot::{sorted, CarryOver};
use crate::{with_reason, CheckView, EngineSettings, Moment, ServiceCheck};

/// How many state changes a service remembers at most, whatever `alert_log_max_age` says:
/// a unit restarting in a tight loop must not grow memory without bound.
pub(crate) const MAX_REMEMBERED_CHANGES: usize = 1024;

const STATUS_RUNNING: &str = "running";
const STATUS_NOT_RUNNING: &str = "not-running";
const STATUS_FLAPPING: &str = "flapping";

/// Every time is on the boot clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServiceState {
    /// The last observed state; `None` until the watcher first reports.
    running: Option<bool>,
    /// The details of the last observation, for the alerts raised later by `advance`.
    details: Details,
    /// When the service changed between running and not running, oldest first; pruned to
    /// `alert_log_max_age` and [`MAX_REMEMBERED_CHANGES`].
    #[serde(deserialize_with = "sorted::deserialize")]
    changes: VecDeque<BootTime>,
    flapping: bool,
    /// When the current view state (unknown, ok, critical, flapping) began.
    since: BootTime,
}

impl ServiceState {
    pub(crate) fn fresh(boot: BootTime) -> Self {
        ServiceState {
            running: None,
            details: Details::default(),
            changes: VecDeque::new(),
            flapping: false,
            since: boot,
        }
    }

    pub(crate) fn observe(
        &mut self,
        spec: &ServiceCheck,
        settings: &EngineSettings,
        running: bool,
        details: Details,
        now: Moment,
    ) -> Option<Alert> {
        let previous = self.running.replace(running);
        self.details = details;
        let now_boot = BootTime::of(now.boot);
        match previous {
            // The first report is where the service stands, not a change.
            None => {
                self.since = now_boot;
                (!running).then(|| self.state_alert(spec, now))
            }
            Some(previous) if previous == running => None,
            Some(_) => {
                self.record_change(settings, now_boot);
                if self.flapping {
                    // One alert per episode: the rest is noise until it calms down.
                    return None;
                }
                self.since = now_boot;
                if changes_within_window(&self.changes, settings, now_boot)
                    > settings.flapping_count_threshold as usize
                {
                    self.flapping = true;
                    return Some(alert(
                        spec,
                        Level::Critical,
                        format!("Service {} going up and down", spec.service_name),
                        STATUS_FLAPPING,
                        self.details.clone(),
                        now,
                    ));
                }
                Some(self.state_alert(spec, now))
            }
        }
    }

    /// Ends a flapping episode whose end is due at or before `now`, with the alert of where
    /// the service stands then.
    pub(crate) fn settle(
        &mut self,
        spec: &ServiceCheck,
        settings: &EngineSettings,
        now: Moment,
    ) -> Option<Alert> {
        match self.deadline(settings) {
            Some(calm) if calm <= BootTime::of(now.boot) => {
                self.flapping = false;
                self.since = BootTime::of(now.boot);
                Some(self.state_alert(spec, now))
            }
            _ => None,
        }
    }

    /// When a flapping episode ends: the first time at which no more than the threshold of
    /// the remembered changes lie within the window. With the changes sorted, that is the
    /// change `threshold` places before the newest, plus the window.
    pub(crate) fn deadline(&self, settings: &EngineSettings) -> Option<BootTime> {
        if !self.flapping {
            return None;
        }
        let threshold = settings.flapping_count_threshold as usize;
        match self.changes.len().checked_sub(threshold.saturating_add(1)) {
            Some(index) => self.changes[index].checked_add(flapping_window(settings)),
            // No more changes than the threshold (settings raised, or a snapshot taken under
            // other settings): calm already.
            None => Some(self.since),
        }
    }

    /// The OK for a check that goes away while the service is down or flapping. The status
    /// says where the service really stands.
    pub(crate) fn close(&self, spec: &ServiceCheck, reason: &str, now: Moment) -> Option<Alert> {
        if !self.flapping && self.running != Some(false) {
            return None;
        }
        let status = if self.running == Some(true) {
            STATUS_RUNNING
        } else {
            STATUS_NOT_RUNNING
        };
        Some(alert(
            spec,
            Level::Ok,
            not_running_name(spec),
            status,
            with_reason(self.details.clone(), reason),
            now,
        ))
    }

    pub(crate) fn view(&self, now: Moment) -> CheckView {
        let state = match (self.flapping, self.running) {
            (true, _) => CheckState::Flapping,
            (false, None) => CheckState::Unknown,
            (false, Some(true)) => CheckState::Ok,
            (false, Some(false)) => CheckState::Critical,
        };
        CheckView {
            state,
            since: Some(self.since.wall(now)),
            expires: None,
        }
    }

    /// The same state with its times on the wall clock of `taken`, the moment of a snapshot.
    pub(crate) fn to_wall(&self, taken: Moment) -> WallServiceState {
        WallServiceState {
            running: self.running,
            details: self.details.clone(),
            changes: self.changes.iter().map(|at| at.wall(taken)).collect(),
            flapping: self.flapping,
            since: self.since.wall(taken),
        }
    }

    /// A state kept on the wall clock (an old snapshot, or one from another boot) on this
    /// boot's clock.
    pub(crate) fn carried_over(wall: WallServiceState, carry: &CarryOver) -> Self {
        ServiceState {
            running: wall.running,
            details: wall.details,
            // Still sorted: a later wall time carries to a boot time no earlier.
            changes: wall.changes.into_iter().map(|at| carry.event(at)).collect(),
            flapping: wall.flapping,
            since: carry.event(wall.since),
        }
    }

    fn record_change(&mut self, settings: &EngineSettings, now: BootTime) {
        if let Some(oldest_kept) = now.checked_sub(settings.alert_log_max_age) {
            while self.changes.front().is_some_and(|&at| at <= oldest_kept) {
                self.changes.pop_front();
            }
        }
        // Sorted insertion keeps `deadline` right whatever order the times come in (a
        // snapshot carried over from another boot).
        let position = self.changes.partition_point(|&at| at <= now);
        self.changes.insert(position, now);
        while self.changes.len() > MAX_REMEMBERED_CHANGES {
            self.changes.pop_front();
        }
    }

    /// "Service <svc> not running": CRITICAL while down, OK while running.
    fn state_alert(&self, spec: &ServiceCheck, now: Moment) -> Alert {
        let (level, status) = if self.running == Some(true) {
            (Level::Ok, STATUS_RUNNING)
        } else {
            (Level::Critical, STATUS_NOT_RUNNING)
        };
        alert(
            spec,
            level,
            not_running_name(spec),
            status,
            self.details.clone(),
            now,
        )
    }
}

fn alert(
    spec: &ServiceCheck,
    level: Level,
    name: String,
    status: &str,
    details: Details,
    now: Moment,
) -> Alert {
    Alert {
        name,
        level,
        timestamp: Timestamp(now.wall),
        subject: Subject {
            name: spec.service_name.clone(),
            kind: spec.subject_type.clone(),
            status: status.to_owned(),
            details,
        },
    }
}

fn not_running_name(spec: &ServiceCheck) -> String {
    format!("Service {} not running", spec.service_name)
}

/// Changes are counted within the flapping interval, but only those still remembered:
/// a shorter `alert_log_max_age` narrows the window. Taking the minimum here, rather than
/// relying on pruning, keeps counts and deadlines independent of when pruning happened.
fn flapping_window(settings: &EngineSettings) -> Duration {
    settings.flapping_interval.min(settings.alert_log_max_age)
}

/// The changes in `(now - window, now]` on the boot clock. Changes after `now` (not made by
/// the engine, which is handed a clock that does not go back; a hand-edited snapshot) count
/// as recent, which keeps this consistent with `ServiceState::deadline`.
fn changes_within_window(
    changes: &VecDeque<BootTime>,
    settings: &EngineSettings,
    now: BootTime,
) -> usize {
    match now.checked_sub(flapping_window(settings)) {
        Some(window_start) => changes.iter().filter(|&&at| at > window_start).count(),
        None => changes.len(),
    }
}
