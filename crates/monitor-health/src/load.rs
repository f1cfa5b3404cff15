//! Load: the load average per core, from `/proc/loadavg`, and the share of CPU time spent
//! working between two samples, from `/proc/stat`.
//!
//! `/proc/loadavg` (fs/proc/loadavg.c: `"%lu.%02lu %lu.%02lu %lu.%02lu %u/%d %d\n"`): the
//! 1, 5 and 15 minute load averages, running/total tasks, the last pid. Linux counts tasks
//! in uninterruptible sleep (waiting on the SD card) too, so a Pi stuck on I/O shows load
//! without CPU use: the two measures answer different questions.
//!
//! `/proc/stat` (fs/proc/stat.c, proc(5)): a `cpu` line summing all CPUs, then `cpu0`,
//! `cpu1`... one per online CPU, each with cumulative times in USER_HZ ticks: user nice
//! system idle iowait irq softirq steal guest guest_nice (guest and guest_nice are already
//! counted in user and nice). The `cpuN` lines also give the number of cores the load is
//! divided by, read through the same root as the load.

use std::sync::{Arc, Mutex};

use crate::kernel_file;
use crate::{Reading, Roots, Unit};

/// Which load average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadWindow {
    OneMinute,
    FiveMinutes,
    FifteenMinutes,
}

impl LoadWindow {
    fn label(self) -> &'static str {
        match self {
            LoadWindow::OneMinute => "1 min",
            LoadWindow::FiveMinutes => "5 min",
            LoadWindow::FifteenMinutes => "15 min",
        }
    }
}

/// What a load check measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadMeasure {
    /// The load average over the window divided by the number of cores (1.0: every core
    /// busy or waiting, on average).
    LoadPerCore(LoadWindow),
    /// CPU time spent working (not idle, not waiting for I/O), in percent of all CPU time,
    /// between the previous sample and this one: a window of the check's interval.
    CpuUse,
}

/// Samples `/proc/loadavg` or `/proc/stat`. For CPU use it keeps the counters of the
/// previous sample, so one probe serves one check; its clones share them (the agent samples
/// a clone of its check's probe on another task), a new probe starts afresh.
#[derive(Debug, Clone)]
pub struct LoadProbe {
    pub measure: LoadMeasure,
    window: Arc<Mutex<Window>>,
}

/// The CPU-use window in progress: the counters it started from, and the last use measured
/// (said again when the counters have not moved).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Window {
    start: Option<CpuTimes>,
    last_use: Option<f64>,
}

impl PartialEq for LoadProbe {
    /// Two probes are the same check if they measure the same thing; the window in
    /// progress is state, not configuration.
    fn eq(&self, other: &Self) -> bool {
        self.measure == other.measure
    }
}

impl Eq for LoadProbe {}

impl std::hash::Hash for LoadProbe {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.measure.hash(state);
    }
}

/// Cumulative CPU times of the `cpu` line, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    busy: u64,
    idle: u64,
}

/// What `/proc/stat` says: the summed times and the number of `cpuN` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    total: CpuTimes,
    cores: usize,
}

impl LoadProbe {
    pub fn new(measure: LoadMeasure) -> Self {
        LoadProbe {
            measure,
            window: Arc::default(),
        }
    }

