//! Whether a log path may be opened, and opening it without trusting what it names.
//!
//! The agent usually runs as root, and a log path often runs through folders that other
//! users can write (`/home/pi/app/log`, `/tmp/...`). Whoever controls a component of the
//! path decides which file it opens: a FIFO (an `open` that never returns), `/dev/zero`
//! (an endless read), or a symlink to a file only root may read, whose lines would then
//! travel in alerts. So:
//!
//! - [`who_controls`] walks the path component by component (through every symlink) and
//!   lists who besides root and the agent's own user can change what it resolves to: the
//!   owner of a folder, symlink or file on the way, the group or anyone when a folder is
//!   group- or world-writable without the sticky bit.
//! - [`open_log_file`] resolves the path once into an `O_PATH` handle (which opens nothing:
//!   no FIFO wait, no device side effect), refuses anything that is not a regular file and
//!   any file that one of those controllers could not read themselves (its owner, group
//!   and mode, and the folders above it), then opens that very inode for reading through
//!   `/proc/self/fd`, never the path again: what was checked is what is read.
//!
//! POSIX ACLs are not read: a folder writable through an ACL alone is not seen as
//! controlled, and a file readable through an ACL alone is refused to its controllers.

use std::ffi::{CStr, CString, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Like the kernel's own limit on symlinks followed in one lookup.
const MAX_SYMLINKS: usize = 40;

/// Who, besides the trusted users, can change what a path resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Controller {
    User(u32),
    /// Every member of the group.
    Group(u32),
    Anyone,
}

/// One way a path is controlled: who, and through which folder, symlink or file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Control {
    pub who: Controller,
    pub through: PathBuf,
}

/// Users whose control of a path is not a risk: root, and the agent's own user (a path it
/// controls itself holds nothing it could not read anyway).
#[derive(Debug, Clone)]
pub(crate) struct Trusted {
    uids: Vec<u32>,
}

impl Trusted {
    pub fn for_this_process() -> Trusted {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        Trusted {
            uids: vec![0, euid],
        }
    }

    fn trusts(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
    }
}

/// What the walk found: who controls the path, and where it leads.
#[derive(Debug)]
pub(crate) struct Walk {
    pub controls: Vec<Control>,
    /// The path with every symlink resolved, as far as it exists.
    pub resolved: PathBuf,
}

/// Walk `path` (absolute) component by component, through every symlink, noting who can
/// change what it resolves to. A missing component ends the walk: there is nothing to open.
pub(crate) fn who_controls(path: &Path, trusted: &Trusted) -> io::Result<Walk> {
    let mut controls = Vec::new();
    let mut note = |who: Controller, through: &Path| {
        let control = Control {
            who,
            through: through.to_path_buf(),
        };
        if !controls.contains(&control) {
            controls.push(control);
        }
    };
    // Components still to visit, the next one last.
    let mut pending: Vec<OsString> = components_reversed(path);
    let mut resolved = PathBuf::from("/");
    note_folder(&resolved, &fs::metadata(&resolved)?, trusted, &mut note);
    let mut symlinks = 0;
    while let Some(name) = pending.pop() {
        if name == "." {
            continue;
        }
        if name == ".." {
            // `resolved` holds no symlink, so its parent is the real one.
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&name);
        let metadata = match fs::symlink_metadata(&candidate) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                resolved = candidate;
                break;
            }
            Err(error) => return Err(error),
        };
        if metadata.file_type().is_symlink() {
            symlinks += 1;
            if symlinks > MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            if !trusted.trusts(metadata.uid()) {
                note(Controller::User(metadata.uid()), &candidate);
            }
            let target = fs::read_link(&candidate)?;
            if target.is_absolute() {
                resolved = PathBuf::from("/");
            }
            pending.extend(components_reversed(&target));
            continue;
        }
        resolved = candidate;
        if pending.is_empty() || !metadata.is_dir() {
            // The file itself (or a non-folder in the middle, which the open will refuse).
            if !trusted.trusts(metadata.uid()) {
                note(Controller::User(metadata.uid()), &resolved);
            }
            pending.clear();
        } else {
            note_folder(&resolved, &metadata, trusted, &mut note);
        }
    }
    Ok(Walk { controls, resolved })
}

fn components_reversed(path: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = path
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::CurDir => Some(".".into()),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    names.reverse();
    names
}

/// Who may rename or replace the entries of a folder: its owner, and its group or anyone
/// when it is writable by them without the sticky bit (with it, only an entry's owner may
/// replace the entry, and entry owners are noted on their own).
fn note_folder(
    folder: &Path,
    metadata: &Metadata,
    trusted: &Trusted,
    note: &mut impl FnMut(Controller, &Path),
) {
    for who in folder_controllers(metadata.uid(), metadata.gid(), metadata.mode()) {
        if !matches!(who, Controller::User(uid) if trusted.trusts(uid)) {
            note(who, folder);
        }
    }
}

