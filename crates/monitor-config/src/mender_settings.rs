//! Mender's settings file (`/usr/share/mender-monitor/config/config.sh`) as our
//! `monitor.yaml` keys, for `monitorctl import-mender`: read with the same parser as check
//! files (never run), each known key converted, every other key reported with why it is
//! not carried. Merging into an existing `monitor.yaml` is [`merge_settings`]'s job.

use std::path::Path;

use serde_norway::{Mapping, Value};

use crate::mender::parse_shell_assignments;
use crate::settings::{Settings, MAX_CONTEXT_LINES};
use crate::Problem;

/// Where Mender keeps its settings.
pub const MENDER_CONFIG_FILE: &str = "/usr/share/mender-monitor/config/config.sh";

/// One Mender setting carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedSetting {
    /// Our key, dotted for nested sections (`delivery.alert_offline_store_max_count`).
    pub key: &'static str,
    /// Its value, as YAML.
    pub value: Value,
    /// The Mender key it came from.
    pub mender_key: String,
}

impl CarriedSetting {
    /// The value as written in `monitor.yaml` (`120`, `never`).
    pub fn value_text(&self) -> String {
        serde_norway::to_string(&self.value)
            .map(|text| text.trim_end().to_owned())
            .unwrap_or_default()
    }
}

/// One Mender setting (or line) not carried over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCarried {
    /// The Mender key; `None` for a line that is not an assignment.
    pub mender_key: Option<String>,
    /// Why, and what to do instead. Never holds the value (`ALERT_URL` may hold a secret).
    pub reason: String,
}

/// What [`convert_mender_settings`] made of a `config.sh`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MenderSettings {
    /// In the order of the file; a key set twice is carried once, with its last value.
    pub carried: Vec<CarriedSetting>,
    pub not_carried: Vec<NotCarried>,
}

/// How a Mender value becomes ours.
#[derive(Clone, Copy)]
enum Conversion {
    /// Whole seconds, written as seconds.
    Seconds,
    /// Whole seconds where 0 means no expiration, written `never`.
    Expiration,
    /// A whole number at least 1.
    Count,
    /// A number of context lines.
    Lines,
}

/// Mender's keys that have a counterpart here.
const CARRIED: [(&str, &str, Conversion); 10] = [
    (
        "FLAPPING_INTERVAL",
        "flapping_interval",
        Conversion::Seconds,
    ),
    (
        "FLAPPING_COUNT_THRESHOLD",
        "flapping_count_threshold",
        Conversion::Count,
    ),
    (
        "ALERT_LOG_MAX_AGE",
        "alert_log_max_age",
        Conversion::Seconds,
    ),
    (
        "DEFAULT_LOG_LINES_BEFORE",
        "log_lines_before",
        Conversion::Lines,
    ),
    (
        "DEFAULT_LOG_LINES_AFTER",
        "log_lines_after",
        Conversion::Lines,
    ),
    (
        "DEFAULT_LOG_PATTERN_EXPIRATION_SECONDS",
        "default_log_pattern_expiration",
        Conversion::Expiration,
    ),
    (
        "DEFAULT_DBUS_ALERT_EXPIRATION_SECONDS",
        "default_dbus_alert_expiration",
        Conversion::Expiration,
    ),
    (
        "ALERT_OFFLINE_STORE_MAX_COUNT",
        "delivery.alert_offline_store_max_count",
        Conversion::Count,
    ),
    (
        "ALERT_STORE_MAX_RECORD_AGE_S",
        "delivery.alert_store_max_record_age",
        Conversion::Seconds,
    ),
    (
        "CONFPUSH_INTERVAL",
        "delivery.backend.config_push_interval",
        Conversion::Seconds,
    ),
];

/// Mender's keys known to have no counterpart, with what replaces them.
const REPLACED: [(&str, &str); 4] = [
    (
        "ALERT_URL",
        "the server is set in monitor.yaml under delivery.backend (with auth: mender the Mender client says where it is)",
    ),
    (
        "CONFIG_LOG_LEVEL",
        "monitord's log level is set with RUST_LOG (for example RUST_LOG=debug in its unit's Environment=)",
    ),
    (
        "DAEMON_LOG_FILE",
        "monitord logs to stderr, which systemd keeps in the journal (journalctl -u monitord)",
    ),
    (
        "MONITOR_D_DIRECTORY",
        "the checks live in monitorctl's --config-dir (default /etc/monitor); import-mender converts the monitor.d folder it is given",
    ),
];

