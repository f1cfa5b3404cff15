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
//!   [`memory`], [`load`], [`temperature`], [`power`], [`process`], [`plugin`],
//!   [`connectivity`]). A probe may keep what a measure needs from the previous sample
//!   (CPU use is the difference of two `/proc/stat`s).
//! - [`Reading`]: what one sample gives: a value with its unit, a verdict, or nothing
//!   (with the fix), never an error that stops the agent.
//! - [`threshold`]: thresholds, hysteresis and debounce, pure (no clock, no I/O).
//! - [`text`]: values as people read them in alerts ("Disk / 93% used (threshold 90%)").
//!
//! It knows no check, no alert and no engine: the agent turns what it says into alerts.

pub mod connectivity;
pub mod disk;
mod kernel_file;
pub mod load;
pub mod memory;
pub mod plugin;
pub mod power;
pub mod process;
pub mod storage;
pub mod temperature;
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
    /// Memory available, or swap used, from `/proc/meminfo`.
    Memory(memory::MemoryProbe),
    /// The load average per core, or CPU use, from `/proc/loadavg` and `/proc/stat`.
    Load(load::LoadProbe),
    /// A thermal zone or hwmon temperature, the SoC's by default.
    Temperature(temperature::TemperatureProbe),
    /// A Raspberry Pi's under-voltage and throttling, from the firmware's bits.
    Power(power::PowerProbe),
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
            // procfs tables are kernel memory: reading them never waits on a device.
            Probe::Memory(probe) => probe.sample(roots),
            Probe::Load(probe) => probe.sample(roots),
            Probe::Temperature(probe) => probe.sample(roots).await,
            Probe::Power(probe) => probe.sample(roots).await,
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
            Probe::Disk(_)
            | Probe::Storage(_)
            | Probe::Memory(_)
            | Probe::Load(_)
            | Probe::Temperature(_)
            | Probe::Power(_)
            | Probe::Process(_) => None,
            Probe::Plugin(probe) => Some(probe.timeout),
            Probe::Connectivity(probe) => Some(probe.timeout),
        }
    }
}

