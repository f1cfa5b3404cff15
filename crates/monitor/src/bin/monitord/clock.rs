//! The clocks the agent hands the engine, the boot they count from, and whether the wall
//! clock has been synchronised.
//!
//! A Pi has no real-time clock: it boots in 1970 or at fake-hwclock's last save, and NTP
//! sets the wall clock later. The engine measures durations on the boot clock, so that jump
//! makes nothing due; the agent marks the alerts it emits before the jump, whose timestamps
//! are wrong, with `clock_synchronized: false`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use monitor_engine::Moment;

/// The `details.fields` key, set to `false`, of alerts emitted while the wall clock is known
/// not to be synchronised: their timestamps may be decades off.
pub const CLOCK_SYNCHRONIZED_FIELD: &str = "clock_synchronized";

/// The kernel's id of the running boot: a new random UUID at every boot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// systemd-timesyncd's `RuntimeDirectory=`: it exists while timesyncd runs.
const TIMESYNCD_RUNTIME_DIR: &str = "/run/systemd/timesync";
/// Created by systemd-timesyncd when it first synchronised the clock in this boot.
const TIMESYNCD_SYNCHRONIZED: &str = "/run/systemd/timesync/synchronized";

/// Both clocks now.
pub fn now() -> Moment {
    Moment {
        wall: SystemTime::now(),
        boot: since_boot(),
    }
}

/// `CLOCK_BOOTTIME`: time since boot, suspend included; nobody can set it.
fn since_boot() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid timespec for the call to write.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut time) };
    // It fails only on kernels older than 2.6.39, which lack the clock.
    assert_eq!(
        result,
        0,
        "cannot read CLOCK_BOOTTIME ({}); monitord needs Linux 2.6.39 or later",
        std::io::Error::last_os_error()
    );
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

/// The id of the running boot; `None` when it cannot be read (no /proc).
pub fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string(BOOT_ID).ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// Whether the wall clock is synchronised: `Some(false)` only when it is known not to be;
/// `None` when nothing can tell.
pub fn synchronized() -> Option<bool> {
    synchronization(ClockEvidence {
        timesyncd_synchronized: Path::new(TIMESYNCD_SYNCHRONIZED).exists(),
        timesyncd_running: Path::new(TIMESYNCD_RUNTIME_DIR).is_dir(),
        kernel: kernel_clock(),
    })
}

/// What the system says about its wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ClockEvidence {
    /// systemd-timesyncd synchronised the clock in this boot.
    timesyncd_synchronized: bool,
    /// systemd-timesyncd runs.
    timesyncd_running: bool,
    /// The kernel's own view; `None` when `adjtimex` is refused, as it is under the shipped
    /// unit's `ProtectClock=yes` (its seccomp filter refuses even a read).
    kernel: Option<KernelClock>,
}

/// What `adjtimex(2)` returned, without changing anything (`modes` 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct KernelClock {
    /// The clock state it returned (`TIME_OK`, ..., `TIME_ERROR`).
    state: libc::c_int,
    /// `timex.status`.
    status: libc::c_int,
}

fn kernel_clock() -> Option<KernelClock> {
    // SAFETY: an all-zero timex is valid, and modes 0 asks only to read.
    let mut timex: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `timex` is a valid timex for the call to fill.
    let state = unsafe { libc::adjtimex(&mut timex) };
    (state >= 0).then_some(KernelClock {
        state,
        status: timex.status,
    })
}

/// timesyncd's word first (it knows it set the clock, even when its kernel error estimate
/// has since grown past the limit), then the kernel's: an NTP daemon that disciplines the
/// clock (timesyncd, chrony, ntpd) clears `STA_UNSYNC`, and the kernel sets it again, and
/// answers `TIME_ERROR`, when nobody did for long. With no kernel answer, a timesyncd that
/// runs without having synchronised says no.
fn synchronization(evidence: ClockEvidence) -> Option<bool> {
    if evidence.timesyncd_synchronized {
        return Some(true);
    }
    if let Some(kernel) = evidence.kernel {
        return Some(kernel.state != libc::TIME_ERROR && kernel.status & libc::STA_UNSYNC == 0);
    }
    evidence.timesyncd_running.then_some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNCED: KernelClock = KernelClock {
        state: libc::TIME_OK,
        status: libc::STA_PLL,
    };
    const UNSYNCED: KernelClock = KernelClock {
        state: libc::TIME_ERROR,
        status: libc::STA_UNSYNC,
    };

    fn evidence(synchronized: bool, running: bool, kernel: Option<KernelClock>) -> ClockEvidence {
        ClockEvidence {
            timesyncd_synchronized: synchronized,
            timesyncd_running: running,
            kernel,
        }
    }

    #[test]
    fn timesyncd_having_synchronised_is_enough() {
        for kernel in [None, Some(SYNCED), Some(UNSYNCED)] {
            assert_eq!(
                synchronization(evidence(true, true, kernel)),
                Some(true),
                "{kernel:?}"
            );
        }
    }

    #[test]
    fn otherwise_the_kernel_decides() {
        assert_eq!(
            synchronization(evidence(false, false, Some(SYNCED))),
            Some(true)
        );
        assert_eq!(
            synchronization(evidence(false, true, Some(SYNCED))),
            Some(true)
        );
        assert_eq!(
            synchronization(evidence(false, false, Some(UNSYNCED))),
            Some(false)
        );
    }

    #[test]
    fn either_the_unsync_flag_or_time_error_means_unsynchronised() {
        let flag_only = KernelClock {
            state: libc::TIME_OK,
            status: libc::STA_UNSYNC | libc::STA_PLL,
        };
        let error_only = KernelClock {
            state: libc::TIME_ERROR,
            status: 0,
        };
        for kernel in [flag_only, error_only] {
            assert_eq!(
                synchronization(evidence(false, false, Some(kernel))),
                Some(false),
                "{kernel:?}"
            );
        }
    }

    #[test]
    fn without_the_kernel_a_running_timesyncd_that_has_not_synchronised_says_no() {
        assert_eq!(synchronization(evidence(false, true, None)), Some(false));
    }

    #[test]
    fn without_any_evidence_nothing_is_known() {
        assert_eq!(synchronization(evidence(false, false, None)), None);
    }

    #[test]
    fn the_boot_clock_runs_and_the_boot_id_reads() {
        let first = now();
        let second = now();
        assert!(second.boot >= first.boot);
        assert!(first.boot > Duration::ZERO);
        // Linux always has it; the id is a UUID that stays the same within a boot.
        let id = boot_id().expect("/proc/sys/kernel/random/boot_id");
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(boot_id(), Some(id));
    }
}
