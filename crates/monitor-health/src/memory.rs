//! Memory: how much is available for new work, and how much swap is used, from
//! `/proc/meminfo`.
//!
//! Format (fs/proc/meminfo.c, proc(5)): one `Name:   <number> kB` line per field, in KiB.
//! `MemAvailable` (since Linux 3.14) is the kernel's own estimate of the memory a new
//! program can get without swapping (free memory plus the reclaimable part of the page
//! cache and slab): the figure `free` shows as "available", and the one to watch; `MemFree`
//! alone is always low on a healthy Pi, whose cache fills the rest. `SwapTotal` and
//! `SwapFree` give the swap in use (dphys-swapfile's file on Raspberry Pi OS up to
//! Bookworm, zram on Trixie).

use crate::kernel_file;
use crate::{Reading, Roots, Unit};

/// What a memory check measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemoryMeasure {
    /// `MemAvailable` in percent of `MemTotal` (raise when it falls below the threshold).
    AvailablePercent,
    /// `MemAvailable` in bytes (raise when it falls below the threshold).
    AvailableBytes,
    /// Swap in use (`SwapTotal - SwapFree`) in percent of `SwapTotal`.
    SwapUsedPercent,
}

/// Samples `/proc/meminfo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemoryProbe {
    pub measure: MemoryMeasure,
}

/// The `/proc/meminfo` fields the probe uses, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MemInfo {
    total_kib: u64,
    available_kib: Option<u64>,
    swap_total_kib: u64,
    swap_free_kib: u64,
}

impl MemoryProbe {
    pub fn new(measure: MemoryMeasure) -> Self {
        MemoryProbe { measure }
    }

    /// Reads `/proc/meminfo` (a read of kernel memory that cannot block on a device).
    pub fn sample(&self, roots: &Roots) -> Reading {
        let path = roots.proc("meminfo");
        let text = match kernel_file::read_text(&path) {
            Ok(text) => text,
            Err(error) => {
                return Reading::Unavailable(format!(
                    "{}: set procfs_root in monitor.yaml to the folder procfs is mounted on \
                     (normally /proc)",
                    kernel_file::describe(&path, &error)
                ))
            }
        };
        let info = match parse_meminfo(&text) {
            Ok(info) => info,
            Err(missing) => {
                return Reading::Unavailable(format!(
                    "{} has no {missing} line: is procfs_root a procfs?",
                    path.display()
                ))
            }
        };
        self.measure(&info, &path.display().to_string())
    }

