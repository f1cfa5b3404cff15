//! Condition checks: CRITICAL while the condition holds, "going up and down" while it
//! flaps. Every alert text comes from the spec.

use std::collections::VecDeque;
use std::time::Duration;

use monitor_wire::control::CheckState;
use monitor_wire::{Alert, Details, Level};
use serde::{Deserialize, Serialize};

use crate::boot_time::BootTime;
use crate::spec::{
    with_reason, AlertParts, AlertText, CheckView, ConditionCheck, EngineSettings, Moment,
};

/// How many changes a condition remembers at most, whatever `alert_log_max_age` says: a
/// unit restarting in a tight loop must not grow memory without bound.
pub(crate) const MAX_REMEMBERED_CHANGES: usize = 1024;

/// Every time is on the boot clock. In a snapshot: `{"holds": ..., "details": ...,
/// "changes": [...], "flapping": ..., "since": ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConditionState {
    /// Whether the condition held at the last observation; `None` until the watcher first
    /// reports.
    pub(crate) holds: Option<bool>,
    #[serde(flatten)]
    pub(crate) course: Course,
}

/// What a condition did, besides whether it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Course {
    /// The details of the last observation, for the alerts raised later by `advance`.
    pub(crate) details: Details,
    /// When the condition started or stopped holding, oldest first; pruned to
    /// `alert_log_max_age` and [`MAX_REMEMBERED_CHANGES`]. Only counted with flapping.
    #[serde(deserialize_with = "sorted::deserialize")]
    pub(crate) changes: VecDeque<BootTime>,
    pub(crate) flapping: bool,
    /// When the current view state (unknown, ok, critical, flapping) began.
    pub(crate) since: BootTime,
}

impl ConditionState {
    pub(crate) fn fresh(boot: BootTime) -> Self {
        ConditionState {
            holds: None,
            course: Course {
                details: Details::default(),
                changes: VecDeque::new(),
                flapping: false,
                since: boot,
            },
        }
    }

    pub(crate) fn observe(
        &mut self,
        spec: &ConditionCheck,
        settings: &EngineSettings,
        holds: bool,
        details: Details,
        now: Moment,
    ) -> Option<Alert> {
        let previous = self.holds.replace(holds);
        let course = &mut self.course;
        course.details = details;
        let now_boot = BootTime::of(now.boot);
        match previous {
            // The first report is where the condition stands, not a change.
            None => {
                course.since = now_boot;
                holds.then(|| self.state_alert(spec, now))
            }
            Some(previous) if previous == holds => None,
            Some(_) => {
                let Some(flapping) = &spec.flapping else {
                    course.since = now_boot;
                    return Some(self.state_alert(spec, now));
                };
                course.record_change(settings, now_boot);
                if course.flapping {
                    // One alert per episode: the rest is noise until it calms down.
                    return None;
                }
                course.since = now_boot;
                // Mender: the threshold is the "amount of flaps which need to happen within
                // the FLAPPING_INTERVAL to create a flapping alert", so reaching it flaps.
                if changes_within_window(&course.changes, settings, now_boot)
                    >= flapping_threshold(settings)
                {
                    course.flapping = true;
                    return Some(alert(
                        spec,
                        Level::Critical,
                        flapping,
                        course.details.clone(),
                        now,
                    ));
                }
                Some(self.state_alert(spec, now))
            }
        }
    }

    /// Ends a flapping episode whose end is due at or before `now`, with the alert of where
    /// the condition stands then.
    pub(crate) fn settle(
        &mut self,
        spec: &ConditionCheck,
        settings: &EngineSettings,
        now: Moment,
    ) -> Option<Alert> {
        match self.deadline(settings) {
            Some(calm) if calm <= BootTime::of(now.boot) => {
                self.course.flapping = false;
                self.course.since = BootTime::of(now.boot);
                Some(self.state_alert(spec, now))
            }
            _ => None,
        }
    }

