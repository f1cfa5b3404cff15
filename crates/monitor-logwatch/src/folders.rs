//! The inotify watches on the folders that hold followed files, read on the watcher's own
//! runtime: the kernel's events wake that thread directly, with no relay thread between
//! (notify's thread cost one more wake-up per write).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use tokio::io::unix::AsyncFd;

use crate::tail::FileTail;

/// Room for a few hundred events per read: a busy folder is drained in one or two reads.
const EVENT_BUFFER_BYTES: usize = 16 * 1024;

/// What changes a folder watch reports: writes, truncation, metadata (a file made
/// readable), names appearing, vanishing or moving, and the folder itself going away.
/// Opening and reading are left out: our own reads, and every other reader's, would wake
/// the watcher for nothing.
fn folder_mask() -> WatchMask {
    WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::CLOSE_WRITE
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

/// Paths the kernel reported since the last look.
#[derive(Default)]
pub struct Changes {
    pub paths: HashSet<PathBuf>,
    /// The kernel's queue overflowed or reading it failed: look at every file.
    pub everything: bool,
    /// A folder appeared, vanished or moved: the folders to watch may have changed.
    pub folders_moved: bool,
}

/// One inotify watch per folder that holds (or would hold) a followed file.
pub struct FolderWatches {
    inotify: AsyncFd<Inotify>,
    watches: Watches,
    buffer: Vec<u8>,
    /// Folder watched for each followed path: its parent, or the nearest existing ancestor.
    folder_by_path: HashMap<PathBuf, PathBuf>,
    /// The watched folders by their watch's number in the kernel's events.
    folder_by_watch: HashMap<i32, PathBuf>,
    watch_by_folder: HashMap<PathBuf, WatchDescriptor>,
    /// The followed files watched in their own folder, by folder and file name: a change
    /// finds the files it concerns without a look at every followed file (each write is a
    /// change, and there may be thousands of files).
    by_folder: HashMap<PathBuf, HashMap<Vec<u8>, PathBuf>>,
    /// The followed files whose own folder is not watched (missing): any change may
    /// concern them.
    not_in_own_folder: Vec<PathBuf>,
    /// Whether some file's own folder does not exist yet.
    any_waiting: bool,
}

impl FolderWatches {
    /// Must be called on a runtime with I/O enabled.
    pub fn new() -> io::Result<FolderWatches> {
        let inotify = Inotify::init()?;
        let watches = inotify.watches();
        // SAFETY: `Inotify` owns its descriptor (closed only when it and every `Watches` made
        // from it are dropped) and always gives the same one: it stays open and the same
        // for as long as the `AsyncFd` holds it.
        let inotify = unsafe { AsyncFd::register(inotify) }?;
        Ok(FolderWatches {
            inotify,
            watches,
            buffer: vec![0; EVENT_BUFFER_BYTES],
            folder_by_path: HashMap::new(),
            folder_by_watch: HashMap::new(),
            watch_by_folder: HashMap::new(),
            by_folder: HashMap::new(),
            not_in_own_folder: Vec::new(),
            any_waiting: false,
        })
    }

    #[cfg(test)]
    pub fn folder_of(&self, path: &Path) -> Option<&Path> {
        self.folder_by_path.get(path).map(PathBuf::as_path)
    }

    /// Whether some file's own folder does not exist yet.
    pub fn any_waiting(&self) -> bool {
        self.any_waiting
    }

    /// The followed files a change at `changed` concerns, besides the file at `changed`
    /// itself: those waiting for their folder, and those whose name begins `changed`'s in
    /// the same folder (rotation names, `app.log.1` or `app.log-2026...`, share the prefix:
    /// writes to a rotated file that is still being drained land there).
    pub fn concerned_by<'a>(&'a self, changed: &'a Path) -> impl Iterator<Item = &'a PathBuf> + 'a {
        let same_folder = changed
            .parent()
            .zip(changed.file_name())
            .and_then(|(parent, name)| Some((self.by_folder.get(parent)?, name.as_encoded_bytes())))
            .into_iter()
            .flat_map(|(names, changed)| {
                (1..=changed.len()).filter_map(move |length| names.get(&changed[..length]))
            });
        self.not_in_own_folder.iter().chain(same_folder)
    }

    /// Wait until the kernel reports something, then add everything it has queued to
    /// `changes`.
    pub async fn wait(&mut self, changes: &mut Changes) {
        loop {
            let mut guard = match self.inotify.readable_mut().await {
                Ok(guard) => guard,
                Err(error) => {
                    tracing::warn!(%error, "cannot wait for inotify; re-reading every file");
                    changes.everything = true;
                    return;
                }
            };
            let read_any = read_queued(
                guard.get_inner_mut(),
                &mut self.buffer,
                &mut self.folder_by_watch,
                &mut self.watch_by_folder,
                changes,
            );
            // Read until the kernel had no more: the next event is a new edge.
            guard.clear_ready();
            if read_any {
                return;
            }
        }
    }

    /// Add what the kernel has queued now to `changes`, without waiting.
    pub fn take_queued(&mut self, changes: &mut Changes) {
        read_queued(
            self.inotify.get_mut(),
            &mut self.buffer,
            &mut self.folder_by_watch,
            &mut self.watch_by_folder,
            changes,
        );
    }

    /// Watch the folder of every followed path, or its nearest existing ancestor while it
    /// does not exist; let go of folders no path needs any more.
    pub fn refresh(&mut self, tails: &HashMap<PathBuf, FileTail>) {
        self.folder_by_path = tails
            .keys()
            .filter_map(|path| nearest_existing_folder(path).map(|folder| (path.clone(), folder)))
            .collect();
        self.any_waiting = self
            .folder_by_path
            .iter()
            .any(|(path, folder)| path.parent() != Some(folder.as_path()));
        self.by_folder.clear();
        self.not_in_own_folder.clear();
        for path in tails.keys() {
            let Some(parent) = path.parent() else {
                continue; // concerned by a change at itself only
            };
            match (self.folder_by_path.get(path), path.file_name()) {
                (Some(folder), Some(name)) if folder == parent => {
                    self.by_folder
                        .entry(parent.to_path_buf())
                        .or_default()
                        .insert(name.as_encoded_bytes().to_vec(), path.clone());
                }
                _ => self.not_in_own_folder.push(path.clone()),
            }
        }
        let wanted: HashSet<&PathBuf> = self.folder_by_path.values().collect();
        let unwanted: Vec<PathBuf> = self
            .watch_by_folder
            .keys()
            .filter(|folder| !wanted.contains(folder))
            .cloned()
            .collect();
        for folder in unwanted {
            if let Some(watch) = self.watch_by_folder.remove(&folder) {
                self.folder_by_watch
                    .remove(&watch.get_watch_descriptor_id());
                // The folder may be gone already; the kernel dropped its watch then.
                let _ = self.watches.remove(watch);
            }
        }
        for folder in wanted {
            if self.watch_by_folder.contains_key(folder) {
                continue;
            }
            match self.watches.add(folder, folder_mask()) {
                Ok(watch) => {
                    // Two paths to one folder (a symlink) share its watch: the last wins.
                    self.folder_by_watch
                        .insert(watch.get_watch_descriptor_id(), folder.clone());
                    self.watch_by_folder.insert(folder.clone(), watch);
                }
                Err(error) => {
                    tracing::warn!(folder = %folder.display(), %error, "cannot watch folder; its files are not followed until checks change");
                }
            }
        }
    }
}

