//! What every watcher tells the agent: one event type ([`SourceEvent`]) for log files,
//! `@command` output, systemd units, D-Bus signals and containers alike, sent on one
//! bounded channel into the agent's loop.
//!
//! An event is about checks, never about a watcher's own types: the observations the
//! engine takes (a match or a state, with the alert's details), the problems that keep a
//! check's source from being watched and their end, the connection to what is watched, a
//! source that stopped or runs again, and for log files the position reached (checkpointed
//! together with the alerts it made). It knows no sink.
//!
//! [`watcher`] holds what every reconnecting watcher does alike: the events it sends
//! ([`WatcherEvent`], made into `SourceEvent`s by the agent), its run loop and its outage
//! bookkeeping; [`bus_address`] where the D-Bus buses are.

pub mod bus_address;
pub mod watcher;

pub use watcher::{WatchedStatus, WatcherEvent};

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use monitor_wire::{CheckId, Details};
use serde::{Deserialize, Serialize};

/// Where reading a file got to: enough to resume after a restart, and to notice that the
/// path now names another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FilePosition {
    pub device: u64,
    pub inode: u64,
    /// Offset just past the last complete line read.
    pub offset: u64,
    /// Number of that line (1-based; 0 before the first line).
    pub line_number: u64,
}

/// Where reading a log file got to, and the checks that read every line before it (a
/// check new to the file is not among them until it has read what the file held).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProgress {
    pub path: PathBuf,
    pub position: FilePosition,
    pub seen_by: BTreeSet<CheckId>,
}

/// What a source showed about one check.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// A line or a signal matched the check's pattern.
    Matched { details: Details },
    /// The watched thing runs or does not (a unit, a container).
    State { running: bool, details: Details },
    /// A sampled check's condition holds or not (a disk too full), after its threshold,
    /// hysteresis and debounce; `details` say what was measured.
    Condition { holds: bool, details: Details },
}

/// Which watcher an event about no single check comes from: the agent knows from its plan
/// which checks that watcher serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    LogFiles,
    Commands,
    Units,
    Signals,
    Containers,
    Sampled,
}

/// One event from a watcher.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// What one read of a source showed, in order. A log file's read carries the position
    /// reached after it: the position and the alerts it made are saved together.
    Observed {
        observations: Vec<(CheckId, Observed)>,
        position: Option<FileProgress>,
    },
    /// The check's source cannot be watched (a missing unit or container, a bad match
    /// rule, a file a user could swap): shown in `status`, with the fix. The source logs
    /// it (once per distinct message); the receiver only records it.
    Problem { check: CheckId, message: String },
    /// The thing the check reads is not on this device (no such sensor, not a Raspberry
    /// Pi), and the check says that is fine (`if_unavailable: ignore`): shown in `status`,
    /// not a problem. Ended by `Resolved` like a problem.
    NotHere { check: CheckId, message: String },
    /// After a `Problem` or `NotHere`: the check's source is watched again.
    Resolved { check: CheckId },
    /// The watcher is (again) connected to what it watches; `message` is its log line.
    /// For D-Bus signals every match rule is registered; for units the states of every
    /// unit follow (the units that failed, for a check on every unit).
    Connected {
        source: SourceKind,
        message: &'static str,
    },
    /// The watcher lost what it watches (or could not reach it) and retries with backoff;
    /// sent once per outage.
    Disconnected { source: SourceKind, message: String },
    /// The watcher applied config `generation` and read what its sources held: the log
    /// watcher every file to its end, the command watcher every command started.
    CaughtUp { source: SourceKind, generation: u64 },
    /// A source that feeds `checks` stopped (an `@command` exited) and is restarted after
    /// `retry_in`; sent once per failure streak.
    SourceDown {
        source: String,
        checks: Vec<CheckId>,
        reason: String,
        retry_in: Duration,
    },
    /// After a `SourceDown`: the source stayed up long enough to count as healthy.
    SourceUp {
        source: String,
        checks: Vec<CheckId>,
    },
}
