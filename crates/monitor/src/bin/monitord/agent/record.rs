//! Recording alerts and state: to the destinations and followers from memory at once, and
//! through the checkpoint to the disk on the persist thread.

use std::time::SystemTime;

use monitor_engine::Emitted;
use monitor_store::Durability;
use monitor_wire::HistoryRecord;
use tokio::time::Instant;

use super::{Agent, SEQ_RESERVE};
use crate::checkpoint::{self, Checkpoint};
use crate::clock;
use crate::persist::lock;
use crate::persist::MAX_UNWRITTEN_ALERTS;

impl Agent {
    /// Record alerts: to the destinations and followers from memory at once; then the
    /// checkpoint (so a crash cannot make them twice), the history and the outbox's file,
    /// on the persist thread.
    pub(super) fn emit(&mut self, emitted: Vec<Emitted>) {
        if emitted.is_empty() {
            return;
        }
        // Timestamps from a wall clock not set yet (a Pi before NTP) may be decades off.
        let clock_unsynchronized = clock::synchronized() == Some(false);
        let records: Vec<HistoryRecord> = emitted
            .into_iter()
            .map(|Emitted { check, mut alert }| {
                if clock_unsynchronized {
                    alert
                        .subject
                        .details
                        .fields
                        .insert(clock::CLOCK_SYNCHRONIZED_FIELD.into(), false.into());
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                tracing::info!(seq, check = %check, level = %alert.level, name = %alert.name, "alert");
                HistoryRecord { seq, check, alert }
            })
            .collect();
        let newest = records.last().map_or(0, |record| record.seq);
        lock(&self.outbox).enqueue(&records, SystemTime::now());
        self.enqueued.send_replace(newest);
        self.followers.emitted(&records);
        self.recent_alerts.extend(records.iter().cloned());
        self.submit(records, Durability::Durable);
    }

    /// Offsets that made no alert: saved within `checkpoint_interval`, since a restart
    /// that reads those lines again makes the same alerts (none).
    pub(super) fn schedule_checkpoint(&mut self) {
        let interval = self.settings.checkpoint_interval;
        self.checkpoint_due
            .get_or_insert_with(|| Instant::now() + interval);
    }

    pub(super) fn save_checkpoint(&mut self) {
        self.submit(Vec::new(), Durability::ContentOnly);
    }

    /// Hand the current checkpoint, then `records`, to the writer thread.
    pub(super) fn submit(&mut self, records: Vec<HistoryRecord>, durability: Durability) {
        self.checkpoint_due = None;
        self.new_file_unsaved = false;
        let checkpoint = self.checkpoint();
        self.persister
            .submit(checkpoint, durability, records, self.next_seq - 1);
    }

    pub(super) fn checkpoint(&mut self) -> Checkpoint {
        let appended = self.persister.appended_seq();
        self.recent_alerts.retain(|record| record.seq > appended);
        let over = self
            .recent_alerts
            .len()
            .saturating_sub(MAX_UNWRITTEN_ALERTS);
        self.recent_alerts.drain(..over);
        Checkpoint {
            positions: self.positions.clone(),
            engine: Some(self.engine.snapshot(clock::now(), self.boot_id.as_deref())),
            recent_alerts: self.recent_alerts.clone(),
            // Until the first reload hands them to the engine.
            dead_commands: self.restored.dead_commands.clone(),
            state_dir_unwritable: self.restored.state_dir_unwritable.clone(),
            next_seq: self.next_seq + if self.stopping { 0 } else { SEQ_RESERVE },
            ..Checkpoint::default()
        }
    }

    /// Before anything is delivered, a checkpoint that reserves the alert numbers this run
    /// will use: alerts go out before they are written, and a crash before the next
    /// checkpoint must not let the run after it number other alerts alike.
    pub(super) fn reserve_numbers(&mut self) {
        let checkpoint = self.checkpoint();
        if let Err(error) =
            checkpoint::save(&self.settings.state_dir, &checkpoint, Durability::Durable)
        {
            tracing::warn!("{error:#}; the writer thread tries again");
            self.persister.submit(
                checkpoint,
                Durability::Durable,
                Vec::new(),
                self.next_seq - 1,
            );
        }
    }

    pub(super) fn answer_durable_replies(&mut self) {
        let durable = self.persister.checkpointed_seq();
        self.followers.answer_durable_replies(durable);
    }
}
