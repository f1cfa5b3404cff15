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
mod folders;
mod interface;
mod matching;
mod shell_script;
pub mod tail;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use folders::{Changes, FolderWatches};
use monitor_source::FilePosition;
use monitor_wire::CheckId;
use tokio::sync::{mpsc, oneshot};
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

/// How long a file's progress that matched nothing may wait before it is sent (see
/// [`HeldProgress`]).
const PROGRESS_DELAY: Duration = Duration::from_secs(1);

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
            // I/O for the inotify queue, a timer for held progress.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build();
            let outcome = match runtime {
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
/// Every file system call is made on the calling thread and may block (see [`spawn`]); the
/// runtime must have I/O and timers enabled. Only regular files are followed, and only
/// those that every user who controls the path (owns a folder, symlink or the file on the
/// way, or may write such a folder) could read themselves; any other path is a
/// [`LogEvent::Problem`].
///
/// Each wake-up reads every event the kernel queued, then every file they concern, to its
/// end. A match is sent at once with its file's position; a position that only moved (same
/// file, same checks, no match) is sent within a second, or with the file's next match,
/// before [`LogEvent::CaughtUp`] and at shutdown.
///
/// `events` is bounded: when the consumer is slow the watcher stops reading (the kernel
/// keeps the data in the files), so memory stays flat under any write rate.
pub async fn run(
    mut configs: mpsc::Receiver<LogWatchConfig>,
    events: mpsc::Sender<LogEvent>,
    shutdown: CancellationToken,
) -> Result<(), LogWatchError> {
    let mut folders = FolderWatches::new().map_err(LogWatchError::Inotify)?;
    let mut changes = Changes::default();
    let mut tails: HashMap<PathBuf, FileTail> = HashMap::new();
    let mut dirty: HashSet<PathBuf> = HashSet::new();
    // The position last sent (or held) for each path, and the checks it covers: a file
    // first opened at its end (nothing read) is reported too, so the caller can save where
    // it starts before lines come, and so is a check that has read what the file held.
    let mut reported: HashMap<PathBuf, (FilePosition, BTreeSet<CheckId>)> = HashMap::new();
    let mut held = HeldProgress::default();
    let mut announce_caught_up: Option<u64> = None;
    let mut coalesce = Duration::ZERO;

    loop {
        if dirty.is_empty() {
            if let Some(generation) = announce_caught_up.take() {
                if !held.send(&events).await
                    || events
                        .send(LogEvent::CaughtUp { generation })
                        .await
                        .is_err()
                {
                    return Ok(());
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    held.send(&events).await;
                    return Ok(());
                }
                config = configs.recv() => {
                    let Some(config) = config else {
                        held.send(&events).await;
                        return Ok(());
                    };
                    announce_caught_up = Some(config.generation);
                    coalesce = config.coalesce;
                    apply_config(config, &mut tails, &mut folders, &mut dirty);
                    reported.retain(|path, _| tails.contains_key(path));
                    held.retain(|path| tails.contains_key(path));
                }
                () = folders.wait(&mut changes) => {
                    if !coalesce.is_zero() {
                        // Writes landing meanwhile are read in the same pass. A plain
                        // sleep, not a timer: a runtime waiting for its timer is woken by
                        // every write to a watched folder. The thread is the watcher's own
                        // (see `spawn`), and the wait at most 1 s (the setting's limit).
                        std::thread::sleep(coalesce);
                    }
                }
                () = held.due() => {
                    if !held.send(&events).await {
                        return Ok(());
                    }
                }
            }
        } else if shutdown.is_cancelled() {
            held.send(&events).await;
            return Ok(());
        }
        // What else the kernel queued meanwhile is read in this pass too.
        folders.take_queued(&mut changes);
        let Changes {
            paths,
            everything,
            folders_moved,
        } = std::mem::take(&mut changes);
        if everything {
            dirty.extend(tails.keys().cloned());
        }
        for changed in &paths {
            if tails.contains_key(changed) {
                dirty.insert(changed.clone());
            }
            dirty.extend(folders.concerned_by(changed).cloned());
        }
        if folders_moved || (!paths.is_empty() && folders.any_waiting()) {
            // A folder may have appeared or vanished: watch the nearest existing ancestor again.
            folders.refresh(&tails);
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
            let last = reported.get(&path);
            let moved = position.is_some_and(|position| {
                last.is_none_or(|(reported, seen_by)| {
                    *reported != position || seen_by != tail.seen_by()
                })
            });
            if !(outcome.progressed || !outcome.matches.is_empty() || moved) {
                continue;
            }
            // Only the offset moved, in the same file, for the same checks: the loop
            // learns of it a little later (one event then, not one per write).
            let only_offset = outcome.matches.is_empty()
                && match (position, last) {
                    (Some(position), Some((reported, seen_by))) => {
                        (position.device, position.inode) == (reported.device, reported.inode)
                            && seen_by == tail.seen_by()
                    }
                    _ => false,
                };
            if let Some(position) = position {
                reported.insert(path.clone(), (position, tail.seen_by().clone()));
            }
            let event = LogEvent::Read {
                path: path.clone(),
                position,
                seen_by: tail.seen_by().clone(),
                matches: outcome.matches,
            };
            if only_offset {
                held.hold(path, event);
                continue;
            }
            held.forget(&path);
            if events.send(event).await.is_err() {
                return Ok(());
            }
        }
        if !dirty.is_empty() {
            tokio::task::yield_now().await;
        }
    }
}

/// Progress of files that matched nothing, held back: a file's position moves at every
/// write, and telling the loop each time cost its thread a wake-up per write. Only the
/// latest position of each file is kept; nothing is lost by the wait, since a position is
/// only where a restart resumes, and the lines before it matched nothing.
#[derive(Default)]
struct HeldProgress {
    events: HashMap<PathBuf, LogEvent>,
    due: Option<tokio::time::Instant>,
}

impl HeldProgress {
    fn hold(&mut self, path: PathBuf, event: LogEvent) {
        self.events.insert(path, event);
        self.due
            .get_or_insert_with(|| tokio::time::Instant::now() + PROGRESS_DELAY);
    }

    /// A newer event of the file (a match, a rotation) carries its position.
    fn forget(&mut self, path: &Path) {
        self.events.remove(path);
    }

    fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) {
        self.events.retain(|path, _| keep(path));
    }

    /// When the held events are due; never while none is held.
    async fn due(&self) {
        match self.due {
            Some(due) if !self.events.is_empty() => tokio::time::sleep_until(due).await,
            _ => std::future::pending().await,
        }
    }

    /// Send every held event; false when the receiver is gone.
    async fn send(&mut self, events: &mpsc::Sender<LogEvent>) -> bool {
        self.due = None;
        for (_, event) in self.events.drain() {
            if events.send(event).await.is_err() {
                return false;
            }
        }
        true
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
    folders.refresh(tails);
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