fn folder_controllers(owner: u32, group: u32, mode: u32) -> Vec<Controller> {
    let mut controllers = vec![Controller::User(owner)];
    let sticky = mode & libc::S_ISVTX != 0;
    if !sticky && mode & 0o002 != 0 {
        controllers.push(Controller::Anyone);
    } else if !sticky && mode & 0o020 != 0 {
        controllers.push(Controller::Group(group));
    }
    controllers
}

/// A user as the kernel checks access: uid and every group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub uid: u32,
    pub groups: Vec<u32>,
}

/// Which permission class applies to `account` for a file of `owner`/`group`, and whether
/// that class has `bit` (4 read, 1 search) set in `mode`.
fn permits(account: &Account, owner: u32, group: u32, mode: u32, bit: u32) -> bool {
    let shift = if account.uid == owner {
        6
    } else if account.groups.contains(&group) {
        3
    } else {
        0
    };
    mode >> shift & bit != 0
}

/// Why a controller may not have the agent read a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub control: Control,
    /// What stops them: the file's own permissions, or a folder above it.
    pub reason: String,
}

/// Whether every controller could read `file` (at `real_path`) themselves: read permission
/// on it and search permission on every folder above it.
pub(crate) fn check_readable(
    controls: &[Control],
    file: &Metadata,
    real_path: &Path,
    trusted: &Trusted,
) -> Result<(), Refusal> {
    let folders: Vec<(PathBuf, Metadata)> = real_path
        .ancestors()
        .skip(1)
        .filter_map(|folder| Some((folder.to_path_buf(), fs::metadata(folder).ok()?)))
        .collect();
    for control in controls {
        let accounts = match control.who {
            Controller::User(uid) => vec![account(uid)],
            Controller::Group(gid) => group_members(gid)
                .into_iter()
                .filter(|uid| !trusted.trusts(*uid))
                .map(account)
                .collect(),
            // Someone in no group and owning nothing: only the "other" bits serve them.
            Controller::Anyone => vec![Account {
                uid: u32::MAX,
                groups: Vec::new(),
            }],
        };
        for account in &accounts {
            if !permits(account, file.uid(), file.gid(), file.mode(), 4) {
                return Err(Refusal {
                    control: control.clone(),
                    reason: format!(
                        "cannot read {} themselves ({})",
                        real_path.display(),
                        describe_owner_and_mode(file)
                    ),
                });
            }
            if let Some((folder, metadata)) = folders.iter().find(|(_, metadata)| {
                !permits(account, metadata.uid(), metadata.gid(), metadata.mode(), 1)
            }) {
                return Err(Refusal {
                    control: control.clone(),
                    reason: format!(
                        "cannot reach {} themselves (the folder {} is closed to them: {})",
                        real_path.display(),
                        folder.display(),
                        describe_owner_and_mode(metadata)
                    ),
                });
            }
        }
    }
    Ok(())
}

fn describe_owner_and_mode(metadata: &Metadata) -> String {
    format!(
        "owner {}, group {}, mode {:04o}",
        user_name(metadata.uid()).unwrap_or_else(|| metadata.uid().to_string()),
        group_name(metadata.gid()).unwrap_or_else(|| metadata.gid().to_string()),
        metadata.mode() & 0o7777
    )
}

/// `user nobody (uid 65534)`, `members of group adm (gid 4)`, `any user`.
pub(crate) fn describe_controller(who: Controller) -> String {
    match who {
        Controller::User(uid) => match user_name(uid) {
            Some(name) => format!("user {name} (uid {uid})"),
            None => format!("uid {uid}"),
        },
        Controller::Group(gid) => match group_name(gid) {
            Some(name) => format!("members of group {name} (gid {gid})"),
            None => format!("members of gid {gid}"),
        },
        Controller::Anyone => "any user".to_string(),
    }
}

/// Why a log path is not opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    Io(io::Error),
    /// A FIFO, a device, a folder, a socket: reading those can block or never end.
    NotRegular {
        kind: &'static str,
    },
    Refused(Refusal),
}

impl From<io::Error> for OpenError {
    fn from(error: io::Error) -> Self {
        OpenError::Io(error)
    }
}

impl OpenError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, OpenError::Io(error) if error.kind() == io::ErrorKind::NotFound)
    }

    /// What `status` shows and the log says: the path, what is wrong, and the fix.
    pub fn message(&self, path: &Path) -> String {
        let path = path.display();
        match self {
            OpenError::Io(error) if error.kind() == io::ErrorKind::PermissionDenied => format!(
                "cannot open {path}: {error}; let the agent's user read it (or run monitord as root)"
            ),
            OpenError::Io(error) => format!("cannot open {path}: {error}"),
            OpenError::NotRegular { kind } => format!(
                "{path} is {kind}, not a regular file, and is not read; point the check at a log file, or replace {path} with one"
            ),
            OpenError::Refused(Refusal { control, reason }) => {
                let who = describe_controller(control.who);
                format!(
                    "{path} is not read: {who} controls {} and {reason}; make {} writable by root only, or make the file readable by them",
                    control.through.display(),
                    control.through.display(),
                )
            }
        }
    }
}

