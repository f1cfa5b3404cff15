//! Crash-safe persistence in `state_dir`.
//!
//! - [`write_atomically`]: write, fsync, rename, fsync the folder: a reader sees the old
//!   file or the new one, never a torn one, even after `kill -9` or a power cut. The agent's
//!   checkpoint (offsets and alert state together) is written this way.
//! - [`AlertHistory`]: the device's own alert log, `alerts.jsonl`, one
//!   [`HistoryRecord`] (a Mender-shaped alert with a sequence number) per line, bounded by
//!   size (it rotates once to `alerts.jsonl.1`). [`read_history`] reads both files back.
//!
//! - [`Outbox`]: what each delivery destination has not taken yet, with its own progress.
//! - [`append_rejected`] and [`read_rejected`]: the dead-letter file, alerts a destination
//!   refused on their own (`rejected.jsonl`, bounded, private).
//!
//! It does not decide when to write (the agent batches checkpoints to spare SD cards) and
//! knows nothing of what a checkpoint contains.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use monitor_wire::{Alert, CheckId, HistoryRecord};

mod outbox;
mod rejected;
pub use outbox::{Outbox, OutboxLimits, OUTBOX_FOLDER};
pub use rejected::{
    append_rejected, read_rejected, MAX_RECORD_BYTES, REJECTED_FILE_NAME, REJECTED_MAX_BYTES,
    ROTATED_REJECTED_FILE_NAME,
};

/// The alert history's file name in `state_dir`.
pub const HISTORY_FILE_NAME: &str = "alerts.jsonl";
/// Where the history goes when it outgrows its size limit (the previous one is dropped).
pub const ROTATED_HISTORY_FILE_NAME: &str = "alerts.jsonl.1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source}; check that the state folder exists and is writable (state_dir in monitor.yaml or MONITOR_STATE_DIR)")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: line {line}: not an alert record: {message}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

pub(crate) fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// How durable a replaced file is when [`write_atomically_as`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The new content survives a power cut: the file and its folder are fsynced.
    Durable,
    /// The new content is fsynced before the rename, but the rename itself may be lost
    /// in a power cut, leaving the previous (whole) file: for state that a restart can
    /// recompute from what follows it, at one fsync instead of two (SD-card wear).
    ContentOnly,
}

/// Replace `path` with `bytes` so that a crash at any point leaves the old or the new content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomically_as(path, bytes, Durability::Durable)
}

/// [`write_atomically`] with a choice of [`Durability`]. The file is private (0600); on
/// failure no temporary file is left behind.
pub fn write_atomically_as(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
) -> Result<(), StoreError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let written = (|| {
        let mut file = private_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .map_err(io_error("create", &temporary))?;
        file.write_all(bytes)
            .map_err(io_error("write", &temporary))?;
        file.sync_all().map_err(io_error("sync", &temporary))?;
        drop(file);
        fs::rename(&temporary, path).map_err(io_error("replace", path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    match durability {
        Durability::Durable => sync_folder(folder),
        Durability::ContentOnly => Ok(()),
    }
}

/// Files in the state folder hold log lines and tokens' effects: readable by the agent's
/// user only, whatever the umask.
pub(crate) fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}

/// Create `folder` (and its parents) and make it private (0700), whatever the umask; an
/// existing folder is made private too.
pub fn create_private_folder(folder: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)
        .map_err(io_error("create", folder))?;
    fs::set_permissions(folder, fs::Permissions::from_mode(0o700))
        .map_err(io_error("restrict", folder))
}

fn sync_folder(folder: &Path) -> Result<(), StoreError> {
    File::open(folder)
        .and_then(|folder| folder.sync_all())
        .map_err(io_error("sync", folder))
}

/// Read a whole file, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("read", path)(error)),
    }
}

/// The append side of the alert history.
#[derive(Debug)]
pub struct AlertHistory {
    path: PathBuf,
    rotated_path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    last_seq: Option<u64>,
    /// A failed append may have left part of its bytes after `size`: cut them off before
    /// the next one, so a full or failing disk never leaves a torn record mid-file.
    torn: bool,
}

impl AlertHistory {
    /// Open (or create) `state_dir/alerts.jsonl` for appending.
    ///
    /// A last line torn by a crash mid-write was never acknowledged: it is cut off.
    pub fn open(state_dir: &Path, max_bytes: u64) -> Result<AlertHistory, StoreError> {
        let path = state_dir.join(HISTORY_FILE_NAME);
        let rotated_path = state_dir.join(ROTATED_HISTORY_FILE_NAME);
        let mut file = private_options()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        make_private(&file, &path);
        let size = cut_torn_tail(&mut file, &path)?;
        let last_seq = match last_record(&path)? {
            Some(record) => Some(record.seq),
            None => last_record(&rotated_path)?.map(|record| record.seq),
        };
        Ok(AlertHistory {
            path,
            rotated_path,
            file,
            size,
            max_bytes,
            last_seq,
            torn: false,
        })
    }

