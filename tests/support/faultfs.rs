//! A pass-through FUSE file system over a backing folder, with faults to turn on and off at
//! run time: every fsync stalls, the disk is full (`ENOSPC`), the disk fails (`EIO`), or it
//! turns read-only (`EROFS`). For tests of what a program does when its disk misbehaves, on
//! the real kernel paths (its `write`, `fsync` and `rename` calls get the errors a real file
//! system would give).
//!
//! Included with `#[path = "../support/faultfs.rs"] mod faultfs;`, so it uses only `std`
//! and `fuser` (without default features: it mounts with mount(2) as root, or through
//! `fusermount3`, and links no libfuse). The file system is served by a thread of the test
//! process; [`FaultFs`] is the handle: it sets and clears faults, counts what reached the
//! backing folder, and unmounts when dropped (also while a test panics).
//!
//! What it passes through: lookups, attributes (chmod, chown, truncate, times), create, open,
//! read, write (`O_APPEND` included), fsync, mkdir, readdir, fsyncdir, rename, unlink,
//! rmdir, symlinks. File locks (`flock`, POSIX locks) are the kernel's own: fuser does not
//! ask for `FUSE_FLOCK_LOCKS` or `FUSE_POSIX_LOCKS`, so the kernel keeps them locally, which
//! is right for one machine. `statfs` answers zeros.
//!
//! Every fsync is answered from a thread of its own, so a slow or stalled fsync never holds
//! up the session loop (fuser reads one request at a time): other files, stats and listings
//! go on. The kernel itself holds the inode's lock during a FUSE fsync, and the *folder's*
//! during a fsyncdir, so while a fsyncdir stalls, creating, renaming or removing in that
//! folder waits too (real disk file systems do not hold it that long).

#![allow(dead_code)] // each test uses a different part of it

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, DirEntryExt, FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    BackgroundSession, BsdFileFlags, Config, Errno, FileAttr, FileHandle, FileType, Filesystem,
    FopenFlags, Generation, INodeNo, LockOwner, MountOption, OpenAccMode, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// How long the kernel may keep the attributes and names we answer. Every change goes
/// through the mount, so the kernel's caches stay true; with no caching at all every path
/// walk would be a lookup, and a lookup of a name not cached waits for the folder's lock,
/// which a stalled fsyncdir holds.
const CACHE_TTL: Duration = Duration::from_secs(1);

/// The file system's handle: faults, counters, and the mount (unmounted on drop).
pub struct FaultFs {
    mountpoint: PathBuf,
    shared: Arc<Shared>,
    session: Option<BackgroundSession>,
}

/// What reached the backing folder so far (operations refused by a fault are not counted
/// here but in `refused`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub writes: u64,
    pub bytes_written: u64,
    pub fsyncs: u64,
    pub fsyncdirs: u64,
    pub renames: u64,
    pub creates: u64,
    pub mkdirs: u64,
    pub unlinks: u64,
    /// Operations that an injected fault made fail.
    pub refused: u64,
}

impl FaultFs {
    /// Mounts a pass-through of `backing` on `mountpoint` (both existing folders), healthy.
    pub fn mount(backing: &Path, mountpoint: &Path) -> Result<FaultFs, String> {
        if let Err(error) = OpenOptions::new().read(true).write(true).open("/dev/fuse") {
            return Err(format!("cannot open /dev/fuse: {error}"));
        }
        let backing = backing
            .canonicalize()
            .map_err(|error| format!("backing folder {}: {error}", backing.display()))?;
        let shared = Arc::new(Shared::default());
        let file_system = PassThrough {
            backing,
            shared: Arc::clone(&shared),
            paths: Mutex::new(HashMap::from([(INodeNo::ROOT.0, PathBuf::new())])),
            files: Mutex::new(HashMap::new()),
            folders: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("faultfs".into()),
            MountOption::Subtype("faultfs".into()),
            // Permission checks by the kernel, as on a disk file system.
            MountOption::DefaultPermissions,
        ];
        // spawn_mount returns once the kernel's INIT is answered: the mount is usable.
        let session = fuser::spawn_mount(file_system, mountpoint, &config)
            .map_err(|error| format!("cannot mount FUSE on {}: {error}", mountpoint.display()))?;
        Ok(FaultFs {
            mountpoint: mountpoint.to_owned(),
            shared,
            session: Some(session),
        })
    }

