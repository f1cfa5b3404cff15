//! Whether a file system's storage is failing: the file system turned read-only (what the
//! kernel does to ext4 after errors with `errors=remount-ro`, and to a dying SD card), the
//! ext4 error count, and an eMMC's wear.
//!
//! Where the values come from (each read under [`Roots`], so a test can supply a Pi's):
//! - `/proc/self/mountinfo` (proc(5)): `36 25 179:2 / / rw,noatime shared:1 - ext4 /dev/root
//!   rw`: the mount point (octal escapes such as `\040`), the per-mount options, the device
//!   number, the type, the source and the super block options after ` - `. A file system the
//!   kernel made read-only shows `ro` in either option list, or `emergency_ro` in the super
//!   block's (ext4 after an error, kernels 6.x: the mount still says `rw`); `statvfs(2)`'s
//!   `ST_RDONLY` is asked too.
//! - `/sys/dev/block/<major>:<minor>`: a link into `/sys/devices/.../block/<disk>[/<partition>]`,
//!   which names the device even when mountinfo says `/dev/root` (Raspberry Pi OS does).
//! - `/sys/fs/ext4/<partition>/errors_count` (fs/ext4/sysfs.c): the super block's error count,
//!   `%u\n`; it only grows until fsck clears it.
//! - `/sys/block/<disk>/device/life_time` and `pre_eol_info` (drivers/mmc/core/mmc.c, eMMC
//!   5.0 and later; SD cards have neither): `0x%02x 0x%02x\n`, the device's life time used
//!   estimated for its two kinds of memory, in tenths (0x01: 0-10% ... 0x0a: 90-100%, 0x0b:
//!   beyond its life), and `0x%02x\n`, its reserved blocks used (0x01 normal, 0x02 warning:
//!   80%, 0x03 urgent: 90%).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::disk::DiskSpace;
use crate::{read_blocking, Reading, Roots, Unit};

/// What of a file system's storage a check watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageWatch {
    /// Mounted or turned read-only: a verdict.
    ReadOnly,
    /// ext4's error count: a number.
    Ext4Errors,
    /// An eMMC's wear, in percent of its life (the worst of its estimates): a number.
    Wear,
}

/// One file system, by its mount point.
#[derive(Debug, Clone)]
pub struct StorageProbe {
    pub path: PathBuf,
    pub watch: StorageWatch,
    /// Set while a read runs (statvfs can block on a failing device).
    busy: Arc<AtomicBool>,
}

impl PartialEq for StorageProbe {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.watch == other.watch
    }
}

impl StorageProbe {
    pub fn new(path: impl Into<PathBuf>, watch: StorageWatch) -> Self {
        StorageProbe {
            path: path.into(),
            watch,
            busy: Arc::default(),
        }
    }

    pub async fn sample(&self, roots: &Roots) -> Reading {
        let (path, watch, roots) = (self.path.clone(), self.watch, roots.clone());
        read_blocking(&self.busy, &self.path.display().to_string(), move || {
            read(&roots, &path, watch)
        })
        .await
    }
}

fn read(roots: &Roots, path: &Path, watch: StorageWatch) -> Reading {
    let mountinfo_path = roots.proc("self/mountinfo");
    let mountinfo = match fs::read_to_string(&mountinfo_path) {
        Ok(text) => text,
        Err(error) => {
            return Reading::Unavailable(format!(
                "cannot read {}: {error}: is procfs_root right?",
                mountinfo_path.display()
            ))
        }
    };
    let Some(mount) = find_mount(&mountinfo, path) else {
        return Reading::Unavailable(format!(
            "{} is not a mount point: point the check at a file system's mount point (see findmnt)",
            path.display()
        ));
    };
    match watch {
        StorageWatch::ReadOnly => {
            let by_statvfs = DiskSpace::of(path).is_ok_and(|space| space.read_only);
            let bad = mount.read_only() || by_statvfs;
            let text = if bad {
                format!(
                    "File system {} ({}) is read-only (mount options {}, super block {})",
                    path.display(),
                    mount.source,
                    mount.mount_options.join(","),
                    mount.super_options.join(",")
                )
            } else {
                format!(
                    "File system {} ({}) is writable",
                    path.display(),
                    mount.source
                )
            };
            Reading::Verdict { bad, text }
        }
        StorageWatch::Ext4Errors => ext4_errors(roots, path, &mount),
        StorageWatch::Wear => wear(roots, path, &mount),
    }
}

fn ext4_errors(roots: &Roots, path: &Path, mount: &MountEntry) -> Reading {
    if !mount.fs_type.starts_with("ext") {
        return Reading::Unavailable(format!(
            "{} is {}, not ext4: only ext4 counts its errors; remove the check",
            path.display(),
            mount.fs_type
        ));
    }
    let Some(device) = block_device(roots, mount) else {
        return Reading::Unavailable(format!(
            "the device of {} ({}) is not found under {}: is sysfs_root right?",
            path.display(),
            mount.source,
            roots.sys("dev/block").display()
        ));
    };
    let file = roots.sys(format!("fs/ext4/{}/errors_count", device.partition));
    match read_number(&file) {
        Ok(count) => Reading::Value {
            value: count as f64,
            unit: Unit::Number,
            what: format!("ext4 errors on {} ({})", path.display(), device.partition),
        },
        Err(error) => Reading::Unavailable(format!(
            "cannot read {}: {error}: the kernel keeps it for every mounted ext4 file system; is sysfs_root right?",
            file.display()
        )),
    }
}

