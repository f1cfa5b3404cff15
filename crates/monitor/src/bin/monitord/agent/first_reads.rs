//! Ready when every check is known: systemd's `READY=1` and the first answers on the
//! control socket wait until each check enabled at start had its first read, so a
//! `monitorctl status` right after start shows a state for every check.
//!
//! A check's first read is what its source first says about it: a log check's when the log
//! watcher read every file to its end, an `@command` check's when its command started, a
//! D-Bus check's when every match rule is registered, a check on every unit's when systemd
//! is subscribed to; a service, container or sampled check's when its own state (or its
//! problem: no such unit, no such sensor) arrives. A source that cannot reach what it
//! watches yet (at boot the bus may come before systemd takes its name on it; measured: the
//! first try failed that way, the retry 100 ms later read every unit) and a source that
//! hangs (a bus that never answers, a plugin that runs on, a stalled file system) hold it
//! up for [`FIRST_READ_DEADLINE`] at most; then the agent is ready all the same, and those
//! checks say what they still wait for (the source's outage, when it reported one).

use std::collections::HashMap;
use std::time::Duration;

use monitor_source::SourceKind;
use monitor_wire::CheckId;
use tokio::time::Instant;

use crate::plan::Plan;

/// The longest the agent waits at start for the first read of every check before it says
/// it is ready: well within systemd's start timeout (90 s by default), longer than any
/// read of a healthy device takes (tens of milliseconds), and shorter than a plugin's
/// default timeout (10 s), so one hanging plugin does not hold up the agent.
pub(crate) const FIRST_READ_DEADLINE: Duration = Duration::from_secs(5);

/// How a check's first read is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadBy {
    /// Its own state or problem (a unit, a container, a sample).
    ItsOwnState,
    /// Its source's `CaughtUp` or `Connected`, for every check of the source at once.
    ItsSource,
}

pub(crate) struct FirstReads {
    /// Checks whose first read has not come, with their source; filled at the first
    /// plan, and emptied as the reads come (also after the agent is ready, for `status`).
    waiting: HashMap<CheckId, (SourceKind, ReadBy)>,
    /// Whether the checks enabled at start are known.
    planned: bool,
    /// Sources that could not reach what they watch, and why, until they connect.
    outages: HashMap<SourceKind, String>,
    /// When the agent is ready regardless; `None` once it is ready.
    deadline: Option<Instant>,
}

impl FirstReads {
    pub(crate) fn new() -> FirstReads {
        FirstReads {
            waiting: HashMap::new(),
            planned: false,
            outages: HashMap::new(),
            deadline: Some(Instant::now() + FIRST_READ_DEADLINE),
        }
    }

    /// The checks of `plan`: at the first plan, every watched check waits for its first
    /// read; later plans only drop the checks that are no longer enabled.
    pub(crate) fn plan(&mut self, plan: &Plan) {
        if self.planned {
            let enabled: std::collections::HashSet<&CheckId> = plan.enabled.iter().collect();
            self.waiting.retain(|check, _| enabled.contains(check));
            return;
        }
        self.planned = true;
        let together = |source| (source, ReadBy::ItsSource);
        let own = |source| (source, ReadBy::ItsOwnState);
        let mut waiting = Vec::new();
        for pattern in plan.log_files.values().flatten() {
            waiting.push((pattern.check.clone(), together(SourceKind::LogFiles)));
        }
        for pattern in plan.commands.values().flatten() {
            waiting.push((pattern.check.clone(), together(SourceKind::Commands)));
        }
        for signal in &plan.signals {
            waiting.push((signal.check.clone(), together(SourceKind::Signals)));
        }
        for watch in &plan.failed_units {
            waiting.push((watch.check.clone(), together(SourceKind::Units)));
        }
        for service in &plan.services {
            waiting.push((service.check.clone(), own(SourceKind::Units)));
        }
        for container in &plan.containers {
            waiting.push((container.check.clone(), own(SourceKind::Containers)));
        }
        for (check, kind) in &plan.checks {
            if kind.sampled().is_some() {
                waiting.push((check.clone(), own(SourceKind::Sampled)));
            }
        }
        self.waiting = waiting
            .into_iter()
            .filter(|(check, _)| !plan.unwatched.contains_key(check))
            .collect();
    }

