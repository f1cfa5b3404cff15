//! The agent's settings: `monitor.yaml` in the config directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::check::read_config_file;
use crate::problem::{deserialize_all, nested_problems, parse_yaml, NestedCheck, Problem};
use monitor_wire::duration::{self, Expiration};

mod email;
pub use email::{EmailSettings, EmailTls};
mod channels;
pub use channels::{NtfyPriorities, NtfyPriority, NtfySettings, WebhookSettings};
mod chat;
pub use chat::{secret_destination_problem, SlackSettings, TelegramSettings};

/// The config directory when none is given.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/monitor";

/// The settings file's name inside the config directory.
pub const SETTINGS_FILE_NAME: &str = "monitor.yaml";

/// The most context lines a log alert may carry before or after the matching line; more
/// would make alerts too big for the backend and the device's history.
pub const MAX_CONTEXT_LINES: usize = 1000;

/// The most a check file or `monitor.yaml` may hold: 1 MiB, a thousand times what either
/// needs. A larger file is a problem and is never read into memory (a log or an image
/// dropped into `available/` by mistake would otherwise cost its size in RAM, on every
/// reload).
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// The agent's settings, from `monitor.yaml`. Every key is optional; a missing or empty file
/// gives [`Settings::default`]. The Mender `config.sh` name of a setting is given where there
/// is one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The device's name in alerts and notifications; `None` uses the hostname.
    #[serde(default = "default_device_id")]
    pub device_id: Option<String>,
    /// Where the agent keeps state across restarts (log offsets, alert state, history).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Where the agent puts its control socket and other files that end with a boot.
    #[serde(default = "default_runtime_dir")]
    pub runtime_dir: PathBuf,
    /// The window in which service state changes are counted for flapping
    /// (`FLAPPING_INTERVAL`). Default 10 minutes.
    #[serde(
        default = "default_flapping_interval",
        deserialize_with = "duration::plain::deserialize"
    )]
    pub flapping_interval: Duration,
    /// How many running/not-running changes within `flapping_interval` make a service
    /// flapping (`FLAPPING_COUNT_THRESHOLD`). Default 5.
    #[serde(default = "default_flapping_count_threshold")]
    pub flapping_count_threshold: u32,
    /// How long state changes are remembered for flap counting (`ALERT_LOG_MAX_AGE`);
    /// at least `flapping_interval`. Default 1 hour.
    #[serde(
        default = "default_alert_log_max_age",
        deserialize_with = "duration::plain::deserialize"
    )]
    pub alert_log_max_age: Duration,
    /// How long a log alert stays CRITICAL after the last match when its check says nothing
    /// (`DEFAULT_LOG_PATTERN_EXPIRATION_SECONDS`). Default never: until cleared, as in
    /// Mender ("this Alert will remain unless a manual alert cleaning is performed").
    #[serde(default = "default_pattern_expiration")]
    pub default_log_pattern_expiration: Expiration,
    /// The same for D-Bus checks (`DEFAULT_DBUS_ALERT_EXPIRATION_SECONDS`). Default never.
    #[serde(default = "default_pattern_expiration")]
    pub default_dbus_alert_expiration: Expiration,
    /// Lines sent before a matching log line (`DEFAULT_LOG_LINES_BEFORE`). Default 30.
    #[serde(default = "default_log_lines")]
    pub log_lines_before: usize,
    /// Lines sent after a matching log line (`DEFAULT_LOG_LINES_AFTER`). Default 30.
    #[serde(default = "default_log_lines")]
    pub log_lines_after: usize,
    /// How far back a log check new to a file reads what the file already holds: at most
    /// this many bytes before its end, from the first whole line in them (older lines are
    /// not read). A check with `from: end` reads none. Default 1 MiB.
    #[serde(default = "default_log_first_read_limit")]
    pub log_first_read_limit: u64,
    /// How long the log watcher waits after a file changes before it reads, so that the
    /// writes landing meanwhile (in any followed file) are read in one go: under a steady
    /// write load, fewer wake-ups and less CPU, each log alert up to that much later.
    /// Default 0: every write is read as it lands. At most 1s.
    #[serde(
        default = "default_log_coalesce",
        deserialize_with = "duration::plain::deserialize"
    )]
    pub log_coalesce: Duration,
    /// Size of `state_dir/alerts.jsonl` (the local alert history) before it rotates.
    /// Default 1 MiB.
    #[serde(default = "default_alert_history_max_bytes")]
    pub alert_history_max_bytes: u64,
    /// How often log offsets that made no alert are saved (`checkpoint.json`); an alert
    /// saves them at once. After a crash, the lines since are read again and make the same
    /// alerts. Longer spares an SD card. Default 5 minutes.
    #[serde(
        default = "default_checkpoint_interval",
        deserialize_with = "duration::plain::deserialize"
    )]
    pub checkpoint_interval: Duration,
    /// Whether the built-in default checks run (every unit that fails, ...: see
    /// `config/defaults/`). Default true; a check file of the same id replaces one.
    #[serde(default = "default_default_checks")]
    pub default_checks: bool,
    /// How the agent reaches systemd for `service` checks.
    #[serde(default)]
    pub systemd: SystemdSettings,
    /// Where alerts go besides the local history: Discord webhooks and a backend.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// Where `dbus` checks listen for signals.
    #[serde(default)]
    pub dbus: DbusSettings,
    /// Where sampled checks (temperature, power, storage wear...) read the kernel's sysfs
    /// files. Default `/sys`; for tests and containers, a folder with the same layout.
    #[serde(default = "default_sysfs_root")]
    pub sysfs_root: PathBuf,
    /// Where sampled checks (memory, load, mounts...) read the kernel's procfs files.
    /// Default `/proc`; for tests and containers, a folder with the same layout.
    #[serde(default = "default_procfs_root")]
    pub procfs_root: PathBuf,
}

