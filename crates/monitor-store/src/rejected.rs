//! The dead-letter file: alerts a destination refused even on their own, taken out of the
//! outbox (they are never sent again) and kept here so that nothing is dropped silently.
//!
//! `state_dir/rejected.jsonl`, one [`RejectedRecord`] per line, private (0600), appended and
//! fsynced. Bounded: past [`REJECTED_MAX_BYTES`] it rotates once to `rejected.jsonl.1`, and
//! a record bigger than [`MAX_RECORD_BYTES`] keeps only the start of its log lines.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use monitor_wire::rejected::RejectedRecord;

use crate::{cut_torn_tail, io_error, make_private, private_options, StoreError};

pub const REJECTED_FILE_NAME: &str = "rejected.jsonl";
pub const ROTATED_REJECTED_FILE_NAME: &str = "rejected.jsonl.1";
/// Size of `rejected.jsonl` before it rotates: the two files hold at most twice this.
pub const REJECTED_MAX_BYTES: u64 = 1 << 20;
/// A record longer than this (an alert refused as too big, most likely) is shortened.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// What a shortened record keeps of each text.
const SHORTENED_TEXT_BYTES: usize = 4 * 1024;

/// Appends `records` to `state_dir/rejected.jsonl` and makes them durable.
pub fn append_rejected(state_dir: &Path, records: &[RejectedRecord]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let path = state_dir.join(REJECTED_FILE_NAME);
    let mut lines = Vec::new();
    for record in records {
        let line = serialize_bounded(record).map_err(|message| StoreError::Corrupt {
            path: path.clone(),
            line: 0,
            message,
        })?;
        lines.extend_from_slice(&line);
        lines.push(b'\n');
    }
    let mut file = open(&path)?;
    file.lock().map_err(io_error("lock", &path))?;
    let result = (|| {
        let size = cut_torn_tail(&mut file, &path)?;
        if size > 0 && size + lines.len() as u64 > REJECTED_MAX_BYTES {
            fs::rename(&path, state_dir.join(ROTATED_REJECTED_FILE_NAME))
                .map_err(io_error("rotate", &path))?;
            // The lock is on the rotated file now: writers after this open the new one.
            file = open(&path)?;
        }
        file.write_all(&lines)
            .map_err(io_error("append to", &path))?;
        file.sync_data().map_err(io_error("sync", &path))
    })();
    let _ = file.unlock();
    result
}

fn open(path: &Path) -> Result<File, StoreError> {
    let file = private_options()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io_error("open", path))?;
    make_private(&file, path);
    Ok(file)
}

/// The record as one JSON line, shortened (its log lines and texts cut) when too long.
fn serialize_bounded(record: &RejectedRecord) -> Result<Vec<u8>, String> {
    let line = serde_json::to_vec(record).map_err(|error| error.to_string())?;
    if line.len() <= MAX_RECORD_BYTES {
        return Ok(line);
    }
    let mut shortened = record.clone();
    shortened.shortened = true;
    let details = &mut shortened.record.alert.subject.details;
    details.lines_before.clear();
    details.lines_after.clear();
    if let Some(line) = &mut details.line_matching {
        cut(&mut line.data);
    }
    if let Some(description) = &mut details.description {
        cut(description);
    }
    for value in details.fields.values_mut() {
        if let serde_json::Value::String(text) = value {
            cut(text);
        }
    }
    cut(&mut shortened.reason);
    let line = serde_json::to_vec(&shortened).map_err(|error| error.to_string())?;
    if line.len() <= MAX_RECORD_BYTES {
        return Ok(line);
    }
    // Many fields: keep the alert's name, subject and the reason.
    shortened.record.alert.subject.details.fields.clear();
    serde_json::to_vec(&shortened).map_err(|error| error.to_string())
}

fn cut(text: &mut String) {
    if text.len() > SHORTENED_TEXT_BYTES {
        let mut end = SHORTENED_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

/// Every rejected alert, oldest first (the rotated file, then the current one).
pub fn read_rejected(state_dir: &Path) -> Result<Vec<RejectedRecord>, StoreError> {
    let mut records = read_file(&state_dir.join(ROTATED_REJECTED_FILE_NAME))?;
    records.extend(read_file(&state_dir.join(REJECTED_FILE_NAME))?);
    Ok(records)
}

fn read_file(path: &Path) -> Result<Vec<RejectedRecord>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error("read", path)(error)),
    };
    // What follows the last newline is being written, or was torn by a crash.
    let Some(last_newline) = bytes.iter().rposition(|byte| *byte == b'\n') else {
        return Ok(Vec::new());
    };
    let mut records = Vec::new();
    for (index, line) in bytes[..last_newline]
        .split(|byte| *byte == b'\n')
        .enumerate()
    {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let record = serde_json::from_slice(line).map_err(|error| StoreError::Corrupt {
            path: path.to_path_buf(),
            line: index + 1,
            message: error.to_string(),
        })?;
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::UNIX_EPOCH;

    use monitor_wire::{
        Alert, CheckId, Details, HistoryRecord, Level, LogLine, Subject, Subsystem, Timestamp,
    };

    use super::*;

    fn rejected(seq: u64, line: &str) -> RejectedRecord {
        RejectedRecord {
            destination: "backend".into(),
            rejected_at: Timestamp(UNIX_EPOCH),
            reason: "400: details.path is not allowed".into(),
            shortened: false,
            record: HistoryRecord {
                seq,
                check: CheckId::new(Subsystem::Log, "app"),
                alert: Alert {
                    name: "Log file contains ERROR".into(),
                    level: Level::Critical,
                    timestamp: Timestamp(UNIX_EPOCH),
                    subject: Subject {
                        name: "app".into(),
                        kind: "log".into(),
                        status: "LOGCONTAINS".into(),
                        details: Details {
                            line_matching: Some(LogLine {
                                line_number: 1,
                                data: line.into(),
                            }),
                            lines_before: vec![LogLine {
                                line_number: 0,
                                data: line.into(),
                            }],
                            ..Details::default()
                        },
                    },
                },
            },
        }
    }

    #[test]
    fn rejected_alerts_read_back_from_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        append_rejected(dir.path(), &[rejected(1, "ERROR a")]).unwrap();
        append_rejected(dir.path(), &[rejected(2, "ERROR b")]).unwrap();
        assert_eq!(
            read_rejected(dir.path()).unwrap(),
            vec![rejected(1, "ERROR a"), rejected(2, "ERROR b")]
        );
        let mode = fs::metadata(dir.path().join(REJECTED_FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_huge_alert_is_kept_shortened_and_the_file_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let huge = "x".repeat(600 * 1024);
        for seq in 1..=40 {
            append_rejected(dir.path(), &[rejected(seq, &huge)]).unwrap();
        }
        let records = read_rejected(dir.path()).unwrap();
        let last = records.last().unwrap();
        assert_eq!(last.record.seq, 40);
        assert!(last.shortened);
        assert!(last.record.alert.subject.details.lines_before.is_empty());
        let kept = &last
            .record
            .alert
            .subject
            .details
            .line_matching
            .as_ref()
            .unwrap()
            .data;
        assert!(kept.len() <= SHORTENED_TEXT_BYTES + 3, "{}", kept.len());
        let size = |name: &str| fs::metadata(dir.path().join(name)).map_or(0, |m| m.len());
        assert!(
            size(REJECTED_FILE_NAME) + size(ROTATED_REJECTED_FILE_NAME) <= 2 * REJECTED_MAX_BYTES
        );
    }
}
