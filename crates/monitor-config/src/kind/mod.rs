//! The kinds of check, and the one place that lists them. Each kind's module holds all
//! of it: its file model (a definition, as written in YAML), its validated form, its
//! validation, its Mender `.sh` keys, its `monitorctl create` arguments, what the engine
//! makes of it, what the agent must watch for it, and its entry in the backend's config push.
//!
//! Adding a kind: a [`Subsystem`] in monitor-wire, a module here, and its arms below.

mod dbus;
mod log;
mod service;

use std::path::Path;

use monitor_engine::CheckSpec;
use monitor_wire::config_push::{CheckStatus, ConfigCheck};
use monitor_wire::{CheckId, Subsystem};
use serde::Serialize;

pub use self::dbus::{DbusCheck, DbusDefinition, MENDER_DBUS_KEYS};
pub use self::log::{AlertOverrides, LogCheck, LogDefinition, MENDER_LOG_KEYS};
pub use self::service::{
    OnFailure, RemediationAction, ServiceCheck, ServiceDefinition, ServiceKind, UnknownServiceKind,
    ALL_UNITS, ALL_UNITS_CHECK_NAME, MENDER_SERVICE_KEYS,
};
use crate::create::{CreateCommand, CreateValues};
use crate::mender;
use crate::problem::{parse_yaml, Problem};
use crate::settings::Settings;
use crate::watch::Watch;

/// A check file's content, before validation: what `monitorctl create` builds and writes,
/// and what a `.yaml` (or converted `.sh`) file reads into. The subsystem is not in the file
/// but in its name, so this serializes without a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CheckDefinition {
    /// For the `log` and `dockerevents` subsystems.
    Log(LogDefinition),
    Service(ServiceDefinition),
    Dbus(DbusDefinition),
}

/// What a check watches, validated.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// Log and dockerevents checks.
    Log(LogCheck),
    Service(ServiceCheck),
    Dbus(DbusCheck),
}

/// `monitorctl create`'s subcommands, in the order its help lists them.
pub const CREATE_COMMANDS: [CreateCommand; 4] = [
    LogDefinition::CREATE,
    ServiceDefinition::CREATE,
    LogDefinition::CREATE_DOCKER_EVENTS,
    DbusDefinition::CREATE,
];

/// The keys a Mender check file of `subsystem` may set.
pub fn mender_keys(subsystem: Subsystem) -> &'static [&'static str] {
    match subsystem {
        Subsystem::Log | Subsystem::Dockerevents => &MENDER_LOG_KEYS,
        Subsystem::Service => &MENDER_SERVICE_KEYS,
        Subsystem::Dbus => &MENDER_DBUS_KEYS,
        Subsystem::Monitor => &[],
    }
}

impl CheckDefinition {
    /// Reads a check file in our YAML format; the subsystem comes from the file's name.
    /// Every unknown, missing or mistyped key is reported.
    pub fn from_yaml(subsystem: Subsystem, text: &str, file: &Path) -> Result<Self, Vec<Problem>> {
        let value = parse_yaml(text, file)?;
        match subsystem {
            Subsystem::Log | Subsystem::Dockerevents => {
                LogDefinition::from_yaml(value, file).map(CheckDefinition::Log)
            }
            Subsystem::Service => {
                ServiceDefinition::from_yaml(value, file).map(CheckDefinition::Service)
            }
            Subsystem::Dbus => DbusDefinition::from_yaml(value, file).map(CheckDefinition::Dbus),
            Subsystem::Monitor => Err(vec![agent_only(file)]),
        }
    }

    /// Reads a Mender check file (`KEY="value"` lines) into a definition, without running
    /// it. Problems name Mender's keys (`LOG_PATTERN`) and lines. Warnings (keys Mender
    /// ignores too) are dropped: [`CheckDefinition::from_mender_shell_with_warnings`] keeps
    /// them.
    pub fn from_mender_shell(
        subsystem: Subsystem,
        text: &str,
        file: &Path,
    ) -> Result<Self, Vec<Problem>> {
        Self::from_mender_shell_with_warnings(subsystem, text, file)
            .map(|(definition, _warnings)| definition)
    }

    /// [`CheckDefinition::from_mender_shell`], with the warnings of a file that converts:
    /// problems of [`Severity::Warning`](crate::Severity::Warning), about keys that are ignored.
    pub fn from_mender_shell_with_warnings(
        subsystem: Subsystem,
        text: &str,
        file: &Path,
    ) -> Result<(Self, Vec<Problem>), Vec<Problem>> {
        let mut values = mender::read_values(subsystem, mender_keys(subsystem), text, file);
        let definition = match subsystem {
            Subsystem::Log | Subsystem::Dockerevents => {
                LogDefinition::from_mender(&mut values).map(CheckDefinition::Log)
            }
            Subsystem::Service => {
                ServiceDefinition::from_mender(&mut values).map(CheckDefinition::Service)
            }
            Subsystem::Dbus => DbusDefinition::from_mender(&mut values).map(CheckDefinition::Dbus),
            Subsystem::Monitor => {
                values.file_problem(agent_only(file));
                None
            }
        };
        values.finish(definition)
    }