/// The `dbus:` section of `monitor.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbusSettings {
    /// `system` (the default), `session`, or a bus address such as `unix:path=/run/my-bus`.
    #[serde(default = "default_dbus_bus")]
    pub bus: String,
}

impl Default for DbusSettings {
    fn default() -> Self {
        DbusSettings {
            bus: default_dbus_bus(),
        }
    }
}

fn default_dbus_bus() -> String {
    "system".to_owned()
}

/// The `delivery:` section of `monitor.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Undelivered alerts kept per destination (Mender's `ALERT_OFFLINE_STORE_MAX_COUNT`);
    /// past it, each check's older alerts go first and its latest state stays. Default 1000.
    #[serde(default = "default_offline_store_max_count")]
    pub alert_offline_store_max_count: usize,
    /// Undelivered alerts older than this are dropped, except each check's latest state
    /// (Mender's `ALERT_STORE_MAX_RECORD_AGE_S`). Default 7 days.
    #[serde(
        default = "default_store_max_record_age",
        deserialize_with = "duration::plain::deserialize"
    )]
    pub alert_store_max_record_age: Duration,
    /// Discord webhooks, each with its own progress.
    #[serde(default)]
    pub discord: Vec<DiscordSettings>,
    /// A backend speaking the Mender devicemonitor device API.
    #[serde(default)]
    pub backend: Option<BackendSettings>,
    /// MQTT brokers (Home Assistant's, say), each with its own progress.
    #[serde(default)]
    pub mqtt: Vec<MqttSettings>,
    /// SMTP relays, each with its recipients.
    #[serde(default)]
    pub email: Vec<EmailSettings>,
    /// Generic webhooks: a JSON POST per alert, optionally signed.
    #[serde(default)]
    pub webhook: Vec<WebhookSettings>,
    /// ntfy topics.
    #[serde(default)]
    pub ntfy: Vec<NtfySettings>,
    /// Slack incoming webhooks, each with its own progress.
    #[serde(default)]
    pub slack: Vec<SlackSettings>,
    /// Telegram chats a bot posts to, each with its own progress.
    #[serde(default)]
    pub telegram: Vec<TelegramSettings>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            alert_offline_store_max_count: default_offline_store_max_count(),
            alert_store_max_record_age: default_store_max_record_age(),
            discord: Vec::new(),
            backend: None,
            mqtt: Vec::new(),
            email: Vec::new(),
            webhook: Vec::new(),
            ntfy: Vec::new(),
            slack: Vec::new(),
            telegram: Vec::new(),
        }
    }
}

fn default_offline_store_max_count() -> usize {
    1000
}

