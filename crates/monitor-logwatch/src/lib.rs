//! Follows log files with inotify and reports the lines that match each check's pattern.
//!
//! - [`run`] is the watcher task: it takes the set of files to follow as [`LogWatchConfig`]s
//!   (a new one whenever checks change) and sends [`LogEvent`]s: the matches found in what it
//!   read, with the [`FilePosition`] reached, so the caller can checkpoint offsets together
//!   with the alert state that those lines produced.
//! - [`tail::FileTail`] follows one path across rotation (rename, then a new file: the old
//!   one is finished first), truncation (copytruncate), deletion and re-creation, and lines
//!   split across writes. Regexes run on bytes: invalid UTF-8 and over-long lines never stop it.
//!
//! - [`run_commands`] runs Mender's `@command` sources (`@docker events`, `@journalctl -f`):
//!   each distinct command once, as `sh -c '<command>'` in its own process group, its stdout
//!   matched with the same line splitting, matching and context as the files, its stderr
//!   only logged. It restarts a command that exits with capped backoff and sends
//!   [`CommandEvent`]s: matches, and one `Died` per failure streak (then `Recovered`).
//!
//! It watches the folders that hold the files (one inotify watch per folder, many checks on
//! one file read it once) and never polls: an idle watcher sleeps until the kernel says a
//! file changed. It knows nothing of alerts, expiry or delivery; it does not persist
//! anything itself.

mod access;
mod command;
mod matching;
pub mod tail;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monitor_source::FilePosition;
use monitor_wire::{CheckId, Details, LogLine};
use notify::{RecursiveMode, Watcher};
use regex::bytes::Regex;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

pub use tail::Start;
use tail::{FileTail, ProblemChange};

/// How many bytes one file may read before the others get a turn (and shutdown is checked).
const READ_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// One check's pattern on a file.
#[derive(Debug, Clone)]
pub struct PatternSpec {
    pub check: CheckId,
    pub regex: Regex,
    pub lines_before: usize,
    pub lines_after: usize,
    /// What the check's alerts say about a match besides its lines.
    pub details: Arc<MatchDetails>,
}

/// What a check's alert says about a match besides its lines: where the line was read
/// (field `path` or `command`) and the check's `alert.details` template (field `message`,
/// with `%line_matching` replaced by the line).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchDetails {
    /// `("path", "/var/log/app.log")` or `("command", "docker events")`.
    pub source: Option<(&'static str, String)>,
    pub template: Option<String>,
}

impl MatchDetails {
    /// For a check reading the file at `path`.
    pub fn file(path: &Path, template: Option<String>) -> MatchDetails {
        MatchDetails {
            source: Some(("path", path.display().to_string())),
            template,
        }
    }

    /// For a check reading the output of `command`.
    pub fn command(command: &str, template: Option<String>) -> MatchDetails {
        MatchDetails {
            source: Some(("command", command.to_owned())),
            template,
        }
    }
}

/// One file to follow and the checks that read it.
#[derive(Debug, Clone)]
pub struct WatchedFile {
    pub path: PathBuf,
    pub checks: Vec<PatternSpec>,
    /// Where to begin if the file is not followed yet: a checkpointed position, or `None`
    /// for "from now on" (lines already in the file are old and never alert).
    pub resume: Option<FilePosition>,
}

/// The whole set of files to follow; files missing from a new config are let go.
#[derive(Debug, Clone, Default)]
pub struct LogWatchConfig {
    /// Echoed in [`LogEvent::CaughtUp`], so the sender knows which config is live.
    pub generation: u64,
    pub files: Vec<WatchedFile>,
}

/// A line that matched a check's pattern, with its context.
#[derive(Debug, Clone, PartialEq)]
pub struct LogMatch {
    pub check: CheckId,
    pub line: LogLine,
    /// Up to `lines_before` lines that came before it (fewer right after a start or rotation).
    pub before: Vec<LogLine>,
    /// Up to `lines_after` lines that followed it in the same read: the alert is not held
    /// back waiting for more.
    pub after: Vec<LogLine>,
    /// The check's [`MatchDetails`].
    pub details: Arc<MatchDetails>,
}

