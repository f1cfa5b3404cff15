//! A batch of wanted alerts delivered to one destination, and what the outbox makes of
//! the answer.

use std::time::Duration;

use crate::{Destination, OutgoingAlert, Verdict};

/// The alerts a destination wants out of a run of outbox records ([`crate::Filter::select`]).
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    alerts: Vec<OutgoingAlert<'a>>,
    /// The newest record looked at, wanted or not.
    last_seq: u64,
}

/// How far the outbox's records are done with after a delivery, in `seq`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything through `through` is done with: delivered, or not wanted.
    Done { through: u64 },
    /// The destination refused them for good: everything through `through` is to be
    /// dropped (and said so).
    Dropped { through: u64, message: String },
    /// Records through `through` (none when `None`) were taken; keep the rest and try again
    /// after `after`.
    Retry {
        through: Option<u64>,
        after: Duration,
        message: String,
    },
    /// The destination is gone: stop delivering to it.
    Disable { message: String },
}

impl<'a> Batch<'a> {
    pub(crate) fn new(alerts: Vec<OutgoingAlert<'a>>, last_seq: u64) -> Batch<'a> {
        Batch { alerts, last_seq }
    }

    /// Nothing in it is wanted: [`Batch::deliver`] sends nothing.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    pub fn alerts(&self) -> &[OutgoingAlert<'a>] {
        &self.alerts
    }

    /// Delivers the wanted alerts (nothing when there are none) and says how far the
    /// records are done with.
    pub async fn deliver(&self, destination: &mut dyn Destination, device: &str) -> Outcome {
        if self.alerts.is_empty() {
            return Outcome::Done {
                through: self.last_seq,
            };
        }
        match destination.deliver(device, &self.alerts).await {
            Verdict::Delivered => Outcome::Done {
                through: self.last_seq,
            },
            Verdict::Retry {
                delivered,
                after,
                message,
            } => Outcome::Retry {
                through: delivered
                    .min(self.alerts.len())
                    .checked_sub(1)
                    .map(|index| self.alerts[index].seq),
                after,
                message,
            },
            Verdict::Rejected { message } => Outcome::Dropped {
                through: self.last_seq,
                message,
            },
            Verdict::Gone { message } => Outcome::Disable { message },
        }
    }
}
