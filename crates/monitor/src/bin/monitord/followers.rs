//! `monitorctl alerts --follow` (a long poll answered from memory as soon as an alert is
//! made), and answers that wait until what they did is in a written checkpoint.

use std::collections::VecDeque;
use std::time::Duration;

use monitor_wire::control::Response;
use monitor_wire::HistoryRecord;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How many of the newest alerts stay in memory for `monitorctl alerts --follow`.
const RECENT_IN_MEMORY: usize = 1000;
/// A follower with no news is answered (empty) after this long, and asks again.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);
/// At most this many followers wait at once.
const MAX_FOLLOWERS: usize = 64;
/// A clear is answered once durable, or after this long on a stalled disk.
const DURABLE_REPLY_WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Followers {
    /// The newest alerts, for `monitorctl alerts --follow` before the disk has them.
    emitted_recently: VecDeque<HistoryRecord>,
    /// `Alerts` requests waiting for an alert newer than their `seq`, until their deadline.
    waiting: Vec<(u64, Instant, oneshot::Sender<Response>)>,
    /// Answers that wait until a checkpoint with alerts up to this `seq` is written.
    durable_replies: Vec<(u64, Instant, oneshot::Sender<Response>, Response)>,
}

impl Followers {
    /// Alerts were made: keep them, and answer whoever waits for them.
    pub fn emitted(&mut self, records: &[HistoryRecord]) {
        self.emitted_recently.extend(records.iter().cloned());
        let over = self.emitted_recently.len().saturating_sub(RECENT_IN_MEMORY);
        self.emitted_recently.drain(..over);
        self.answer_followers();
    }

    pub fn follow(&mut self, after: u64, wait: bool, reply: oneshot::Sender<Response>) {
        if !wait {
            let records = self.alerts_after(after);
            let _ = reply.send(Response::Alerts { records });
            return;
        }
        self.waiting.retain(|(_, _, reply)| !reply.is_closed());
        if self.waiting.len() >= MAX_FOLLOWERS {
            let _ = reply.send(Response::Error {
                message: format!("more than {MAX_FOLLOWERS} clients follow the alerts; stop some `monitorctl alerts --follow`"),
            });
            return;
        }
        self.waiting
            .push((after, Instant::now() + FOLLOW_WAIT, reply));
        self.answer_followers();
    }

    /// Answer the followers that have news, and those that waited long enough (empty).
    pub fn answer_followers(&mut self) {
        let now = Instant::now();
        let newest = self.emitted_recently.back().map_or(0, |record| record.seq);
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(after, deadline, _)| newest > *after || *deadline <= now);
        self.waiting = waiting;
        for (after, _, reply) in ready {
            let records = self.alerts_after(after);
            let _ = reply.send(Response::Alerts { records });
        }
    }

    /// The alerts in memory newer than `after`.
    fn alerts_after(&self, after: u64) -> Vec<HistoryRecord> {
        self.emitted_recently
            .iter()
            .filter(|record| record.seq > after)
            .cloned()
            .collect()
    }

    pub fn followers_due(&self) -> Option<Instant> {
        self.waiting.iter().map(|(_, deadline, _)| *deadline).min()
    }

    /// Answer with `response` once a checkpoint holds alerts up to `seq`, or after a few
    /// seconds on a stalled disk.
    pub fn reply_when_durable(
        &mut self,
        seq: u64,
        reply: oneshot::Sender<Response>,
        response: Response,
    ) {
        let deadline = Instant::now() + DURABLE_REPLY_WAIT;
        self.durable_replies.push((seq, deadline, reply, response));
    }

    /// Answer the requests whose alerts are in a written checkpoint (up to `durable`), or
    /// that waited long enough.
    pub fn answer_durable_replies(&mut self, durable: u64) {
        let now = Instant::now();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.durable_replies)
            .into_iter()
            .partition(|(seq, deadline, _, _)| *seq <= durable || *deadline <= now);
        self.durable_replies = waiting;
        for (_, _, reply, response) in ready {
            let _ = reply.send(response);
        }
    }

    pub fn durable_replies_due(&self) -> Option<Instant> {
        self.durable_replies
            .iter()
            .map(|(_, deadline, _, _)| *deadline)
            .min()
    }
}
