//! `monitorctl status`: each enabled check's state, and why it is not watched when not.

use std::collections::{HashMap, HashSet};

use monitor_config::{CheckKind, LogSource, SystemdBus};
use monitor_engine::Engine;
use monitor_wire::control::{CheckState, CheckStatus};
use monitor_wire::{CheckId, Timestamp};

use crate::agent::first_reads::FirstReads;
use crate::clock;
use crate::plan::Plan;

/// Every enabled check's status; `source_problems` are the checks whose source cannot be
/// watched, and why; `not_here` those whose thing this device lacks (and may);
/// `first_reads` those whose source has not read them yet (shown unknown, with why).
pub fn check_statuses(
    plan: &Plan,
    engine: &Engine,
    source_problems: &HashMap<CheckId, String>,
    not_here: &HashMap<CheckId, String>,
    first_reads: &FirstReads,
    systemd_bus: SystemdBus,
) -> Vec<CheckStatus> {
    let now = clock::now();
    let watched = Watched::of(plan, systemd_bus);
    plan.enabled
        .iter()
        .map(|id| {
            let view = engine.view(id, now);
            let unwatched = plan.unwatched.get(id);
            let problem = source_problems.get(id);
            // A state kept from the last run (or a pattern check's OK) is not this run's
            // reading: unknown until the check's first read.
            let unread = first_reads.why_unread(id);
            let state = match (&view, unwatched, problem) {
                (_, Some(_), _) => CheckState::Unknown,
                (_, None, Some(_)) => CheckState::Error,
                _ if unread.is_some() => CheckState::Unknown,
                (Some(view), None, None) => view.state,
                (None, None, None) => CheckState::Unknown,
            };
            let absent = not_here.get(id).map(|message| {
                format!("not on this device, ignored (if_unavailable: ignore): {message}")
            });
            let detail = unwatched
                .or(problem)
                .cloned()
                .or(absent)
                .or(unread)
                .or_else(|| watched.describe(id));
            CheckStatus {
                check: id.clone(),
                state,
                since: view.as_ref().and_then(|view| view.since).map(Timestamp),
                expires: view.as_ref().and_then(|view| view.expires).map(Timestamp),
                detail,
            }
        })
        .collect()
}

/// What each check watches, looked up by check: one status answer lists every check, so a
/// search through the plan's lists for each one would cost the square of their number.
struct Watched<'a> {
    plan: &'a Plan,
    bus: &'static str,
    units: HashMap<&'a CheckId, &'a str>,
    every_unit: HashSet<&'a CheckId>,
    kinds: HashMap<&'a CheckId, &'a CheckKind>,
}

impl<'a> Watched<'a> {
    fn of(plan: &'a Plan, systemd_bus: SystemdBus) -> Watched<'a> {
        Watched {
            plan,
            bus: match systemd_bus {
                SystemdBus::System => "system",
                SystemdBus::User => "user",
            },
            units: plan
                .services
                .iter()
                .map(|service| (&service.check, service.unit.as_str()))
                .collect(),
            every_unit: plan.failed_units.iter().map(|watch| &watch.check).collect(),
            kinds: plan
                .checks
                .iter()
                .map(|(check, kind)| (check, kind))
                .collect(),
        }
    }

    /// What `id` watches, for a check without a problem.
    fn describe(&self, id: &CheckId) -> Option<String> {
        let bus = self.bus;
        let log = self
            .plan
            .log_checks
            .get(id)
            .map(|extras| match &extras.source {
                LogSource::File(path) => format!("following {}", path.display()),
                LogSource::Command(command) => format!("reading the output of @{command}"),
            });
        let service = self
            .units
            .get(id)
            .map(|unit| format!("unit {unit} on the {bus} bus"));
        let every_unit = self.every_unit.contains(id).then(|| {
            format!("every unit on the {bus} bus that enters failed, each a subject of its own")
        });
        let sampled = self
            .kinds
            .get(id)
            .and_then(|kind| kind.sampled())
            .map(|sampled| format!("sampled {}", sampled.describe_sampling()));
        log.or(service).or(every_unit).or(sampled)
    }
}
