//! The agent's configuration: its settings and its checks, read from a config directory
//! (`/etc/monitor` by default) laid out like Mender Monitor's `monitor.d`.
//!
//! ```text
//! /etc/monitor/
//! ├── monitor.yaml                      settings (optional; missing or empty = defaults)
//! ├── available/log_app.yaml            one check per file: <subsystem>_<check>.yaml,
//! ├── available/service_cron.sh         or a Mender check file (KEY="value" lines)
//! └── enabled/log_app.yaml -> ../available/log_app.yaml
//! ```
//!
//! - [`Settings`] and [`load_settings`]: `monitor.yaml`, with documented defaults.
//! - [`CheckDir`]: reads every check ([`CheckDir::load`] gives [`Check`]s, each with a
//!   validated [`CheckKind`]), and creates, enables, disables and deletes them the way
//!   `mender-monitorctl` does. [`import_mender`] converts a Mender `monitor.d` folder,
//!   [`convert_mender_settings`] and [`merge_settings`] Mender's `config.sh`.
//! - One module per kind of check (`kind/log.rs`, `kind/service.rs`, `kind/dbus.rs`), each
//!   with everything about its kind, and `kind/mod.rs`, the one place that lists the kinds:
//!   [`CheckDefinition`] (a check file's content as written; `monitorctl create` builds one
//!   from [`CREATE_COMMANDS`]) and [`CheckKind`] (what [`CheckDefinition::resolve`] makes of
//!   it, which cannot be invalid: compiled regex, absolute path or command, checked service
//!   name), whose [`CheckKind::engine_spec`], [`CheckKind::watch`] and
//!   [`CheckKind::config_push`] tell the agent what the engine, the watchers and the backend
//!   need of the check.
//! - [`DEFAULT_CHECKS`]: the built-in default checks (`config/defaults/`), loaded by a
//!   [`CheckDir`] made [`CheckDir::with_default_checks`] unless a file replaces them.
//! - [`Problem`]: one thing wrong, with its file and field. Loading reports every problem
//!   at once, and a bad check file never hides the good ones.
//! - Durations and expirations (`30`, `30s`, `5m`, `2h30m`, `never`) are
//!   `monitor_wire::duration`'s, shared with the engine.
//!
//! Mender's `.sh` check files are parsed as data and never run: values that need a shell
//! (`$VAR`, `$(...)`) are refused with a problem rather than guessed. A key no kind reads is
//! ignored, as Mender (which sources the file) ignores it, with a warning ([`Severity`]):
//! the check runs regardless.
//!
//! This crate does no watching and no alerting, and keeps no state: it only reads and
//! writes configuration files. It does not watch the directory for changes either; the
//! agent calls [`CheckDir::load`] again when it notices one.

mod check;
mod create;
mod defaults;
mod kind;
mod mender;
mod mender_settings;
mod pattern;
mod problem;
mod settings;
mod store;
mod watch;

pub use check::{Check, CheckFormat};
pub use create::{CreateArgument, CreateCommand};
pub use defaults::{default_check, DefaultCheck, DEFAULT_CHECKS};
pub use kind::{
    mender_keys, AlertOverrides, CheckDefinition, CheckKind, DbusCheck, DbusDefinition, Debounce,
    DiskusageCheck, DiskusageDefinition, DiskusageMetric, IfUnavailable, LoadCheck, LoadDefinition,
    LoadMetric, LogCheck, LogDefinition, MemoryCheck, MemoryDefinition, MemoryMetric, OnFailure,
    PowerCheck, PowerDefinition, Quantity, RemediationAction, SampleInterval, SampledCheck,
    SampledDefinition, SampledFields, SampledTexts, Sampling, ServiceCheck, ServiceDefinition,
    ServiceKind, StorageAspect, StorageCheck, StorageDefinition, TemperatureCheck,
    TemperatureDefinition, ThresholdRule, UnknownServiceKind, ALL_UNITS, ALL_UNITS_CHECK_NAME,
    CREATE_COMMANDS, MENDER_DBUS_KEYS, MENDER_DISKUSAGE_KEYS, MENDER_LOG_KEYS, MENDER_SERVICE_KEYS,
};
pub use kind::{
    ConnectivityCheck, ConnectivityDefinition, ConnectivityMethod, PluginCheck, PluginDefinition,
    PluginMapping, ProcessCheck, ProcessDefinition, StatusRange,
};
pub use mender::{parse_shell_assignments, ShellAssignment, ShellSyntaxError};
pub use mender_settings::{
    convert_mender_settings, merge_settings, CarriedSetting, MenderSettings, MergedSettings,
    NotCarried, Unplaced, MENDER_CONFIG_FILE,
};
pub use problem::{Problem, Severity};
// Every settings type: a destination's settings struct needs no line here.
pub use settings::*;
pub use store::{
    import_mender, is_valid_check_name, CheckDir, ImportReport, ImportedCheck, LoadedChecks,
    SkippedCheck, StoreError,
};
pub use watch::{LogSource, LogSourceError, ReadFrom, RestartPolicy, Watch};