    /// `check`'s source said something about it: a state, a match, a problem.
    pub(crate) fn read(&mut self, check: &CheckId) {
        self.waiting.remove(check);
    }

    /// `source` caught up or connected: the checks it reads all together are read.
    pub(crate) fn source_read(&mut self, source: SourceKind) {
        self.outages.remove(&source);
        self.waiting
            .retain(|_, waiting| *waiting != (source, ReadBy::ItsSource));
    }

    /// `source` could not reach what it watches (it retries): why its checks are unread.
    pub(crate) fn outage(&mut self, source: SourceKind, message: String) {
        self.outages.insert(source, message);
    }

    /// Every check had its first read.
    pub(crate) fn complete(&self) -> bool {
        self.waiting.is_empty()
    }

    /// How many checks still wait for their first read.
    pub(crate) fn unread(&self) -> usize {
        self.waiting.len()
    }

    /// When the agent is ready regardless, while it is not.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The agent is ready: no deadline any more.
    pub(crate) fn ready(&mut self) {
        self.deadline = None;
    }

    /// Why `check` has no state yet, for `status`; `None` once it had its first read.
    pub(crate) fn why_unread(&self, check: &CheckId) -> Option<String> {
        let (source, _) = self.waiting.get(check)?;
        if let Some(outage) = self.outages.get(source) {
            return Some(format!("not read yet: {outage}"));
        }
        let waiting_for = match source {
            SourceKind::LogFiles => {
                "the log watcher to read its file to the end (a stalled file system?)"
            }
            SourceKind::Commands => "its command to start",
            SourceKind::Units => "systemd to answer on the bus",
            SourceKind::Signals => "the D-Bus bus to register its match rule",
            SourceKind::Containers => "the container engine to answer",
            SourceKind::Sampled => "its first sample, still running",
        };
        Some(format!("not read yet: waiting for {waiting_for}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_wire::Subsystem;

    fn check(name: &str) -> CheckId {
        CheckId::new(Subsystem::Service, name)
    }

    fn reads(waiting: &[(&str, SourceKind, ReadBy)]) -> FirstReads {
        let mut reads = FirstReads::new();
        reads.planned = true;
        reads.waiting = waiting
            .iter()
            .map(|(name, source, by)| (check(name), (*source, *by)))
            .collect();
        reads
    }

    #[test]
    fn a_source_reads_its_shared_checks_and_not_those_with_a_state_of_their_own() {
        let mut first = reads(&[
            ("every", SourceKind::Units, ReadBy::ItsSource),
            ("one", SourceKind::Units, ReadBy::ItsOwnState),
        ]);
        first.source_read(SourceKind::Units);
        assert_eq!(first.why_unread(&check("every")), None);
        assert!(!first.complete());
        first.read(&check("one"));
        assert!(first.complete());
    }

    #[test]
    fn an_unreachable_source_is_why_its_checks_are_unread() {
        let mut first = reads(&[("one", SourceKind::Units, ReadBy::ItsOwnState)]);
        assert_eq!(
            first.why_unread(&check("one")).as_deref(),
            Some("not read yet: waiting for systemd to answer on the bus")
        );
        // It retries: the check still waits, and says why.
        first.outage(SourceKind::Units, "no bus here".into());
        assert!(!first.complete());
        assert_eq!(
            first.why_unread(&check("one")).as_deref(),
            Some("not read yet: no bus here")
        );
        // Connected: its states follow, the check waits for its own.
        first.source_read(SourceKind::Units);
        assert_eq!(
            first.why_unread(&check("one")).as_deref(),
            Some("not read yet: waiting for systemd to answer on the bus")
        );
        first.read(&check("one"));
        assert!(first.complete());
    }
}
