//! The durable outbox: every alert bound for a destination (a Discord webhook, the
//! backend) is kept here until that destination took it.
//!
//! `state_dir/outbox/outbox.jsonl` holds the records (appended and fsynced before any
//! delivery is tried), `state_dir/outbox/progress.json` how far each destination got. Each
//! destination has its own progress, so a slow one never holds up another.
//!
//! Bounds (Mender's `ALERT_OFFLINE_STORE_MAX_COUNT` and `ALERT_STORE_MAX_RECORD_AGE_S`):
//! when more than `max_count` records wait, or some are older than `max_age`, the oldest
//! go first, except that **each check's latest alert is always kept**: a CRITICAL that was
//! later cleared may be collapsed into its OK, a current CRITICAL never disappears.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use monitor_wire::{CheckId, HistoryRecord};
use serde::{Deserialize, Serialize};

use crate::{io_error, private_options, write_atomically, StoreError};

pub const OUTBOX_FOLDER: &str = "outbox";
const RECORDS_FILE: &str = "outbox.jsonl";
const PROGRESS_FILE: &str = "progress.json";
/// Rewrite the records file once it holds this many more lines than are still needed.
const COMPACT_AFTER_LINES: usize = 256;

/// How much the outbox keeps for destinations that cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    pub max_count: usize,
    pub max_age: Duration,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    version: u32,
    /// Per destination: the newest `seq` it took (or that was dropped for it).
    destinations: BTreeMap<String, u64>,
}

/// The records and the progress, in memory for the delivery tasks, written to disk by
/// whoever calls [`Outbox::prepare_flush`] (the agent's persist thread), so that taking or
/// acknowledging a record never waits on the disk.
#[derive(Debug)]
pub struct Outbox {
    folder: PathBuf,
    file: File,
    /// Records some destination has not taken yet, oldest first.
    records: VecDeque<HistoryRecord>,
    /// Lines in the records file (some may be records every destination took).
    lines_on_disk: usize,
    /// Length of the records file known to be whole.
    file_len: u64,
    /// A failed append may have left bytes past `file_len`: cut before the next one.
    torn: bool,
    /// Every record up to this `seq` that is still needed is in the records file.
    written_seq: u64,
    /// The last compaction failed (a nearly full disk has no room for a whole new file):
    /// the next flush appends instead.
    compaction_failed: bool,
    progress: Progress,
    /// Bumped at every change of `progress`; `progress_written` is the one on disk.
    progress_version: u64,
    progress_written: u64,
    limits: OutboxLimits,
    last_seq: Option<u64>,
}

/// What the outbox has to write, prepared under the caller's lock and written without it
/// ([`OutboxFlush::write`]); [`Outbox::finish_flush`] then records what got written.
#[derive(Debug)]
pub struct OutboxFlush {
    records_path: PathBuf,
    progress_path: PathBuf,
    file: Option<File>,
    truncate_to: Option<u64>,
    append: Vec<u8>,
    append_lines: usize,
    compact: Option<(Vec<u8>, usize)>,
    through_seq: u64,
    progress: Option<(Vec<u8>, u64)>,
    records_written: bool,
    progress_written: bool,
    new_file: Option<File>,
}

impl OutboxFlush {
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.compact.is_none() && self.progress.is_none()
    }

    /// Write and fsync what was prepared; the parts that failed stay to be written again.
    pub fn write(&mut self) -> Result<(), StoreError> {
        let records = self.write_records();
        self.records_written = records.is_ok();
        let progress = match &self.progress {
            Some((bytes, _)) => write_atomically(&self.progress_path, bytes),
            None => Ok(()),
        };
        self.progress_written = progress.is_ok();
        records.and(progress)
    }

    fn write_records(&mut self) -> Result<(), StoreError> {
        if let Some((bytes, _)) = &self.compact {
            write_atomically(&self.records_path, bytes)?;
            let file = private_options()
                .read(true)
                .append(true)
                .open(&self.records_path)
                .map_err(io_error("open", &self.records_path))?;
            self.new_file = Some(file);
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        if let Some(length) = self.truncate_to {
            file.set_len(length)
                .map_err(io_error("repair", &self.records_path))?;
        }
        if self.append.is_empty() {
            return Ok(());
        }
        file.write_all(&self.append)
            .map_err(io_error("append to", &self.records_path))?;
        file.sync_data()
            .map_err(io_error("sync", &self.records_path))
    }
}