fn default_store_max_record_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// One Discord webhook. Exactly one of `webhook_url`, `webhook_url_file` and
/// `webhook_url_env` (the URL is a secret: keep it out of the config with the last two).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordSettings {
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// A file holding the URL (first line).
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// An environment variable holding the URL.
    #[serde(default)]
    pub webhook_url_env: Option<String>,
    /// The name the messages are posted as (seed 000 uses `systemd`).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// `OK` (default: every alert) or `CRITICAL` (only CRITICALs).
    #[serde(default)]
    pub min_level: MinLevel,
    /// Only these checks, as `<subsystem>` or `<subsystem> <check>`; default every check.
    #[serde(default)]
    pub checks: Vec<String>,
}

/// One MQTT broker: each check a Home Assistant binary sensor (discovery), its state `ON`
/// (CRITICAL) or `OFF`, the device's availability by last will. At most one of
/// `password_file` and `password_env` (the password is a secret).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    /// `mqtt://host:1883` or `mqtts://host:8883` (TLS).
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A CA certificate (PEM) to trust besides the system's, for `mqtts`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Default `monitor-<device>`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// States and availability go to `<base_topic>/<device>/...`. Default `monitor`.
    #[serde(default = "default_mqtt_base_topic")]
    pub base_topic: String,
    /// Home Assistant's discovery prefix. Default `homeassistant`.
    #[serde(default = "default_mqtt_discovery_prefix")]
    pub discovery_prefix: String,
    /// Whether each check is announced to Home Assistant. Default true.
    #[serde(default = "default_mqtt_discovery")]
    pub discovery: bool,
    /// `OK` (default: every alert) or `CRITICAL` (only CRITICALs).
    #[serde(default)]
    pub min_level: MinLevel,
    /// Only these checks, as `<subsystem>` or `<subsystem> <check>`; default every check.
    #[serde(default)]
    pub checks: Vec<String>,
}

fn default_mqtt_base_topic() -> String {
    "monitor".to_owned()
}

fn default_mqtt_discovery_prefix() -> String {
    "homeassistant".to_owned()
}

fn default_mqtt_discovery() -> bool {
    true
}

impl MqttSettings {
    /// What serde cannot check, as (field below `delivery.mqtt[N]`, message).
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !self.url.starts_with("mqtt://") && !self.url.starts_with("mqtts://") {
            problems.push((
                ".url",
                "write mqtt://host:1883, or mqtts://host:8883 for TLS".to_owned(),
            ));
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            problems.push((
                "",
                "set at most one of password_file and password_env".to_owned(),
            ));
        }
        if self.username.is_none() && (self.password_file.is_some() || self.password_env.is_some())
        {
            problems.push((
                ".username",
                "missing: a password needs the user name it belongs to".to_owned(),
            ));
        }
        for message in self
            .checks
            .iter()
            .filter_map(|entry| checks_entry_problem(entry))
        {
            problems.push((".checks", message));
        }
        problems
    }
}

/// The least level a destination receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum MinLevel {
    #[default]
    #[serde(rename = "OK", alias = "ok")]
    Ok,
    #[serde(rename = "CRITICAL", alias = "critical")]
    Critical,
}

/// The backend: a Mender server (auth `mender`, through the Mender client on the device)
/// or a self-hosted one (auth `token`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSettings {
    /// The server, for `auth: token` (with `mender` the Mender client says where it is).
    #[serde(default)]
    pub url: Option<String>,
    pub auth: BackendAuth,
    /// The bearer token's file, for `auth: token`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The bearer token's environment variable, for `auth: token`.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A CA certificate (PEM) to trust besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The D-Bus address of the Mender client, for `auth: mender`; default the system bus.
    #[serde(default)]
    pub mender_bus: Option<String>,
    /// How often the check configuration is pushed besides at start and on change.
    /// Default 1 hour (Mender's `CONFPUSH_INTERVAL`).
    #[serde(
        default = "default_config_push_interval",
        deserialize_with = "duration::plain::deserialize"
    )]
    pub config_push_interval: Duration,
    /// How often the agent tells the server it is alive, for `auth: token`: monitor-server
    /// raises "Device <name> silent" when they stop. Default 60s; `never` (or 0) sends none;
    /// at least 1s. Not for `auth: mender`: Mender's API has no heartbeat.
    #[serde(default)]
    pub heartbeat_interval: Option<Expiration>,
}

/// The heartbeat interval of `auth: token` when `heartbeat_interval` is not given.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest heartbeat interval (tests use it; a device uses a minute or more).
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

