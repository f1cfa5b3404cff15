//! The kinds of check, and the one place that lists them. Each kind's module holds all
//! of it: its file model (a definition, as written in YAML), its validated form, its
//! validation, its Mender `.sh` keys, its `monitorctl create` arguments, what the engine
//! makes of it, what the agent must watch for it, and its entry in the backend's config push.
//!
//! Adding a kind: a [`Subsystem`] in monitor-wire, a module here, and its arms below. A
//! kind the agent samples itself (disk use, temperature) keeps its shared keys in
//! [`SampledDefinition`] and hands out a [`SampledCheck`] ([`CheckKind::sampled`]).

mod connectivity;
mod dbus;
mod diskusage;
mod load;
mod log;
mod memory;
mod plugin;
mod power;
mod process;
pub(crate) mod sampled;
mod service;
mod storage;
mod temperature;
#[cfg(test)]
mod vitals_tests;

use std::path::Path;

use monitor_engine::CheckSpec;
use monitor_wire::config_push::{CheckStatus, ConfigCheck};
use monitor_wire::{CheckId, Subsystem};
use serde::Serialize;

pub use self::connectivity::{
    ConnectivityCheck, ConnectivityDefinition, ConnectivityMethod, StatusRange,
};
pub use self::dbus::{DbusCheck, DbusDefinition, MENDER_DBUS_KEYS};
pub use self::diskusage::{
    DiskusageCheck, DiskusageDefinition, DiskusageMetric, MENDER_DISKUSAGE_KEYS,
};
pub use self::load::{LoadCheck, LoadDefinition, LoadMetric};
pub use self::log::{AlertOverrides, LogCheck, LogDefinition, MENDER_LOG_KEYS};
pub use self::memory::{MemoryCheck, MemoryDefinition, MemoryMetric};
pub use self::plugin::{PluginCheck, PluginDefinition, PluginMapping};
pub use self::power::{PowerCheck, PowerDefinition};
pub use self::process::{ProcessCheck, ProcessDefinition};
pub use self::sampled::{
    Debounce, IfUnavailable, Quantity, SampleInterval, SampledCheck, SampledDefinition,
    SampledFields, SampledTexts, Sampling, ThresholdRule,
};
pub use self::service::{
    OnFailure, RemediationAction, ServiceCheck, ServiceDefinition, ServiceKind, UnknownServiceKind,
    ALL_UNITS, ALL_UNITS_CHECK_NAME, MENDER_SERVICE_KEYS,
};
pub use self::storage::{StorageAspect, StorageCheck, StorageDefinition};
pub use self::temperature::{TemperatureCheck, TemperatureDefinition};
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
    Diskusage(SampledDefinition<DiskusageDefinition>),
    Storage(SampledDefinition<StorageDefinition>),
    Memory(SampledDefinition<MemoryDefinition>),
    Load(SampledDefinition<LoadDefinition>),
    Temperature(SampledDefinition<TemperatureDefinition>),
    Power(SampledDefinition<PowerDefinition>),
    Connectivity(SampledDefinition<ConnectivityDefinition>),
    Process(SampledDefinition<ProcessDefinition>),
    Plugin(SampledDefinition<PluginDefinition>),
}

/// What a check watches, validated.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// Log and dockerevents checks.
    Log(LogCheck),
    Service(ServiceCheck),
    Dbus(DbusCheck),
    Diskusage(DiskusageCheck),
    Storage(StorageCheck),
    Memory(MemoryCheck),
    Load(LoadCheck),
    Temperature(TemperatureCheck),
    Power(PowerCheck),
    Connectivity(ConnectivityCheck),
    Process(ProcessCheck),
    Plugin(PluginCheck),
}

/// `monitorctl create`'s subcommands, in the order its help lists them.
pub const CREATE_COMMANDS: [CreateCommand; 13] = [
    LogDefinition::CREATE,
    ServiceDefinition::CREATE,
    LogDefinition::CREATE_DOCKER_EVENTS,
    DbusDefinition::CREATE,
    DiskusageDefinition::CREATE,
    StorageDefinition::CREATE,
    MemoryDefinition::CREATE,
    LoadDefinition::CREATE,
    TemperatureDefinition::CREATE,
    PowerDefinition::CREATE,
    ConnectivityDefinition::CREATE,
    ProcessDefinition::CREATE,
    PluginDefinition::CREATE,
];

