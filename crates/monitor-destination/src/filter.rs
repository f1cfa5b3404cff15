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
    /// `<subsystem> <check>`) takes those checks only, and every check when empty.
    pub fn new(min_level: Level, checks: Vec<String>) -> Filter {
        Filter { min_level, checks }
    }

    pub fn wants(&self, alert: &OutgoingAlert<'_>) -> bool {
        if self.min_level == Level::Critical && alert.alert.level != Level::Critical {
            return false;
        }
        self.checks.is_empty()
            || self.checks.iter().any(|entry| {
                let mut words = entry.split_whitespace();
                let subsystem = words.next().unwrap_or_default();
                subsystem == alert.check.subsystem.as_str()
                    && words.next().is_none_or(|name| name == alert.check.name)
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
