//! Writing to disk off the agent's loop, and never in the way of an alert.
//!
//! fsync on an SD card (or a busy disk) can take seconds, and a full or failing card may
//! not take writes at all; neither may delay a timer or an alert. The loop hands over the
//! newest checkpoint and the alerts to append to the history; the delivery tasks have
//! already been given those alerts from memory (the outbox's in-memory side). A writer
//! thread then writes, in this order: the checkpoint (so a crash between the two finds the
//! alerts in the checkpoint), the history, and whatever the outbox has in memory that is
//! not on disk yet (new records, destinations' progress).
//!
//! Only the newest checkpoint matters, so pending ones are coalesced. Alerts for the history
//! wait in memory while the disk refuses them, at most [`MAX_UNWRITTEN_ALERTS`] (beyond
//! that the oldest are dropped, and counted). A failed write is tried again after a delay
//! that doubles from 1 s to 30 s (no busy loop on a full disk), and the loop is told when
//! the state folder stops and starts taking writes again ([`StorageHealth`]).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use monitor_store::{AlertHistory, Durability, Outbox};
use monitor_wire::backoff::Backoff;
use monitor_wire::HistoryRecord;
use tokio::sync::watch;

use crate::checkpoint::{self, Checkpoint};

/// The outbox, in memory first: the loop enqueues, the delivery tasks take, and this
/// thread, which owns it on disk, writes what memory has and the disk lacks.
pub type SharedOutbox = Arc<Mutex<Outbox>>;

pub fn lock(outbox: &SharedOutbox) -> MutexGuard<'_, Outbox> {
    outbox
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes slower than this are worth a warning: the disk is busy or worn.
const SLOW_WRITE: Duration = Duration::from_millis(500);
/// How many alerts wait in memory for the history while the disk refuses them.
pub const MAX_UNWRITTEN_ALERTS: usize = 10_000;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(30);

/// Whether the state folder takes writes: `Err(reason)` while it does not.
pub type StorageHealth = Result<(), String>;

#[derive(Default)]
struct Pending {
    /// The newest checkpoint, and the newest alert `seq` it holds.
    checkpoint: Option<(Checkpoint, Durability, u64)>,
    /// Alerts for the history, oldest first.
    records: VecDeque<HistoryRecord>,
    /// Alerts dropped from `records` because the disk refused writes for too long.
    dropped: u64,
    outbox_changed: bool,
    stop: bool,
}

impl Pending {
    fn has_work(&self) -> bool {
        self.checkpoint.is_some() || !self.records.is_empty() || self.outbox_changed
    }
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// The newest `seq` known to be durable in the history.
    appended_seq: AtomicU64,
    /// The newest `seq` in a checkpoint that was written.
    checkpointed_seq: AtomicU64,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Lets the delivery tasks say that the outbox's progress changed in memory.
#[derive(Clone)]
pub struct OutboxWriter {
    shared: Arc<Shared>,
}

impl OutboxWriter {
    pub fn outbox_changed(&self) {
        self.shared.pending().outbox_changed = true;
        self.shared.wake.notify_one();
    }
}

pub struct Persister {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Persister {
    /// `health` is told whenever the state folder stops or starts taking writes (`failing`:
    /// it did not when the last run stopped, so the first round that succeeds says so), and
    /// `checkpointed` the newest alert `seq` in a written checkpoint.
    pub fn start(
        state_dir: PathBuf,
        history: AlertHistory,
        outbox: SharedOutbox,
        health: watch::Sender<StorageHealth>,
        checkpointed: watch::Sender<u64>,
        failing: bool,
    ) -> anyhow::Result<Persister> {
        let last_seq = history.last_seq().unwrap_or(0);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            appended_seq: AtomicU64::new(last_seq.min(lock(&outbox).written_seq())),
            checkpointed_seq: AtomicU64::new(last_seq),
        });
        let writer = Writer {
            state_dir,
            history,
            outbox,
            health,
            checkpointed,
            shared: shared.clone(),
            history_seq: last_seq,
            failing: failing
                .then(|| "the state folder did not take writes when the agent stopped".to_owned()),
            retry: Backoff::new(FIRST_RETRY, LAST_RETRY),
            retry_at: None,
        };
        let thread = std::thread::Builder::new()
            .name("persist".into())
            .spawn(move || writer.run())?;
        Ok(Persister {
            shared,
            thread: Some(thread),
        })
    }

