//! The state folder on a disk that misbehaves: `tests/support/faultfs.rs` (a FUSE
//! pass-through with faults) tested on its own, then the agent with its `state_dir` on it.
//!
//! The agent's contract here: delivery never waits on an fsync (alerts go to Discord and to
//! `monitorctl alerts --follow` from memory), and a state folder that is full, failing or
//! read-only is reported as the agent's own CRITICAL `monitor state_dir` while alerts keep
//! flowing, then recorded once the disk takes writes again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::faultfs::FaultFs;
use crate::harness::{append, eventually};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;
const EROFS: i32 = 30;

/// A mount over a fresh backing folder; the file system goes before the folders.
struct Mounted {
    fs: FaultFs,
    dir: tempfile::TempDir,
}

impl Mounted {
    fn new() -> Option<Mounted> {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir(dir.path().join("backing")).unwrap();
        fs::create_dir(dir.path().join("mount")).unwrap();
        let fs = FaultFs::mount_or_skip(&dir.path().join("backing"), &dir.path().join("mount"))?;
        Some(Mounted { fs, dir })
    }

    fn root(&self) -> &Path {
        self.fs.mountpoint()
    }

    fn backing(&self, relative: &str) -> std::path::PathBuf {
        self.dir.path().join("backing").join(relative)
    }
}

fn is_mounted(mountpoint: &Path) -> bool {
    let mountpoint = mountpoint.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(mountpoint))
}

#[track_caller]
fn assert_errno<T: std::fmt::Debug>(result: io::Result<T>, errno: i32) {
    match result {
        Err(error) => assert_eq!(error.raw_os_error(), Some(errno), "{error}"),
        Ok(value) => panic!("expected errno {errno}, got {value:?}"),
    }
}