    fn measure(&self, info: &MemInfo, path: &str) -> Reading {
        match self.measure {
            MemoryMeasure::AvailablePercent | MemoryMeasure::AvailableBytes => {
                let Some(available_kib) = info.available_kib else {
                    return Reading::Unavailable(format!(
                        "{path} has no MemAvailable line (a kernel older than 3.14): \
                         upgrade the kernel, or watch the disk and load instead"
                    ));
                };
                if self.measure == MemoryMeasure::AvailableBytes {
                    return Reading::Value {
                        value: (available_kib * 1024) as f64,
                        unit: Unit::Bytes,
                        what: "Memory {value} available".to_owned(),
                    };
                }
                if info.total_kib == 0 {
                    return Reading::Unavailable(format!(
                        "{path} says MemTotal is 0 kB: is procfs_root a procfs?"
                    ));
                }
                Reading::Value {
                    value: percent(available_kib, info.total_kib),
                    unit: Unit::Percent,
                    what: "Memory {value} available".to_owned(),
                }
            }
            MemoryMeasure::SwapUsedPercent => {
                if info.swap_total_kib == 0 {
                    return Reading::Unavailable(format!(
                        "no swap is configured (SwapTotal 0 kB in {path}): enable swap \
                         (dphys-swapfile or zram) or delete this check"
                    ));
                }
                let used_kib = info.swap_total_kib.saturating_sub(info.swap_free_kib);
                Reading::Value {
                    value: percent(used_kib, info.swap_total_kib),
                    unit: Unit::Percent,
                    what: "Swap {value} used".to_owned(),
                }
            }
        }
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    part as f64 * 100.0 / whole as f64
}

/// The fields, or the name of a required one that is missing.
fn parse_meminfo(text: &str) -> Result<MemInfo, &'static str> {
    let mut total_kib = None;
    let mut available_kib = None;
    let mut swap_total_kib = None;
    let mut swap_free_kib = None;
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match name {
            "MemTotal" => &mut total_kib,
            "MemAvailable" => &mut available_kib,
            "SwapTotal" => &mut swap_total_kib,
            "SwapFree" => &mut swap_free_kib,
            _ => continue,
        };
        // "   949328 kB": every field the probe reads is in KiB.
        *slot = rest
            .split_whitespace()
            .next()
            .and_then(|number| number.parse::<u64>().ok());
    }
    Ok(MemInfo {
        total_kib: total_kib.ok_or("MemTotal")?,
        available_kib,
        // A kernel built without swap (CONFIG_SWAP=n) still prints both, as 0 kB; absent
        // lines mean the same.
        swap_total_kib: swap_total_kib.unwrap_or(0),
        swap_free_kib: swap_free_kib.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_file::fixture_roots as fixture;
    use std::path::PathBuf;

    fn measured(reading: Reading) -> (f64, Unit, String) {
        match reading {
            Reading::Value { value, unit, what } => (value, unit, what),
            other => panic!("expected a value, got {other:?}"),
        }
    }

    #[test]
    fn available_memory_of_a_pi_3() {
        let roots = fixture("pi3-raspbian");
        let (value, unit, what) =
            measured(MemoryProbe::new(MemoryMeasure::AvailablePercent).sample(&roots));
        // 884628 of 949328 kB.
        assert!((value - 93.18).abs() < 0.01, "{value}");
        assert_eq!(unit, Unit::Percent);
        assert_eq!(what, "Memory {value} available");

        let (bytes, unit, _) =
            measured(MemoryProbe::new(MemoryMeasure::AvailableBytes).sample(&roots));
        assert_eq!(bytes, 884628.0 * 1024.0);
        assert_eq!(unit, Unit::Bytes);
    }

    #[test]
    fn swap_use_of_a_pi_zero_2_on_trixie() {
        let roots = fixture("pi-zero2w-trixie");
        let (value, unit, what) =
            measured(MemoryProbe::new(MemoryMeasure::SwapUsedPercent).sample(&roots));
        // 2097148 - 2092540 = 4608 kB of 2 GiB.
        assert!((value - 0.2197).abs() < 0.001, "{value}");
        assert_eq!(unit, Unit::Percent);
        assert_eq!(what, "Swap {value} used");
        let (available, _, _) =
            measured(MemoryProbe::new(MemoryMeasure::AvailablePercent).sample(&roots));
        assert!((available - 54.85).abs() < 0.01, "{available}");
    }

    #[test]
    fn no_swap_is_unavailable_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(fixture("pi3-raspbian").proc.join("meminfo"))
            .unwrap()
            .replace("SwapTotal:        102396 kB", "SwapTotal:             0 kB")
            .replace("SwapFree:         102392 kB", "SwapFree:              0 kB");
        std::fs::write(dir.path().join("meminfo"), text).unwrap();
        let roots = Roots {
            sys: PathBuf::from("/nonexistent"),
            proc: dir.path().to_owned(),
        };
        let reading = MemoryProbe::new(MemoryMeasure::SwapUsedPercent).sample(&roots);
        let Reading::Unavailable(message) = reading else {
            panic!("expected unavailable, got {reading:?}");
        };
        assert!(
            message.starts_with("no swap is configured (SwapTotal 0 kB in "),
            "{message}"
        );
        assert!(message.ends_with("enable swap (dphys-swapfile or zram) or delete this check"));
    }

    #[test]
    fn a_missing_procfs_says_which_file_and_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots {
            sys: dir.path().join("sys"),
            proc: dir.path().join("proc"),
        };
        let reading = MemoryProbe::new(MemoryMeasure::AvailablePercent).sample(&roots);
        let Reading::Unavailable(message) = reading else {
            panic!("expected unavailable, got {reading:?}");
        };
        assert_eq!(
            message,
            format!(
                "cannot read {}/proc/meminfo: no such file: set procfs_root in monitor.yaml \
                 to the folder procfs is mounted on (normally /proc)",
                dir.path().display()
            )
        );
    }

    #[test]
    fn a_kernel_without_mem_available_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("meminfo"),
            "MemTotal:         125128 kB\nMemFree:           80288 kB\n",
        )
        .unwrap();
        let roots = Roots {
            sys: PathBuf::from("/nonexistent"),
            proc: dir.path().to_owned(),
        };
        let reading = MemoryProbe::new(MemoryMeasure::AvailablePercent).sample(&roots);
        assert!(
            matches!(&reading, Reading::Unavailable(message) if message.contains("no MemAvailable line (a kernel older than 3.14)")),
            "{reading:?}"
        );
    }
}