impl BackendSettings {
    /// The heartbeats this backend gets: `None` in `auth: mender` mode (none at all), else
    /// the interval or `never`.
    pub fn heartbeat(&self) -> Option<Expiration> {
        match self.auth {
            BackendAuth::Mender => None,
            BackendAuth::Token => Some(
                self.heartbeat_interval
                    .unwrap_or(Expiration::After(DEFAULT_HEARTBEAT_INTERVAL)),
            ),
        }
    }
}

fn default_config_push_interval() -> Duration {
    Duration::from_secs(3600)
}

/// How the agent authenticates to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendAuth {
    Token,
    Mender,
}

/// The `systemd:` section of `monitor.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemdSettings {
    /// Which manager's services are watched: `system` (the default: services of
    /// `systemctl`) or `user` (services of `systemctl --user`, on the session bus of
    /// `DBUS_SESSION_BUS_ADDRESS`).
    #[serde(default)]
    pub bus: SystemdBus,
}

/// The D-Bus bus on which systemd is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemdBus {
    #[default]
    System,
    User,
}

fn default_default_checks() -> bool {
    true
}

fn default_device_id() -> Option<String> {
    None
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/monitor")
}

fn default_runtime_dir() -> PathBuf {
    PathBuf::from("/run/monitor")
}

fn default_flapping_interval() -> Duration {
    Duration::from_secs(600)
}

fn default_flapping_count_threshold() -> u32 {
    5
}

fn default_alert_log_max_age() -> Duration {
    Duration::from_secs(3600)
}

fn default_pattern_expiration() -> Expiration {
    Expiration::Never
}

fn default_log_lines() -> usize {
    30
}

fn default_log_first_read_limit() -> u64 {
    1024 * 1024
}

fn default_log_coalesce() -> Duration {
    Duration::ZERO
}

/// The longest `log_coalesce`: a log alert may wait that long.
pub const MAX_LOG_COALESCE: Duration = Duration::from_secs(1);

fn default_alert_history_max_bytes() -> u64 {
    1024 * 1024
}

fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(300)
}

fn default_sysfs_root() -> PathBuf {
    PathBuf::from("/sys")
}

fn default_procfs_root() -> PathBuf {
    PathBuf::from("/proc")
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            device_id: default_device_id(),
            state_dir: default_state_dir(),
            runtime_dir: default_runtime_dir(),
            flapping_interval: default_flapping_interval(),
            flapping_count_threshold: default_flapping_count_threshold(),
            alert_log_max_age: default_alert_log_max_age(),
            default_log_pattern_expiration: default_pattern_expiration(),
            default_dbus_alert_expiration: default_pattern_expiration(),
            log_lines_before: default_log_lines(),
            log_lines_after: default_log_lines(),
            log_first_read_limit: default_log_first_read_limit(),
            log_coalesce: default_log_coalesce(),
            alert_history_max_bytes: default_alert_history_max_bytes(),
            checkpoint_interval: default_checkpoint_interval(),
            default_checks: default_default_checks(),
            systemd: SystemdSettings::default(),
            delivery: DeliverySettings::default(),
            dbus: DbusSettings::default(),
            sysfs_root: default_sysfs_root(),
            procfs_root: default_procfs_root(),
        }
    }
}

impl Settings {
    /// Where sampled checks read the kernel's files (`sysfs_root`, `procfs_root`).
    pub fn health_roots(&self) -> monitor_health::Roots {
        monitor_health::Roots {
            sys: self.sysfs_root.clone(),
            proc: self.procfs_root.clone(),
        }
    }