#[test]
fn faultfs_passes_through_what_the_agent_does_in_its_state_folder() {
    let Some(mounted) = Mounted::new() else {
        return;
    };
    let root = mounted.root();

    // The history: appended by two handles, fsynced, under a flock.
    let history = root.join("alerts.jsonl");
    let mut first = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&history)
        .unwrap();
    first.write_all(b"one\n").unwrap();
    first.sync_data().unwrap();
    let mut second = OpenOptions::new().append(true).open(&history).unwrap();
    second.write_all(b"two\n").unwrap();
    assert_eq!(fs::read_to_string(&history).unwrap(), "one\ntwo\n");
    assert_eq!(
        fs::read_to_string(mounted.backing("alerts.jsonl")).unwrap(),
        "one\ntwo\n"
    );
    first.lock().unwrap();
    assert!(
        matches!(second.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        "a flock holds against another open file"
    );
    first.unlock().unwrap();
    second.try_lock().unwrap();
    second.unlock().unwrap();

    // write_atomically: a temporary file, fsync, rename over the old one, fsync the folder.
    fs::create_dir(root.join("outbox")).unwrap();
    let progress = root.join("outbox/progress.json");
    fs::write(&progress, "old").unwrap();
    let temporary = root.join("outbox/progress.json.tmp");
    let mut file = File::create(&temporary).unwrap();
    file.write_all(b"new").unwrap();
    file.sync_all().unwrap();
    fs::rename(&temporary, &progress).unwrap();
    File::open(root.join("outbox")).unwrap().sync_all().unwrap();
    assert_eq!(fs::read_to_string(&progress).unwrap(), "new");
    let names: Vec<String> = fs::read_dir(root.join("outbox"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["progress.json"]);

    // chmod, truncate (cutting a torn record), unlink.
    fs::set_permissions(
        &history,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&history).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    first.set_len(4).unwrap();
    assert_eq!(fs::read_to_string(&history).unwrap(), "one\n");
    assert_eq!(fs::metadata(&history).unwrap().len(), 4);
    drop((first, second));
    fs::remove_file(&history).unwrap();
    assert!(!history.exists());
    assert!(!mounted.backing("alerts.jsonl").exists());

    let counters = mounted.fs.counters();
    assert_eq!(
        (
            counters.writes,
            counters.bytes_written,
            counters.fsyncs,
            counters.fsyncdirs,
            counters.renames,
            counters.creates,
            counters.mkdirs,
            counters.unlinks,
            counters.refused,
        ),
        (4, 14, 2, 1, 1, 3, 1, 1, 0),
        "{counters:?}"
    );
}

#[test]
fn each_fault_of_faultfs_refuses_what_it_says_until_healed() {
    let Some(mounted) = Mounted::new() else {
        return;
    };
    let root = mounted.root();
    let existing = root.join("existing");
    fs::write(&existing, "kept\n").unwrap();
    let mut open = OpenOptions::new().append(true).open(&existing).unwrap();

    mounted.fs.no_space();
    assert_errno(open.write_all(b"x"), ENOSPC);
    assert_errno(File::create(root.join("new")), ENOSPC);
    assert_errno(fs::create_dir(root.join("folder")), ENOSPC);
    assert_errno(fs::rename(&existing, root.join("renamed")), ENOSPC);
    open.sync_all().expect("a full disk still flushes");
    mounted.fs.heal();
    open.write_all(b"after ENOSPC\n").unwrap();

    mounted.fs.io_error();
    assert_errno(open.write_all(b"x"), EIO);
    assert_errno(open.sync_all(), EIO);
    assert_eq!(
        fs::read_to_string(&existing).unwrap(),
        "kept\nafter ENOSPC\n"
    );
    mounted.fs.heal();
    open.write_all(b"after EIO\n").unwrap();
    open.sync_all().unwrap();

    mounted.fs.read_only();
    assert_errno(open.write_all(b"x"), EROFS);
    assert_errno(File::create(root.join("new")), EROFS);
    assert_errno(OpenOptions::new().append(true).open(&existing), EROFS);
    assert_errno(fs::rename(&existing, root.join("renamed")), EROFS);
    assert_errno(fs::remove_file(&existing), EROFS);
    assert_errno(fs::create_dir(root.join("folder")), EROFS);
    assert_errno(
        fs::set_permissions(
            &existing,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        ),
        EROFS,
    );
    assert_eq!(
        fs::read_to_string(&existing).unwrap(),
        "kept\nafter ENOSPC\nafter EIO\n",
        "reads work on a read-only disk"
    );
    assert_eq!(mounted.fs.counters().refused, 13);

    mounted.fs.heal();
    open.write_all(b"healed\n").unwrap();
    fs::rename(&existing, root.join("renamed")).unwrap();
    fs::create_dir(root.join("folder")).unwrap();
    fs::remove_file(root.join("renamed")).unwrap();
    assert_eq!(mounted.fs.counters().refused, 13);
}

#[test]
fn a_stalled_fsync_of_faultfs_blocks_neither_writes_nor_stats_and_heal_ends_it() {
    let Some(mounted) = Mounted::new() else {
        return;
    };
    let root = mounted.root().to_owned();
    let checkpoint = root.join("checkpoint.json");
    let history = root.join("alerts.jsonl");
    fs::write(&checkpoint, "{}").unwrap();
    fs::write(&history, "").unwrap();

    // A short stall lasts as long as it says.
    let short = Duration::from_millis(300);
    mounted.fs.stall_fsync(short);
    let started = Instant::now();
    File::open(&checkpoint).unwrap().sync_all().unwrap();
    assert!(started.elapsed() >= short, "{:?}", started.elapsed());

    // A long one: everything else goes on meanwhile.
    let long = Duration::from_secs(60);
    mounted.fs.stall_fsync(long);
    let syncing = checkpoint.clone();
    let fsync = thread::spawn(move || {
        let started = Instant::now();
        File::open(&syncing).unwrap().sync_all().unwrap();
        started.elapsed()
    });
    eventually("the fsync waits out its stall", || {
        mounted.fs.stalled_fsyncs() == 1
    });
    let during = Instant::now();
    append(&history, "written meanwhile\n");
    assert_eq!(fs::metadata(&checkpoint).unwrap().len(), 2);
    assert_eq!(fs::read_dir(&root).unwrap().count(), 2);
    assert_eq!(fs::read_to_string(&history).unwrap(), "written meanwhile\n");
    assert!(
        during.elapsed() < Duration::from_secs(1),
        "a write, a stat and a listing took {:?} during a stalled fsync",
        during.elapsed()
    );
    assert!(!fsync.is_finished(), "the fsync is still stalled");

    mounted.fs.heal();
    let took = fsync.join().unwrap();
    assert!(took < long, "heal ended the stall after {took:?}");
    assert_eq!(mounted.fs.stalled_fsyncs(), 0);
}

#[test]
fn dropping_faultfs_unmounts_it_even_in_a_panic_or_with_a_file_open() {
    let dir = tempfile::tempdir().unwrap();
    let (backing, mountpoint) = (dir.path().join("backing"), dir.path().join("mount"));
    fs::create_dir(&backing).unwrap();
    fs::create_dir(&mountpoint).unwrap();
    let Some(mounted) = FaultFs::mount_or_skip(&backing, &mountpoint) else {
        return;
    };
    fs::write(mountpoint.join("kept"), "on the backing folder").unwrap();
    assert!(is_mounted(&mountpoint));
    drop(mounted);
    assert!(!is_mounted(&mountpoint));
    assert_eq!(
        fs::read_to_string(backing.join("kept")).unwrap(),
        "on the backing folder"
    );

    let panicked = std::panic::catch_unwind(|| {
        let _mounted = FaultFs::mount(&backing, &mountpoint).unwrap();
        assert!(is_mounted(&mountpoint));
        panic!("a test fails with the file system mounted");
    });
    assert!(panicked.is_err());
    assert!(!is_mounted(&mountpoint));

    let mounted = FaultFs::mount(&backing, &mountpoint).unwrap();
    let still_open = File::open(mountpoint.join("kept")).unwrap();
    drop(mounted);
    assert!(!is_mounted(&mountpoint), "a busy mount is detached");
    drop(still_open);
}
