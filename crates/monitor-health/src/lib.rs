//! Reads of the device's health, one sample at a time: how full a file system is, memory,
//! load, heat, power, storage wear, whether a process runs, whether a host answers, what a
//! monitoring plugin says. No timers and no state between samples: the agent's sampled
//! source decides when to sample, and compares values with thresholds (with hysteresis).
//!
//! Every read of a kernel file goes through [`Roots`], so tests and containers can point
//! it at a folder that holds the files of another machine (a Raspberry Pi's).

use std::path::{Path, PathBuf};

/// Where the kernel's files are read: `/sys` and `/proc`, or folders a test or a container
/// fills with the same layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Roots {
    pub sys: PathBuf,
    pub proc: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
        }
    }
}

impl Roots {
    /// `relative` (as under `/sys`, without the leading `/sys/`) under the sysfs root.
    pub fn sys(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.sys.join(relative)
    }

    /// `relative` (as under `/proc`) under the procfs root.
    pub fn proc(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.proc.join(relative)
    }
}

/// What a value is counted in, for the alert's text ("93% used (threshold 90%)").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Percent (0-100).
    Percent,
    /// Bytes (shown with a binary prefix: "1.5 GiB").
    Bytes,
    /// Degrees Celsius.
    Celsius,
    /// A plain number (load per core, a count of errors, milliseconds).
    Number,
    /// Milliseconds (a round trip).
    Milliseconds,
}

/// One sample of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A measured number, for the caller to compare with the check's threshold.
    /// `what` names it for a person: "/ used", "SoC temperature", "load per core (5 min)".
    Value {
        value: f64,
        unit: Unit,
        what: String,
    },
    /// A probe that judges by itself (a read-only file system, under-voltage, a process
    /// gone, a plugin's exit code): whether it is bad, and what was seen, for the details.
    Verdict { bad: bool, text: String },
    /// Nothing can be read (no such mount point or sensor, not a Raspberry Pi): the check's
    /// problem, worded with its fix. Never an alert.
    Unavailable(String),
}

pub mod connectivity;
pub mod plugin;
pub mod process;
