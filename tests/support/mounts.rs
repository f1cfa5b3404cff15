//! Real file systems for the health checks' tests, mounted by the test with mount(8) (as
//! root): a size-limited tmpfs, and a loop-mounted ext4 image made with mkfs.ext4. Each is
//! unmounted when dropped. Where mounting is not possible (no root, no mkfs.ext4, no loop
//! devices) a test skips with the reason, and fails when `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A file system mounted at `point` by the test.
pub struct Mount {
    point: PathBuf,
}

impl Mount {
    /// A tmpfs of `size` (`1m`) at `point` (created if missing).
    pub fn tmpfs_or_skip(point: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(point).expect("the mount point");
        let options = format!("size={size},mode=0755");
        or_skip(run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(point)))?;
        Some(Mount {
            point: point.to_owned(),
        })
    }

    pub fn point(&self) -> &Path {
        &self.point
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: a process that still has a file open there does not keep the mount.
        let _ = Command::new("umount").arg("-l").arg(&self.point).status();
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    match command.output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Err(format!("{command:?} cannot run: {error}")),
    }
}

fn or_skip(result: Result<(), String>) -> Option<()> {
    match result {
        Ok(()) => Some(()),
        Err(problem) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but a test file system cannot be mounted: {problem}; the tests run as root with mount(8), mkfs.ext4 (e2fsprogs) and loop devices")
        }
        Err(problem) => {
            eprintln!("skipping: a test file system cannot be mounted: {problem}");
            None
        }
    }
}
