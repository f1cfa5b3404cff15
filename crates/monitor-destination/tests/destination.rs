//! The filter and the way a verdict becomes an outbox outcome, through a destination that
//! answers what it is told.

use std::collections::VecDeque;
use std::time::{Duration, UNIX_EPOCH};

use monitor_destination::{
    Destination, Filter, Outcome, OutgoingAlert, Rejection, Verdict, VerdictFuture,
};
use monitor_wire::{Alert, CheckId, Details, HistoryRecord, Level, Subject, Subsystem, Timestamp};

fn record(seq: u64, subsystem: Subsystem, check: &str, level: Level) -> HistoryRecord {
    HistoryRecord {
        seq,
        check: CheckId::new(subsystem, check),
        alert: Alert {
            name: format!("alert {seq}"),
            level,
            timestamp: Timestamp(UNIX_EPOCH + Duration::from_secs(seq)),
            subject: Subject {
                name: check.into(),
                kind: "log".into(),
                status: "LOGCONTAINS".into(),
                details: Details::default(),
            },
        },
    }
}

/// Answers each delivery with the next scripted verdict and keeps the seqs it was given.
struct Scripted {
    verdicts: VecDeque<Verdict>,
    received: Vec<Vec<u64>>,
}

impl Destination for Scripted {
    fn batch_size(&self) -> usize {
        10
    }

    fn deliver<'a>(
        &'a mut self,
        _device: &'a str,
        alerts: &'a [OutgoingAlert<'a>],
    ) -> VerdictFuture<'a> {
        self.received
            .push(alerts.iter().map(|alert| alert.seq).collect());
        let verdict = self.verdicts.pop_front().unwrap_or(Verdict::Delivered);
        Box::pin(async move { verdict })
    }
}

fn scripted(verdicts: impl IntoIterator<Item = Verdict>) -> Scripted {
    Scripted {
        verdicts: verdicts.into_iter().collect(),
        received: Vec::new(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn the_filter_takes_levels_and_checks_as_delivery_settings_name_them() {
    let records = [
        record(1, Subsystem::Log, "app", Level::Critical),
        record(2, Subsystem::Log, "app", Level::Ok),
        record(3, Subsystem::Service, "nginx", Level::Critical),
        record(4, Subsystem::Log, "other", Level::Critical),
    ];
    let seqs = |filter: &Filter| -> Vec<u64> {
        filter
            .select(&records)
            .alerts()
            .iter()
            .map(|alert| alert.seq)
            .collect()
    };
    assert_eq!(seqs(&Filter::everything()), [1, 2, 3, 4]);
    assert_eq!(seqs(&Filter::new(Level::Critical, vec![])), [1, 3, 4]);
    assert_eq!(seqs(&Filter::new(Level::Ok, vec!["log".into()])), [1, 2, 4]);
    assert_eq!(
        seqs(&Filter::new(
            Level::Ok,
            vec!["log app".into(), "service".into()]
        )),
        [1, 2, 3]
    );
    assert_eq!(
        seqs(&Filter::new(Level::Critical, vec!["log  app".into()])),
        [1]
    );
    assert!(Filter::new(Level::Ok, vec!["dbus".into()])
        .select(&records)
        .is_empty());
}

#[test]
fn an_alert_of_no_known_check_is_taken_only_by_a_filter_naming_no_checks() {
    let record = record(1, Subsystem::Log, "app", Level::Critical);
    let unknown = OutgoingAlert {
        check: None,
        ..OutgoingAlert::from(&record)
    };
    assert!(Filter::everything().wants(&unknown));
    assert!(Filter::new(Level::Critical, vec![]).wants(&unknown));
    assert!(!Filter::new(Level::Ok, vec!["log".into()]).wants(&unknown));
    assert!(Filter::new(Level::Ok, vec!["log".into()]).wants(&OutgoingAlert::from(&record)));
}

#[test]
fn verdicts_become_how_far_the_records_are_done_with() {
    let records = [
        record(5, Subsystem::Log, "app", Level::Critical),
        record(6, Subsystem::Log, "other", Level::Critical),
        record(7, Subsystem::Log, "app", Level::Ok),
        record(8, Subsystem::Log, "other", Level::Ok),
    ];
    let filter = Filter::new(Level::Ok, vec!["log app".into()]);
    let batch = filter.select(&records);
    let retry = |delivered| Verdict::Retry {
        delivered,
        after: Duration::from_secs(3),
        message: "later".into(),
    };
    let mut destination = scripted([
        Verdict::Delivered,
        retry(0),
        retry(1),
        // The pair is refused: it is split, 5 is refused alone, 7 is taken.
        Verdict::Rejected {
            delivered: 0,
            message: "never".into(),
        },
        Verdict::Rejected {
            delivered: 0,
            message: "never 5".into(),
        },
        Verdict::Delivered,
        Verdict::Gone {
            message: "deleted".into(),
        },
    ]);
    let outcomes: Vec<Outcome> = runtime().block_on(async {
        let mut outcomes = Vec::new();
        for _ in 0..5 {
            outcomes.push(batch.deliver(&mut destination, "device").await);
        }
        outcomes
    });
    let mut expected = vec![vec![5, 7]; 4];
    expected.extend([vec![5], vec![7], vec![5, 7]]);
    assert_eq!(destination.received, expected);
    assert_eq!(
        outcomes,
        [
            Outcome::Done {
                through: 8,
                rejected: vec![]
            },
            Outcome::Retry {
                through: None,
                after: Duration::from_secs(3),
                message: "later".into(),
                rejected: vec![]
            },
            Outcome::Retry {
                through: Some(5),
                after: Duration::from_secs(3),
                message: "later".into(),
                rejected: vec![]
            },
            Outcome::Done {
                through: 8,
                rejected: vec![Rejection {
                    seq: 5,
                    message: "never 5".into()
                }]
            },
            Outcome::Disable {
                message: "deleted".into()
            },
        ]
    );
}

#[test]
fn a_batch_nothing_in_which_is_wanted_is_done_without_a_delivery() {
    let records = [record(9, Subsystem::Log, "app", Level::Ok)];
    let batch = Filter::new(Level::Critical, vec![]).select(&records);
    let mut destination = scripted([]);
    let outcome = runtime().block_on(batch.deliver(&mut destination, "device"));
    assert_eq!(
        outcome,
        Outcome::Done {
            through: 9,
            rejected: vec![]
        }
    );
    assert!(destination.received.is_empty());
}