fn wear(roots: &Roots, path: &Path, mount: &MountEntry) -> Reading {
    let Some(device) = block_device(roots, mount) else {
        return Reading::Unavailable(format!(
            "the device of {} ({}) is not found under {}: is sysfs_root right?",
            path.display(),
            mount.source,
            roots.sys("dev/block").display()
        ));
    };
    let folder = roots.sys(format!("block/{}/device", device.disk));
    let life_time = fs::read_to_string(folder.join("life_time"));
    let pre_eol = fs::read_to_string(folder.join("pre_eol_info"));
    let (Ok(life_time), Ok(pre_eol)) = (life_time, pre_eol) else {
        return Reading::Unavailable(format!(
            "{} ({}) does not report its wear (no life_time and pre_eol_info in {}): only eMMC 5.0 and later does, SD cards and USB sticks do not; remove the check",
            path.display(),
            device.disk,
            folder.display()
        ));
    };
    match wear_percent(&life_time, &pre_eol) {
        Some(worn) => Reading::Value {
            value: worn,
            unit: Unit::Percent,
            what: format!(
                "eMMC {} under {} {{value}} worn, life_time {}, pre_eol_info {}",
                device.disk,
                path.display(),
                life_time.trim(),
                pre_eol.trim()
            ),
        },
        None => Reading::Unavailable(format!(
            "{} ({}) reports life_time \"{}\" and pre_eol_info \"{}\", which do not read as 0x.. values",
            path.display(),
            device.disk,
            life_time.trim(),
            pre_eol.trim()
        )),
    }
}

/// The worst wear an eMMC reports, in percent: each life time estimate's upper bound (0x01:
/// 10% ... 0x0a: 100%, 0x0b: 110%, past its life) and the reserved blocks used (0x02: 80%,
/// 0x03: 90%). 0x00 (not defined) counts as nothing.
pub fn wear_percent(life_time: &str, pre_eol_info: &str) -> Option<f64> {
    let hex = |text: &str| u8::from_str_radix(text.trim().strip_prefix("0x")?, 16).ok();
    let mut worst = 0.0_f64;
    let estimates: Vec<&str> = life_time.split_whitespace().collect();
    if estimates.is_empty() {
        return None;
    }
    for estimate in estimates {
        worst = worst.max(f64::from(hex(estimate)?) * 10.0);
    }
    let reserved = match hex(pre_eol_info)? {
        0x02 => 80.0,
        0x03 => 90.0,
        _ => 0.0,
    };
    Some(worst.max(reserved))
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the device.
    pub device_number: String,
    pub mount_point: PathBuf,
    pub mount_options: Vec<String>,
    pub fs_type: String,
    pub source: String,
    pub super_options: Vec<String>,
}

impl MountEntry {
    /// Mounted read-only, or made read-only by the kernel.
    pub fn read_only(&self) -> bool {
        self.mount_options.iter().any(|option| option == "ro")
            || self
                .super_options
                .iter()
                .any(|option| option == "ro" || option == "emergency_ro")
    }
}

/// The mount at `path` (the last one: a mount over another hides it), if `path` is a mount
/// point.
pub fn find_mount(mountinfo: &str, path: &Path) -> Option<MountEntry> {
    mountinfo
        .lines()
        .rev()
        .filter_map(parse_mountinfo_line)
        .find(|entry| entry.mount_point == path)
}

fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let (before, after) = line.split_once(" - ")?;
    let fields: Vec<&str> = before.split(' ').collect();
    let mut after = after.split(' ');
    Some(MountEntry {
        device_number: fields.get(2)?.to_string(),
        mount_point: PathBuf::from(unescape(fields.get(4)?)),
        mount_options: fields.get(5)?.split(',').map(str::to_owned).collect(),
        fs_type: after.next()?.to_owned(),
        source: unescape(after.next()?),
        super_options: after
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect(),
    })
}

/// mountinfo writes space, tab, newline and backslash as `\040`, `\011`, `\012`, `\134`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\' && index + 4 <= bytes.len() {
            let octal = field.get(index + 1..index + 4);
            if let Some(value) = octal.and_then(|octal| u8::from_str_radix(octal, 8).ok()) {
                out.push(value);
                index += 4;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A mounted file system's block device: its name (`mmcblk0p2`, `loop3`) and its disk's
/// (`mmcblk0`; a whole disk is its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    pub partition: String,
    pub disk: String,
}

/// Through `/sys/dev/block/<major>:<minor>` (`/dev/root` names no device), else the
/// source's file name (`/dev/loop3`).
pub fn block_device(roots: &Roots, mount: &MountEntry) -> Option<BlockDevice> {
    let link = roots.sys(format!("dev/block/{}", mount.device_number));
    if let Ok(target) = fs::read_link(&link) {
        let partition = target.file_name()?.to_string_lossy().into_owned();
        let parent = target.parent().and_then(Path::file_name)?.to_string_lossy();
        let disk = if parent == "block" {
            partition.clone()
        } else {
            parent.into_owned()
        };
        return Some(BlockDevice { partition, disk });
    }
    let name = Path::new(&mount.source)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    (mount.source.starts_with("/dev/") && name != "root").then(|| BlockDevice {
        disk: name.clone(),
        partition: name,
    })
}

fn read_number(file: &Path) -> io::Result<u64> {
    let text = fs::read_to_string(file)?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("\"{}\" is not a number", text.trim()),
        )
    })
}

#[cfg(test)]
mod tests;