/// Converts the text of Mender's `config.sh`.
pub fn convert_mender_settings(text: &str) -> MenderSettings {
    let (assignments, errors) = parse_shell_assignments(text);
    let mut settings = MenderSettings::default();
    for error in errors {
        settings.not_carried.push(NotCarried {
            mender_key: error.key,
            reason: error.message,
        });
    }
    for assignment in assignments {
        let key = assignment.key.as_str();
        if let Some((_, ours, conversion)) = CARRIED.iter().find(|(mender, ..)| *mender == key) {
            match convert(&assignment.value, *conversion) {
                Ok(value) => {
                    // As in a shell, the last assignment wins.
                    settings.carried.retain(|carried| carried.key != *ours);
                    settings.carried.push(CarriedSetting {
                        key: ours,
                        value,
                        mender_key: key.to_owned(),
                    });
                }
                Err(message) => settings.not_carried.push(NotCarried {
                    mender_key: Some(key.to_owned()),
                    reason: format!("line {}: {message}", assignment.line),
                }),
            }
        } else if let Some((_, reason)) = REPLACED.iter().find(|(mender, _)| *mender == key) {
            settings.not_carried.push(NotCarried {
                mender_key: Some(key.to_owned()),
                reason: format!("no counterpart: {reason}"),
            });
        } else {
            settings.not_carried.push(NotCarried {
                mender_key: Some(key.to_owned()),
                reason:
                    "no counterpart in this agent's settings (see monitor.yaml's documented keys)"
                        .to_owned(),
            });
        }
    }
    settings
}

fn convert(text: &str, conversion: Conversion) -> Result<Value, String> {
    let number = text.trim().parse::<u64>().map_err(|_| match conversion {
        Conversion::Seconds | Conversion::Expiration => {
            format!("\"{text}\" is not a whole number of seconds: fix it in config.sh, or set the key in monitor.yaml")
        }
        Conversion::Count | Conversion::Lines => {
            format!("\"{text}\" is not a whole number: fix it in config.sh, or set the key in monitor.yaml")
        }
    })?;
    match conversion {
        Conversion::Seconds if number == 0 => Err(
            "0 seconds is not a usable length of time here: set the key in monitor.yaml".to_owned(),
        ),
        Conversion::Count if number == 0 => Err(
            "0 is not allowed here, it must be at least 1: set the key in monitor.yaml".to_owned(),
        ),
        Conversion::Lines if number > MAX_CONTEXT_LINES as u64 => Err(format!(
            "{number} lines is too many (at most {MAX_CONTEXT_LINES}): set the key in monitor.yaml"
        )),
        Conversion::Expiration if number == 0 => Ok(Value::String("never".to_owned())),
        _ => Ok(Value::Number(number.into())),
    }
}

/// Why [`merge_settings`] did not carry a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaced {
    pub setting: CarriedSetting,
    pub reason: String,
}

/// What [`merge_settings`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedSettings {
    /// The new text of `monitor.yaml`.
    pub text: String,
    /// Settings of a section that is not there and cannot be made up.
    pub unplaced: Vec<Unplaced>,
    /// What is wrong with `text` as settings (an `alert_log_max_age` shorter than the
    /// `flapping_interval`): write it only when this is empty.
    pub problems: Vec<Problem>,
}

