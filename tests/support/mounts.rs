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

    /// A fresh ext4 file system of `size_mib` MiB in the file `image`, loop-mounted at
    /// `point` (created if missing) with `errors=remount-ro`, as a Pi's root is.
    pub fn ext4_image_or_skip(image: &Path, point: &Path, size_mib: u64) -> Option<Mount> {
        std::fs::create_dir_all(point).expect("the mount point");
        let file = std::fs::File::create(image).expect("the image file");
        file.set_len(size_mib * 1024 * 1024)
            .expect("the image's size");
        drop(file);
        or_skip(run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image)))?;
        or_skip(run(Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(image)
            .arg(point)))?;
        Some(Mount {
            point: point.to_owned(),
        })
    }

    /// The mounted device (`/dev/loop3`), as findmnt(8) reads it from mountinfo.
    pub fn source(&self) -> String {
        let output = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(&self.point)
            .output()
            .expect("findmnt runs");
        assert!(
            output.status.success(),
            "findmnt {}: {output:?}",
            self.point.display()
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// `mount -o remount,ro`: read-only by hand.
    pub fn remount_read_only(&self) {
        run(Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.point))
        .expect("remount read-only");
    }

    /// `mount -o remount,rw`.
    pub fn remount_read_write(&self) {
        run(Command::new("mount")
            .args(["-o", "remount,rw"])
            .arg(&self.point))
        .expect("remount read-write");
    }

    /// A real ext4 error, through ext4's `trigger_fs_error` (fs/ext4/sysfs.c): the kernel
    /// counts it in `errors_count` and, with `errors=remount-ro`, makes the file system
    /// read-only (`emergency_ro` on kernels 6.x).
    pub fn trigger_ext4_error(&self) {
        let device = self.source();
        let name = Path::new(&device)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        std::fs::write(
            format!("/sys/fs/ext4/{name}/trigger_fs_error"),
            "error triggered by the test\n",
        )
        .expect("ext4's trigger_fs_error takes the error");
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