    /// Parses and validates the text of a settings file; `file` is only used in problems.
    pub fn from_yaml(text: &str, file: &Path) -> Result<Settings, Vec<Problem>> {
        let value = parse_yaml(text, file)?;
        let nested: [(&str, NestedCheck); 3] = [
            ("systemd", nested_problems::<SystemdSettings>),
            ("delivery", nested_problems::<DeliverySettings>),
            ("dbus", nested_problems::<DbusSettings>),
        ];
        let settings: Settings = deserialize_all(value, file, "", &nested)?;
        let problems = settings.validate(file);
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(problems)
        }
    }

    /// A warning for each secret file these settings name (`delivery.backend.token_file`,
    /// `delivery.discord[N].webhook_url_file`) that its group or others can read, naming the
    /// file and the fix. Such files are still used: a warning, not a refusal. `file` is the
    /// settings file, for the warnings; a secret file that cannot be read is left to the
    /// destination, which says so.
    pub fn secret_file_warnings(&self, file: &Path) -> Vec<Problem> {
        let backend = self.delivery.backend.iter().filter_map(|backend| {
            Some((
                "delivery.backend.token_file".to_owned(),
                backend.token_file.as_ref()?,
            ))
        });
        let delivery = &self.delivery;
        backend
            .chain(secret_files(
                "discord",
                "webhook_url_file",
                &delivery.discord,
                |discord| discord.webhook_url_file.as_ref(),
            ))
            .chain(secret_files(
                "mqtt",
                "password_file",
                &delivery.mqtt,
                |mqtt| mqtt.password_file.as_ref(),
            ))
            .chain(secret_files(
                "email",
                "password_file",
                &delivery.email,
                |email| email.password_file.as_ref(),
            ))
            .chain(secret_files(
                "webhook",
                "secret_file",
                &delivery.webhook,
                |webhook| webhook.secret_file.as_ref(),
            ))
            .chain(secret_files("ntfy", "token_file", &delivery.ntfy, |ntfy| {
                ntfy.token_file.as_ref()
            }))
            .chain(secret_files(
                "ntfy",
                "password_file",
                &delivery.ntfy,
                |ntfy| ntfy.password_file.as_ref(),
            ))
            .chain(secret_files(
                "slack",
                "webhook_url_file",
                &delivery.slack,
                |slack| slack.webhook_url_file.as_ref(),
            ))
            .chain(secret_files(
                "telegram",
                "bot_token_file",
                &delivery.telegram,
                |telegram| telegram.bot_token_file.as_ref(),
            ))
            .filter_map(|(field, secret)| {
                let mode = fs::metadata(secret).ok()?.permissions().mode();
                let message = secret_file_exposure(secret, mode)?;
                Some(Problem::warning_at_field(file, field, message))
            })
            .collect()
    }

    /// Every rule serde cannot express, each as a problem of `file`.
    pub fn validate(&self, file: &Path) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(Problem::at_field(file, field, message));
        };
        if let Some(device_id) = &self.device_id {
            if device_id.trim().is_empty() {
                problem(
                    "device_id",
                    "empty: remove the line to use the hostname, or write a name".to_owned(),
                );
            }
        }
        for (field, dir) in [
            ("state_dir", &self.state_dir),
            ("runtime_dir", &self.runtime_dir),
        ] {
            if !dir.is_absolute() {
                problem(
                    field,
                    format!(
                        "relative path \"{}\": use an absolute path such as /var/lib/monitor",
                        dir.display()
                    ),
                );
            }
        }
        for (field, dir, example) in [
            ("sysfs_root", &self.sysfs_root, "/sys"),
            ("procfs_root", &self.procfs_root, "/proc"),
        ] {
            if !dir.is_absolute() {
                problem(
                    field,
                    format!(
                        "relative path \"{}\": use an absolute path such as {example}",
                        dir.display()
                    ),
                );
            }
        }
        if self.flapping_interval.is_zero() {
            problem(
                "flapping_interval",
                "must be longer than 0s: write a window such as 10m".to_owned(),
            );
        }
        if self.flapping_count_threshold == 0 {
            problem(
                "flapping_count_threshold",
                "must be at least 1: write a number of state changes such as 5".to_owned(),
            );
        }
        if self.alert_log_max_age < self.flapping_interval {
            problem(
                "alert_log_max_age",
                format!(
                    "{} is shorter than flapping_interval ({}): flaps would be forgotten before they are counted, make it at least as long",
                    duration::format_duration(self.alert_log_max_age),
                    duration::format_duration(self.flapping_interval)
                ),
            );
        }
        for (field, lines) in [
            ("log_lines_before", self.log_lines_before),
            ("log_lines_after", self.log_lines_after),
        ] {
            if lines > MAX_CONTEXT_LINES {
                problem(
                    field,
                    format!("{lines} lines is too many: use at most {MAX_CONTEXT_LINES}"),
                );
            }
        }
        for (index, discord) in self.delivery.discord.iter().enumerate() {
            let sources = [
                discord.webhook_url.is_some(),
                discord.webhook_url_file.is_some(),
                discord.webhook_url_env.is_some(),
            ];
            if sources.iter().filter(|set| **set).count() != 1 {
                problem(
                    &format!("delivery.discord[{index}]"),
                    "set exactly one of webhook_url, webhook_url_file and webhook_url_env"
                        .to_owned(),
                );
            }
            for message in discord
                .checks
                .iter()
                .filter_map(|entry| checks_entry_problem(entry))
            {
                problem(&format!("delivery.discord[{index}].checks"), message);
            }
        }
        for (index, mqtt) in self.delivery.mqtt.iter().enumerate() {
            for (field, message) in mqtt.problems() {
                problem(&format!("delivery.mqtt[{index}]{field}"), message);
            }
        }
        for (index, email) in self.delivery.email.iter().enumerate() {
            for (field, message) in email.problems(index) {
                problem(&field, message);
            }
        }
        if let Some(backend) = &self.delivery.backend {
            if backend.auth == BackendAuth::Token {
                if backend.url.is_none() {
                    problem("delivery.backend.url", "missing: auth: token needs the server's URL, for example https://monitor.example.com".to_owned());
                }
                if backend.token_file.is_some() == backend.token_env.is_some() {
                    problem(
                        "delivery.backend",
                        "auth: token needs exactly one of token_file and token_env".to_owned(),
                    );
                }
            }
            match (backend.auth, backend.heartbeat_interval) {
                (BackendAuth::Mender, Some(Expiration::After(_))) => problem(
                    "delivery.backend.heartbeat_interval",
                    "only for auth: token (Mender's API has no heartbeat): remove it".to_owned(),
                ),
                (BackendAuth::Token, Some(Expiration::After(interval)))
                    if interval < MIN_HEARTBEAT_INTERVAL =>
                {
                    problem(
                        "delivery.backend.heartbeat_interval",
                        format!(
                            "{} is too short: write at least 1s, such as 60s, or never",
                            duration::format_duration(interval)
                        ),
                    )
                }
                _ => {}
            }
        }
        for (index, webhook) in self.delivery.webhook.iter().enumerate() {
            for (field, message) in channels::webhook_problems(index, webhook) {
                problem(&field, message);
            }
        }
        for (index, ntfy) in self.delivery.ntfy.iter().enumerate() {
            for (field, message) in channels::ntfy_problems(index, ntfy) {
                problem(&field, message);
            }
        }
        if self.delivery.alert_offline_store_max_count == 0 {
            problem(
                "delivery.alert_offline_store_max_count",
                "must be at least 1: write how many undelivered alerts to keep, such as 1000"
                    .to_owned(),
            );
        }
        if self.checkpoint_interval.is_zero() {
            problem(
                "checkpoint_interval",
                "must be more than 0: write a duration such as 5m".to_owned(),
            );
        }
        if self.log_coalesce > MAX_LOG_COALESCE {
            problem(
                "log_coalesce",
                format!(
                    "{} is too long: every log alert may wait that long, use at most 1s (such as 10ms)",
                    duration::format_duration(self.log_coalesce)
                ),
            );
        }
        if self.alert_history_max_bytes == 0 {
            problem(
                "alert_history_max_bytes",
                "must be more than 0: write a size in bytes such as 1048576".to_owned(),
            );
        }
        problems.extend(chat::validate(&self.delivery, file));
        problems
    }

    /// A log check's expiration: its own, else `default_log_pattern_expiration`; a zero
    /// length is never, as in Mender.
    pub fn pattern_expiration(&self, expiration: Option<Expiration>) -> Expiration {
        nonzero_or_never(expiration.unwrap_or(self.default_log_pattern_expiration))
    }

    /// A D-Bus check's expiration: its own, else `default_dbus_alert_expiration`; a zero
    /// length is never.
    pub fn dbus_alert_expiration(&self, expiration: Option<Expiration>) -> Expiration {
        nonzero_or_never(expiration.unwrap_or(self.default_dbus_alert_expiration))
    }

    /// [`Settings::pattern_expiration`] in whole seconds, as the config push writes it;
    /// `None` for never.
    pub fn expire_seconds(&self, expiration: Option<Expiration>) -> Option<u64> {
        whole_seconds(self.pattern_expiration(expiration))
    }

    /// [`Settings::dbus_alert_expiration`] in whole seconds; `None` for never.
    pub fn dbus_expire_seconds(&self, expiration: Option<Expiration>) -> Option<u64> {
        whole_seconds(self.dbus_alert_expiration(expiration))
    }

    /// The local alert history, `state_dir/alerts.jsonl`.
    pub fn alert_history_path(&self) -> PathBuf {
        self.state_dir.join("alerts.jsonl")
    }
}