/// The text of `monitor.yaml` with `carried` set in it: `existing` (the current file's
/// text, or `None` when there is none) keeps every other key (but not its comments). A
/// setting of a section that is not there and cannot be made up (`delivery.backend` needs
/// an `auth`) is returned as unplaced. The result is validated as settings. `Err` when
/// `existing` is not a YAML map.
pub fn merge_settings(
    existing: Option<&str>,
    carried: &[CarriedSetting],
    file: &Path,
) -> Result<MergedSettings, Vec<Problem>> {
    let mut root = match existing.map(serde_norway::from_str::<Value>) {
        None => Value::Mapping(Mapping::new()),
        Some(Ok(Value::Null)) => Value::Mapping(Mapping::new()),
        Some(Ok(value @ Value::Mapping(_))) => value,
        Some(Ok(_)) => {
            return Err(vec![Problem::in_file(
                file,
                "not a map of settings: fix the file, or move it away to import Mender's settings",
            )])
        }
        Some(Err(error)) => {
            return Err(vec![Problem::in_file(
                file,
                format!("not valid YAML: {error}: fix the file first"),
            )])
        }
    };
    let mut unplaced = Vec::new();
    for setting in carried {
        let path: Vec<&str> = setting.key.split('.').collect();
        if place(&mut root, &path, setting.value.clone()).is_err() {
            let (last, sections) = path.split_last().expect("keys are not empty");
            let section = sections.join(".");
            unplaced.push(Unplaced {
                setting: setting.clone(),
                reason: format!(
                    "monitor.yaml has no {section} section: add {last}: {} under {section} once you configure one",
                    setting.value_text()
                ),
            });
        }
    }
    let text = serde_norway::to_string(&root).map_err(|error| {
        vec![Problem::in_file(
            file,
            format!("cannot write the settings as YAML: {error}"),
        )]
    })?;
    let problems = Settings::from_yaml(&text, file).err().unwrap_or_default();
    Ok(MergedSettings {
        text,
        unplaced,
        problems,
    })
}