impl Outbox {
    pub fn open(state_dir: &Path, limits: OutboxLimits) -> Result<Outbox, StoreError> {
        let folder = state_dir.join(OUTBOX_FOLDER);
        crate::create_private_folder(&folder)?;
        let progress_path = folder.join(PROGRESS_FILE);
        let progress = match crate::read_optional(&progress_path)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|error| StoreError::Corrupt {
                path: progress_path.clone(),
                line: 1,
                message: error.to_string(),
            })?,
            None => Progress {
                version: 1,
                destinations: BTreeMap::new(),
            },
        };
        let path = folder.join(RECORDS_FILE);
        let mut file = private_options()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        crate::make_private(&file, &path);
        let file_len = crate::cut_torn_tail(&mut file, &path)?;
        let mut records = VecDeque::new();
        let mut lines_on_disk = 0;
        for line in BufReader::new(File::open(&path).map_err(io_error("open", &path))?).lines() {
            let line = line.map_err(io_error("read", &path))?;
            if line.trim().is_empty() {
                continue;
            }
            lines_on_disk += 1;
            let record: HistoryRecord =
                serde_json::from_str(&line).map_err(|error| StoreError::Corrupt {
                    path: path.clone(),
                    line: lines_on_disk,
                    message: error.to_string(),
                })?;
            records.push_back(record);
        }
        let last_seq = records.back().map(|record| record.seq);
        let mut outbox = Outbox {
            folder,
            file,
            records,
            lines_on_disk,
            file_len,
            torn: false,
            written_seq: last_seq.unwrap_or(0),
            compaction_failed: false,
            progress,
            progress_version: 0,
            progress_written: 0,
            limits,
            last_seq,
        };
        outbox.forget_taken();
        Ok(outbox)
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    pub fn set_limits(&mut self, limits: OutboxLimits) {
        self.limits = limits;
    }

    /// The destinations to deliver to. A new one starts after `newest_seq` (alerts from
    /// now on); one no longer named is forgotten. In memory: the next flush writes it.
    pub fn set_destinations(&mut self, names: &[String], newest_seq: u64) {
        let before = self.progress.destinations.clone();
        self.progress
            .destinations
            .retain(|name, _| names.contains(name));
        for name in names {
            self.progress
                .destinations
                .entry(name.clone())
                .or_insert(newest_seq);
        }
        if self.progress.destinations != before {
            self.progress_version += 1;
            self.forget_taken();
        }
    }

    /// The newest `seq` any destination took: alert numbers continue past it.
    pub fn newest_taken(&self) -> Option<u64> {
        self.progress.destinations.values().max().copied()
    }

    /// The destinations it keeps progress for.
    pub fn destinations(&self) -> Vec<String> {
        self.progress.destinations.keys().cloned().collect()
    }

    pub fn has_destinations(&self) -> bool {
        !self.progress.destinations.is_empty()
    }

    /// Append records, durable before this returns; then apply the limits.
    pub fn append(&mut self, records: &[HistoryRecord], now: SystemTime) -> Result<(), StoreError> {
        self.enqueue(records, now);
        self.flush()
    }

    /// Add records in memory, where the destinations take them at once; the next flush
    /// writes them. Then apply the limits.
    pub fn enqueue(&mut self, records: &[HistoryRecord], now: SystemTime) {
        let records: Vec<&HistoryRecord> = records
            .iter()
            .filter(|record| self.last_seq.is_none_or(|last| record.seq > last))
            .collect();
        let Some(last) = records.last().map(|record| record.seq) else {
            return;
        };
        self.last_seq = Some(last);
        if !self.has_destinations() {
            // Nobody will ask for them: nothing to keep or write.
            self.written_seq = last;
            return;
        }
        self.records.extend(records.into_iter().cloned());
        self.apply_limits(now);
    }

    /// Up to `max` records waiting for `destination`, oldest first.
    pub fn pending(&self, destination: &str, max: usize) -> Vec<HistoryRecord> {
        let Some(&taken) = self.progress.destinations.get(destination) else {
            return Vec::new();
        };
        self.records
            .iter()
            .filter(|record| record.seq > taken)
            .take(max)
            .cloned()
            .collect()
    }

    pub fn pending_count(&self, destination: &str) -> usize {
        let Some(&taken) = self.progress.destinations.get(destination) else {
            return 0;
        };
        self.records
            .iter()
            .filter(|record| record.seq > taken)
            .count()
    }

    /// `destination` took everything up to `seq` (or it was given up on): durable before
    /// this returns, so a restart does not send it again.
    pub fn acknowledge(&mut self, destination: &str, seq: u64) -> Result<(), StoreError> {
        self.take(destination, seq);
        self.flush()
    }

    /// `destination` took everything up to `seq`, in memory: the next flush writes it (a
    /// crash before then sends those records again: at least once, never lost).
    pub fn take(&mut self, destination: &str, seq: u64) {
        match self.progress.destinations.get_mut(destination) {
            Some(taken) if *taken < seq => *taken = seq,
            _ => return,
        }
        self.progress_version += 1;
        self.forget_taken();
    }

    /// Every alert up to this `seq` that a destination still needs is on disk.
    pub fn written_seq(&self) -> u64 {
        self.written_seq
    }

    /// Whether something in memory is not on disk yet.
    pub fn needs_flush(&self) -> bool {
        self.torn
            || self.progress_version != self.progress_written
            || self.last_seq.unwrap_or(0) > self.written_seq
    }

    /// Write what is not on disk yet, here and now.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let mut flush = self.prepare_flush();
        if flush.is_empty() {
            return Ok(());
        }
        let outcome = flush.write();
        self.finish_flush(flush);
        outcome
    }

    /// What a flush has to write now: cheap, so it can be done under a lock that the
    /// delivery tasks share; the writing is [`OutboxFlush::write`], without the lock.
    pub fn prepare_flush(&mut self) -> OutboxFlush {
        let records_path = self.folder.join(RECORDS_FILE);
        let unwritten: Vec<&HistoryRecord> = self
            .records
            .iter()
            .filter(|record| record.seq > self.written_seq)
            .collect();
        let through_seq = self.last_seq.unwrap_or(0).max(self.written_seq);
        let mut flush = OutboxFlush {
            progress_path: self.folder.join(PROGRESS_FILE),
            file: None,
            truncate_to: None,
            append: Vec::new(),
            append_lines: 0,
            compact: None,
            through_seq,
            progress: None,
            records_written: false,
            progress_written: false,
            new_file: None,
            records_path,
        };
        let worth_compacting =
            self.lines_on_disk + unwritten.len() >= self.records.len() + COMPACT_AFTER_LINES;
        if worth_compacting && !self.compaction_failed {
            let bytes = lines_of(self.records.iter());
            flush.compact = Some((bytes, self.records.len()));
        } else if self.torn || !unwritten.is_empty() {
            // Without a second handle (out of descriptors) the records wait for the next flush.
            if let Ok(file) = self.file.try_clone() {
                flush.append_lines = unwritten.len();
                flush.append = lines_of(unwritten.into_iter());
                flush.truncate_to = self.torn.then_some(self.file_len);
                flush.file = Some(file);
            }
        } else {
            // Every record not yet written was taken by everyone already.
            self.written_seq = through_seq;
        }
        if self.progress_version != self.progress_written {
            self.progress.version = 1;
            // Serializing a map of strings to numbers cannot fail.
            let bytes = serde_json::to_vec(&self.progress).unwrap_or_default();
            flush.progress = Some((bytes, self.progress_version));
        }
        flush
    }

    /// Take note of what [`OutboxFlush::write`] wrote.
    pub fn finish_flush(&mut self, flush: OutboxFlush) {
        let had_records = flush.compact.is_some() || flush.file.is_some();
        if flush.compact.is_some() {
            self.compaction_failed = !flush.records_written;
        } else if flush.records_written && flush.file.is_some() {
            // Room again for an append: compacting may work again too.
            self.compaction_failed = false;
        }
        match (&flush.compact, flush.records_written) {
            (_, false) if had_records => {
                // Part of an append may be on disk: it is cut before the next attempt. A
                // failed compaction left the previous file whole.
                self.torn |= flush.compact.is_none();
            }
            (_, false) => {}
            (Some((bytes, lines)), true) => {
                if let Some(file) = flush.new_file {
                    self.file = file;
                }
                self.lines_on_disk = *lines;
                self.file_len = bytes.len() as u64;
                self.torn = false;
                self.written_seq = self.written_seq.max(flush.through_seq);
            }
            (None, true) => {
                if flush.file.is_some() {
                    self.lines_on_disk += flush.append_lines;
                    self.file_len =
                        flush.truncate_to.unwrap_or(self.file_len) + flush.append.len() as u64;
                    self.torn = false;
                    self.written_seq = self.written_seq.max(flush.through_seq);
                }
            }
        }
        if let (true, Some((_, version))) = (flush.progress_written, &flush.progress) {
            self.progress_written = *version;
        }
    }

    /// Drop from memory what every destination took.
    fn forget_taken(&mut self) {
        let slowest = self
            .progress
            .destinations
            .values()
            .min()
            .copied()
            .unwrap_or(u64::MAX);
        while self
            .records
            .front()
            .is_some_and(|record| record.seq <= slowest)
        {
            self.records.pop_front();
        }
    }

    /// The bounds: past `max_count` or `max_age`, older records go, each check's latest stays.
    fn apply_limits(&mut self, now: SystemTime) {
        let too_many = self.records.len() > self.limits.max_count;
        let too_old = |record: &HistoryRecord| {
            now.duration_since(record.alert.timestamp.0)
                .unwrap_or_default()
                > self.limits.max_age
        };
        if !too_many && !self.records.iter().any(too_old) {
            return;
        }
        let mut latest_of_check: HashSet<u64> = HashSet::new();
        let mut seen: HashSet<&CheckId> = HashSet::new();
        for record in self.records.iter().rev() {
            if seen.insert(&record.check) {
                latest_of_check.insert(record.seq);
            }
        }
        let newest_allowed = self.records.len().saturating_sub(self.limits.max_count);
        let before = self.records.len();
        let kept: VecDeque<HistoryRecord> = self
            .records
            .iter()
            .enumerate()
            .filter(|(index, record)| {
                latest_of_check.contains(&record.seq)
                    || (*index >= newest_allowed && !too_old(record))
            })
            .map(|(_, record)| record.clone())
            .collect();
        let dropped = before - kept.len();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                kept = kept.len(),
                "the outbox is over its limits (alert_offline_store_max_count, alert_store_max_record_age): dropped the oldest undelivered alerts, kept every check's latest"
            );
        }
        self.records = kept;
    }
}