impl LogMatch {
    /// The match as an alert's details: the line and its context, where it was read, and
    /// the check's template filled in.
    pub fn into_details(self) -> Details {
        let mut details = Details {
            description: None,
            line_matching: Some(self.line),
            lines_before: self.before,
            lines_after: self.after,
            fields: Default::default(),
        };
        if let Some((field, value)) = &self.details.source {
            details
                .fields
                .insert((*field).to_owned(), value.clone().into());
        }
        if let (Some(template), Some(line)) = (&self.details.template, &details.line_matching) {
            details.fields.insert(
                "message".into(),
                template.replace("%line_matching", &line.data).into(),
            );
        }
        details
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent {
    /// Lines were read from `path`; `position` is where a restart would resume.
    Read {
        path: PathBuf,
        position: Option<FilePosition>,
        matches: Vec<LogMatch>,
    },
    /// The config of this generation was applied and every file in it read to its
    /// current end.
    CaughtUp { generation: u64 },
    /// `path` is not followed: it is not a regular file (a FIFO, a device), a user who
    /// controls the path could not read the file it names themselves, or it cannot be
    /// opened. `message` names the path and the fix. Sent once per distinct problem (and
    /// again when the file's checks change), already logged.
    Problem { path: PathBuf, message: String },
    /// After a [`LogEvent::Problem`]: `path` is followed again (or names nothing yet).
    ProblemResolved { path: PathBuf },
}

/// One long-running command and the checks that read its stdout (Mender's `@command`
/// log source: `@docker events`, `@journalctl -f`, `@tail -F file`).
#[derive(Debug, Clone)]
pub struct WatchedCommand {
    /// The command as written after the `@`; run as `sh -c '<command>'`, like Mender does.
    pub command: String,
    pub checks: Vec<PatternSpec>,
    /// Reported down already (a `Died` before the agent restarted): the new run starts in
    /// a failure streak, so it sends `Recovered` once it stays up, and no second `Died`.
    pub reported_down: bool,
}

/// The whole set of commands to run; commands missing from a new config are stopped, and
/// a command kept from the previous config runs on with its new checks (no restart).
#[derive(Debug, Clone, Default)]
pub struct CommandWatchConfig {
    /// Echoed in [`CommandEvent::Applied`], so the sender knows which config is live.
    pub generation: u64,
    /// The same command text in several entries runs once and feeds all their checks.
    pub commands: Vec<WatchedCommand>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CommandEvent {
    /// Matches in what the command printed: context lines as for files (lines after are
    /// those already printed when the match was read); line numbers count the command's
    /// output lines since it (re)started.
    Matched {
        command: String,
        matches: Vec<LogMatch>,
    },
    /// The command could not start or exited; it is restarted after `retry_in`. Sent once
    /// per failure streak, not on every restart of a crash loop: the caller alerts once.
    Died {
        command: String,
        /// `exited with status 3`, `killed by signal 9`, `cannot start `sh -c`: …`, with
        /// the last line it wrote to stderr when there is one.
        reason: String,
        retry_in: Duration,
    },
    /// After a [`CommandEvent::Died`]: the command has now stayed up for
    /// [`BackoffSettings::healthy_after`], so the streak is over. A command that prints a
    /// line and dies again does not end its streak by printing.
    Recovered { command: String },
    /// Config `generation` applied: every command in it was started (or failed to start).
    Applied { generation: u64 },
}

/// How a command that keeps dying is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffSettings {
    /// Delay before the first restart; it doubles at every death in a row.
    pub initial: Duration,
    /// The delay never grows past this.
    pub max: Duration,
    /// A run this long resets the delay, and ends a failure streak with
    /// [`CommandEvent::Recovered`].
    pub healthy_after: Duration,
}

impl Default for BackoffSettings {
    /// 1 s doubling to 60 s; healthy after 10 s up.
    fn default() -> Self {
        BackoffSettings {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogWatchError {
    #[error("cannot start inotify: {0}; raise fs.inotify.max_user_instances")]
    Inotify(#[source] notify::Error),
    #[error("cannot start the log watcher's thread: {0}; raise the process or memory limits")]
    Thread(#[source] std::io::Error),
}

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
    // The position last sent for each path: a file first opened at its end (nothing read)
    // is reported too, so the caller can save where it starts before lines come.
    let mut reported: HashMap<PathBuf, FilePosition> = HashMap::new();
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
            for (path, tail) in &tails {
                if concerns(path, folders.folder_of(path), changed) {
                    dirty.insert(tail.path().to_path_buf());
                }
            }
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
            let moved = position.is_some_and(|position| reported.get(&path) != Some(&position));
            if outcome.progressed || !outcome.matches.is_empty() || moved {
                if let Some(position) = position {
                    reported.insert(path.clone(), position);
                }
                let event = LogEvent::Read {
                    path: path.clone(),
                    position,
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
        match tails.get_mut(&file.path) {
            Some(tail) => tail.set_checks(file.checks),
            None => {
                let start = file.resume.map_or(Start::End, Start::Resume);
                tracing::debug!(path = %file.path.display(), ?start, "following log file");
                tails.insert(
                    file.path.clone(),
                    FileTail::new(file.path.clone(), file.checks, start),
                );
            }
        }
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
}

impl FolderWatches {
    fn folder_of(&self, path: &Path) -> Option<&Path> {
        self.folder_by_path.get(path).map(PathBuf::as_path)
    }

    fn is_watched(&self, folder: &Path) -> bool {
        self.watched.contains(folder)
    }

    /// Whether some file's own folder does not exist yet.
    fn any_waiting(&self) -> bool {
        self.folder_by_path
            .iter()
            .any(|(path, folder)| path.parent() != Some(folder.as_path()))
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