/// The keys a Mender check file of `subsystem` may set.
pub fn mender_keys(subsystem: Subsystem) -> &'static [&'static str] {
    match subsystem {
        Subsystem::Log | Subsystem::Dockerevents => &MENDER_LOG_KEYS,
        Subsystem::Service => &MENDER_SERVICE_KEYS,
        Subsystem::Dbus => &MENDER_DBUS_KEYS,
        Subsystem::Diskusage => &MENDER_DISKUSAGE_KEYS,
        Subsystem::Storage
        | Subsystem::Memory
        | Subsystem::Load
        | Subsystem::Temperature
        | Subsystem::Power
        | Subsystem::Connectivity
        | Subsystem::Process
        | Subsystem::Plugin
        | Subsystem::Monitor => &[],
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
            Subsystem::Diskusage => {
                SampledDefinition::from_yaml(value, file).map(CheckDefinition::Diskusage)
            }
            Subsystem::Storage => {
                SampledDefinition::from_yaml(value, file).map(CheckDefinition::Storage)
            }
            Subsystem::Memory => {
                SampledDefinition::from_yaml(value, file).map(CheckDefinition::Memory)
            }
            Subsystem::Load => SampledDefinition::from_yaml(value, file).map(CheckDefinition::Load),
            Subsystem::Temperature => {
                SampledDefinition::from_yaml(value, file).map(CheckDefinition::Temperature)
            }
            Subsystem::Power => {
                SampledDefinition::from_yaml(value, file).map(CheckDefinition::Power)
            }
            Subsystem::Connectivity => {
                SampledDefinition::from_yaml(value, file).map(CheckDefinition::Connectivity)
            }
            Subsystem::Process => {
                SampledDefinition::from_yaml(value, file).map(CheckDefinition::Process)
            }
            Subsystem::Plugin => {
                SampledDefinition::from_yaml(value, file).map(CheckDefinition::Plugin)
            }
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
            Subsystem::Diskusage => {
                DiskusageDefinition::from_mender(&mut values).map(CheckDefinition::Diskusage)
            }
            Subsystem::Storage
            | Subsystem::Memory
            | Subsystem::Load
            | Subsystem::Temperature
            | Subsystem::Power
            | Subsystem::Connectivity
            | Subsystem::Process
            | Subsystem::Plugin => {
                values.file_problem(no_mender_form(subsystem, file));
                None
            }
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
        let (name, definition) =
            match subsystem {
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
                Subsystem::Diskusage => DiskusageDefinition::from_create(values)
                    .map(|(n, d)| (n, CheckDefinition::Diskusage(d))),
                Subsystem::Storage => StorageDefinition::from_create(values)
                    .map(|(n, d)| (n, CheckDefinition::Storage(d))),
                Subsystem::Memory => MemoryDefinition::from_create(values)
                    .map(|(n, d)| (n, CheckDefinition::Memory(d))),
                Subsystem::Load => {
                    LoadDefinition::from_create(values).map(|(n, d)| (n, CheckDefinition::Load(d)))
                }
                Subsystem::Temperature => TemperatureDefinition::from_create(values)
                    .map(|(n, d)| (n, CheckDefinition::Temperature(d))),
                Subsystem::Power => PowerDefinition::from_create(values)
                    .map(|(n, d)| (n, CheckDefinition::Power(d))),
                Subsystem::Connectivity => ConnectivityDefinition::from_create(values)
                    .map(|(n, d)| (n, CheckDefinition::Connectivity(d))),
                Subsystem::Process => ProcessDefinition::from_create(values)
                    .map(|(n, d)| (n, CheckDefinition::Process(d))),
                Subsystem::Plugin => PluginDefinition::from_create(values)
                    .map(|(n, d)| (n, CheckDefinition::Plugin(d))),
                Subsystem::Monitor => Err(agent_only(Path::new("monitorctl create")).message),
            }?;
        Ok((CheckId::new(subsystem, name), definition))
    }

    /// The file `monitorctl create` writes: a comment naming the check, then the keys that
    /// are set.
    pub fn to_yaml(&self, id: &CheckId) -> Result<String, serde_norway::Error> {
        let mut body = serde_norway::to_string(self)?;
        // A check with every key at its default (`create power pi_power`) would read `{}`:
        // nothing, instead, so a line added by hand (`interval: 1s`) makes valid YAML.
        if body.trim() == "{}" {
            body.clear();
        }
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
                | (CheckDefinition::Diskusage(_), Subsystem::Diskusage)
                | (CheckDefinition::Storage(_), Subsystem::Storage)
                | (CheckDefinition::Memory(_), Subsystem::Memory)
                | (CheckDefinition::Load(_), Subsystem::Load)
                | (CheckDefinition::Temperature(_), Subsystem::Temperature)
                | (CheckDefinition::Power(_), Subsystem::Power)
                | (CheckDefinition::Connectivity(_), Subsystem::Connectivity)
                | (CheckDefinition::Process(_), Subsystem::Process)
                | (CheckDefinition::Plugin(_), Subsystem::Plugin)
        )
    }

    /// The subsystem a definition is usually stored under, for messages.
    pub fn subsystem(&self) -> Subsystem {
        match self {
            CheckDefinition::Log(_) => Subsystem::Log,
            CheckDefinition::Service(_) => Subsystem::Service,
            CheckDefinition::Dbus(_) => Subsystem::Dbus,
            CheckDefinition::Diskusage(_) => Subsystem::Diskusage,
            CheckDefinition::Storage(_) => Subsystem::Storage,
            CheckDefinition::Memory(_) => Subsystem::Memory,
            CheckDefinition::Load(_) => Subsystem::Load,
            CheckDefinition::Temperature(_) => Subsystem::Temperature,
            CheckDefinition::Power(_) => Subsystem::Power,
            CheckDefinition::Connectivity(_) => Subsystem::Connectivity,
            CheckDefinition::Process(_) => Subsystem::Process,
            CheckDefinition::Plugin(_) => Subsystem::Plugin,
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
            CheckDefinition::Diskusage(definition) => {
                definition.resolve(file).map(CheckKind::Diskusage)
            }
            CheckDefinition::Storage(definition) => {
                definition.resolve(file).map(CheckKind::Storage)
            }
            CheckDefinition::Memory(definition) => definition.resolve(file).map(CheckKind::Memory),
            CheckDefinition::Load(definition) => definition.resolve(file).map(CheckKind::Load),
            CheckDefinition::Temperature(definition) => {
                definition.resolve(file).map(CheckKind::Temperature)
            }
            CheckDefinition::Power(definition) => definition.resolve(file).map(CheckKind::Power),
            CheckDefinition::Connectivity(definition) => {
                definition.resolve(file).map(CheckKind::Connectivity)
            }
            CheckDefinition::Process(definition) => {
                definition.resolve(file).map(CheckKind::Process)
            }
            CheckDefinition::Plugin(definition) => definition.resolve(file).map(CheckKind::Plugin),
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
            CheckKind::Diskusage(check) => check.sampled.engine_spec(),
            CheckKind::Storage(check) => check.sampled.engine_spec(),
            CheckKind::Memory(check) => check.sampled.engine_spec(),
            CheckKind::Load(check) => check.sampled.engine_spec(),
            CheckKind::Temperature(check) => check.sampled.engine_spec(),
            CheckKind::Power(check) => check.sampled.engine_spec(),
            CheckKind::Connectivity(check) => check.sampled.engine_spec(),
            CheckKind::Process(check) => check.sampled.engine_spec(),
            CheckKind::Plugin(check) => check.sampled.engine_spec(),
        }
    }

    /// The check as the backend's config push shows it, named `<check>.sh` as Mender names
    /// its check files (whatever the file here, YAML too, so a Mender server and its users
    /// see the names they know). A sampled kind, which Mender's config push has no type
    /// for, is pushed with its own (`diskusage`...) and a `sampled` object, for this
    /// project's server only (the backend client leaves it out for a Mender server). The
    /// agent pushes enabled checks only, as Mender does.
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
        if let Some(sampled) = self.sampled() {
            return Some(sampled.config_push(id, status, self.describe_source()));
        }
        let mut pushed = match self {
            CheckKind::Log(check) => check.config_push(id, status, settings),
            CheckKind::Service(check) => check.config_push(id, status),
            CheckKind::Dbus(check) => check.config_push(id, status, settings),
            // Pushed above, with `sampled()`.
            CheckKind::Diskusage(_)
            | CheckKind::Storage(_)
            | CheckKind::Memory(_)
            | CheckKind::Load(_)
            | CheckKind::Temperature(_)
            | CheckKind::Power(_)
            | CheckKind::Connectivity(_)
            | CheckKind::Process(_)
            | CheckKind::Plugin(_) => return None,
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
            CheckKind::Diskusage(_)
            | CheckKind::Storage(_)
            | CheckKind::Memory(_)
            | CheckKind::Load(_)
            | CheckKind::Temperature(_)
            | CheckKind::Power(_)
            | CheckKind::Connectivity(_)
            | CheckKind::Process(_)
            | CheckKind::Plugin(_) => return None,
        })
    }

    /// For a kind the agent samples itself: what to sample, how often, how to judge it and
    /// what its alerts say. The agent's sampled source runs every check that has one.
    pub fn sampled(&self) -> Option<&SampledCheck> {
        match self {
            CheckKind::Log(_) | CheckKind::Service(_) | CheckKind::Dbus(_) => None,
            CheckKind::Diskusage(check) => Some(&check.sampled),
            CheckKind::Storage(check) => Some(&check.sampled),
            CheckKind::Memory(check) => Some(&check.sampled),
            CheckKind::Load(check) => Some(&check.sampled),
            CheckKind::Temperature(check) => Some(&check.sampled),
            CheckKind::Power(check) => Some(&check.sampled),
            CheckKind::Connectivity(check) => Some(&check.sampled),
            CheckKind::Process(check) => Some(&check.sampled),
            CheckKind::Plugin(check) => Some(&check.sampled),
        }
    }

    /// What `monitorctl list` shows as the check's source.
    pub fn describe_source(&self) -> String {
        match self {
            CheckKind::Log(check) => check.describe_source(),
            CheckKind::Service(check) => check.describe_source(),
            CheckKind::Dbus(check) => check.describe_source(),
            CheckKind::Diskusage(check) => check.describe_source(),
            CheckKind::Storage(check) => check.describe_source(),
            CheckKind::Memory(check) => check.describe_source(),
            CheckKind::Load(check) => check.describe_source(),
            CheckKind::Temperature(check) => check.describe_source(),
            CheckKind::Power(check) => check.describe_source(),
            CheckKind::Connectivity(check) => check.describe_source(),
            CheckKind::Process(check) => check.describe_source(),
            CheckKind::Plugin(check) => check.describe_source(),
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
        Subsystem::Diskusage => DiskusageDefinition::mender_key(field),
        Subsystem::Storage
        | Subsystem::Memory
        | Subsystem::Load
        | Subsystem::Temperature
        | Subsystem::Power
        | Subsystem::Connectivity
        | Subsystem::Process
        | Subsystem::Plugin
        | Subsystem::Monitor => None,
    };
    if let Some(key) = mender_key {
        problem.field = Some(key.to_owned());
    }
    problem
}

/// A kind Mender does not have has no `.sh` form.
fn no_mender_form(subsystem: Subsystem, file: &Path) -> Problem {
    Problem::in_file(
        file,
        format!(
            "{subsystem} checks have no Mender form: write available/{subsystem}_<check>.yaml instead"
        ),
    )
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