fn nonzero_or_never(expiration: Expiration) -> Expiration {
    match expiration {
        Expiration::After(duration) if !duration.is_zero() => Expiration::After(duration),
        _ => Expiration::Never,
    }
}

fn whole_seconds(expiration: Expiration) -> Option<u64> {
    expiration.duration().map(|duration| duration.as_secs())
}

/// What is wrong with a secret file (a token, a webhook URL) of permission bits `mode` that
/// its group or others can read, and the fix; `None` when only its owner can.
pub fn secret_file_exposure(file: &Path, mode: u32) -> Option<String> {
    if mode & 0o044 == 0 {
        return None;
    }
    Some(format!(
        "{} holds a secret and can be read by its group or others (mode {:04o}): run chmod 600 {}",
        file.display(),
        mode & 0o7777,
        file.display()
    ))
}

/// Loads `config_dir/monitor.yaml`. A missing or empty file gives the defaults; otherwise
/// every problem of the file is returned at once.
pub fn load_settings(config_dir: &Path) -> Result<Settings, Vec<Problem>> {
    let file = config_dir.join(SETTINGS_FILE_NAME);
    match read_config_file(&file) {
        Ok(text) => Settings::from_yaml(&text, &file),
        Err(error) if error.is_not_found() => Ok(Settings::default()),
        Err(error) => Err(vec![Problem::in_file(&file, error.to_string())]),
    }
}

