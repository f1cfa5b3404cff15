//! What the engine is told and what it answers: the checks' specs (every text of their
//! alerts comes with them), the observations, the settings and the clocks' time.

use std::time::{Duration, SystemTime};

use monitor_wire::control::CheckState;
use monitor_wire::duration::Expiration;
use monitor_wire::{Alert, CheckId, Details, Level, Subject, Timestamp};
use serde::{Deserialize, Serialize};

/// The `fields` key under which the engine says why it raised an OK.
pub const REASON_FIELD: &str = "reason";

/// The agent-wide settings of the engine (Mender's `config.sh`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSettings {
    /// `FLAPPING_INTERVAL`: the sliding window in which a service's state changes are
    /// counted.
    pub flapping_interval: Duration,
    /// `FLAPPING_COUNT_THRESHOLD`: a service with this many state changes within the window
    /// is flapping, and calms once fewer lie within it (Mender: the "amount of flaps which
    /// need to happen within the FLAPPING_INTERVAL to create a flapping alert").
    pub flapping_count_threshold: u32,
    /// `ALERT_LOG_MAX_AGE`: how long state changes are remembered for flap counting. When
    /// shorter than `flapping_interval` it narrows the window to itself.
    pub alert_log_max_age: Duration,
}

impl Default for EngineSettings {
    /// Mender does not publish its defaults; these are ours.
    ///
    /// - `flapping_interval` 600 s and `flapping_count_threshold` 5: a service must change
    ///   five times within ten minutes (down, up, down, up, down) to be flapping. A crash loop
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
    #[serde(with = "stored_expiration")]
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
/// does, and, when `flapping` is set, one CRITICAL "going up and down" while it changes at
/// least [`EngineSettings::flapping_count_threshold`] times within
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
    /// [`Engine::view`](crate::Engine::view), so a wall clock set since then shows it at its
    /// right date.
    pub since: Option<SystemTime>,
    /// When a CRITICAL pattern check turns OK unless it matches again; wall clock as `since`.
    pub expires: Option<SystemTime>,
}

/// The parts of an alert its check decides: what it is called, what it is about, and the
/// subject's status.
pub(crate) struct AlertParts<'a> {
    pub(crate) name: &'a str,
    pub(crate) subject_name: &'a str,
    pub(crate) subject_type: &'a str,
    pub(crate) status: &'a str,
}

impl AlertParts<'_> {
    /// The alert of `level`, dated `now` on the wall clock.
    pub(crate) fn at(&self, level: Level, details: Details, now: Moment) -> Alert {
        Alert {
            name: self.name.to_owned(),
            level,
            timestamp: Timestamp(now.wall),
            subject: Subject {
                name: self.subject_name.to_owned(),
                kind: self.subject_type.to_owned(),
                status: self.status.to_owned(),
                details,
            },
        }
    }
}

/// `details` with the engine's reason for an OK added to its fields.
pub(crate) fn with_reason(mut details: Details, reason: impl Into<String>) -> Details {
    details.fields.insert(
        REASON_FIELD.to_owned(),
        serde_json::Value::String(reason.into()),
    );
    details
}

/// `#[serde(with)]` for an [`Expiration`](monitor_wire::duration::Expiration) as snapshots
/// have always written it: `{"after": {"secs": 300, "nanos": 0}}` or `"never"`.
mod stored_expiration {
    use std::time::Duration;

    use monitor_wire::duration::Expiration;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Stored {
        After(Duration),
        Never,
    }

    pub(crate) fn serialize<S: Serializer>(
        expiration: &Expiration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match *expiration {
            Expiration::After(duration) => Stored::After(duration),
            Expiration::Never => Stored::Never,
        }
        .serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Expiration, D::Error> {
        Ok(match Stored::deserialize(deserializer)? {
            Stored::After(duration) => Expiration::After(duration),
            Stored::Never => Expiration::Never,
        })
    }
}