    /// The check `monitorctl create <subsystem>` makes of its arguments (`values`, by
    /// position, as [`CREATE_COMMANDS`] describes them).
    pub fn from_create(
        subsystem: Subsystem,
        values: &[Option<String>],
    ) -> Result<(CheckId, Self), String> {
        let values = CreateValues(values);
        let (name, definition) = match subsystem {
            Subsystem::Log => {
                LogDefinition::from_create(values).map(|(n, d)| (n, CheckDefinition::Log(d)))
            }
            Subsystem::Dockerevents => LogDefinition::from_create_docker_events(values)
                .map(|(n, d)| (n, CheckDefinition::Log(d))),
            Subsystem::Service => ServiceDefinition::from_create(values)
                .map(|(n, d)| (n, CheckDefinition::Service(d))),
            Subsystem::Dbus => {
                DbusDefinition::from_create(values).map(|(n, d)| (n, CheckDefinition::Dbus(d)))
            }
            Subsystem::Monitor => Err(agent_only(Path::new("monitorctl create")).message),
        }?;
        Ok((CheckId::new(subsystem, name), definition))
    }

    /// The file `monitorctl create` writes: a comment naming the check, then the keys that
    /// are set.
    pub fn to_yaml(&self, id: &CheckId) -> Result<String, serde_norway::Error> {
        let body = serde_norway::to_string(self)?;
        Ok(format!("# {} check {}\n{body}", id.subsystem, id.name))
    }

    /// Whether this definition can be stored under `subsystem` (a log definition serves
    /// `log` and `dockerevents`).
    pub fn fits(&self, subsystem: Subsystem) -> bool {
        matches!(
            (self, subsystem),
            (
                CheckDefinition::Log(_),
                Subsystem::Log | Subsystem::Dockerevents
            ) | (CheckDefinition::Service(_), Subsystem::Service)
                | (CheckDefinition::Dbus(_), Subsystem::Dbus)
        )
    }

    /// The subsystem a definition is usually stored under, for messages.
    pub fn subsystem(&self) -> Subsystem {
        match self {
            CheckDefinition::Log(_) => Subsystem::Log,
            CheckDefinition::Service(_) => Subsystem::Service,
            CheckDefinition::Dbus(_) => Subsystem::Dbus,
        }
    }

    /// Validates the definition: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<CheckKind, Vec<Problem>> {
        match self {
            CheckDefinition::Log(definition) => definition.resolve(file).map(CheckKind::Log),
            CheckDefinition::Service(definition) => {
                definition.resolve(file).map(CheckKind::Service)
            }
            CheckDefinition::Dbus(definition) => definition.resolve(file).map(CheckKind::Dbus),
        }
    }
}

impl CheckKind {
    /// What the engine makes of the check.
    pub fn engine_spec(&self, id: &CheckId, settings: &Settings) -> CheckSpec {
        match self {
            CheckKind::Log(check) => check.engine_spec(id, settings),
            CheckKind::Service(check) => check.engine_spec(),
            CheckKind::Dbus(check) => check.engine_spec(id, settings),
        }
    }

    /// The check as the backend's config push shows it, named `<check>.sh` as Mender names
    /// its check files (whatever the file here, YAML too, so a Mender server and its users
    /// see the names they know); `None` for a kind Mender's config push has no type for (it
    /// is then left out). The agent pushes enabled checks only, as Mender does.
    pub fn config_push(
        &self,
        id: &CheckId,
        enabled: bool,
        settings: &Settings,
    ) -> Option<ConfigCheck> {
        let status = if enabled {
            CheckStatus::Enabled
        } else {
            CheckStatus::Disabled
        };
        let mut pushed = match self {
            CheckKind::Log(check) => check.config_push(id, status, settings),
            CheckKind::Service(check) => check.config_push(id, status),
            CheckKind::Dbus(check) => check.config_push(id, status, settings),
        };
        pushed.name = format!("{}.sh", id.name);
        Some(pushed)
    }

    /// What the agent's watchers must watch for the check; `None` for a kind the agent
    /// samples with a source of its own, which finds its checks among the enabled ones.
    pub fn watch(&self) -> Option<Watch> {
        Some(match self {
            CheckKind::Log(check) => check.watch(),
            CheckKind::Service(check) => check.watch(),
            CheckKind::Dbus(check) => check.watch(),
        })
    }

    /// What `monitorctl list` shows as the check's source.
    pub fn describe_source(&self) -> String {
        match self {
            CheckKind::Log(check) => check.describe_source(),
            CheckKind::Service(check) => check.describe_source(),
            CheckKind::Dbus(check) => check.describe_source(),
        }
    }
}

/// A validation problem about one of our fields, renamed to the Mender key it came from.
pub(crate) fn rename_fields_to_mender(subsystem: Subsystem, mut problem: Problem) -> Problem {
    let Some(field) = problem.field.as_deref() else {
        return problem;
    };
    let mender_key = match subsystem {
        Subsystem::Log | Subsystem::Dockerevents => LogDefinition::mender_key(field),
        Subsystem::Service => ServiceDefinition::mender_key(field),
        Subsystem::Dbus => DbusDefinition::mender_key(field),
        Subsystem::Monitor => None,
    };
    if let Some(key) = mender_key {
        problem.field = Some(key.to_owned());
    }
    problem
}

/// `monitor` checks are the agent's own alerts; no file defines one.
fn agent_only(file: &Path) -> Problem {
    let names: Vec<String> = Subsystem::ALL
        .iter()
        .map(|subsystem| format!("{subsystem}_*"))
        .collect();
    let (last, others) = names.split_last().expect("Subsystem::ALL is not empty");
    Problem::in_file(
        file,
        format!(
            "`monitor` is the agent's own subsystem, not a kind of check: name the file {} or {last}",
            others.join(", ")
        ),
    )
}