/// Sets `path` (sections, then the key) in `map`, making the sections that are missing,
/// except `backend`, which needs an `auth` that Mender's settings do not say.
fn place(map: &mut Value, path: &[&str], value: Value) -> Result<(), ()> {
    if map.is_null() {
        *map = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(mapping) = map else {
        return Err(());
    };
    let Some((first, rest)) = path.split_first() else {
        return Err(());
    };
    let key = Value::String((*first).to_owned());
    if rest.is_empty() {
        mapping.insert(key, value);
        return Ok(());
    }
    if !mapping.contains_key(&key) {
        if *first == "backend" {
            return Err(());
        }
        mapping.insert(key.clone(), Value::Mapping(Mapping::new()));
    }
    match mapping.get_mut(&key) {
        Some(section) => place(section, rest, value),
        None => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG_SH: &str = r#"# Mender Monitor settings
ALERT_URL="https://user:secret@hosted.mender.io/alerts"
CONFIG_LOG_LEVEL=debug
FLAPPING_INTERVAL=120
FLAPPING_COUNT_THRESHOLD=3
ALERT_LOG_MAX_AGE=7200
DEFAULT_LOG_LINES_BEFORE=10
DEFAULT_LOG_LINES_AFTER=5
DEFAULT_LOG_PATTERN_EXPIRATION_SECONDS=0
DEFAULT_DBUS_ALERT_EXPIRATION_SECONDS=60
ALERT_OFFLINE_STORE_MAX_COUNT=500
ALERT_STORE_MAX_RECORD_AGE_S=86400
CONFPUSH_INTERVAL=300
SEND_ALERT_MAX_INTERVAL_S=abc
DAEMON_LOG_FILE="$HOME/monitor.log"
FLAPPING_INTERVAL=180
"#;

    #[test]
    fn carries_every_known_key_and_says_why_not_for_the_rest() {
        let settings = convert_mender_settings(CONFIG_SH);
        let carried: Vec<(&str, String, &str)> = settings
            .carried
            .iter()
            .map(|setting| {
                (
                    setting.key,
                    serde_norway::to_string(&setting.value)
                        .unwrap()
                        .trim()
                        .to_owned(),
                    setting.mender_key.as_str(),
                )
            })
            .collect();
        assert_eq!(
            carried,
            [
                (
                    "flapping_count_threshold",
                    "3".into(),
                    "FLAPPING_COUNT_THRESHOLD"
                ),
                ("alert_log_max_age", "7200".into(), "ALERT_LOG_MAX_AGE"),
                ("log_lines_before", "10".into(), "DEFAULT_LOG_LINES_BEFORE"),
                ("log_lines_after", "5".into(), "DEFAULT_LOG_LINES_AFTER"),
                (
                    "default_log_pattern_expiration",
                    "never".into(),
                    "DEFAULT_LOG_PATTERN_EXPIRATION_SECONDS"
                ),
                (
                    "default_dbus_alert_expiration",
                    "60".into(),
                    "DEFAULT_DBUS_ALERT_EXPIRATION_SECONDS"
                ),
                (
                    "delivery.alert_offline_store_max_count",
                    "500".into(),
                    "ALERT_OFFLINE_STORE_MAX_COUNT"
                ),
                (
                    "delivery.alert_store_max_record_age",
                    "86400".into(),
                    "ALERT_STORE_MAX_RECORD_AGE_S"
                ),
                (
                    "delivery.backend.config_push_interval",
                    "300".into(),
                    "CONFPUSH_INTERVAL"
                ),
                ("flapping_interval", "180".into(), "FLAPPING_INTERVAL"),
            ]
        );
        let not_carried: Vec<String> = settings
            .not_carried
            .iter()
            .map(|not| {
                format!(
                    "{}: {}",
                    not.mender_key.as_deref().unwrap_or("-"),
                    not.reason
                )
            })
            .collect();
        assert_eq!(
            not_carried,
            [
                "DAEMON_LOG_FILE: line 15: `$HOME` would be expanded by a shell, but check files are read, not run: write the value itself, or escape the dollar as \\$",
                "ALERT_URL: no counterpart: the server is set in monitor.yaml under delivery.backend (with auth: mender the Mender client says where it is)",
                "CONFIG_LOG_LEVEL: no counterpart: monitord's log level is set with RUST_LOG (for example RUST_LOG=debug in its unit's Environment=)",
                "SEND_ALERT_MAX_INTERVAL_S: no counterpart in this agent's settings (see monitor.yaml's documented keys)",
            ]
        );
        assert!(
            !not_carried.iter().any(|line| line.contains("secret")),
            "values are never repeated: {not_carried:?}"
        );
    }

    #[test]
    fn merging_keeps_other_keys_and_leaves_out_a_backend_it_cannot_make() {
        let file = Path::new("/etc/monitor/monitor.yaml");
        let carried = vec![
            CarriedSetting {
                key: "flapping_interval",
                value: Value::Number(120.into()),
                mender_key: "FLAPPING_INTERVAL".into(),
            },
            CarriedSetting {
                key: "delivery.alert_offline_store_max_count",
                value: Value::Number(500.into()),
                mender_key: "ALERT_OFFLINE_STORE_MAX_COUNT".into(),
            },
            CarriedSetting {
                key: "delivery.backend.config_push_interval",
                value: Value::Number(300.into()),
                mender_key: "CONFPUSH_INTERVAL".into(),
            },
        ];
        let merged = merge_settings(None, &carried, file).unwrap();
        assert_eq!(merged.problems, []);
        let unplaced = merged.unplaced;
        assert_eq!(
            merged.text,
            "flapping_interval: 120\ndelivery:\n  alert_offline_store_max_count: 500\n"
        );
        assert_eq!(unplaced.len(), 1);
        assert_eq!(
            unplaced[0].reason,
            "monitor.yaml has no delivery.backend section: add config_push_interval: 300 under delivery.backend once you configure one"
        );

        let existing =
            "device_id: pi\nflapping_interval: 60\ndelivery:\n  backend:\n    auth: mender\n";
        let merged = merge_settings(Some(existing), &carried, file).unwrap();
        assert_eq!(merged.unplaced, []);
        assert_eq!(merged.problems, []);
        assert_eq!(
            merged.text,
            "device_id: pi\nflapping_interval: 120\ndelivery:\n  backend:\n    auth: mender\n    config_push_interval: 300\n  alert_offline_store_max_count: 500\n"
        );

        let short_memory = vec![CarriedSetting {
            key: "alert_log_max_age",
            value: Value::Number(60.into()),
            mender_key: "ALERT_LOG_MAX_AGE".into(),
        }];
        let problems = merge_settings(None, &short_memory, file).unwrap().problems;
        assert!(
            problems[0]
                .to_string()
                .contains("shorter than flapping_interval"),
            "{problems:?}"
        );
        assert!(merge_settings(Some("- a list\n"), &carried, file).is_err());
    }
}