    /// The sequence number of the newest record, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one alert made outside the agent (it is not running): the next `seq` is read
    /// from the file under its lock, so the numbering stays one sequence, and is past
    /// `in_use` (numbers the agent used that the history does not have).
    pub fn append_next(
        &mut self,
        check: CheckId,
        alert: Alert,
        in_use: u64,
    ) -> Result<HistoryRecord, StoreError> {
        self.file.lock().map_err(io_error("lock", &self.path))?;
        let result = (|| {
            self.last_seq = match last_record(&self.path)? {
                Some(record) => Some(record.seq),
                None => last_record(&self.rotated_path)?.map(|record| record.seq),
            };
            self.size = self
                .file
                .metadata()
                .map_err(io_error("inspect", &self.path))?
                .len();
            let record = HistoryRecord {
                seq: self.last_seq.unwrap_or(0).max(in_use) + 1,
                check,
                alert,
            };
            self.append_unlocked(std::slice::from_ref(&record))?;
            Ok(record)
        })();
        let _ = self.file.unlock();
        result
    }

    /// Append records and make them durable before returning.
    pub fn append(&mut self, records: &[HistoryRecord]) -> Result<(), StoreError> {
        self.file.lock().map_err(io_error("lock", &self.path))?;
        let result = self.append_unlocked(records);
        let _ = self.file.unlock();
        result
    }

    fn append_unlocked(&mut self, records: &[HistoryRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        for record in records {
            // Serializing plain structs into a Vec cannot fail.
            serde_json::to_writer(&mut lines, record).map_err(|error| StoreError::Corrupt {
                path: self.path.clone(),
                line: 0,
                message: error.to_string(),
            })?;
            lines.push(b'\n');
        }
        if self.torn {
            self.file
                .set_len(self.size)
                .map_err(io_error("repair", &self.path))?;
            self.torn = false;
        }
        if self.size > 0 && self.size + lines.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let written = self
            .file
            .write_all(&lines)
            .map_err(io_error("append to", &self.path))
            .and_then(|()| self.file.sync_data().map_err(io_error("sync", &self.path)));
        if let Err(error) = written {
            // After a failed write or fsync the bytes past `size` are not known to be
            // whole (or durable): they go, and the caller appends them again later.
            self.torn = self.file.set_len(self.size).is_err();
            return Err(error);
        }
        self.size += lines.len() as u64;
        self.last_seq = records.last().map(|record| record.seq);
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), StoreError> {
        fs::rename(&self.path, &self.rotated_path).map_err(io_error("rotate", &self.path))?;
        self.file = private_options()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(io_error("create", &self.path))?;
        self.size = 0;
        sync_folder(self.path.parent().unwrap_or(Path::new(".")))
    }
}

/// A file made by an older version (or under another umask) is made private too.
pub(crate) fn make_private(file: &File, path: &Path) {
    let open_to_others = file
        .metadata()
        .is_ok_and(|metadata| metadata.permissions().mode() & 0o077 != 0);
    if open_to_others {
        if let Err(error) = file.set_permissions(fs::Permissions::from_mode(0o600)) {
            tracing::warn!(path = %path.display(), %error, "cannot make the file private (0600); run as its owner");
        }
    }
}

pub(crate) fn cut_torn_tail(file: &mut File, path: &Path) -> Result<u64, StoreError> {
    let size = file.metadata().map_err(io_error("inspect", path))?.len();
    if size == 0 {
        return Ok(0);
    }
    let tail_length = size.min(64 * 1024);
    let mut tail = vec![0; tail_length as usize];
    file.seek(SeekFrom::Start(size - tail_length))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(io_error("read", path))?;
    if tail.last() == Some(&b'\n') {
        return Ok(size);
    }
    let keep = match tail.iter().rposition(|byte| *byte == b'\n') {
        Some(index) => size - tail_length + index as u64 + 1,
        None if tail_length == size => 0,
        None => size - tail_length,
    };
    tracing::warn!(path = %path.display(), bytes = size - keep, "dropped an unfinished last alert record left by a crash");
    file.set_len(keep).map_err(io_error("repair", path))?;
    Ok(keep)
}

fn last_record(path: &Path) -> Result<Option<HistoryRecord>, StoreError> {
    let records = read_records(path)?;
    Ok(records.into_iter().last())
}

fn read_records(path: &Path) -> Result<Vec<HistoryRecord>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error("read", path)(error)),
    };
    // Only lines with their newline are records. What follows the last newline is a record
    // being appended right now (a reader can see part of a write), or one torn by a crash,
    // which the next open cuts off: either way not a record yet, whatever its bytes are.
    let complete = match bytes.iter().rposition(|byte| *byte == b'\n') {
        Some(last_newline) => &bytes[..last_newline],
        None => return Ok(Vec::new()),
    };
    let mut records = Vec::new();
    for (index, line) in complete.split(|byte| *byte == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<HistoryRecord>(line) {
            Ok(record) => records.push(record),
            Err(error) => {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    line: index + 1,
                    message: error.to_string(),
                })
            }
        }
    }
    Ok(records)
}