    /// Reads `/proc/loadavg` and `/proc/stat` (kernel memory: never blocks on a device).
    pub fn sample(&self, roots: &Roots) -> Reading {
        let stat_path = roots.proc("stat");
        let stat = match kernel_file::read_text(&stat_path) {
            Ok(text) => match parse_stat(&text) {
                Some(stat) => stat,
                None => {
                    return Reading::Unavailable(format!(
                        "{} has no cpu line with ten counters: is procfs_root a procfs?",
                        stat_path.display()
                    ))
                }
            },
            Err(error) => return Reading::Unavailable(unreadable(&stat_path, &error)),
        };
        match self.measure {
            LoadMeasure::LoadPerCore(window) => {
                let path = roots.proc("loadavg");
                let text = match kernel_file::read_text(&path) {
                    Ok(text) => text,
                    Err(error) => return Reading::Unavailable(unreadable(&path, &error)),
                };
                let Some(load) = parse_loadavg(&text, window) else {
                    return Reading::Unavailable(format!(
                        "{} does not start with three load averages: is procfs_root a procfs?",
                        path.display()
                    ));
                };
                Reading::Value {
                    value: load / stat.cores as f64,
                    unit: Unit::Number,
                    what: format!("Load per core ({})", window.label()),
                }
            }
            LoadMeasure::CpuUse => {
                let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
                let since = match window.start {
                    // Counters that went back (a CPU taken offline leaves the sum) start
                    // a new window from boot, like a first sample.
                    Some(start)
                        if stat.total.busy >= start.busy && stat.total.idle >= start.idle =>
                    {
                        start
                    }
                    // The first sample has no window yet: the times since boot are the only
                    // one there is (as top's first screen).
                    _ => CpuTimes { busy: 0, idle: 0 },
                };
                let busy = stat.total.busy - since.busy;
                let all = busy + (stat.total.idle - since.idle);
                let use_percent = if all == 0 {
                    // Sampled twice within one tick: nothing new; say the last figure and
                    // keep the window open until the counters move.
                    window.last_use.unwrap_or(0.0)
                } else {
                    let use_percent = busy as f64 * 100.0 / all as f64;
                    *window = Window {
                        start: Some(stat.total),
                        last_use: Some(use_percent),
                    };
                    use_percent
                };
                Reading::Value {
                    value: use_percent,
                    unit: Unit::Percent,
                    what: "CPU use".to_owned(),
                }
            }
        }
    }
}

fn unreadable(path: &std::path::Path, error: &std::io::Error) -> String {
    format!(
        "{}: set procfs_root in monitor.yaml to the folder procfs is mounted on (normally /proc)",
        kernel_file::describe(path, error)
    )
}

fn parse_loadavg(text: &str, window: LoadWindow) -> Option<f64> {
    let mut averages = text.split_whitespace();
    let position = match window {
        LoadWindow::OneMinute => 0,
        LoadWindow::FiveMinutes => 1,
        LoadWindow::FifteenMinutes => 2,
    };
    averages
        .nth(position)?
        .parse::<f64>()
        .ok()
        .filter(|load| load.is_finite() && *load >= 0.0)
}

