//! From validated checks to what each part of the agent needs: the engine's specs, each
//! watcher's config, and the backend's config push. What a kind of check needs comes from
//! its module in monitor-config ([`CheckKind::engine_spec`], [`CheckKind::watch`],
//! [`CheckKind::config_push`]); this file only hands each [`Watch`] to its watcher.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use monitor_config::{
    Check, CheckKind, LoadedChecks, LogSource, ReadFrom, RestartPolicy, Settings, Watch,
};
use monitor_dbus::WatchedSignal;
use monitor_docker::WatchedContainer;
use monitor_engine::CheckSpec;
use monitor_logwatch::{MatchDetails, PatternSpec};
use monitor_systemd::{FailedUnitsWatch, WatchedService};
use monitor_wire::config_push::ConfigCheck;
use monitor_wire::CheckId;

/// Everything the enabled checks ask of the agent.
#[derive(Debug, Default)]
pub struct Plan {
    pub engine_checks: Vec<(CheckId, CheckSpec)>,
    /// Followed files and the patterns read from each (one read serves every check on it).
    pub log_files: BTreeMap<PathBuf, Vec<PatternSpec>>,
    /// Commands whose output is read (`@command` sources), with their patterns; one process
    /// serves every check on the same command.
    pub commands: BTreeMap<String, Vec<PatternSpec>>,
    /// Per log check: the file or command it reads.
    pub log_checks: HashMap<CheckId, LogCheckExtras>,
    /// Services to watch, each for its check.
    pub services: Vec<WatchedService>,
    /// Checks on every systemd unit's `failed` state (the units the engine holds failed
    /// are filled in by the agent).
    pub failed_units: Vec<FailedUnitsWatch>,
    /// Docker containers to watch natively, each for its check.
    pub containers: Vec<WatchedContainer>,
    /// D-Bus signals to listen for, each for its check.
    pub signals: Vec<WatchedSignal>,
    /// Service checks that restart their unit when it is found not running.
    pub restarts: HashMap<CheckId, (String, RestartPolicy)>,
    /// Enabled checks that are not watched, and why.
    pub unwatched: BTreeMap<CheckId, String>,
    /// Every enabled check, for status.
    pub enabled: Vec<CheckId>,
    /// Every enabled check as validated, for a source that reads its own kind of check.
    pub checks: Vec<(CheckId, CheckKind)>,
    /// Problems in check files, as users should read them: their checks do not run.
    pub problems: Vec<String>,
    /// Warnings about check files whose checks run regardless (a key Mender ignores too).
    pub warnings: Vec<String>,
    /// Every enabled check as the backend's config push shows them (Mender pushes enabled
    /// checks only: "Store configuration data on enabled checks", monitor-client 1.1.0).
    pub config_push: Vec<ConfigCheck>,
}

#[derive(Debug, Clone)]
pub struct LogCheckExtras {
    /// The file, or the command (`@docker events`).
    pub source: LogSource,
}

pub fn plan(settings: &Settings, loaded: LoadedChecks) -> Plan {
    let (warnings, problems): (Vec<_>, Vec<_>) = loaded
        .problems
        .iter()
        .partition(|problem| problem.is_warning());
    let mut plan = Plan {
        problems: problems.iter().map(ToString::to_string).collect(),
        warnings: warnings.iter().map(ToString::to_string).collect(),
        ..Plan::default()
    };
    plan.config_push = loaded
        .checks
        .iter()
        .filter(|check| check.enabled)
        .filter_map(|check| check.kind.config_push(&check.id, check.enabled, settings))
        .collect();
    for check in loaded.checks.into_iter().filter(|check| check.enabled) {
        add_check(&mut plan, settings, check);
    }
    plan
}

fn add_check(plan: &mut Plan, settings: &Settings, check: Check) {
    let id = check.id;
    plan.enabled.push(id.clone());
    plan.engine_checks
        .push((id.clone(), check.kind.engine_spec(&id, settings)));
    match check.kind.watch() {
        // Sampled by a source of the agent's own, from `checks`.
        None => {}
        Some(Watch::Lines {
            source,
            regex,
            lines_before,
            lines_after,
            details_template,
            from,
        }) => {
            let pattern = PatternSpec {
                check: id.clone(),
                regex,
                lines_before: lines_before.unwrap_or(settings.log_lines_before),
                lines_after: lines_after.unwrap_or(settings.log_lines_after),
                details: Arc::new(match &source {
                    LogSource::File(path) => MatchDetails::file(path, details_template),
                    LogSource::Command(command) => MatchDetails::command(command, details_template),
                }),
                from: match from {
                    ReadFrom::Start => monitor_logwatch::ReadFrom::Start,
                    ReadFrom::End => monitor_logwatch::ReadFrom::End,
                },
            };
            match &source {
                LogSource::File(path) => plan
                    .log_files
                    .entry(path.clone())
                    .or_default()
                    .push(pattern),
                LogSource::Command(command) => plan
                    .commands
                    .entry(command.clone())
                    .or_default()
                    .push(pattern),
            }
            plan.log_checks
                .insert(id.clone(), LogCheckExtras { source });
        }
        Some(Watch::Unit { unit, restart }) => {
            if let Some(policy) = restart {
                plan.restarts.insert(id.clone(), (unit.clone(), policy));
            }
            plan.services.push(WatchedService {
                check: id.clone(),
                unit,
            });
        }
        Some(Watch::FailedUnits) => plan.failed_units.push(FailedUnitsWatch {
            check: id.clone(),
            known_failed: Default::default(),
        }),
        Some(Watch::Container { name }) => plan.containers.push(WatchedContainer {
            check: id.clone(),
            container: name,
        }),
        Some(Watch::Signal {
            sender,
            regex,
            watch_expression,
        }) => plan.signals.push(WatchedSignal {
            check: id.clone(),
            sender,
            pattern: regex,
            watch_expression,
        }),
    }
    plan.checks.push((id, check.kind));
}
