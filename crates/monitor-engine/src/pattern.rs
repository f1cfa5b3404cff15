//! Pattern checks: CRITICAL on the first match, OK after the expiration or a clear by hand;
//! and what such a check says about its source when the source stops.

use std::time::Duration;

use monitor_wire::control::CheckState;
use monitor_wire::duration::Expiration;
use monitor_wire::{Alert, Details, Level};
use serde::{Deserialize, Serialize};

use crate::boot_time::BootTime;
use crate::spec::{with_reason, AlertParts, CheckView, Moment, PatternCheck};

/// The reason of the OK sent by `monitorctl clear`.
const REASON_CLEARED_BY_HAND: &str = "cleared by hand";

/// Every time is on the boot clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PatternState {
    Ok {
        /// Since when: the last OK, or when the check was configured.
        since: BootTime,
    },
    Critical {
        /// The first match, which raised the CRITICAL.
        since: BootTime,
        /// Kept so that a changed expiration can be applied to it.
        last_match: BootTime,
        /// `None` when the check never expires.
        expires: Option<BootTime>,
    },
}

impl PatternState {
    pub(crate) fn fresh(boot: BootTime) -> Self {
        PatternState::Ok { since: boot }
    }

    pub(crate) fn observe_match(
        &mut self,
        spec: &PatternCheck,
        mut details: Details,
        now: Moment,
    ) -> Option<Alert> {
        let now_boot = BootTime::of(now.boot);
        let expires = deadline_after(spec.expiration, now_boot);
        match self {
            PatternState::Ok { .. } => {
                *self = PatternState::Critical {
                    since: now_boot,
                    last_match: now_boot,
                    expires,
                };
                if details.description.is_none() {
                    details.description.clone_from(&spec.description);
                }
                Some(alert(spec, Level::Critical, details, now))
            }
            // Mender sends nothing new while CRITICAL; a match only postpones the OK.
            PatternState::Critical {
                last_match,
                expires: current_expires,
                ..
            } => {
                *last_match = now_boot;
                *current_expires = expires;
                None
            }
        }
    }

    pub(crate) fn clear(&mut self, spec: &PatternCheck, now: Moment) -> Option<Alert> {
        self.turn_ok(spec, REASON_CLEARED_BY_HAND, now)
    }

    /// The OK of an expiry due at or before `now`.
    pub(crate) fn settle(&mut self, spec: &PatternCheck, now: Moment) -> Option<Alert> {
        match self.deadline() {
            Some(expires) if expires <= BootTime::of(now.boot) => {
                let reason = match spec.expiration {
                    Expiration::After(duration) => format!("no match for {}", seconds(duration)),
                    // Only reachable with a snapshot edited by hand; still worth an honest OK.
                    Expiration::Never => "expired".to_owned(),
                };
                self.turn_ok(spec, reason, now)
            }
            _ => None,
        }
    }

    pub(crate) fn deadline(&self) -> Option<BootTime> {
        match self {
            PatternState::Ok { .. } => None,
            PatternState::Critical { expires, .. } => *expires,
        }
    }

    /// Applies a changed expiration to a CRITICAL check, counting from its last match. A
    /// deadline already past is left for `settle`, so that configuring never emits.
    pub(crate) fn reconfigure(&mut self, spec: &PatternCheck) {
        if let PatternState::Critical {
            last_match,
            expires,
            ..
        } = self
        {
            *expires = deadline_after(spec.expiration, *last_match);
        }
    }

    pub(crate) fn close(&self, spec: &PatternCheck, reason: &str, now: Moment) -> Option<Alert> {
        match self {
            PatternState::Ok { .. } => None,
            PatternState::Critical { .. } => Some(ok_alert(spec, reason, now)),
        }
    }

    pub(crate) fn view(&self, now: Moment) -> CheckView {
        match self {
            PatternState::Ok { since } => CheckView {
                state: CheckState::Ok,
                since: Some(since.wall(now)),
                expires: None,
            },
            PatternState::Critical { since, expires, .. } => CheckView {
                state: CheckState::Critical,
                since: Some(since.wall(now)),
                expires: expires.map(|expires| expires.wall(now)),
            },
        }
    }

    fn turn_ok(
        &mut self,
        spec: &PatternCheck,
        reason: impl Into<String>,
        now: Moment,
    ) -> Option<Alert> {
        match self {
            PatternState::Ok { .. } => None,
            PatternState::Critical { .. } => {
                *self = PatternState::Ok {
                    since: BootTime::of(now.boot),
                };
                Some(ok_alert(spec, reason, now))
            }
        }
    }
}

/// When a check that last matched at `last_match` turns OK; `None` for never (or a time
/// beyond 292 years of uptime, which is never in practice).
fn deadline_after(expiration: Expiration, last_match: BootTime) -> Option<BootTime> {
    match expiration {
        Expiration::After(duration) => last_match.checked_add(duration),
        Expiration::Never => None,
    }
}

/// The source of `spec` stopped (`stopped`) or runs again: the CRITICAL of a stop, or the
/// OK after one. Nothing when that is how it stands already (`down`: one CRITICAL per
/// stop), or when the check has no source alerts.
pub(crate) fn source_changed(
    spec: &PatternCheck,
    down: &mut bool,
    stopped: bool,
    message: String,
    now: Moment,
) -> Option<Alert> {
    let source = spec.source.as_ref()?;
    if std::mem::replace(down, stopped) == stopped {
        return None;
    }
    let (text, level) = if stopped {
        (&source.down, Level::Critical)
    } else {
        (&source.up, Level::Ok)
    };
    let parts = AlertParts {
        name: &text.name,
        subject_name: &spec.subject_name,
        subject_type: &source.subject_type,
        status: &text.status,
    };
    let details = Details {
        description: Some(message),
        ..Details::default()
    };
    Some(parts.at(level, details, now))
}

/// `30s`, or `1500ms` when the expiration is not whole seconds.
fn seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// The OK keeps the CRITICAL's name, subject and status, so that Mender pairs them; the
/// matched lines are gone, the reason says why it is over.
fn ok_alert(spec: &PatternCheck, reason: impl Into<String>, now: Moment) -> Alert {
    let details = Details {
        description: spec.description.clone(),
        ..Details::default()
    };
    alert(spec, Level::Ok, with_reason(details, reason), now)
}

fn alert(spec: &PatternCheck, level: Level, details: Details, now: Moment) -> Alert {
    let parts = AlertParts {
        name: &spec.alert_name,
        subject_name: &spec.subject_name,
        subject_type: &spec.subject_type,
        status: &spec.subject_status,
    };
    parts.at(level, details, now)
}