fn parse_stat(text: &str) -> Option<Stat> {
    let mut total = None;
    let mut cores = 0;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next() else { continue };
        if name == "cpu" {
            let counters: Vec<u64> = fields
                .map(|field| field.parse().ok())
                .collect::<Option<_>>()?;
            // user nice system idle iowait irq softirq steal (guest, guest_nice are in user,
            // nice). Kernels before 2.6.33 print fewer columns: count those that exist.
            let at = |index: usize| counters.get(index).copied().unwrap_or(0);
            if counters.len() < 4 {
                return None;
            }
            total = Some(CpuTimes {
                busy: at(0) + at(1) + at(2) + at(5) + at(6) + at(7),
                idle: at(3) + at(4),
            });
        } else if name
            .strip_prefix("cpu")
            .is_some_and(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
        {
            cores += 1;
        }
    }
    Some(Stat {
        total: total?,
        cores: cores.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_file::fixture_roots;

    fn measured(reading: Reading) -> (f64, Unit, String) {
        match reading {
            Reading::Value { value, unit, what } => (value, unit, what),
            other => panic!("expected a value, got {other:?}"),
        }
    }

    #[test]
    fn load_per_core_of_a_four_core_pi_4() {
        let roots = fixture_roots("pi4-bookworm");
        let (one, unit, what) = measured(
            LoadProbe::new(LoadMeasure::LoadPerCore(LoadWindow::OneMinute)).sample(&roots),
        );
        assert_eq!(one, 3.85 / 4.0);
        assert_eq!(unit, Unit::Number);
        assert_eq!(what, "Load per core (1 min)");
        let (five, _, what) = measured(
            LoadProbe::new(LoadMeasure::LoadPerCore(LoadWindow::FiveMinutes)).sample(&roots),
        );
        assert_eq!(five, 2.10 / 4.0);
        assert_eq!(what, "Load per core (5 min)");
        let (fifteen, _, _) = measured(
            LoadProbe::new(LoadMeasure::LoadPerCore(LoadWindow::FifteenMinutes)).sample(&roots),
        );
        assert_eq!(fifteen, 1.12 / 4.0);
    }

    #[test]
    fn cpu_use_is_measured_between_two_samples() {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots {
            sys: dir.path().join("sys"),
            proc: dir.path().to_owned(),
        };
        let stat =
            std::fs::read_to_string(fixture_roots("pi4-bookworm").proc.join("stat")).unwrap();
        std::fs::write(dir.path().join("stat"), &stat).unwrap();
        // Each sample on a clone, as the agent takes them.
        let probe = LoadProbe::new(LoadMeasure::CpuUse);

        // First sample: since boot. busy = 98314+1205+40127+0+2313+0, idle = 3915621+6218.
        let (since_boot, unit, what) = measured(probe.clone().sample(&roots));
        let busy = 98314.0 + 1205.0 + 40127.0 + 2313.0;
        assert!((since_boot - busy * 100.0 / (busy + 3915621.0 + 6218.0)).abs() < 1e-9);
        assert_eq!(unit, Unit::Percent);
        assert_eq!(what, "CPU use");

        // 400 ticks later (4 cores × 1 s at USER_HZ 100): 300 busy, 100 idle = 75%.
        let later = stat.replacen(
            "cpu  98314 1205 40127 3915621 6218 0 2313 0 0 0",
            "cpu  98564 1205 40177 3915711 6228 0 2313 0 0 0",
            1,
        );
        std::fs::write(dir.path().join("stat"), &later).unwrap();
        let (window, _, _) = measured(probe.clone().sample(&roots));
        assert!((window - 75.0).abs() < 1e-9, "{window}");

        // Unchanged counters (two samples within a tick) say the last figure again.
        let (same, _, _) = measured(probe.clone().sample(&roots));
        assert_eq!(same, window);
    }

    #[test]
    fn clones_share_the_window_and_a_new_probe_starts_afresh() {
        let probe = LoadProbe::new(LoadMeasure::CpuUse);
        probe.clone().window.lock().unwrap().start = Some(CpuTimes { busy: 1, idle: 1 });
        assert_eq!(
            probe.window.lock().unwrap().start,
            Some(CpuTimes { busy: 1, idle: 1 })
        );
        let fresh = LoadProbe::new(LoadMeasure::CpuUse);
        assert_eq!(*fresh.window.lock().unwrap(), Window::default());
        // The same check all the same: a reload keeps the one that has a window.
        assert_eq!(fresh, probe);
    }

    #[test]
    fn cores_are_the_cpu_n_lines() {
        let stat = parse_stat("cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu1 1 2 3 4\ncpufreq 9\n").unwrap();
        assert_eq!(stat.cores, 2);
        assert_eq!(stat.total, CpuTimes { busy: 6, idle: 4 });
    }

    #[test]
    fn a_missing_proc_says_which_file_and_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots {
            sys: dir.path().join("sys"),
            proc: dir.path().join("proc"),
        };
        let reading = LoadProbe::new(LoadMeasure::CpuUse).sample(&roots);
        assert_eq!(
            reading,
            Reading::Unavailable(format!(
                "cannot read {}/proc/stat: no such file: set procfs_root in monitor.yaml to the \
                 folder procfs is mounted on (normally /proc)",
                dir.path().display()
            ))
        );
    }
}
