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
//!   `mender-monitorctl` does. [`import_mender`] converts a Mender `monitor.d` folder.
//! - [`CheckDefinition`]: a check file's content as written (`monitorctl create` builds one);
//!   [`CheckDefinition::resolve`] turns it into a [`CheckKind`] that cannot be invalid
//!   (compiled regex, absolute path or command, checked service name).
//! - [`Problem`]: one thing wrong, with its file and field. Loading reports every problem
//!   at once, and a bad check file never hides the good ones.
//! - Durations and expirations (`30`, `30s`, `5m`, `2h30m`, `never`) are
//!   `monitor_wire::duration`'s, shared with the engine.
//!
//! Mender's `.sh` check files are parsed as data and never run: values that need a shell
//! (`$VAR`, `$(...)`) are refused with a problem rather than guessed.
//!
//! This crate does no watching and no alerting, and keeps no state: it only reads and
//! writes configuration files. It does not watch the directory for changes either; the
//! agent calls [`CheckDir::load`] again when it notices one.

mod check;
mod mender;
mod problem;
mod settings;
mod store;

pub use check::{
    AlertOverrides, Check, CheckDefinition, CheckFormat, CheckKind, DbusCheck, DbusDefinition,
    LogCheck, LogDefinition, LogSource, LogSourceError, OnFailure, RemediationAction,
    RestartPolicy, ServiceCheck, ServiceDefinition, ServiceKind, UnknownServiceKind,
};
pub use mender::{
    mender_keys, parse_shell_assignments, ShellAssignment, ShellSyntaxError, MENDER_DBUS_KEYS,
    MENDER_LOG_KEYS, MENDER_SERVICE_KEYS,
};
pub use problem::Problem;
pub use settings::{
    load_settings, BackendAuth, BackendSettings, DbusSettings, DeliverySettings, DiscordSettings,
    MinLevel, Settings, SystemdBus, SystemdSettings, DEFAULT_CONFIG_DIR, MAX_CONTEXT_LINES,
    SETTINGS_FILE_NAME,
};
pub use store::{
    import_mender, is_valid_check_name, CheckDir, ImportReport, ImportedCheck, LoadedChecks,
    SkippedCheck, StoreError,
};
