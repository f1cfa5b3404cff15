//! From validated checks to what each part of the agent needs: the engine's specs, the log
//! watcher's files, and the checks that no watcher of this version follows yet.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use monitor_config::{
    Check, CheckKind, Expiration, LoadedChecks, LogCheck, LogSource, RestartPolicy, ServiceKind,
    Settings,
};
use monitor_dbus::WatchedSignal;
use monitor_docker::WatchedContainer;
use monitor_engine::{CheckSpec, PatternCheck, ServiceCheck};
use monitor_logwatch::{MatchDetails, PatternSpec};
use monitor_systemd::WatchedService;
use monitor_wire::config_push::{
    CheckStatus, ConfigCheck, DbusCheckConfig, LogCheckConfig, ServiceCheckConfig, ServiceType,
};
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
    /// Problems in check files, as users should read them.
    pub problems: Vec<String>,
    /// Every check, enabled or not, as the backend's config push shows them.
    pub config_push: Vec<ConfigCheck>,
}

#[derive(Debug, Clone)]
pub struct LogCheckExtras {
    /// The file, or the command (`@docker events`).
    pub source: LogSource,
}

pub fn plan(settings: &Settings, loaded: LoadedChecks) -> Plan {
    let mut plan = Plan {
        problems: loaded.problems.iter().map(ToString::to_string).collect(),
        ..Plan::default()
    };
    plan.config_push = loaded
        .checks
        .iter()
        .map(|check| config_check(settings, check))
        .collect();
    for check in loaded.checks.into_iter().filter(|check| check.enabled) {
        plan.enabled.push(check.id.clone());
        add_check(&mut plan, settings, check);
    }
    plan
}

fn add_check(plan: &mut Plan, settings: &Settings, check: Check) {
    let id = check.id;
    match check.kind {
        CheckKind::Log(log) => {
            plan.engine_checks.push((
                id.clone(),
                CheckSpec::Pattern(pattern_check(settings, &id, &log)),
            ));
            let pattern = PatternSpec {
                check: id.clone(),
                regex: log.regex.clone(),
                lines_before: log.lines_before.unwrap_or(settings.log_lines_before),
                lines_after: log.lines_after.unwrap_or(settings.log_lines_after),
                details: Arc::new(match &log.source {
                    LogSource::File(path) => MatchDetails::file(path, log.alert.details.clone()),
                    LogSource::Command(command) => {
                        MatchDetails::command(command, log.alert.details.clone())
                    }
                }),
            };
            match &log.source {
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
            plan.log_checks.insert(
                id,
                LogCheckExtras {
                    source: log.source.clone(),
                },
            );
        }
        CheckKind::Service(service) if service.kind == ServiceKind::Docker => {
            plan.engine_checks.push((
                id.clone(),
                CheckSpec::Service(ServiceCheck {
                    service_name: service.name.clone(),
                    subject_type: "docker".into(),
                }),
            ));
            plan.containers.push(WatchedContainer {
                check: id,
                container: service.name.clone(),
            });
        }
        CheckKind::Service(service) => {
            plan.engine_checks.push((
                id.clone(),
                CheckSpec::Service(ServiceCheck {
                    service_name: service.name.clone(),
                    subject_type: service.kind.as_str().to_lowercase(),
                }),
            ));
            if let Some(policy) = service.restart {
                plan.restarts
                    .insert(id.clone(), (service.unit_name(), policy));
            }
            // A SysV init script is watched through the unit systemd generates for it.
            plan.services.push(WatchedService {
                check: id,
                unit: service.unit_name(),
            });
        }
        CheckKind::Dbus(dbus) => {
            let expiration = engine_expiration(dbus.expiration, settings);
            plan.engine_checks.push((
                id.clone(),
                CheckSpec::Pattern(PatternCheck {
                    alert_name: monitor_dbus::alert_name(&dbus.watch_expression),
                    subject_name: id.name.clone(),
                    subject_type: "dbus".into(),
                    subject_status: "SIGNAL".into(),
                    description: None,
                    expiration,
                }),
            ));
            plan.signals.push(WatchedSignal {
                check: id,
                bus_name: dbus.bus_name,
                pattern: dbus.regex,
                watch_expression: dbus.watch_expression,
            });
        }
    }
}

/// A check's expiration, else the settings' default; 0 means never, as in Mender.
fn engine_expiration(
    expiration: Option<Expiration>,
    settings: &Settings,
) -> monitor_engine::Expiration {
    match expiration.unwrap_or(settings.default_log_pattern_expiration) {
        Expiration::After(duration) if !duration.is_zero() => {
            monitor_engine::Expiration::After(duration)
        }
        _ => monitor_engine::Expiration::Never,
    }
}

fn pattern_check(settings: &Settings, id: &CheckId, log: &LogCheck) -> PatternCheck {
    let expiration = engine_expiration(log.expiration, settings);
    PatternCheck {
        alert_name: log
            .alert
            .name
            .clone()
            .unwrap_or_else(|| format!("Log file contains {}", log.pattern)),
        subject_name: id.name.clone(),
        subject_type: log.alert.kind.clone().unwrap_or_else(|| "log".into()),
        subject_status: log
            .alert
            .status
            .clone()
            .unwrap_or_else(|| "LOGCONTAINS".into()),
        description: log.alert.description.clone(),
        expiration,
    }
}

fn config_check(settings: &Settings, check: &Check) -> ConfigCheck {
    let status = if check.enabled {
        CheckStatus::Enabled
    } else {
        CheckStatus::Disabled
    };
    let seconds =
        |expiration: Option<Expiration>, default: Expiration| match expiration.unwrap_or(default) {
            Expiration::After(duration) if !duration.is_zero() => Some(duration.as_secs()),
            _ => None,
        };
    let name = check.id.name.clone();
    match &check.kind {
        CheckKind::Log(log) => ConfigCheck::log(
            name,
            status,
            LogCheckConfig {
                pattern: log.pattern.clone(),
                path: log.source.to_string(),
                expire_seconds: seconds(log.expiration, settings.default_log_pattern_expiration),
            },
        ),
        CheckKind::Service(service) => ConfigCheck::service(
            name,
            status,
            ServiceCheckConfig {
                name: service.name.clone(),
                kind: match service.kind {
                    ServiceKind::Systemd => ServiceType::Systemd,
                    ServiceKind::SysV => ServiceType::SysV,
                    ServiceKind::Docker => ServiceType::Docker,
                },
            },
        ),
        CheckKind::Dbus(dbus) => ConfigCheck::dbus(
            name,
            status,
            DbusCheckConfig {
                name: dbus.bus_name.clone(),
                pattern: dbus.pattern.clone(),
                watch: dbus.watch_expression.clone(),
                alert_expiration: seconds(dbus.expiration, settings.default_log_pattern_expiration),
            },
        ),
    }
}
