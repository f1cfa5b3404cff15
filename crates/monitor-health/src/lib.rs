//! Reads of the device's health, one sample at a time: how full a file system is, memory,
//! load, heat, power, storage wear, whether a process runs, whether a host answers, what a
//! monitoring plugin says. No timers: the agent's sampled source decides when to sample
//! ([`Probe::sample`]), and [`threshold::Hysteresis`] decides, sample after sample, whether
//! a check's condition holds (a threshold with hysteresis, and a `for` debounce).
//!
//! Every read of a kernel file goes through [`Roots`], so tests and containers can point
//! it at a folder that holds the files of another machine (a Raspberry Pi's).
//!
//! - [`Probe`]: one variant per kind of read, each in its own module ([`disk`], [`storage`],
//!   [`process`], [`plugin`], [`connectivity`]).
//! - [`Reading`]: what one sample gives: a value with its unit, a verdict, or nothing
//!   (with the fix), never an error that stops the agent.
//! - [`threshold`]: thresholds, hysteresis and debounce, pure (no clock, no I/O).
//! - [`text`]: values as people read them in alerts ("Disk / 93% used (threshold 90%)").
//!
//! It knows no check, no alert and no engine: the agent turns what it says into alerts.

pub mod connectivity;
pub mod disk;
pub mod plugin;
pub mod process;
pub mod storage;
pub mod text;
pub mod threshold;

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

impl Unit {
    /// As written in the alert's `details` (`unit` field): `%`, `B`, `°C`, `` (none), `ms`.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Percent => "%",
            Unit::Bytes => "B",
            Unit::Celsius => "°C",
            Unit::Number => "",
            Unit::Milliseconds => "ms",
        }
    }
}

/// One sample of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A measured number, for the caller to compare with the check's threshold.
    /// `what` names it for a person: "SoC temperature", "load per core (5 min)"; the value
    /// follows it in the alert ("SoC temperature 82.3 °C"), or takes the place of `{value}`
    /// when `what` has one ("Disk / {value} used": "Disk / 93% used"). See [`text::reading_text`].
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

/// One kind of read, with what it reads (a mount point, a sensor...). Each variant's
/// module holds the read; a new probe is a module, a variant and an arm in [`Probe::sample`].
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// How full a file system is (space or inodes), by `statvfs(2)`.
    Disk(disk::DiskProbe),
    /// A file system turned read-only, its ext4 errors, its eMMC's wear.
    Storage(storage::StorageProbe),
    /// Whether a process runs: by name, command line or pid file, from procfs.
    Process(process::ProcessProbe),
    /// What a Nagios / Monitoring Plugins compatible command says (its exit status).
    Plugin(plugin::PluginProbe),
    /// Whether a host answers: a TCP connection, an HTTP(S) status, a name resolved.
    Connectivity(connectivity::ConnectivityProbe),
}

impl Probe {
    /// One sample. Never blocks the runtime: a read that could (a stalled mount) runs on
    /// tokio's blocking pool. The caller bounds it with a timeout.
    pub async fn sample(&self, roots: &Roots) -> Reading {
        match self {
            Probe::Disk(probe) => probe.sample(roots).await,
            Probe::Storage(probe) => probe.sample(roots).await,
            Probe::Process(probe) => probe.sample(roots).await,
            Probe::Plugin(probe) => probe.sample(roots).await,
            Probe::Connectivity(probe) => probe.sample(roots).await,
        }
    }

    /// The timeout of a probe that bounds its own samples (a plugin, a connection): the
    /// caller's bound must leave it that long, so the probe's own, clearer verdict ("timed
    /// out after 10s") is the one seen. `None`: the caller's bound is the only one.
    pub fn own_timeout(&self) -> Option<std::time::Duration> {
        match self {
            Probe::Disk(_) | Probe::Storage(_) | Probe::Process(_) => None,
            Probe::Plugin(probe) => Some(probe.timeout),
            Probe::Connectivity(probe) => Some(probe.timeout),
        }
    }
}

/// Runs `read` on tokio's blocking pool, unless the previous read guarded by `busy` has not
/// returned yet (a file system that stalls would otherwise take one more thread per sample):
/// then says so, with `stalled` as the subject ("/"), and leaves that read to finish.
pub(crate) async fn read_blocking(
    busy: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    stalled: &str,
    read: impl FnOnce() -> Reading + Send + 'static,
) -> Reading {
    use std::sync::atomic::Ordering;
    if busy.swap(true, Ordering::AcqRel) {
        return Reading::Unavailable(format!(
            "the previous read of {stalled} has not returned: its file system or device does not answer; check it (dmesg, mount)"
        ));
    }
    let done = busy.clone();
    let task = tokio::task::spawn_blocking(move || {
        let reading = read();
        done.store(false, Ordering::Release);
        reading
    });
    match task.await {
        Ok(reading) => reading,
        Err(error) => {
            busy.store(false, Ordering::Release);
            Reading::Unavailable(format!("the read of {stalled} failed: {error}"))
        }
    }
}