    /// When a flapping episode ends: the first time at which fewer than the threshold of
    /// the remembered changes lie within the window (Mender leaves flapping when the count
    /// goes below the threshold). With the changes sorted, that is when the change
    /// `threshold - 1` places before the newest leaves the window.
    pub(crate) fn deadline(&self, settings: &EngineSettings) -> Option<BootTime> {
        let course = &self.course;
        if !course.flapping {
            return None;
        }
        match course
            .changes
            .len()
            .checked_sub(flapping_threshold(settings))
        {
            Some(index) => course.changes[index].checked_add(flapping_window(settings)),
            // Fewer changes than the threshold (settings raised, or a snapshot taken under
            // other settings): calm already.
            None => Some(course.since),
        }
    }

    /// The OK for a check that goes away while its condition holds or flaps. The status
    /// says where the condition really stands.
    pub(crate) fn close(&self, spec: &ConditionCheck, reason: &str, now: Moment) -> Option<Alert> {
        if !self.course.flapping && self.holds != Some(true) {
            return None;
        }
        let status = if self.holds == Some(false) {
            &spec.ok.status
        } else {
            &spec.critical.status
        };
        let text = AlertText {
            name: spec.ok.name.clone(),
            status: status.clone(),
        };
        let details = with_reason(self.course.details.clone(), reason);
        Some(alert(spec, Level::Ok, &text, details, now))
    }

    pub(crate) fn view(&self, now: Moment) -> CheckView {
        let state = match (self.course.flapping, self.holds) {
            (true, _) => CheckState::Flapping,
            (false, None) => CheckState::Unknown,
            (false, Some(false)) => CheckState::Ok,
            (false, Some(true)) => CheckState::Critical,
        };
        CheckView {
            state,
            since: Some(self.course.since.wall(now)),
            expires: None,
        }
    }

    /// CRITICAL while the condition holds, OK while it does not.
    fn state_alert(&self, spec: &ConditionCheck, now: Moment) -> Alert {
        let (level, text) = if self.holds == Some(true) {
            (Level::Critical, &spec.critical)
        } else {
            (Level::Ok, &spec.ok)
        };
        alert(spec, level, text, self.course.details.clone(), now)
    }
}

impl Course {
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
}

fn alert(
    spec: &ConditionCheck,
    level: Level,
    text: &AlertText,
    details: Details,
    now: Moment,
) -> Alert {
    let parts = AlertParts {
        name: &text.name,
        subject_name: &spec.subject_name,
        subject_type: &spec.subject_type,
        status: &text.status,
    };
    parts.at(level, details, now)
}

/// Changes are counted within the flapping interval, but only those still remembered:
/// a shorter `alert_log_max_age` narrows the window. Taking the minimum here, rather than
/// relying on pruning, keeps counts and deadlines independent of when pruning happened.
fn flapping_window(settings: &EngineSettings) -> Duration {
    settings.flapping_interval.min(settings.alert_log_max_age)
}

/// How many changes within the window make a condition flap. The settings refuse 0; an
/// engine handed 0 anyway treats it as 1, so a single change does not flap forever.
fn flapping_threshold(settings: &EngineSettings) -> usize {
    (settings.flapping_count_threshold as usize).max(1)
}

/// The changes in `(now - window, now]` on the boot clock. Changes after `now` (not made by
/// the engine, which is handed a clock that does not go back; a hand-edited snapshot) count
/// as recent, which keeps this consistent with `ConditionState::deadline`.
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

/// `#[serde(deserialize_with)]` for a list of times that must be sorted.
pub(crate) mod sorted {
    use std::collections::VecDeque;

    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, T: Deserialize<'de> + Ord, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<VecDeque<T>, D::Error> {
        Ok(sort(Vec::deserialize(deserializer)?))
    }

    /// The flapping deadline relies on the order; a snapshot edited by hand may lack it.
    pub(crate) fn sort<T: Ord>(mut times: Vec<T>) -> VecDeque<T> {
        times.sort_unstable();
        times.into()
    }
}