    /// [`FaultFs::mount`], or `None` (and says why) when FUSE is not available here, unless
    /// `CI=true`, where that is a failure.
    pub fn mount_or_skip(backing: &Path, mountpoint: &Path) -> Option<FaultFs> {
        match FaultFs::mount(backing, mountpoint) {
            Ok(mounted) => Some(mounted),
            Err(problem) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true but FUSE is not available: {problem}; the tests need /dev/fuse, and fusermount3 (apt package fuse3) unless they run as root")
            }
            Err(problem) => {
                eprintln!("skipping: FUSE is not available: {problem}");
                None
            }
        }
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Every fsync and fsyncdir from now on waits `stall`, then succeeds (or fails with a
    /// fault set meanwhile). [`FaultFs::heal`] ends the waits in progress.
    pub fn stall_fsync(&self, stall: Duration) {
        self.shared
            .change(|faults| faults.fsync_stall = Some(stall));
    }

    /// Writes, creates, mkdir and rename fail with `ENOSPC`.
    pub fn no_space(&self) {
        self.shared
            .change(|faults| faults.failure = Some(Failure::NoSpace));
    }

    /// Writes, fsync and fsyncdir fail with `EIO`.
    pub fn io_error(&self) {
        self.shared
            .change(|faults| faults.failure = Some(Failure::IoError));
    }

    /// Every modification fails with `EROFS` (opening for writing too); reads work.
    pub fn read_only(&self) {
        self.shared
            .change(|faults| faults.failure = Some(Failure::ReadOnly));
    }

    /// No more faults; stalled fsyncs go on at once.
    pub fn heal(&self) {
        self.shared.change(|faults| {
            faults.fsync_stall = None;
            faults.failure = None;
        });
    }

    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Fsyncs (and fsyncdirs) waiting out a stall right now.
    pub fn stalled_fsyncs(&self) -> u64 {
        self.shared.lock().stalled
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        // Stalled fsyncs end, so that whoever waits on them can close their files.
        self.heal();
        let Some(session) = self.session.take() else {
            return;
        };
        if session.umount_and_join().is_err() {
            // Busy: a file in it is still open (a test that failed while its agent ran).
            // Detach it, so that no mount is left behind; the serving thread ends when the
            // last file is closed.
            let _ = Command::new("umount")
                .arg("--lazy")
                .arg(&self.mountpoint)
                .status();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    NoSpace,
    IoError,
    ReadOnly,
}

#[derive(Debug, Default)]
struct Faults {
    fsync_stall: Option<Duration>,
    failure: Option<Failure>,
    /// Fsyncs waiting out the stall now.
    stalled: u64,
}

/// What a request is about to do, for deciding which fault refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Write,
    Create,
    MakeFolder,
    Rename,
    Remove,
    SetAttributes,
    OpenForWriting,
    Fsync,
}

impl Failure {
    fn refuses(self, change: Change) -> Option<Errno> {
        match (self, change) {
            // A read-only file system has nothing to flush.
            (Failure::ReadOnly, Change::Fsync) => None,
            (Failure::ReadOnly, _) => Some(Errno::EROFS),
            (
                Failure::NoSpace,
                Change::Write | Change::Create | Change::MakeFolder | Change::Rename,
            ) => Some(Errno::ENOSPC),
            (Failure::IoError, Change::Write | Change::Fsync) => Some(Errno::EIO),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Shared {
    faults: Mutex<Faults>,
    /// Signalled whenever the faults change, to end stalls early.
    faults_changed: Condvar,
    counters: AtomicCounters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Faults> {
        self.faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn change(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.lock());
        self.faults_changed.notify_all();
    }

    /// The error a fault gives `change` now, counted as refused.
    fn refusal(&self, change: Change) -> Option<Errno> {
        let refusal = self
            .lock()
            .failure
            .and_then(|failure| failure.refuses(change));
        if refusal.is_some() {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
        }
        refusal
    }

    /// Waits out a stall (until its end, until the faults change, or until `requester` is
    /// killed), then syncs unless a fault refuses it. Runs on a thread of its own.
    fn fsync(&self, requester: u32, sync: impl FnOnce() -> io::Result<()>) -> Result<(), Errno> {
        let mut faults = self.lock();
        if let Some(stall) = faults.fsync_stall {
            faults.stalled += 1;
            let deadline = Instant::now() + stall;
            let mut killed = false;
            while faults.fsync_stall == Some(stall) && !killed {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                faults = self
                    .faults_changed
                    .wait_timeout(faults, left.min(KILL_CHECK_INTERVAL))
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
                killed = is_being_killed(requester);
            }
            faults.stalled -= 1;
            if killed {
                return Err(Errno::EINTR);
            }
        }
        drop(faults);
        if let Some(refused) = self.refusal(Change::Fsync) {
            return Err(refused);
        }
        sync().map_err(Errno::from)
    }
}

/// How often a stalled fsync looks whether its caller was killed. The kernel waits out a
/// request the file system has taken even for SIGKILL, and says so with `FUSE_INTERRUPT`,
/// which fuser does not pass on: without a look, `kill -9` of a program in a stalled fsync
/// would hang until the stall ends.
const KILL_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Whether the thread `tid` is gone or has SIGKILL pending.
fn is_being_killed(tid: u32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{tid}/status")) else {
        return true;
    };
    const SIGKILL_BIT: u64 = 1 << (9 - 1);
    status
        .lines()
        .filter_map(|line| {
            let pending = line
                .strip_prefix("SigPnd:")
                .or_else(|| line.strip_prefix("ShdPnd:"))?;
            u64::from_str_radix(pending.trim(), 16).ok()
        })
        .any(|pending| pending & SIGKILL_BIT != 0)
}

#[derive(Default)]
struct AtomicCounters {
    writes: AtomicU64,
    bytes_written: AtomicU64,
    fsyncs: AtomicU64,
    fsyncdirs: AtomicU64,
    renames: AtomicU64,
    creates: AtomicU64,
    mkdirs: AtomicU64,
    unlinks: AtomicU64,
    refused: AtomicU64,
}

impl AtomicCounters {
    fn snapshot(&self) -> Counters {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counters {
            writes: read(&self.writes),
            bytes_written: read(&self.bytes_written),
            fsyncs: read(&self.fsyncs),
            fsyncdirs: read(&self.fsyncdirs),
            renames: read(&self.renames),
            creates: read(&self.creates),
            mkdirs: read(&self.mkdirs),
            unlinks: read(&self.unlinks),
            refused: read(&self.refused),
        }
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

struct OpenFolder {
    path: PathBuf,
    entries: Vec<(u64, FileType, OsString)>,
}

/// The file system the session serves. Inode numbers are the backing files' own (the root
/// is 1), each mapped to its path relative to `backing`.
struct PassThrough {
    backing: PathBuf,
    shared: Arc<Shared>,
    paths: Mutex<HashMap<u64, PathBuf>>,
    files: Mutex<HashMap<u64, Arc<File>>>,
    folders: Mutex<HashMap<u64, OpenFolder>>,
    next_handle: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PassThrough {
    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        lock(&self.paths).get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn backing_path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        Ok(self.backing.join(self.path(ino)?))
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    fn refuse(&self, change: Change) -> Result<(), Errno> {
        match self.shared.refusal(change) {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }

    /// Attributes of `relative`, remembering its inode number.
    fn entry(&self, relative: PathBuf) -> Result<FileAttr, Errno> {
        let metadata = fs::symlink_metadata(self.backing.join(&relative)).map_err(Errno::from)?;
        let ino = if relative.as_os_str().is_empty() {
            INodeNo::ROOT.0
        } else {
            metadata.ino()
        };
        lock(&self.paths).insert(ino, relative);
        Ok(attributes(ino, &metadata))
    }

    fn file(&self, handle: FileHandle) -> Result<Arc<File>, Errno> {
        lock(&self.files)
            .get(&handle.0)
            .cloned()
            .ok_or(Errno::EBADF)
    }

    fn new_handle(&self) -> u64 {
        self.next_handle.fetch_add(1, Ordering::Relaxed)
    }

    /// After a rename: what was at `to` is gone, what was under `from` is now under `to`.
    fn renamed(&self, from: &Path, to: &Path) {
        let mut paths = lock(&self.paths);
        paths.retain(|_, path| !path.starts_with(to));
        for path in paths.values_mut() {
            if let Ok(rest) = path.strip_prefix(from) {
                // Not `to.join("")`: that would end the path with a slash.
                *path = if rest.as_os_str().is_empty() {
                    to.to_owned()
                } else {
                    to.join(rest)
                };
            }
        }
    }

    fn getattr_result(&self, ino: INodeNo, handle: Option<FileHandle>) -> Result<FileAttr, Errno> {
        // fstat on an open file works even after its name was replaced or removed.
        if let Some(file) = handle.and_then(|handle| self.file(handle).ok()) {
            let metadata = file.metadata().map_err(Errno::from)?;
            return Ok(attributes(ino.0, &metadata));
        }
        let metadata = fs::symlink_metadata(self.backing_path(ino)?).map_err(Errno::from)?;
        Ok(attributes(ino.0, &metadata))
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr_result(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        handle: Option<FileHandle>,
    ) -> Result<FileAttr, Errno> {
        self.refuse(Change::SetAttributes)?;
        let path = self.backing_path(ino)?;
        if let Some(mode) = mode {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
                .map_err(Errno::from)?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::lchown(&path, uid, gid).map_err(Errno::from)?;
        }
        if let Some(size) = size {
            match handle.and_then(|handle| self.file(handle).ok()) {
                Some(file) => file.set_len(size),
                None => OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|file| file.set_len(size)),
            }
            .map_err(Errno::from)?;
        }
        if atime.is_some() || mtime.is_some() {
            let time = |time: TimeOrNow| match time {
                TimeOrNow::SpecificTime(time) => time,
                TimeOrNow::Now => SystemTime::now(),
            };
            let mut times = FileTimes::new();
            if let Some(atime) = atime {
                times = times.set_accessed(time(atime));
            }
            if let Some(mtime) = mtime {
                times = times.set_modified(time(mtime));
            }
            File::open(&path)
                .and_then(|file| file.set_times(times))
                .map_err(Errno::from)?;
        }
        self.getattr_result(ino, handle)
    }

    fn open_result(&self, ino: INodeNo, flags: OpenFlags) -> Result<u64, Errno> {
        let access = flags.acc_mode();
        if access != OpenAccMode::O_RDONLY {
            self.refuse(Change::OpenForWriting)?;
        }
        let file = OpenOptions::new()
            .read(access != OpenAccMode::O_WRONLY)
            .write(access != OpenAccMode::O_RDONLY)
            // O_APPEND and the like, as asked; std keeps the access mode it was given.
            .custom_flags(flags.0)
            .open(self.backing_path(ino)?)
            .map_err(Errno::from)?;
        let handle = self.new_handle();
        lock(&self.files).insert(handle, Arc::new(file));
        Ok(handle)
    }

    fn create_result(
        &self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, u64), Errno> {
        self.refuse(Change::Create)?;
        let relative = self.child(parent, name)?;
        let file = OpenOptions::new()
            .read(OpenFlags(flags).acc_mode() != OpenAccMode::O_WRONLY)
            // std creates only with write access; the handle's writes are the caller's.
            .write(true)
            .create(true)
            .custom_flags(flags)
            .mode(mode & !umask & 0o7777)
            .open(self.backing.join(&relative))
            .map_err(Errno::from)?;
        count(&self.shared.counters.creates);
        let attr = self.entry(relative)?;
        let handle = self.new_handle();
        lock(&self.files).insert(handle, Arc::new(file));
        Ok((attr, handle))
    }

    fn write_result(&self, handle: FileHandle, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        self.refuse(Change::Write)?;
        let file = self.file(handle)?;
        // With O_APPEND the backing file appends whatever the offset, as the kernel would.
        file.write_all_at(data, offset).map_err(Errno::from)?;
        let counters = &self.shared.counters;
        count(&counters.writes);
        counters
            .bytes_written
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data.len() as u32)
    }

    fn read_result(&self, handle: FileHandle, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let file = self.file(handle)?;
        let mut buffer = vec![0; size as usize];
        let mut filled = 0;
        while filled < buffer.len() {
            match file.read_at(&mut buffer[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
        buffer.truncate(filled);
        Ok(buffer)
    }

    fn rename_result(
        &self,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if !flags.is_empty() {
            // RENAME_NOREPLACE, RENAME_EXCHANGE: std has no call for them; nobody here uses them.
            return Err(Errno::EINVAL);
        }
        self.refuse(Change::Rename)?;
        let from = self.child(parent, name)?;
        let to = self.child(new_parent, new_name)?;
        fs::rename(self.backing.join(&from), self.backing.join(&to)).map_err(Errno::from)?;
        count(&self.shared.counters.renames);
        self.renamed(&from, &to);
        Ok(())
    }

    fn remove_result(&self, parent: INodeNo, name: &OsStr, folder: bool) -> Result<(), Errno> {
        self.refuse(Change::Remove)?;
        let relative = self.child(parent, name)?;
        let path = self.backing.join(&relative);
        if folder {
            fs::remove_dir(&path)
        } else {
            fs::remove_file(&path)
        }
        .map_err(Errno::from)?;
        if !folder {
            count(&self.shared.counters.unlinks);
        }
        lock(&self.paths).retain(|_, path| !path.starts_with(&relative));
        Ok(())
    }

    fn mkdir_result(
        &self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> Result<FileAttr, Errno> {
        self.refuse(Change::MakeFolder)?;
        let relative = self.child(parent, name)?;
        fs::DirBuilder::new()
            .mode(mode & !umask & 0o7777)
            .create(self.backing.join(&relative))
            .map_err(Errno::from)?;
        count(&self.shared.counters.mkdirs);
        self.entry(relative)
    }

    fn opendir_result(&self, ino: INodeNo) -> Result<u64, Errno> {
        let relative = self.path(ino)?;
        let path = self.backing.join(&relative);
        let parent_ino = relative
            .parent()
            .and_then(|parent| {
                let paths = lock(&self.paths);
                paths
                    .iter()
                    .find(|(_, known)| known.as_path() == parent)
                    .map(|(ino, _)| *ino)
            })
            .unwrap_or(INodeNo::ROOT.0);
        let mut entries = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (parent_ino, FileType::Directory, OsString::from("..")),
        ];
        for entry in fs::read_dir(&path).map_err(Errno::from)? {
            let entry = entry.map_err(Errno::from)?;
            let kind = entry
                .file_type()
                .ok()
                .and_then(FileType::from_std)
                .unwrap_or(FileType::RegularFile);
            entries.push((entry.ino(), kind, entry.file_name()));
        }
        let handle = self.new_handle();
        lock(&self.folders).insert(
            handle,
            OpenFolder {
                path: relative,
                entries,
            },
        );
        Ok(handle)
    }

    /// Answers an fsync from a thread of its own: it may stall, and the session loop must
    /// go on serving everyone else meanwhile.
    fn fsync_on_thread(
        &self,
        requester: u32,
        file: io::Result<Arc<File>>,
        datasync: bool,
        counter: fn(&AtomicCounters) -> &AtomicU64,
        reply: ReplyEmpty,
    ) {
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("faultfs-fsync".into())
            .spawn(move || {
                let result = shared.fsync(requester, || {
                    let file = file?;
                    if datasync {
                        file.sync_data()
                    } else {
                        file.sync_all()
                    }
                });
                match result {
                    Ok(()) => {
                        count(counter(&shared.counters));
                        reply.ok();
                    }
                    Err(error) => reply.error(error),
                }
            });
        // A failed spawn drops the reply, which fuser answers with EIO.
        drop(spawned);
    }
}

fn attributes(ino: u64, metadata: &fs::Metadata) -> FileAttr {
    let time = |seconds: i64, nanoseconds: i64| {
        let nanoseconds = Duration::from_nanos(nanoseconds as u64);
        if seconds >= 0 {
            UNIX_EPOCH + Duration::from_secs(seconds as u64) + nanoseconds
        } else {
            UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()) + nanoseconds
        }
    };
    let file_type = metadata.file_type();
    let kind = if file_type.is_fifo() {
        FileType::NamedPipe
    } else {
        FileType::from_std(file_type).unwrap_or(FileType::RegularFile)
    };
    FileAttr {
        ino: INodeNo(ino),
        size: metadata.size(),
        blocks: metadata.blocks(),
        atime: time(metadata.atime(), metadata.atime_nsec()),
        mtime: time(metadata.mtime(), metadata.mtime_nsec()),
        ctime: time(metadata.ctime(), metadata.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind,
        perm: (metadata.mode() & 0o7777) as u16,
        nlink: metadata.nlink() as u32,
        uid: metadata.uid(),
        gid: metadata.gid(),
        rdev: metadata.rdev() as u32,
        blksize: metadata.blksize() as u32,
        flags: 0,
    }
}

impl Filesystem for PassThrough {
    fn lookup(&self, _request: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name).and_then(|path| self.entry(path)) {
            Ok(attr) => reply.entry(&CACHE_TTL, &attr, Generation(0)),
            Err(error) => reply.error(error),
        }
    }

    fn getattr(
        &self,
        _request: &Request,
        ino: INodeNo,
        handle: Option<FileHandle>,
        reply: ReplyAttr,
    ) {
        match self.getattr_result(ino, handle) {
            Ok(attr) => reply.attr(&CACHE_TTL, &attr),
            Err(error) => reply.error(error),
        }
    }

    fn setattr(
        &self,
        _request: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        handle: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.setattr_result(ino, mode, uid, gid, size, atime, mtime, handle) {
            Ok(attr) => reply.attr(&CACHE_TTL, &attr),
            Err(error) => reply.error(error),
        }
    }

    fn readlink(&self, _request: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .backing_path(ino)
            .and_then(|path| fs::read_link(path).map_err(Errno::from))
        {
            Ok(target) => reply.data(target.as_os_str().as_encoded_bytes()),
            Err(error) => reply.error(error),
        }
    }

    fn mkdir(
        &self,
        _request: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self.mkdir_result(parent, name, mode, umask) {
            Ok(attr) => reply.entry(&CACHE_TTL, &attr, Generation(0)),
            Err(error) => reply.error(error),
        }
    }

    fn unlink(&self, _request: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove_result(parent, name, false) {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(error),
        }
    }

    fn rmdir(&self, _request: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove_result(parent, name, true) {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(error),
        }
    }

    fn symlink(
        &self,
        _request: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let result = self.refuse(Change::Create).and_then(|()| {
            let relative = self.child(parent, link_name)?;
            std::os::unix::fs::symlink(target, self.backing.join(&relative))
                .map_err(Errno::from)?;
            self.entry(relative)
        });
        match result {
            Ok(attr) => reply.entry(&CACHE_TTL, &attr, Generation(0)),
            Err(error) => reply.error(error),
        }
    }

    fn rename(
        &self,
        _request: &Request,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.rename_result(parent, name, new_parent, new_name, flags) {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(error),
        }
    }

    fn open(&self, _request: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.open_result(ino, flags) {
            Ok(handle) => reply.opened(FileHandle(handle), FopenFlags::empty()),
            Err(error) => reply.error(error),
        }
    }

    fn read(
        &self,
        _request: &Request,
        _ino: INodeNo,
        handle: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_result(handle, offset, size) {
            Ok(data) => reply.data(&data),
            Err(error) => reply.error(error),
        }
    }

    fn write(
        &self,
        _request: &Request,
        _ino: INodeNo,
        handle: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.write_result(handle, offset, data) {
            Ok(written) => reply.written(written),
            Err(error) => reply.error(error),
        }
    }

    fn flush(
        &self,
        _request: &Request,
        _ino: INodeNo,
        _handle: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes go straight to the backing file: nothing is buffered here.
        reply.ok();
    }

    fn release(
        &self,
        _request: &Request,
        _ino: INodeNo,
        handle: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.files).remove(&handle.0);
        reply.ok();
    }

    fn fsync(
        &self,
        request: &Request,
        _ino: INodeNo,
        handle: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let file = self
            .file(handle)
            .map_err(|error| io::Error::from_raw_os_error(error.code()));
        self.fsync_on_thread(
            request.pid(),
            file,
            datasync,
            |counters| &counters.fsyncs,
            reply,
        );
    }

    fn opendir(&self, _request: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.opendir_result(ino) {
            Ok(handle) => reply.opened(FileHandle(handle), FopenFlags::empty()),
            Err(error) => reply.error(error),
        }
    }

    fn readdir(
        &self,
        _request: &Request,
        _ino: INodeNo,
        handle: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let folders = lock(&self.folders);
        let Some(folder) = folders.get(&handle.0) else {
            return reply.error(Errno::EBADF);
        };
        for (index, (ino, kind, name)) in folder.entries.iter().enumerate().skip(offset as usize) {
            // The offset of an entry is where the next readdir starts.
            if reply.add(INodeNo(*ino), index as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _request: &Request,
        _ino: INodeNo,
        handle: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.folders).remove(&handle.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        request: &Request,
        _ino: INodeNo,
        handle: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let path = lock(&self.folders)
            .get(&handle.0)
            .map(|folder| self.backing.join(&folder.path));
        let folder = match path {
            Some(path) => File::open(path).map(Arc::new),
            None => Err(io::Error::from_raw_os_error(Errno::EBADF.code())),
        };
        self.fsync_on_thread(
            request.pid(),
            folder,
            datasync,
            |counters| &counters.fsyncdirs,
            reply,
        );
    }

    fn create(
        &self,
        _request: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.create_result(parent, name, mode, umask, flags) {
            Ok((attr, handle)) => reply.created(
                &CACHE_TTL,
                &attr,
                Generation(0),
                FileHandle(handle),
                FopenFlags::empty(),
            ),
            Err(error) => reply.error(error),
        }
    }
}