/// Read every event queued in `inotify` into `changes`; whether there was any.
fn read_queued(
    inotify: &mut Inotify,
    buffer: &mut [u8],
    folder_by_watch: &mut HashMap<i32, PathBuf>,
    watch_by_folder: &mut HashMap<PathBuf, WatchDescriptor>,
    changes: &mut Changes,
) -> bool {
    let mut read_any = false;
    loop {
        let events = match inotify.read_events(buffer) {
            Ok(events) => events,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return read_any,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                tracing::warn!(%error, "cannot read inotify events; re-reading every file");
                changes.everything = true;
                return true;
            }
        };
        for event in events {
            read_any = true;
            if event.mask.contains(EventMask::Q_OVERFLOW) {
                tracing::warn!("inotify's queue overflowed; re-reading every file");
                changes.everything = true;
                continue;
            }
            let id = event.wd.get_watch_descriptor_id();
            let Some(folder) = folder_by_watch.get(&id) else {
                continue;
            };
            if event.mask.contains(EventMask::IGNORED) {
                // The folder was deleted (or unmounted): its watch is gone, and a folder
                // made again at its path needs a new one.
                let folder = folder.clone();
                folder_by_watch.remove(&id);
                watch_by_folder.remove(&folder);
                changes.paths.insert(folder);
                changes.folders_moved = true;
                continue;
            }
            if event
                .mask
                .intersects(EventMask::ISDIR | EventMask::DELETE_SELF | EventMask::MOVE_SELF)
            {
                changes.folders_moved = true;
            }
            changes.paths.insert(changed_path(folder, event.name));
        }
    }
}

/// The path an event is about: a name in the folder, or the folder itself.
fn changed_path(folder: &Path, name: Option<&OsStr>) -> PathBuf {
    match name {
        Some(name) if !name.is_empty() => folder.join(name),
        _ => folder.to_path_buf(),
    }
}

fn nearest_existing_folder(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .find(|folder| folder.is_dir())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::tail::Start;

    /// The files a change concerns, found through the index the loop uses.
    fn concerned(
        tails: &HashMap<PathBuf, FileTail>,
        folders: &FolderWatches,
        changed: &Path,
    ) -> BTreeSet<PathBuf> {
        let exact = tails.contains_key(changed).then(|| changed.to_path_buf());
        exact
            .into_iter()
            .chain(folders.concerned_by(changed).cloned())
            .collect()
    }

    #[tokio::test]
    async fn a_change_concerns_the_same_files_through_the_index_as_asked_of_each_file() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let followed = [
            logs.join("app.log"),
            logs.join("app.log.1"),
            logs.join("other.log"),
            logs.join("missing/late.log"),
        ];
        let tails: HashMap<PathBuf, FileTail> = followed
            .iter()
            .map(|path| {
                (
                    path.clone(),
                    FileTail::new(path.clone(), Vec::new(), Start::End),
                )
            })
            .collect();
        let mut folders = FolderWatches::new().unwrap();
        folders.refresh(&tails);
        assert!(folders.any_waiting());

        let changes = [
            logs.join("app.log"),
            logs.join("app.log.1"),
            logs.join("app.log-20261202"),
            logs.join("other.log"),
            logs.join("ap"),
            logs.join("missing"),
            root.path().join("elsewhere/app.log"),
        ];
        for changed in &changes {
            let asked_of_each: BTreeSet<PathBuf> = tails
                .keys()
                .filter(|path| crate::concerns(path, folders.folder_of(path), changed))
                .cloned()
                .collect();
            assert_eq!(
                concerned(&tails, &folders, changed),
                asked_of_each,
                "a change at {}",
                changed.display()
            );
        }
        // A write to a rotated file wakes the file it was rotated from, and no other.
        assert_eq!(
            concerned(&tails, &folders, &logs.join("app.log-20261202")),
            BTreeSet::from([logs.join("app.log"), logs.join("missing/late.log")])
        );
    }
}
