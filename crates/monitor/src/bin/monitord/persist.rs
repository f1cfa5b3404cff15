//! Writing to disk off the agent's loop.
//!
//! fsync on an SD card (or a busy disk) can take seconds; the loop must not stall its
//! timers for that. The loop hands over the newest checkpoint and the alerts to append; a
//! writer thread does them in that order (checkpoint first, so a crash between the two
//! finds the alerts in the checkpoint). Only the newest checkpoint matters, so pending ones
//! are coalesced; alerts are never dropped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use monitor_store::AlertHistory;
use tokio::sync::watch;

use crate::delivery::{lock, SharedOutbox};
use monitor_wire::HistoryRecord;

use crate::checkpoint::{self, Checkpoint};

/// Writes slower than this are worth a warning: alerts reach the history that much later.
const SLOW_WRITE: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Default)]
struct Pending {
    checkpoint: Option<Checkpoint>,
    records: Vec<HistoryRecord>,
    stop: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// The newest `seq` known to be durable in the history.
    appended_seq: AtomicU64,
}

pub struct Persister {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Persister {
    /// `outbox` gets every alert after the history; `appended` then wakes the deliverers.
    pub fn start(
        state_dir: PathBuf,
        mut history: AlertHistory,
        outbox: SharedOutbox,
        appended: watch::Sender<u64>,
    ) -> anyhow::Result<Persister> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            appended_seq: AtomicU64::new(history.last_seq().unwrap_or(0)),
        });
        let thread = std::thread::Builder::new().name("persist".into()).spawn({
            let shared = shared.clone();
            let appended_signal = appended;
            move || loop {
                let (checkpoint, records, stop) = {
                    let mut pending = shared.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    while pending.checkpoint.is_none() && pending.records.is_empty() && !pending.stop {
                        pending = shared.wake.wait(pending).unwrap_or_else(|poisoned| poisoned.into_inner());
                    }
                    (pending.checkpoint.take(), std::mem::take(&mut pending.records), pending.stop)
                };
                let started = std::time::Instant::now();
                if let Some(checkpoint) = checkpoint {
                    if let Err(error) = checkpoint::save(&state_dir, &checkpoint) {
                        tracing::error!("{error:#}");
                    }
                }
                let saved = started.elapsed();
                if saved > SLOW_WRITE {
                    tracing::warn!(took = ?saved, "writing the checkpoint was slow (a busy or worn disk?)");
                }
                if let Some(last) = records.last().map(|record| record.seq) {
                    let started = std::time::Instant::now();
                    let appended = history.append(&records);
                    if started.elapsed() > SLOW_WRITE {
                        tracing::warn!(took = ?started.elapsed(), "appending to the alert history was slow (a busy or worn disk?)");
                    }
                    let into_outbox = lock(&outbox).append(&records, std::time::SystemTime::now());
                    match (appended, into_outbox) {
                        (Ok(()), Ok(())) => {
                            // Only now may the checkpoint forget them: both have them.
                            shared.appended_seq.store(last, Ordering::Release);
                            appended_signal.send_replace(last);
                        }
                        (Err(error), _) | (_, Err(error)) => tracing::error!("{error:#}; these alerts stay in the checkpoint and are recorded at the next start"),
                    }
                }
                if stop {
                    let pending = shared.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    if pending.checkpoint.is_none() && pending.records.is_empty() {
                        return;
                    }
                }
            }
        })?;
        Ok(Persister {
            shared,
            thread: Some(thread),
        })
    }

    /// The newest alert `seq` that is durable in the history.
    pub fn appended_seq(&self) -> u64 {
        self.shared.appended_seq.load(Ordering::Acquire)
    }

    /// Write `checkpoint` (replacing one not written yet), then append `records`.
    pub fn submit(&self, checkpoint: Checkpoint, records: Vec<HistoryRecord>) {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.checkpoint = Some(checkpoint);
        pending.records.extend(records);
        drop(pending);
        self.shared.wake.notify_one();
    }

    /// Write what is pending and stop the writer.
    pub fn finish(mut self) {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