/// Open the log file at `path` for reading, only if it is a regular file that everyone who
/// controls the path could read themselves.
pub(crate) fn open_log_file(path: &Path) -> Result<File, OpenError> {
    let trusted = Trusted::for_this_process();
    let walk = who_controls(path, &trusted)?;
    // O_PATH only looks the path up: a FIFO does not wait for a writer, a device driver is
    // not called (some act on open), and the file's atime is not touched.
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)?;
    let metadata = handle.metadata()?;
    if !metadata.file_type().is_file() {
        return Err(OpenError::NotRegular {
            kind: file_kind(&metadata),
        });
    }
    let by_handle = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    if !walk.controls.is_empty() {
        // The kernel's name for the inode the handle holds, not the one the walk saw.
        let real_path = fs::read_link(&by_handle).unwrap_or(walk.resolved);
        check_readable(&walk.controls, &metadata, &real_path, &trusted)
            .map_err(OpenError::Refused)?;
    }
    // Reopen the checked inode itself; without /proc, the path again, and it must be the
    // same inode. Non-blocking, should a race still bring something else.
    let options = {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
        options
    };
    let file = match options.open(&by_handle) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => options.open(path)?,
        Err(error) => return Err(error.into()),
    };
    let opened = file.metadata()?;
    if opened.dev() != metadata.dev() || opened.ino() != metadata.ino() {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "the path changed while it was opened; trying again at its next change",
        )
        .into());
    }
    Ok(file)
}

fn file_kind(metadata: &Metadata) -> &'static str {
    let kind = metadata.file_type();
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

// User and group database, through libc (NSS), reading /etc/passwd only to find the users
// whose primary group a group is (NSS has no query for that).

fn user_name(uid: u32) -> Option<String> {
    passwd_by_uid(uid).map(|(name, _)| name.to_string_lossy().into_owned())
}

fn group_name(gid: u32) -> Option<String> {
    group_by_gid(gid).map(|(name, _)| name)
}

/// The user's uid and every group the kernel would give them at login. An unknown uid has
/// no groups: only the owner and "other" bits serve it.
pub(crate) fn account(uid: u32) -> Account {
    let Some((name, primary)) = passwd_by_uid(uid) else {
        return Account {
            uid,
            groups: Vec::new(),
        };
    };
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut count = groups.len() as libc::c_int;
        // SAFETY: `name` is a valid C string, `groups` has room for `count` entries.
        let result =
            unsafe { libc::getgrouplist(name.as_ptr(), primary, groups.as_mut_ptr(), &mut count) };
        if result >= 0 {
            groups.truncate(count as usize);
            break;
        }
        let wanted = (count as usize).max(groups.len() * 2);
        if wanted > 65536 {
            groups = vec![primary];
            break;
        }
        groups.resize(wanted, 0);
    }
    Account { uid, groups }
}

/// Users in the group: its listed members and the users whose primary group it is.
fn group_members(gid: u32) -> Vec<u32> {
    let mut members: Vec<u32> = group_by_gid(gid)
        .map(|(_, names)| names)
        .unwrap_or_default()
        .iter()
        .filter_map(|name| uid_by_name(name))
        .collect();
    if let Ok(passwd) = fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if let [_, _, uid, primary, ..] = fields[..] {
                if let (Ok(uid), Ok(primary)) = (uid.parse::<u32>(), primary.parse::<u32>()) {
                    if primary == gid && !members.contains(&uid) {
                        members.push(uid);
                    }
                }
            }
        }
    }
    members
}

fn passwd_by_uid(uid: u32) -> Option<(CString, u32)> {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value to be overwritten.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the strings it sets point into `buffer`.
    let result = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if result != 0 || found.is_null() {
        return None;
    }
    // SAFETY: pw_name points to a C string inside `buffer`, alive here.
    let name = unsafe { CStr::from_ptr(entry.pw_name) }.to_owned();
    Some((name, entry.pw_gid))
}

fn uid_by_name(name: &CStr) -> Option<u32> {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: as in passwd_by_uid.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as in passwd_by_uid.
    let result = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    (result == 0 && !found.is_null()).then_some(entry.pw_uid)
}

fn group_by_gid(gid: u32) -> Option<(String, Vec<CString>)> {
    let mut buffer = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: an all-zero group is a valid value to be overwritten.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the strings it sets point into `buffer`.
    let result = unsafe {
        libc::getgrgid_r(
            gid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if result != 0 || found.is_null() {
        return None;
    }
    // SAFETY: gr_name and gr_mem (a null-terminated array of C strings) point into `buffer`.
    let name = unsafe { CStr::from_ptr(entry.gr_name) }
        .to_string_lossy()
        .into_owned();
    let mut members = Vec::new();
    let mut cursor = entry.gr_mem;
    // SAFETY: as above; the array ends with a null pointer.
    unsafe {
        while !cursor.is_null() && !(*cursor).is_null() {
            members.push(CStr::from_ptr(*cursor).to_owned());
            cursor = cursor.add(1);
        }
    }
    Some((name, members))
}

#[cfg(test)]
mod tests;