fn lines_of<'a>(records: impl Iterator<Item = &'a HistoryRecord>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for record in records {
        // Serializing plain structs into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut bytes, record);
        bytes.push(b'\n');
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_wire::{Alert, Details, Level, Subject, Subsystem, Timestamp};
    use std::time::UNIX_EPOCH;

    fn record(seq: u64, check: &str, level: Level, at: u64) -> HistoryRecord {
        HistoryRecord {
            seq,
            check: CheckId::new(Subsystem::Log, check),
            alert: Alert {
                name: format!("Log file contains {check}"),
                level,
                timestamp: Timestamp(UNIX_EPOCH + Duration::from_secs(at)),
                subject: Subject {
                    name: check.into(),
                    kind: "log".into(),
                    status: "LOGCONTAINS".into(),
                    details: Details::default(),
                },
            },
        }
    }

    fn limits(max_count: usize) -> OutboxLimits {
        OutboxLimits {
            max_count,
            max_age: Duration::from_secs(3600),
        }
    }

    fn seqs(records: &[HistoryRecord]) -> Vec<u64> {
        records.iter().map(|record| record.seq).collect()
    }

    const NOW: u64 = 10_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn each_destination_keeps_its_own_progress_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), limits(100)).unwrap();
        outbox.set_destinations(&["backend".into(), "discord:1".into()], 0);
        let records: Vec<_> = (1..=4)
            .map(|seq| record(seq, "app", Level::Critical, NOW))
            .collect();
        outbox.append(&records, now()).unwrap();
        outbox.acknowledge("backend", 3).unwrap();
        assert_eq!(seqs(&outbox.pending("backend", 10)), vec![4]);
        assert_eq!(seqs(&outbox.pending("discord:1", 2)), vec![1, 2]);
        drop(outbox);

        let outbox = Outbox::open(dir.path(), limits(100)).unwrap();
        assert_eq!(seqs(&outbox.pending("backend", 10)), vec![4]);
        assert_eq!(seqs(&outbox.pending("discord:1", 10)), vec![1, 2, 3, 4]);
        assert_eq!(outbox.last_seq(), Some(4));
    }

    #[test]
    fn a_new_destination_starts_with_what_comes_next() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), limits(100)).unwrap();
        outbox.set_destinations(&["backend".into()], 0);
        outbox
            .append(&[record(1, "app", Level::Critical, NOW)], now())
            .unwrap();
        outbox.set_destinations(&["backend".into(), "discord:1".into()], 1);
        outbox
            .append(&[record(2, "app", Level::Ok, NOW)], now())
            .unwrap();
        assert_eq!(seqs(&outbox.pending("discord:1", 10)), vec![2]);
        assert_eq!(seqs(&outbox.pending("backend", 10)), vec![1, 2]);
    }

    #[test]
    fn over_the_limit_the_oldest_go_but_every_checks_latest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), limits(3)).unwrap();
        outbox.set_destinations(&["backend".into()], 0);
        // "db" went CRITICAL long ago and is still CRITICAL; "app" flipped many times.
        outbox
            .append(&[record(1, "db", Level::Critical, NOW)], now())
            .unwrap();
        for seq in 2..=9 {
            let level = if seq % 2 == 0 {
                Level::Critical
            } else {
                Level::Ok
            };
            outbox
                .append(&[record(seq, "app", level, NOW)], now())
                .unwrap();
        }
        assert_eq!(seqs(&outbox.pending("backend", 100)), vec![1, 7, 8, 9]);
    }

    #[test]
    fn too_old_alerts_go_unless_they_are_the_latest_of_their_check() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), limits(100)).unwrap();
        outbox.set_destinations(&["backend".into()], 0);
        outbox
            .append(
                &[
                    record(1, "app", Level::Critical, NOW - 7200),
                    record(2, "app", Level::Ok, NOW - 7100),
                    record(3, "db", Level::Critical, NOW - 7000),
                    record(4, "web", Level::Critical, NOW),
                ],
                now(),
            )
            .unwrap();
        assert_eq!(seqs(&outbox.pending("backend", 100)), vec![2, 3, 4]);
    }

    #[test]
    fn the_file_is_compacted_once_everyone_took_enough() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), limits(10_000)).unwrap();
        outbox.set_destinations(&["backend".into()], 0);
        for seq in 1..=600 {
            outbox
                .append(&[record(seq, "app", Level::Critical, NOW)], now())
                .unwrap();
        }
        outbox.acknowledge("backend", 599).unwrap();
        let lines = std::fs::read_to_string(dir.path().join("outbox/outbox.jsonl"))
            .unwrap()
            .lines()
            .count();
        assert_eq!(lines, 1);
        drop(outbox);
        let outbox = Outbox::open(dir.path(), limits(10_000)).unwrap();
        assert_eq!(seqs(&outbox.pending("backend", 10)), vec![600]);
    }

    #[test]
    fn without_destinations_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), limits(10)).unwrap();
        outbox
            .append(&[record(1, "app", Level::Critical, NOW)], now())
            .unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("outbox/outbox.jsonl"))
                .unwrap()
                .len(),
            0
        );
        assert_eq!(outbox.last_seq(), Some(1));
    }

    #[test]
    fn destinations_see_records_before_they_are_written_and_a_crash_before_the_flush_resends() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), limits(100)).unwrap();
        outbox.set_destinations(&["backend".into()], 0);
        outbox.flush().unwrap();
        outbox.enqueue(&[record(1, "app", Level::Critical, NOW)], now());
        assert_eq!(seqs(&outbox.pending("backend", 10)), vec![1]);
        assert!(outbox.needs_flush());
        let mut flush = outbox.prepare_flush();
        flush.write().unwrap();
        outbox.finish_flush(flush);
        assert!(!outbox.needs_flush());
        // Taken in memory, then a crash before the progress was flushed: sent again.
        outbox.take("backend", 1);
        assert!(outbox.pending("backend", 10).is_empty());
        drop(outbox);
        let outbox = Outbox::open(dir.path(), limits(100)).unwrap();
        assert_eq!(seqs(&outbox.pending("backend", 10)), vec![1]);
    }

    #[test]
    fn the_files_are_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), limits(100)).unwrap();
        outbox.set_destinations(&["backend".into()], 0);
        outbox
            .append(&[record(1, "app", Level::Critical, NOW)], now())
            .unwrap();
        for (path, mode) in [
            ("outbox", 0o700),
            ("outbox/outbox.jsonl", 0o600),
            ("outbox/progress.json", 0o600),
        ] {
            let metadata = std::fs::metadata(dir.path().join(path)).unwrap();
            assert_eq!(metadata.permissions().mode() & 0o777, mode, "{path}");
        }
    }
}
