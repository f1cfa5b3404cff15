//! How full a file system is: `statvfs(2)` on a path in it, as `df` reads it.
//!
//! Use in percent is `df`'s: used blocks over the blocks a non-root user can have
//! (used + available), rounded up, so "93%" here is the "93%" `df` shows; the blocks
//! reserved for root (5% on ext4 by default) count as neither.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::{read_blocking, Reading, Roots, Unit};

/// What of a file system a disk check measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskMetric {
    /// Space used, in percent (as `df` shows it). Bad above the threshold.
    UsedPercent,
    /// Space available to non-root users, in bytes. Bad below the threshold.
    FreeBytes,
    /// Inodes used, in percent (as `df -i` shows it). Bad above the threshold.
    InodesUsedPercent,
}

/// One file system, by a path on it (its mount point, usually).
#[derive(Debug, Clone)]
pub struct DiskProbe {
    pub path: PathBuf,
    pub metric: DiskMetric,
    /// Set while a read runs: a stalled mount costs one blocked thread, not one per sample.
    busy: Arc<AtomicBool>,
}

impl PartialEq for DiskProbe {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.metric == other.metric
    }
}

impl DiskProbe {
    pub fn new(path: impl Into<PathBuf>, metric: DiskMetric) -> Self {
        DiskProbe {
            path: path.into(),
            metric,
            busy: Arc::default(),
        }
    }

    pub async fn sample(&self, _roots: &Roots) -> Reading {
        let path = self.path.clone();
        let metric = self.metric;
        read_blocking(
            &self.busy,
            &self.path.display().to_string(),
            move || match DiskSpace::of(&path) {
                Ok(space) => space.reading(&path, metric),
                Err(error) => Reading::Unavailable(unavailable(&path, &error)),
            },
        )
        .await
    }
}

/// What `statvfs(2)` says of a file system, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes in use.
    pub used_bytes: u64,
    /// Bytes a non-root user can still write (`df`'s "Avail").
    pub available_bytes: u64,
    pub total_bytes: u64,
    pub inodes_total: u64,
    pub inodes_free: u64,
    /// Mounted read-only (`ST_RDONLY`).
    pub read_only: bool,
}

impl DiskSpace {
    /// `statvfs(2)` of the file system `path` is on. Blocks as long as the file system does.
    // The fields are 32 bits wide on some 32-bit targets (armv7 glibc): the conversions are
    // needed there.
    #[allow(clippy::useless_conversion)]
    pub fn of(path: &Path) -> io::Result<DiskSpace> {
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "the path holds a NUL byte")
        })?;
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c_path` is a valid C string; `stat` is written by statvfs when it returns 0.
        let result = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: statvfs returned 0, so it filled `stat`.
        let stat = unsafe { stat.assume_init() };
        let fragment = u64::from(stat.f_frsize);
        let blocks = u64::from(stat.f_blocks);
        let free = u64::from(stat.f_bfree);
        let available = u64::from(stat.f_bavail);
        Ok(DiskSpace {
            used_bytes: blocks.saturating_sub(free).saturating_mul(fragment),
            available_bytes: available.saturating_mul(fragment),
            total_bytes: blocks.saturating_mul(fragment),
            inodes_total: u64::from(stat.f_files),
            inodes_free: u64::from(stat.f_ffree),
            read_only: stat.f_flag & libc::ST_RDONLY != 0,
        })
    }

    /// Space used in percent, as `df` computes it (rounded up to a whole percent); `None`
    /// for a file system with no space at all (`proc`, an empty tmpfs of size 0).
    pub fn used_percent(&self) -> Option<f64> {
        percent_rounded_up(self.used_bytes, self.used_bytes + self.available_bytes)
    }

    /// Inodes used in percent, as `df -i` computes it; `None` when the file system counts
    /// no inodes (btrfs, vfat).
    pub fn inodes_used_percent(&self) -> Option<f64> {
        percent_rounded_up(
            self.inodes_total.saturating_sub(self.inodes_free),
            self.inodes_total,
        )
    }

    fn reading(&self, path: &Path, metric: DiskMetric) -> Reading {
        let shown = path.display();
        match metric {
            DiskMetric::UsedPercent => match self.used_percent() {
                Some(value) => Reading::Value {
                    value,
                    unit: Unit::Percent,
                    what: format!("Disk {shown} {{value}} used"),
                },
                None => Reading::Unavailable(format!(
                    "{shown} is on a file system with no space to fill (size 0): point the check at a disk's mount point"
                )),
            },
            DiskMetric::FreeBytes => Reading::Value {
                value: self.available_bytes as f64,
                unit: Unit::Bytes,
                what: format!("Disk {shown} {{value}} free"),
            },
            DiskMetric::InodesUsedPercent => match self.inodes_used_percent() {
                Some(value) => Reading::Value {
                    value,
                    unit: Unit::Percent,
                    what: format!("Disk {shown} {{value}} of inodes used"),
                },
                None => Reading::Unavailable(format!(
                    "the file system of {shown} does not count inodes: use metric: used (or free) for it"
                )),
            },
        }
    }
}

fn percent_rounded_up(part: u64, whole: u64) -> Option<f64> {
    if whole == 0 {
        return None;
    }
    let part = u128::from(part) * 100;
    let whole = u128::from(whole);
    Some(part.div_ceil(whole) as f64)
}

fn unavailable(path: &Path, error: &io::Error) -> String {
    let shown = path.display();
    match error.kind() {
        io::ErrorKind::NotFound => {
            format!("{shown} does not exist: mount the file system there, or fix the check's path")
        }
        io::ErrorKind::PermissionDenied => format!(
            "{shown} cannot be read by the agent's user (permission denied): give it search permission on the folders above, or watch the mount point"
        ),
        _ => format!("cannot read how full {shown} is: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_rounded_up_like_df() {
        let space = DiskSpace {
            used_bytes: 901,
            available_bytes: 99,
            total_bytes: 1050,
            inodes_total: 0,
            inodes_free: 0,
            read_only: false,
        };
        assert_eq!(space.used_percent(), Some(91.0));
        assert_eq!(space.inodes_used_percent(), None);
    }

    #[tokio::test]
    async fn a_folder_reads_its_file_system_and_a_missing_path_says_so() {
        let folder = tempfile::tempdir().unwrap();
        let probe = DiskProbe::new(folder.path(), DiskMetric::UsedPercent);
        match probe.sample(&Roots::default()).await {
            Reading::Value { value, unit, what } => {
                assert!((0.0..=100.0).contains(&value), "{value}");
                assert_eq!(unit, Unit::Percent);
                assert!(what.ends_with("{value} used"), "{what}");
            }
            other => panic!("expected a value, got {other:?}"),
        }
        let missing = DiskProbe::new(folder.path().join("gone"), DiskMetric::FreeBytes);
        match missing.sample(&Roots::default()).await {
            Reading::Unavailable(message) => {
                assert!(
                    message.contains("does not exist: mount the file system there"),
                    "{message}"
                )
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }
}
