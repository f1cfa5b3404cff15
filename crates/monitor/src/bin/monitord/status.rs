//! `monitorctl status`: each enabled check's state, and why it is not watched when not.

use std::collections::HashMap;

use monitor_config::{LogSource, SystemdBus};
use monitor_engine::Engine;
use monitor_wire::control::{CheckState, CheckStatus};
use monitor_wire::{CheckId, Timestamp};

use crate::clock;
use crate::plan::Plan;

/// Every enabled check's status; `source_problems` are the checks whose source cannot be
/// watched, and why.
pub fn check_statuses(
    plan: &Plan,
    engine: &Engine,
    source_problems: &HashMap<CheckId, String>,
    systemd_bus: SystemdBus,
) -> Vec<CheckStatus> {
    let now = clock::now();
    plan.enabled
        .iter()
        .map(|id| {
            let view = engine.view(id, now);
            let unwatched = plan.unwatched.get(id);
            let problem = source_problems.get(id);
            let state = match (&view, unwatched, problem) {
                (_, Some(_), _) => CheckState::Unknown,
                (_, None, Some(_)) => CheckState::Error,
                (Some(view), None, None) => view.state,
                (None, None, None) => CheckState::Unknown,
            };
            let detail = unwatched
                .or(problem)
                .cloned()
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
    let service = plan
        .services
        .iter()
        .find(|service| &service.check == id)
        .map(|service| {
            format!(
                "unit {} on the {} bus",
                service.unit,
                match systemd_bus {
                    SystemdBus::System => "system",
                    SystemdBus::User => "user",
                }
            )
        });
    let sampled = plan
        .checks
        .iter()
        .find(|(check, _)| check == id)
        .and_then(|(_, kind)| kind.sampled())
        .map(|sampled| format!("sampled {}", sampled.describe_sampling()));
    log.or(service).or(sampled)
}
