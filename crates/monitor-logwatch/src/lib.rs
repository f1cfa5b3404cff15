//! Follows log files with inotify and reports the lines that match each check's pattern.
//!
//! - [`run`] is the watcher task: it takes the set of files to follow as [`LogWatchConfig`]s
//!   (a new one whenever checks change) and sends [`LogEvent`]s: the matches found in what it
//!   read (each [`LogMatch`] builds its alert's details, [`LogMatch::into_details`]), with
//!   the `monitor_source::FilePosition` reached, so the caller can checkpoint offsets
//!   together with the alert state that those lines produced.
//! - [`tail::FileTail`] follows one path across rotation (rename, then a new file: the old
//!   one is finished first), truncation (copytruncate), deletion and re-creation, and lines
//!   split across writes. Regexes run on bytes: invalid UTF-8 and over-long lines never stop it.
//!   A check new to a file reads what it holds ([`ReadFrom::Start`]: at most the last
//!   [`LogWatchConfig::first_read_limit`] bytes) or only what comes ([`ReadFrom::End`]); a
//!   position says which checks it covers (`seen_by`), and lines a check has read are
//!   never read again for it.
//!
//! - [`run_commands`] runs Mender's `@command` sources (`@docker events`, `@journalctl -f`):
//!   each distinct command once, as `sh -c '<command>'` in its own process group (with
//!   `exec` before a simple command, so that the shell becomes it: one process), its stdout
//!   matched with the same line splitting, matching and context as the files, its stderr
//!   only logged. It restarts a command that exits with capped backoff and sends
//!   [`CommandEvent`]s: matches, and one `Died` per failure streak (then `Recovered`).
//!
//! The types it is given and sends are in `interface.rs`.
//!
//! It watches the folders that hold the files (one inotify watch per folder, many checks on
//! one file read it once) and never polls: an idle watcher sleeps until the kernel says a
//! file changed. It knows nothing of alerts, expiry or delivery; it does not persist
//! anything itself.

mod access;
mod command;
mod interface;
mod matching;
mod shell_script;
pub mod tail;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use monitor_source::FilePosition;
use monitor_wire::CheckId;
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

pub use interface::{
    BackoffSettings, CommandEvent, CommandWatchConfig, LogEvent, LogMatch, LogWatchConfig,
    LogWatchError, MatchDetails, PatternSpec, ReadFrom, WatchedCommand, WatchedFile,
    DEFAULT_FIRST_READ_LIMIT,
};
pub use tail::Start;
use tail::{FileTail, ProblemChange};

/// How many bytes one file may read before the others get a turn (and shutdown is checked).
const READ_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// Paths the kernel reported since the last look, shared with notify's thread.
#[derive(Default)]
struct Changes {
    paths: HashSet<PathBuf>,
    /// The kernel's queue overflowed or a watch broke: look at every file.
    everything: bool,
}

/// [`run`] on a thread of its own, with its own single-threaded runtime: file system calls
/// block (a stalled NFS mount, a slow SD card), and they must never hold up the caller's
/// runtime, its timers or its other watchers. The receiver gets `run`'s result when it ends.
pub fn spawn(
    configs: mpsc::Receiver<LogWatchConfig>,
    events: mpsc::Sender<LogEvent>,
    shutdown: CancellationToken,
) -> Result<oneshot::Receiver<Result<(), LogWatchError>>, LogWatchError> {
    let (finished, result) = oneshot::channel();
    std::thread::Builder::new()
        .name("monitor-logwatch".into())
        .spawn(move || {
            // No timers and no sockets: `run` waits on channels and on notify's thread only.
            let outcome = match tokio::runtime::Builder::new_current_thread().build() {
                Ok(runtime) => runtime.block_on(run(configs, events, shutdown)),
                Err(error) => Err(LogWatchError::Thread(error)),
            };
            let _ = finished.send(outcome);
        })
        .map_err(LogWatchError::Thread)?;
    Ok(result)
}

