//! Which alerts a destination takes, decided once by the caller for every destination.

use monitor_wire::{HistoryRecord, Level};

use crate::batch::Batch;
use crate::OutgoingAlert;

/// A destination's `min_level` and `checks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    min_level: Level,
    checks: Vec<String>,
}

impl Filter {
    /// Every alert of every check.
    pub fn everything() -> Filter {
        Filter::new(Level::Ok, Vec::new())
    }

    /// `min_level` CRITICAL takes CRITICALs only; `checks` (each `<subsystem>` or
    /// `<subsystem> <check>`) takes those checks only, and every check when empty (an alert
    /// whose check is not known matches no entry).
    pub fn new(min_level: Level, checks: Vec<String>) -> Filter {
        Filter { min_level, checks }
    }

    pub fn wants(&self, alert: &OutgoingAlert<'_>) -> bool {
        if self.min_level == Level::Critical && alert.alert.level != Level::Critical {
            return false;
        }
        if self.checks.is_empty() {
            return true;
        }
        let Some(check) = alert.check else {
            return false;
        };
        self.checks.iter().any(|entry| {
            let mut words = entry.split_whitespace();
            let subsystem = words.next().unwrap_or_default();
            subsystem == check.subsystem.as_str()
                && words.next().is_none_or(|name| name == check.name)
        })
    }

    /// The alerts of `records` (oldest first, as the outbox gives them) this destination
    /// takes, remembering how far the records went.
    pub fn select<'a>(&self, records: &'a [HistoryRecord]) -> Batch<'a> {
        let alerts = records
            .iter()
            .map(OutgoingAlert::from)
            .filter(|alert| self.wants(alert))
            .collect();
        Batch::new(alerts, records.last().map_or(0, |record| record.seq))
    }
}