/// What is wrong with one entry of a destination's `checks` (`<subsystem>` or
/// `<subsystem> <check>`), if anything.
pub(crate) fn checks_entry_problem(entry: &str) -> Option<String> {
    let subsystem = entry.split_whitespace().next().unwrap_or_default();
    let valid = subsystem.parse::<monitor_wire::Subsystem>().is_ok()
        && entry.split_whitespace().count() <= 2;
    (!valid).then(|| {
        format!("\"{entry}\": write <subsystem> or <subsystem> <check>, for example \"service crasher\"")
    })
}

/// `delivery.<kind>[i].<field>` and the file it names, for each entry of `list` that names one.
fn secret_files<'a, T>(
    kind: &'a str,
    field: &'a str,
    list: &'a [T],
    file: impl Fn(&'a T) -> Option<&'a PathBuf> + 'a,
) -> impl Iterator<Item = (String, &'a PathBuf)> + 'a {
    list.iter().enumerate().filter_map(move |(index, entry)| {
        Some((format!("delivery.{kind}[{index}].{field}"), file(entry)?))
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod systemd_section_tests {
    use super::*;

    #[test]
    fn the_systemd_bus_is_system_by_default_and_user_on_request() {
        let file = Path::new("/etc/monitor/monitor.yaml");
        assert_eq!(
            Settings::from_yaml("", file).unwrap().systemd.bus,
            SystemdBus::System
        );
        let settings = Settings::from_yaml("systemd:\n  bus: user\n", file).unwrap();
        assert_eq!(settings.systemd.bus, SystemdBus::User);
    }

    #[test]
    fn a_wrong_systemd_key_or_bus_names_the_nested_field() {
        let file = Path::new("/etc/monitor/monitor.yaml");
        let problems: Vec<String> =
            Settings::from_yaml("systemd:\n  bus: session\n  buss: user\n", file)
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0]
                .starts_with("/etc/monitor/monitor.yaml: systemd.bus: unknown variant `session`"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("/etc/monitor/monitor.yaml: systemd.buss: unknown key"),
            "{problems:?}"
        );
    }
}

#[cfg(test)]
mod delivery_section_tests {
    use super::*;

    #[test]
    fn the_delivery_section_reads_webhooks_and_a_backend() {
        let file = Path::new("/etc/monitor/monitor.yaml");
        let text = "delivery:\n  alert_offline_store_max_count: 50\n  discord:\n    - webhook_url_env: DISCORD_HOOK\n      username: systemd\n      min_level: CRITICAL\n      checks: [service, log crasher_app]\n  backend:\n    url: https://monitor.example.com\n    auth: token\n    token_file: /etc/monitor/token\n";
        let settings = Settings::from_yaml(text, file).unwrap();
        let delivery = &settings.delivery;
        assert_eq!(delivery.alert_offline_store_max_count, 50);
        assert_eq!(
            delivery.discord[0].webhook_url_env.as_deref(),
            Some("DISCORD_HOOK")
        );
        assert_eq!(delivery.discord[0].min_level, MinLevel::Critical);
        assert_eq!(
            delivery.discord[0].checks,
            vec!["service", "log crasher_app"]
        );
        let backend = delivery.backend.as_ref().unwrap();
        assert_eq!(backend.auth, BackendAuth::Token);
        assert_eq!(backend.config_push_interval, Duration::from_secs(3600));
    }

    #[test]
    fn mqtt_brokers_are_read_with_home_assistant_defaults_and_checked() {
        let file = Path::new("/etc/monitor/monitor.yaml");
        let text = "delivery:\n  mqtt:\n    - url: mqtts://broker.lan:8883\n      username: pi\n      password_file: /etc/monitor/mqtt-password\n      min_level: CRITICAL\n";
        let settings = Settings::from_yaml(text, file).unwrap();
        let mqtt = &settings.delivery.mqtt[0];
        assert_eq!(mqtt.base_topic, "monitor");
        assert_eq!(mqtt.discovery_prefix, "homeassistant");
        assert!(mqtt.discovery);
        assert_eq!(mqtt.min_level, MinLevel::Critical);
        let text = "delivery:\n  mqtt:\n    - url: http://broker.lan\n      password_env: MQTT_PASSWORD\n      password_file: /x\n      checks: [files]\n";
        let problems: Vec<String> = Settings::from_yaml(text, file)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            vec![
                "/etc/monitor/monitor.yaml: delivery.mqtt[0].url: write mqtt://host:1883, or mqtts://host:8883 for TLS",
                "/etc/monitor/monitor.yaml: delivery.mqtt[0]: set at most one of password_file and password_env",
                "/etc/monitor/monitor.yaml: delivery.mqtt[0].username: missing: a password needs the user name it belongs to",
                "/etc/monitor/monitor.yaml: delivery.mqtt[0].checks: \"files\": write <subsystem> or <subsystem> <check>, for example \"service crasher\"",
            ]
        );
    }

    #[test]
    fn heartbeats_go_in_token_mode_only_every_minute_unless_set() {
        let file = Path::new("/etc/monitor/monitor.yaml");
        let token = "delivery:\n  backend:\n    url: https://monitor.example.com\n    auth: token\n    token_env: TOKEN\n";
        let heartbeat = |text: &str| {
            Settings::from_yaml(text, file)
                .unwrap()
                .delivery
                .backend
                .unwrap()
                .heartbeat()
        };
        assert_eq!(
            heartbeat(token),
            Some(Expiration::After(DEFAULT_HEARTBEAT_INTERVAL))
        );
        assert_eq!(
            heartbeat(&format!("{token}    heartbeat_interval: 5s\n")),
            Some(Expiration::After(Duration::from_secs(5)))
        );
        for never in ["never", "0"] {
            assert_eq!(
                heartbeat(&format!("{token}    heartbeat_interval: {never}\n")),
                Some(Expiration::Never)
            );
        }
        assert_eq!(heartbeat("delivery:\n  backend:\n    auth: mender\n"), None);

        for (text, expected) in [
            (
                "delivery:\n  backend:\n    auth: mender\n    heartbeat_interval: 60s\n".to_owned(),
                "/etc/monitor/monitor.yaml: delivery.backend.heartbeat_interval: only for auth: token (Mender's API has no heartbeat): remove it",
            ),
            (
                format!("{token}    heartbeat_interval: 500ms\n"),
                "/etc/monitor/monitor.yaml: delivery.backend.heartbeat_interval: 500ms is too short: write at least 1s, such as 60s, or never",
            ),
        ] {
            let problems: Vec<String> = Settings::from_yaml(&text, file)
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(problems, [expected]);
        }
    }

    #[test]
    fn delivery_mistakes_name_their_field_and_fix() {
        let file = Path::new("/etc/monitor/monitor.yaml");
        let text = "delivery:\n  discord:\n    - username: x\n      checks: [files]\n  backend:\n    auth: token\n";
        let problems: Vec<String> = Settings::from_yaml(text, file)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            vec![
                "/etc/monitor/monitor.yaml: delivery.discord[0]: set exactly one of webhook_url, webhook_url_file and webhook_url_env",
                "/etc/monitor/monitor.yaml: delivery.discord[0].checks: \"files\": write <subsystem> or <subsystem> <check>, for example \"service crasher\"",
                "/etc/monitor/monitor.yaml: delivery.backend.url: missing: auth: token needs the server's URL, for example https://monitor.example.com",
                "/etc/monitor/monitor.yaml: delivery.backend: auth: token needs exactly one of token_file and token_env",
            ]
        );
    }
}
