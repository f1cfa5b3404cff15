//! `monitorctl status`: each enabled check's state, and why it is not watched when not.

use std::collections::HashMap;

use monitor_config::{LogSource, SystemdBus};
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
                .or_else(|| watching(plan, id, systemd_bus));
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

/// What a check watches, for a check without a problem.
fn watching(plan: &Plan, id: &CheckId, systemd_bus: SystemdBus) -> Option<String> {
    let log = plan.log_checks.get(id).map(|extras| match &extras.source {
        LogSource::File(path) => format!("following {}", path.display()),
        LogSource::Command(command) => format!("reading the output of @{command}"),
    });
    let bus = match systemd_bus {
        SystemdBus::System => "system",
        SystemdBus::User => "user",
    };
    let service = plan
        .services
        .iter()
        .find(|service| &service.check == id)
        .map(|service| format!("unit {} on the {bus} bus", service.unit));
    let every_unit = plan
        .failed_units
        .iter()
        .find(|watch| &watch.check == id)
        .map(|_| {
            format!("every unit on the {bus} bus that enters failed, each a subject of its own")
        });
    let sampled = plan
        .checks
        .iter()
        .find(|(check, _)| check == id)
        .and_then(|(_, kind)| kind.sampled())
        .map(|sampled| format!("sampled {}", sampled.describe_sampling()));
    log.or(service).or(every_unit).or(sampled)
}