/// Follow files until `shutdown`; configs arrive on `configs`, events leave on `events`.
///
/// Every file system call is made on the calling thread and may block (see [`spawn`]).
/// Only regular files are followed, and only those that every user who controls the path
/// (owns a folder, symlink or the file on the way, or may write such a folder) could read
/// themselves; any other path is a [`LogEvent::Problem`].
///
/// `events` is bounded: when the consumer is slow the watcher stops reading (the kernel
/// keeps the data in the files), so memory stays flat under any write rate.
pub async fn run(
    mut configs: mpsc::Receiver<LogWatchConfig>,
    events: mpsc::Sender<LogEvent>,
    shutdown: CancellationToken,
) -> Result<(), LogWatchError> {
    let changes = Arc::new(Mutex::new(Changes::default()));
    let wake = Arc::new(Notify::new());
    let mut watcher = {
        let changes = changes.clone();
        let wake = wake.clone();
        notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
            let mut changes = changes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match result {
                Ok(event) => {
                    if event.need_rescan() {
                        changes.everything = true;
                    }
                    if !is_read_only_access(&event.kind) {
                        changes.paths.extend(event.paths);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "inotify reported an error; re-reading every file");
                    changes.everything = true;
                }
            }
            drop(changes);
            wake.notify_one();
        })
        .map_err(LogWatchError::Inotify)?
    };

    let mut tails: HashMap<PathBuf, FileTail> = HashMap::new();
    let mut folders = FolderWatches::default();
    let mut dirty: HashSet<PathBuf> = HashSet::new();
    // The position last sent for each path, and the checks it covers: a file first opened
    // at its end (nothing read) is reported too, so the caller can save where it starts
    // before lines come, and so is a check that has read what the file held.
    let mut reported: HashMap<PathBuf, (FilePosition, BTreeSet<CheckId>)> = HashMap::new();
    let mut announce_caught_up: Option<u64> = None;

    loop {
        if dirty.is_empty() {
            if let Some(generation) = announce_caught_up.take() {
                if events
                    .send(LogEvent::CaughtUp { generation })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
        if dirty.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                config = configs.recv() => {
                    let Some(config) = config else { return Ok(()) };
                    announce_caught_up = Some(config.generation);
                    apply_config(config, &mut tails, &mut folders, &mut watcher, &mut dirty);
                    reported.retain(|path, _| tails.contains_key(path));
                }
                _ = wake.notified() => {}
            }
        } else if shutdown.is_cancelled() {
            return Ok(());
        }

        let (paths, everything) = {
            let mut changes = changes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (
                std::mem::take(&mut changes.paths),
                std::mem::take(&mut changes.everything),
            )
        };
        if everything {
            dirty.extend(tails.keys().cloned());
        }
        for changed in &paths {
            if tails.contains_key(changed) {
                dirty.insert(changed.clone());
            }
            dirty.extend(folders.concerned_by(changed).cloned());
        }
        if !paths.is_empty()
            && (folders.any_waiting() || paths.iter().any(|changed| folders.is_watched(changed)))
        {
            // A folder may have appeared or vanished: watch the nearest existing ancestor again.
            folders.refresh(&tails, &mut watcher);
        }

        let work: Vec<PathBuf> = dirty.drain().collect();
        for path in work {
            let Some(tail) = tails.get_mut(&path) else {
                continue;
            };
            let outcome = tail.poll(READ_BUDGET_BYTES);
            if outcome.more {
                dirty.insert(path.clone());
            }
            if let Some(change) = outcome.problem {
                let event = match change {
                    ProblemChange::Found(message) => LogEvent::Problem {
                        path: path.clone(),
                        message,
                    },
                    ProblemChange::Resolved => LogEvent::ProblemResolved { path: path.clone() },
                };
                if events.send(event).await.is_err() {
                    return Ok(());
                }
            }
            let position = tail.position();
            let moved = position.is_some_and(|position| {
                reported.get(&path).is_none_or(|(reported, seen_by)| {
                    *reported != position || seen_by != tail.seen_by()
                })
            });
            if outcome.progressed || !outcome.matches.is_empty() || moved {
                if let Some(position) = position {
                    reported.insert(path.clone(), (position, tail.seen_by().clone()));
                }
                let event = LogEvent::Read {
                    path: path.clone(),
                    position,
                    seen_by: tail.seen_by().clone(),
                    matches: outcome.matches,
                };
                if events.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !dirty.is_empty() {
            tokio::task::yield_now().await;
        }
    }
}

/// Run `@command` sources until `shutdown`; configs arrive on `configs`, events leave on
/// `events`. Returns once every command's process group is stopped and reaped, after
/// `shutdown` or when `configs` is closed.
///
/// Each distinct command runs as `sh -c '<command>'` (like Mender) in its own process
/// group, stdin `/dev/null`. Its stdout is matched line by line (lines capped at
/// `matching::MAX_LINE_BYTES`, invalid UTF-8 allowed); its stderr is only logged at debug, a
/// few lines a second. A command that exits or cannot start is restarted with backoff
/// (1 s doubling to 60 s, reset by 10 s up); stopping one sends SIGTERM to its group, then
/// SIGKILL after 2 s, and reaps it.
///
/// `events` is bounded: when it is full the command's output is not read, its pipe fills
/// and the command blocks in its write, so memory stays flat under any output rate.
pub async fn run_commands(
    configs: mpsc::Receiver<CommandWatchConfig>,
    events: mpsc::Sender<CommandEvent>,
    shutdown: CancellationToken,
) -> Result<(), LogWatchError> {
    run_commands_with(configs, events, shutdown, BackoffSettings::default()).await
}

/// [`run_commands`] with other restart delays (tests restart commands quickly with it).
pub async fn run_commands_with(
    configs: mpsc::Receiver<CommandWatchConfig>,
    events: mpsc::Sender<CommandEvent>,
    shutdown: CancellationToken,
    backoff: BackoffSettings,
) -> Result<(), LogWatchError> {
    command::run_commands_with(configs, events, shutdown, backoff).await
}

fn apply_config(
    config: LogWatchConfig,
    tails: &mut HashMap<PathBuf, FileTail>,
    folders: &mut FolderWatches,
    watcher: &mut notify::RecommendedWatcher,
    dirty: &mut HashSet<PathBuf>,
) {
    let wanted: HashSet<PathBuf> = config.files.iter().map(|file| file.path.clone()).collect();
    tails.retain(|path, _| wanted.contains(path));
    for file in config.files {
        let tail = match tails.entry(file.path.clone()) {
            std::collections::hash_map::Entry::Occupied(entry) => {
                let tail = entry.into_mut();
                tail.set_checks(file.checks);
                tail
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                let start = match file.resume {
                    Some(position) => Start::Resume {
                        position,
                        seen_by: file.seen_by,
                    },
                    None => Start::End,
                };
                tracing::debug!(path = %file.path.display(), ?start, "following log file");
                entry.insert(FileTail::new(file.path.clone(), file.checks, start))
            }
        };
        tail.set_first_read_limit(config.first_read_limit);
        // Read what is there (a resumed position, a file that appeared) right away.
        dirty.insert(file.path);
    }
    folders.refresh(tails, watcher);
}

/// Opening, reading and closing a file unwritten change nothing (and our own reads make
/// such events): only writes, renames, creations, deletions and metadata count.
pub fn is_read_only_access(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(kind, notify::EventKind::Access(access) if *access != AccessKind::Close(AccessMode::Write))
}

/// Does a change at `changed` concern the file at `path`, whose folder watch is `folder`?
/// The definition [`FolderWatches::concerned_by`] answers for every followed file at once.
#[cfg(test)]
fn concerns(path: &Path, folder: Option<&Path>, changed: &Path) -> bool {
    if changed == path {
        return true;
    }
    let Some(parent) = path.parent() else {
        return false;
    };
    if folder != Some(parent) {
        // Waiting for a missing folder: anything in the watched ancestor may be it.
        return true;
    }
    // Rotation names (`app.log.1`, `app.log-2026...`) share the prefix: writes to a rotated
    // file that is still being drained land there.
    changed.parent() == Some(parent)
        && match (changed.file_name(), path.file_name()) {
            (Some(changed), Some(name)) => changed
                .as_encoded_bytes()
                .starts_with(name.as_encoded_bytes()),
            _ => false,
        }
}

/// One inotify watch per folder that holds (or would hold) a followed file.
#[derive(Default)]
struct FolderWatches {
    /// Folder watched for each followed path: its parent, or the nearest existing ancestor.
    folder_by_path: HashMap<PathBuf, PathBuf>,
    watched: HashSet<PathBuf>,
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
    fn is_watched(&self, folder: &Path) -> bool {
        self.watched.contains(folder)
    }

    fn any_waiting(&self) -> bool {
        self.any_waiting
    }

    /// The followed files a change at `changed` concerns, besides the file at `changed`
    /// itself: those waiting for their folder, and those whose name begins `changed`'s in
    /// the same folder (rotation names, `app.log.1` or `app.log-2026...`, share the prefix:
    /// writes to a rotated file that is still being drained land there).
    fn concerned_by<'a>(&'a self, changed: &'a Path) -> impl Iterator<Item = &'a PathBuf> + 'a {
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

    fn refresh(
        &mut self,
        tails: &HashMap<PathBuf, FileTail>,
        watcher: &mut notify::RecommendedWatcher,
    ) {
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
        let wanted: HashSet<PathBuf> = self.folder_by_path.values().cloned().collect();
        for folder in self.watched.difference(&wanted) {
            // The folder may be gone already; the kernel dropped its watch then.
            let _ = watcher.unwatch(folder);
        }
        let mut watched = HashSet::new();
        for folder in wanted {
            if self.watched.contains(&folder) {
                watched.insert(folder);
                continue;
            }
            match watcher.watch(&folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(folder);
                }
                Err(error) => {
                    tracing::warn!(folder = %folder.display(), %error, "cannot watch folder; its files are not followed until checks change");
                }
            }
        }
        self.watched = watched;
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
    use super::*;

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

    #[test]
    fn a_change_concerns_the_same_files_through_the_index_as_asked_of_each_file() {
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
        let mut watcher =
            notify::recommended_watcher(|_: notify::Result<notify::Event>| {}).unwrap();
        let mut folders = FolderWatches::default();
        folders.refresh(&tails, &mut watcher);
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
                .filter(|path| {
                    concerns(
                        path,
                        folders.folder_by_path.get(*path).map(PathBuf::as_path),
                        changed,
                    )
                })
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