/// Every record in the history, oldest first (the rotated file, then the current one).
pub fn read_history(state_dir: &Path) -> Result<Vec<HistoryRecord>, StoreError> {
    let mut records = read_records(&state_dir.join(ROTATED_HISTORY_FILE_NAME))?;
    records.extend(read_records(&state_dir.join(HISTORY_FILE_NAME))?);
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_wire::{Details, Level, Subject, Subsystem, Timestamp};
    use std::time::UNIX_EPOCH;

    fn record(seq: u64) -> HistoryRecord {
        HistoryRecord {
            seq,
            check: CheckId::new(Subsystem::Log, "app"),
            alert: Alert {
                name: "Log file contains ERROR".into(),
                level: if seq % 2 == 1 {
                    Level::Critical
                } else {
                    Level::Ok
                },
                timestamp: Timestamp(UNIX_EPOCH),
                subject: Subject {
                    name: "app".into(),
                    kind: "log".into(),
                    status: "LOGCONTAINS".into(),
                    details: Details::default(),
                },
            },
        }
    }

    #[test]
    fn appended_records_read_back_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut history = AlertHistory::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(history.last_seq(), None);
        history.append(&[record(1), record(2)]).unwrap();
        drop(history);
        let mut history = AlertHistory::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(history.last_seq(), Some(2));
        history.append(&[record(3)]).unwrap();
        let seqs: Vec<u64> = read_history(dir.path())
            .unwrap()
            .iter()
            .map(|record| record.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
    }

    #[test]
    fn a_full_history_rotates_once_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let line_length = serde_json::to_string(&record(1)).unwrap().len() as u64 + 1;
        let mut history = AlertHistory::open(dir.path(), line_length * 3).unwrap();
        for seq in 1..=10 {
            history.append(&[record(seq)]).unwrap();
        }
        let seqs: Vec<u64> = read_history(dir.path())
            .unwrap()
            .iter()
            .map(|record| record.seq)
            .collect();
        // The newest records, without a gap: the current file and the one rotated before it.
        assert!(seqs.len() >= 3 && seqs.len() < 10, "{seqs:?}");
        assert_eq!(seqs, ((11 - seqs.len() as u64)..=10).collect::<Vec<_>>());
        let size = fs::metadata(dir.path().join(HISTORY_FILE_NAME))
            .unwrap()
            .len();
        assert!(size <= line_length * 3);
        assert_eq!(
            AlertHistory::open(dir.path(), 100).unwrap().last_seq(),
            Some(10)
        );
    }

    #[test]
    fn a_record_torn_by_a_crash_is_cut_off_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut history = AlertHistory::open(dir.path(), 1 << 20).unwrap();
        history.append(&[record(1)]).unwrap();
        drop(history);
        let path = dir.path().join(HISTORY_FILE_NAME);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"seq":2,"check":{"subsys"#).unwrap();
        assert_eq!(read_history(dir.path()).unwrap().len(), 1);
        // Whatever the unfinished tail holds (a reader can see a write half done).
        file.write_all(b"\0\0\0").unwrap();
        assert_eq!(read_history(dir.path()).unwrap().len(), 1);
        let mut history = AlertHistory::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(history.last_seq(), Some(1));
        history.append(&[record(2)]).unwrap();
        let seqs: Vec<u64> = read_history(dir.path())
            .unwrap()
            .iter()
            .map(|record| record.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2]);
    }

    #[test]
    fn alerts_appended_from_outside_the_agent_continue_the_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let mut agent_history = AlertHistory::open(dir.path(), 1 << 20).unwrap();
        agent_history.append(&[record(1), record(2)]).unwrap();
        let mut other = AlertHistory::open(dir.path(), 1 << 20).unwrap();
        let appended = other
            .append_next(record(0).check, record(0).alert, 0)
            .unwrap();
        assert_eq!(appended.seq, 3);
        let seqs: Vec<u64> = read_history(dir.path())
            .unwrap()
            .iter()
            .map(|record| record.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
    }

    #[test]
    fn atomic_writes_replace_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        assert_eq!(read_optional(&path).unwrap(), None);
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(read_optional(&path).unwrap().unwrap(), b"second");
        assert!(!dir.path().join("checkpoint.json.tmp").exists());
    }

    #[test]
    fn an_unwritable_state_folder_says_what_to_fix() {
        let error = write_atomically(Path::new("/proc/nope/checkpoint.json"), b"x").unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("cannot create /proc/nope/checkpoint.json.tmp: "),
            "{message}"
        );
        assert!(message.ends_with("check that the state folder exists and is writable (state_dir in monitor.yaml or MONITOR_STATE_DIR)"), "{message}");
    }
}