/// Runs `read` on tokio's blocking pool, unless the previous read guarded by `busy` has not
/// returned yet (a file system that stalls would otherwise take one more thread per sample):
/// then says so, with `stalled` as the subject ("/"), and leaves that read to finish. For a
/// probe sampled on its own; [`ReadsFiles`] and [`ReadGuard`] batch a round's reads.
pub async fn read_blocking(
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A probe whose sample is a read of files (`statvfs(2)`, `/proc`, `/sys`): a blocking
/// read, run off the runtime. [`Probe::sample_all`] runs every such read of a round in one
/// job, one after another, so a round of ten checks wakes one thread once, not ten.
pub trait ReadsFiles {
    /// The read; it may block (the caller runs it on a blocking thread).
    fn read(&self, roots: &Roots) -> Reading;
}

impl Probe {
    /// The probe as a read of files, when its sample is one; `None`: it samples with async
    /// I/O in [`Probe::sample`] (a connection, a child process).
    pub fn reads_files(&self) -> Option<&dyn ReadsFiles> {
        #[allow(unreachable_patterns)]
        match self {
            Probe::Disk(probe) => Some(probe),
            Probe::Storage(probe) => Some(probe),
            // Probes added later sample with `sample` until they say otherwise.
            _ => None,
        }
    }

    /// Samples `probes` at once, each within `timeout`; the readings in the same order.
    /// The reads of files ([`Probe::reads_files`]) run in one job on tokio's blocking pool,
    /// one after another; the others concurrently on the runtime. A read not done by the
    /// deadline is `Unavailable`: a stalled file system holds up the reads after it in its
    /// round, once (its probe's guard then answers at once until the read returns).
    pub async fn sample_all(probes: &[Probe], roots: &Roots, timeout: Duration) -> Vec<Reading> {
        let done: Arc<Mutex<Vec<(usize, Reading)>>> = Arc::default();
        let file_reads: Vec<(usize, Probe)> = probes
            .iter()
            .enumerate()
            .filter(|(_, probe)| probe.reads_files().is_some())
            .map(|(index, probe)| (index, probe.clone()))
            .collect();
        let files_finished = (!file_reads.is_empty()).then(|| {
            let (finished, finished_receiver) = tokio::sync::oneshot::channel::<()>();
            let (done, roots) = (done.clone(), roots.clone());
            tokio::task::spawn_blocking(move || {
                for (index, probe) in file_reads {
                    if let Some(reads) = probe.reads_files() {
                        let reading = reads.read(&roots);
                        lock(&done).push((index, reading));
                    }
                }
                let _ = finished.send(());
            });
            finished_receiver
        });
        let mut others = tokio::task::JoinSet::new();
        for (index, probe) in probes.iter().enumerate() {
            if probe.reads_files().is_none() {
                let (probe, roots) = (probe.clone(), roots.clone());
                others.spawn(async move {
                    let reading = tokio::time::timeout(timeout, probe.sample(&roots)).await;
                    (index, reading.unwrap_or_else(|_| timed_out(timeout)))
                });
            }
        }
        let files = async {
            if let Some(finished) = files_finished {
                let _ = tokio::time::timeout(timeout, finished).await;
            }
        };
        let async_readings = async {
            let mut readings = Vec::new();
            while let Some(Ok(reading)) = others.join_next().await {
                readings.push(reading);
            }
            readings
        };
        let ((), async_readings) = tokio::join!(files, async_readings);
        let mut readings: Vec<Option<Reading>> = vec![None; probes.len()];
        for (index, reading) in lock(&done).drain(..).chain(async_readings) {
            readings[index] = Some(reading);
        }
        readings
            .into_iter()
            .map(|reading| reading.unwrap_or_else(|| timed_out(timeout)))
            .collect()
    }
}

fn timed_out(timeout: Duration) -> Reading {
    Reading::Unavailable(format!(
        "no answer within {}s: the device or file system it reads does not respond; check it (dmesg)",
        timeout.as_secs_f32()
    ))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `read` on tokio's blocking pool.
async fn blocking(read: impl FnOnce() -> Reading + Send + 'static) -> Reading {
    tokio::task::spawn_blocking(read)
        .await
        .unwrap_or_else(|error| Reading::Unavailable(format!("the read failed: {error}")))
}

/// Keeps a probe to one read at a time: a file system that stalls costs one blocked thread,
/// not one per sample. Shared by a probe's clones; compares equal to any other (it is no
/// part of what a probe reads), so probes can derive `PartialEq`.
#[derive(Debug, Clone, Default)]
pub struct ReadGuard(Arc<AtomicBool>);

impl PartialEq for ReadGuard {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl ReadGuard {
    /// `read`, unless the previous read has not returned yet: then says so, naming `what`
    /// ("/"), and leaves that read to finish.
    pub fn run(&self, what: &dyn std::fmt::Display, read: impl FnOnce() -> Reading) -> Reading {
        if self.0.swap(true, Ordering::AcqRel) {
            return Reading::Unavailable(format!(
                "the previous read of {what} has not returned: its file system or device does not answer; check it (dmesg, mount)"
            ));
        }
        // Cleared however the read ends (a panic included).
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _release = Release(&self.0);
        read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_has_not_returned_keeps_the_next_from_starting() {
        let guard = ReadGuard::default();
        let (entered, wait_in_read) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let stalled = guard.clone();
        let reader = std::thread::spawn(move || {
            stalled.run(&"/stalled", || {
                entered.send(()).unwrap();
                released.recv().unwrap();
                Reading::Unavailable("done".into())
            })
        });
        wait_in_read.recv().unwrap();
        let Reading::Unavailable(message) = guard.run(&"/stalled", || panic!("not run")) else {
            panic!("expected the guard's answer");
        };
        assert!(message.starts_with("the previous read of /stalled has not returned"));
        release.send(()).unwrap();
        reader.join().unwrap();
        // Returned: the next read runs.
        let reading = guard.run(&"/stalled", || Reading::Verdict {
            bad: false,
            text: "read".into(),
        });
        assert!(matches!(reading, Reading::Verdict { .. }), "{reading:?}");
    }

    #[tokio::test]
    async fn a_round_of_samples_keeps_the_order_of_its_probes() {
        let folder = tempfile::tempdir().unwrap();
        let probes = [
            Probe::Disk(disk::DiskProbe::new(
                folder.path().join("gone"),
                disk::DiskMetric::UsedPercent,
            )),
            Probe::Disk(disk::DiskProbe::new(
                folder.path(),
                disk::DiskMetric::FreeBytes,
            )),
        ];
        let readings = Probe::sample_all(&probes, &Roots::default(), Duration::from_secs(10)).await;
        assert!(
            matches!(&readings[0], Reading::Unavailable(message) if message.contains("does not exist")),
            "{readings:?}"
        );
        assert!(
            matches!(
                &readings[1],
                Reading::Value {
                    unit: Unit::Bytes,
                    ..
                }
            ),
            "{readings:?}"
        );
    }
}