    pub fn outbox_writer(&self) -> OutboxWriter {
        OutboxWriter {
            shared: self.shared.clone(),
        }
    }

    /// The newest alert `seq` that is durable in the history.
    pub fn appended_seq(&self) -> u64 {
        self.shared.appended_seq.load(Ordering::Acquire)
    }

    /// The newest alert `seq` in a checkpoint that was written.
    pub fn checkpointed_seq(&self) -> u64 {
        self.shared.checkpointed_seq.load(Ordering::Acquire)
    }

    /// Write `checkpoint` (replacing one not written yet; it holds alerts up to `seq`),
    /// then append `records` to the history and flush the outbox.
    pub fn submit(
        &self,
        checkpoint: Checkpoint,
        durability: Durability,
        records: Vec<HistoryRecord>,
        seq: u64,
    ) {
        let mut pending = self.shared.pending();
        // A checkpoint that replaces one not written yet keeps its promise of durability.
        let durability = match &pending.checkpoint {
            Some((_, Durability::Durable, _)) => Durability::Durable,
            _ => durability,
        };
        pending.checkpoint = Some((checkpoint, durability, seq));
        pending.outbox_changed |= !records.is_empty();
        pending.records.extend(records);
        let over = pending.records.len().saturating_sub(MAX_UNWRITTEN_ALERTS);
        if over > 0 {
            pending.records.drain(..over);
            pending.dropped += over as u64;
        }
        drop(pending);
        self.shared.wake.notify_one();
    }

