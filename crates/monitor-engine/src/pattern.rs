//! Pattern checks: CRITICAL on the first match, OK after the expiration or a clear by hand.

use std::time::{Duration, SystemTime};

use monitor_wire::control::CheckState;
use monitor_wire::{Alert, Details, Level, Subject, Timestamp};
use serde::{Deserialize, Serialize};

use crate::snapshot::{epoch_millis, optional_epoch_millis};
use crate::{with_reason, CheckView, Expiration, PatternCheck};

/// The reason of the OK sent by `monitorctl clear`.
const REASON_CLEARED_BY_HAND: &str = "cleared by hand";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PatternState {
    Ok {
        /// Since when: the last OK, or when the check was configured.
        #[serde(with = "epoch_millis")]
        since: SystemTime,
    },
    Critical {
        /// The first match, which raised the CRITICAL.
        #[serde(with = "epoch_millis")]
        since: SystemTime,
        /// Kept so that a changed expiration can be applied to it.
        #[serde(with = "epoch_millis")]
        last_match: SystemTime,
        /// `None` when the check never expires.
        #[serde(with = "optional_epoch_millis")]
        expires: Option<SystemTime>,
    },
}

impl PatternState {
    pub(crate) fn fresh(now: SystemTime) -> Self {
        PatternState::Ok { since: now }
    }

    pub(crate) fn observe_match(
        &mut self,
        spec: &PatternCheck,
        mut details: Details,
        now: SystemTime,
    ) -> Option<Alert> {
        let expires = spec.expiration.deadline_after(now);
        match self {
            PatternState::Ok { .. } => {
                *self = PatternState::Critical {
                    since: now,
                    last_match: now,
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
                *last_match = now;
                *current_expires = expires;
                None
            }
        }
    }

    pub(crate) fn clear(&mut self, spec: &PatternCheck, now: SystemTime) -> Option<Alert> {
        self.turn_ok(spec, REASON_CLEARED_BY_HAND, now)
    }

    /// The OK of an expiry due at or before `now`.
    pub(crate) fn settle(&mut self, spec: &PatternCheck, now: SystemTime) -> Option<Alert> {
        match self.deadline() {
            Some(expires) if expires <= now => {
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

    pub(crate) fn deadline(&self) -> Option<SystemTime> {
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
            *expires = spec.expiration.deadline_after(*last_match);
        }
    }

    pub(crate) fn close(
        &self,
        spec: &PatternCheck,
        reason: &str,
        now: SystemTime,
    ) -> Option<Alert> {
        match self {
            PatternState::Ok { .. } => None,
            PatternState::Critical { .. } => Some(ok_alert(spec, reason, now)),
        }
    }

    pub(crate) fn view(&self) -> CheckView {
        match self {
            PatternState::Ok { since } => CheckView {
                state: CheckState::Ok,
                since: Some(*since),
                expires: None,
            },
            PatternState::Critical { since, expires, .. } => CheckView {
                state: CheckState::Critical,
                since: Some(*since),
                expires: *expires,
            },
        }
    }

    fn turn_ok(
        &mut self,
        spec: &PatternCheck,
        reason: impl Into<String>,
        now: SystemTime,
    ) -> Option<Alert> {
        match self {
            PatternState::Ok { .. } => None,
            PatternState::Critical { .. } => {
                *self = PatternState::Ok { since: now };
                Some(ok_alert(spec, reason, now))
            }
        }
    }
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
fn ok_alert(spec: &PatternCheck, reason: impl Into<String>, now: SystemTime) -> Alert {
    let details = Details {
        description: spec.description.clone(),
        ..Details::default()
    };
    alert(spec, Level::Ok, with_reason(details, reason), now)
}

fn alert(spec: &PatternCheck, level: Level, details: Details, now: SystemTime) -> Alert {
    Alert {
        name: spec.alert_name.clone(),
        level,
        timestamp: Timestamp(now),
        subject: Subject {
            name: spec.subject_name.clone(),
            kind: spec.subject_type.clone(),
            status: spec.subject_status.clone(),
            details,
        },
    }
}
