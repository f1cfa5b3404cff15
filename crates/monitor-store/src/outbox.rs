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
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use monitor_wire::{CheckId, HistoryRecord};
use serde::{Deserialize, Serialize};

use crate::{io_error, write_atomically, StoreError};

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

#[derive(Debug)]
pub struct Outbox {
    folder: PathBuf,
    file: File,
    /// Records some destination has not taken yet, oldest first.
    records: VecDeque<HistoryRecord>,
    /// Lines in the records file (some may be records every destination took).
    lines_on_disk: usize,
    progress: Progress,
    limits: OutboxLimits,
    last_seq: Option<u64>,
}

impl Outbox {
    pub fn open(state_dir: &Path, limits: OutboxLimits) -> Result<Outbox, StoreError> {
        let folder = state_dir.join(OUTBOX_FOLDER);
        std::fs::create_dir_all(&folder).map_err(io_error("create", &folder))?;
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
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        crate::cut_torn_tail(&mut file, &path)?;
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
            progress,
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
    /// now on); one no longer named is forgotten.
    pub fn set_destinations(
        &mut self,
        names: &[String],
        newest_seq: u64,
    ) -> Result<(), StoreError> {
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
            self.save_progress()?;
            self.forget_taken();
        }
        Ok(())
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
        let records: Vec<&HistoryRecord> = records
            .iter()
            .filter(|record| self.last_seq.is_none_or(|last| record.seq > last))
            .collect();
        if records.is_empty() || !self.has_destinations() {
            if let Some(last) = records.last() {
                self.last_seq = Some(last.seq);
            }
            return Ok(());
        }
        let path = self.folder.join(RECORDS_FILE);
        let mut lines = Vec::new();
        for record in &records {
            serde_json::to_writer(&mut lines, record).map_err(|error| StoreError::Corrupt {
                path: path.clone(),
                line: 0,
                message: error.to_string(),
            })?;
            lines.push(b'\n');
        }
        self.file
            .write_all(&lines)
            .map_err(io_error("append to", &path))?;
        self.file.sync_data().map_err(io_error("sync", &path))?;
        self.lines_on_disk += records.len();
        self.last_seq = records.last().map(|record| record.seq);
        self.records.extend(records.into_iter().cloned());
        self.apply_limits(now);
        self.compact_if_worth_it()
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
        match self.progress.destinations.get_mut(destination) {
            Some(taken) if *taken < seq => *taken = seq,
            _ => return Ok(()),
        }
        self.save_progress()?;
        self.forget_taken();
        self.compact_if_worth_it()
    }

    fn save_progress(&mut self) -> Result<(), StoreError> {
        self.progress.version = 1;
        let bytes = serde_json::to_vec(&self.progress).map_err(|error| StoreError::Corrupt {
            path: self.folder.join(PROGRESS_FILE),
            line: 0,
            message: error.to_string(),
        })?;
        write_atomically(&self.folder.join(PROGRESS_FILE), &bytes)
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

    fn compact_if_worth_it(&mut self) -> Result<(), StoreError> {
        if self.lines_on_disk < self.records.len() + COMPACT_AFTER_LINES {
            return Ok(());
        }
        let path = self.folder.join(RECORDS_FILE);
        let mut bytes = Vec::new();
        for record in &self.records {
            serde_json::to_writer(&mut bytes, record).map_err(|error| StoreError::Corrupt {
                path: path.clone(),
                line: 0,
                message: error.to_string(),
            })?;
            bytes.push(b'\n');
        }
        write_atomically(&path, &bytes)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        self.lines_on_disk = self.records.len();
        Ok(())
    }
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
        outbox
            .set_destinations(&["backend".into(), "discord:1".into()], 0)
            .unwrap();
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
        outbox.set_destinations(&["backend".into()], 0).unwrap();
        outbox
            .append(&[record(1, "app", Level::Critical, NOW)], now())
            .unwrap();
        outbox
            .set_destinations(&["backend".into(), "discord:1".into()], 1)
            .unwrap();
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
        outbox.set_destinations(&["backend".into()], 0).unwrap();
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
        outbox.set_destinations(&["backend".into()], 0).unwrap();
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
        outbox.set_destinations(&["backend".into()], 0).unwrap();
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
}