    /// Write what is pending (one more try when the disk fails) and stop the writer.
    pub fn finish(mut self) {
        self.shared.pending().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Writer {
    state_dir: PathBuf,
    history: AlertHistory,
    outbox: SharedOutbox,
    health: watch::Sender<StorageHealth>,
    checkpointed: watch::Sender<u64>,
    shared: Arc<Shared>,
    /// The newest `seq` appended to the history.
    history_seq: u64,
    /// Why the last round of writes failed, while it does.
    failing: Option<String>,
    retry: Backoff,
    retry_at: Option<Instant>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let (checkpoint, records, stop) = {
                let mut pending = self.shared.pending();
                loop {
                    if pending.stop {
                        break;
                    }
                    if pending.has_work() {
                        // While the disk fails, only the retry timer starts the next round:
                        // new work alone would make a busy loop of failing writes.
                        match self.retry_at {
                            Some(at) if Instant::now() < at => {
                                let wait = at - Instant::now();
                                pending = self
                                    .shared
                                    .wake
                                    .wait_timeout(pending, wait)
                                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                                    .0;
                                continue;
                            }
                            _ => break,
                        }
                    }
                    pending = self
                        .shared
                        .wake
                        .wait(pending)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                pending.outbox_changed = false;
                let records: Vec<HistoryRecord> = pending.records.iter().cloned().collect();
                (pending.checkpoint.take(), records, pending.stop)
            };
            let outcome = self.write(checkpoint, records);
            self.settle(outcome, stop);
            if stop {
                return;
            }
        }
    }

    /// One round: the checkpoint, then the history (only after the checkpoint, so that a
    /// crash in between finds the alerts in it), then the outbox.
    fn write(
        &mut self,
        checkpoint: Option<(Checkpoint, Durability, u64)>,
        records: Vec<HistoryRecord>,
    ) -> Result<(), String> {
        let mut failure = None;
        if let Some((checkpoint, durability, seq)) = checkpoint {
            let started = Instant::now();
            match checkpoint::save(&self.state_dir, &checkpoint, durability) {
                Ok(()) => {
                    self.shared.checkpointed_seq.store(seq, Ordering::Release);
                    let _ = self.checkpointed.send_replace(seq);
                }
                Err(error) => {
                    failure = Some(format!("{error:#}"));
                    let mut pending = self.shared.pending();
                    match pending.checkpoint.as_mut() {
                        None => pending.checkpoint = Some((checkpoint, durability, seq)),
                        // A newer one replaces it, and keeps its promise of durability.
                        Some((_, newer, _)) => {
                            if durability == Durability::Durable {
                                *newer = Durability::Durable;
                            }
                        }
                    }
                }
            }
            warn_if_slow(started, "writing the checkpoint");
        }
        if let (None, Some(last)) = (&failure, records.last().map(|record| record.seq)) {
            let started = Instant::now();
            match self.history.append(&records) {
                Ok(()) => {
                    let mut pending = self.shared.pending();
                    while pending
                        .records
                        .front()
                        .is_some_and(|record| record.seq <= last)
                    {
                        pending.records.pop_front();
                    }
                    let dropped = std::mem::take(&mut pending.dropped);
                    drop(pending);
                    if dropped > 0 {
                        tracing::error!(dropped, "alerts that waited for the state folder to take writes again were more than {MAX_UNWRITTEN_ALERTS}: the oldest are missing from the history (they were delivered)");
                    }
                    self.history_seq = last;
                }
                Err(error) => failure = Some(format!("{error:#}")),
            }
            warn_if_slow(started, "appending to the alert history");
        }
        let mut flush = lock(&self.outbox).prepare_flush();
        if !flush.is_empty() {
            let started = Instant::now();
            let written = flush.write();
            lock(&self.outbox).finish_flush(flush);
            warn_if_slow(started, "writing the outbox");
            if let Err(error) = written {
                failure.get_or_insert(format!("{error:#}"));
            }
        }
        // The checkpoint may forget an alert (its `recent_alerts`) only once both the history
        // and the outbox have it: a destination that did not take it finds it after a restart.
        let outbox_seq = lock(&self.outbox).written_seq();
        self.shared
            .appended_seq
            .store(self.history_seq.min(outbox_seq), Ordering::Release);
        match failure {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    fn settle(&mut self, outcome: Result<(), String>, stop: bool) {
        match outcome {
            Ok(()) => {
                self.retry_at = None;
                self.retry.reset();
                if self.failing.take().is_some() {
                    tracing::info!(
                        "the state folder takes writes again; what waited in memory is written"
                    );
                    let _ = self.health.send_replace(Ok(()));
                }
            }
            Err(reason) => {
                if stop {
                    tracing::error!("{reason}; stopping with alerts and state not written (they were delivered; logs are read again from the last checkpoint)");
                    return;
                }
                let retry_in = self.retry.next_delay();
                if self.failing.as_deref() != Some(reason.as_str()) {
                    tracing::error!(retry_in = ?retry_in, "{reason}; alerts are still delivered, and what could not be written waits in memory");
                    let _ = self.health.send_replace(Err(reason.clone()));
                }
                self.failing = Some(reason);
                self.retry_at = Some(Instant::now() + retry_in);
                // What failed is still pending: the outbox knows what it did not write.
                self.shared.pending().outbox_changed = true;
            }
        }
    }
}

fn warn_if_slow(started: Instant, what: &str) {
    let took = started.elapsed();
    if took > SLOW_WRITE {
        tracing::warn!(
            ?took,
            "{what} was slow (a busy or worn disk?); alerts were delivered meanwhile"
        );
    }
}

/// Alerts the last run recorded in its checkpoint but did not get into the outbox. On a
/// disk that refuses them they stay in memory, and the writer thread writes them later.
pub fn recover_into_outbox(outbox: &mut Outbox, recent: &[HistoryRecord]) {
    let last = outbox.last_seq().unwrap_or(0);
    let missing: Vec<HistoryRecord> = recent
        .iter()
        .filter(|record| record.seq > last)
        .cloned()
        .collect();
    if !missing.is_empty() {
        tracing::info!(
            count = missing.len(),
            "queueing alerts that a crash kept from the outbox"
        );
        if let Err(error) = outbox.append(&missing, SystemTime::now()) {
            tracing::warn!("{error:#}; they wait in memory and are written later");
        }
    }
}

/// Alerts the last run recorded in its checkpoint but did not get into the history; those
/// a full or failing disk refuses now are returned, for the writer thread.
pub fn recover_recent_alerts(
    history: &mut AlertHistory,
    checkpoint: &Checkpoint,
) -> Vec<HistoryRecord> {
    let last = history.last_seq().unwrap_or(0);
    let missing: Vec<HistoryRecord> = checkpoint
        .recent_alerts
        .iter()
        .filter(|record| record.seq > last)
        .cloned()
        .collect();
    if missing.is_empty() {
        return missing;
    }
    tracing::info!(
        count = missing.len(),
        "recording alerts that a crash kept from the history"
    );
    match history.append(&missing) {
        Ok(()) => Vec::new(),
        Err(error) => {
            tracing::warn!("{error:#}; they wait in memory and are written later");
            missing
        }
    }
}
