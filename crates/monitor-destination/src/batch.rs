//! A batch of wanted alerts delivered to one destination, and what the outbox makes of
//! the answer.
//!
//! A batch the destination refuses for good ([`Verdict::Rejected`]: 400, 413, ...) is split
//! in halves, recursively, until every alert is either delivered or refused on its own: one
//! malformed alert, or one too big for the server's body limit, never takes the others with
//! it. The alerts refused on their own are the outcome's [`Rejection`]s, for the caller to
//! keep aside (the agent's dead-letter file) and never send again.

use std::ops::Range;
use std::time::Duration;

use crate::{Destination, OutgoingAlert, Verdict};

/// The alerts a destination wants out of a run of outbox records ([`crate::Filter::select`]).
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    alerts: Vec<OutgoingAlert<'a>>,
    /// The newest record looked at, wanted or not.
    last_seq: u64,
}

/// An alert the destination refused even alone: it will never take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The alert's `seq`.
    pub seq: u64,
    /// What the destination said when it refused this alert on its own.
    pub message: String,
}

/// How far the outbox's records are done with after a delivery, in `seq`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything through `through` is done with: delivered, not wanted, or `rejected` (each
    /// refused on its own; every other alert was delivered).
    Done {
        through: u64,
        rejected: Vec<Rejection>,
    },
    /// Records through `through` (none when `None`) were taken or `rejected`; keep the rest
    /// and try again after `after`.
    Retry {
        through: Option<u64>,
        after: Duration,
        message: String,
        rejected: Vec<Rejection>,
    },
    /// The destination is gone: stop delivering to it (nothing is done with, not even what a
    /// split had already found refused: it is found again once the destination is back).
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
    /// records are done with. A refused run of alerts is split in halves until each part is
    /// delivered or is one alert refused on its own; parts go oldest first, so what is done
    /// with is always a prefix of the batch.
    pub async fn deliver(&self, destination: &mut dyn Destination, device: &str) -> Outcome {
        let mut rejected = Vec::new();
        // Parts still to send, the next one last.
        let mut parts: Vec<Range<usize>> = Vec::new();
        if !self.alerts.is_empty() {
            parts.push(0..self.alerts.len());
        }
        while let Some(part) = parts.pop() {
            let alerts = &self.alerts[part.clone()];
            match destination.deliver(device, alerts).await {
                Verdict::Delivered => {}
                Verdict::Retry {
                    delivered,
                    after,
                    message,
                } => {
                    let done = part.start + delivered.min(alerts.len());
                    return Outcome::Retry {
                        through: done.checked_sub(1).map(|index| self.alerts[index].seq),
                        after,
                        message,
                        rejected,
                    };
                }
                Verdict::Rejected { delivered, message } => {
                    // What was taken is done with; the refused rest is split, or is the
                    // alert at fault.
                    let refused = part.start + delivered.min(alerts.len() - 1)..part.end;
                    if refused.len() == 1 {
                        rejected.push(Rejection {
                            seq: self.alerts[refused.start].seq,
                            message,
                        });
                    } else {
                        let middle = refused.start + refused.len() / 2;
                        parts.push(middle..refused.end);
                        parts.push(refused.start..middle);
                    }
                }
                Verdict::Gone { message } => return Outcome::Disable { message },
            }
        }
        Outcome::Done {
            through: self.last_seq,
            rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::UNIX_EPOCH;

    use monitor_wire::{
        Alert, CheckId, Details, HistoryRecord, Level, Subject, Subsystem, Timestamp,
    };

    use super::*;
    use crate::{Filter, VerdictFuture};

    /// Refuses any request holding an alert whose name contains `bad`, and any request of
    /// more than `max_alerts` alerts (a body limit), unless a scripted verdict comes first.
    /// Records every request's `seq`s.
    struct Picky {
        max_alerts: usize,
        requests: Vec<Vec<u64>>,
        delivered: Vec<u64>,
        scripted: VecDeque<Verdict>,
    }

    impl Picky {
        fn new(max_alerts: usize) -> Picky {
            Picky {
                max_alerts,
                requests: Vec::new(),
                delivered: Vec::new(),
                scripted: VecDeque::new(),
            }
        }
    }

    impl Destination for Picky {
        fn batch_size(&self) -> usize {
            16
        }

        fn deliver<'a>(
            &'a mut self,
            _device: &'a str,
            alerts: &'a [OutgoingAlert<'a>],
        ) -> VerdictFuture<'a> {
            self.requests
                .push(alerts.iter().map(|alert| alert.seq).collect());
            let verdict = if let Some(verdict) = self.scripted.pop_front() {
                verdict
            } else if alerts.len() > self.max_alerts {
                Verdict::Rejected {
                    delivered: 0,
                    message: "413 too large".into(),
                }
            } else if let Some(bad) = alerts.iter().find(|alert| alert.alert.name.contains("bad")) {
                Verdict::Rejected {
                    delivered: 0,
                    message: format!("400 alert {} is invalid", bad.seq),
                }
            } else {
                self.delivered.extend(alerts.iter().map(|alert| alert.seq));
                Verdict::Delivered
            };
            Box::pin(std::future::ready(verdict))
        }
    }

    fn records(names: &[&str]) -> Vec<HistoryRecord> {
        names
            .iter()
            .enumerate()
            .map(|(index, name)| HistoryRecord {
                seq: index as u64 + 1,
                check: CheckId::new(Subsystem::Log, "app"),
                alert: Alert {
                    name: (*name).to_owned(),
                    level: Level::Critical,
                    timestamp: Timestamp(UNIX_EPOCH),
                    subject: Subject {
                        name: "app".into(),
                        kind: "log".into(),
                        status: "LOGCONTAINS".into(),
                        details: Details::default(),
                    },
                },
            })
            .collect()
    }

    fn deliver(destination: &mut Picky, records: &[HistoryRecord]) -> Outcome {
        let batch = Filter::everything().select(records);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(batch.deliver(destination, "device"))
    }

    #[test]
    fn one_bad_alert_is_rejected_alone_and_every_other_is_delivered() {
        let mut picky = Picky::new(16);
        let records = records(&["a", "b", "c", "bad d", "e", "f", "g"]);
        let outcome = deliver(&mut picky, &records);
        assert_eq!(
            outcome,
            Outcome::Done {
                through: 7,
                rejected: vec![Rejection {
                    seq: 4,
                    message: "400 alert 4 is invalid".into()
                }]
            }
        );
        assert_eq!(picky.delivered, vec![1, 2, 3, 5, 6, 7]);
        // Halves, oldest first: [1..7] [1..3] [4..7] [4,5] [4] [5] [6,7].
        assert_eq!(picky.requests.len(), 7, "{:?}", picky.requests);
    }

    #[test]
    fn a_batch_over_the_body_limit_is_split_until_it_fits() {
        let mut picky = Picky::new(3);
        let records = records(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]);
        let outcome = deliver(&mut picky, &records);
        assert_eq!(
            outcome,
            Outcome::Done {
                through: 10,
                rejected: vec![]
            }
        );
        assert_eq!(picky.delivered, (1..=10).collect::<Vec<_>>(), "in order");
    }

    #[test]
    fn a_single_alert_over_the_limit_is_rejected_alone() {
        let mut picky = Picky::new(0);
        let outcome = deliver(&mut picky, &records(&["a"]));
        assert_eq!(
            outcome,
            Outcome::Done {
                through: 1,
                rejected: vec![Rejection {
                    seq: 1,
                    message: "413 too large".into()
                }]
            }
        );
    }

    #[test]
    fn a_retry_during_a_split_keeps_what_was_settled_before_it() {
        let mut picky = Picky::new(16);
        let records = records(&["bad a", "b", "c", "d"]);
        // [1..4] refused, [1,2] refused, [1] refused alone, [2] delivered, then [3,4]: retry.
        picky.scripted = VecDeque::from(vec![
            Verdict::Rejected {
                delivered: 0,
                message: "400".into(),
            },
            Verdict::Rejected {
                delivered: 0,
                message: "400".into(),
            },
            Verdict::Rejected {
                delivered: 0,
                message: "400 alone".into(),
            },
            Verdict::Delivered,
            Verdict::Retry {
                delivered: 0,
                after: Duration::from_secs(5),
                message: "503".into(),
            },
        ]);
        let outcome = deliver(&mut picky, &records);
        assert_eq!(
            outcome,
            Outcome::Retry {
                through: Some(2),
                after: Duration::from_secs(5),
                message: "503".into(),
                rejected: vec![Rejection {
                    seq: 1,
                    message: "400 alone".into()
                }]
            }
        );
    }

    #[test]
    fn what_was_taken_before_a_refusal_is_not_sent_again() {
        let mut picky = Picky::new(16);
        let records = records(&["a", "b", "c", "bad d", "e"]);
        // Discord posts a batch as several messages: the first two alerts' went through.
        picky.scripted = VecDeque::from(vec![Verdict::Rejected {
            delivered: 2,
            message: "400".into(),
        }]);
        let outcome = deliver(&mut picky, &records);
        assert_eq!(
            outcome,
            Outcome::Done {
                through: 5,
                rejected: vec![Rejection {
                    seq: 4,
                    message: "400 alert 4 is invalid".into()
                }]
            }
        );
        assert!(
            picky.requests[1..]
                .iter()
                .all(|request| !request.contains(&1) && !request.contains(&2)),
            "{:?}",
            picky.requests
        );
        assert_eq!(picky.delivered, vec![3, 5]);
    }
}
