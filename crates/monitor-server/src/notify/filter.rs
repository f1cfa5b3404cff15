//! [`ChannelFilter`]: which alerts a channel takes, by level, check and device, as the
//! agent's destinations do with `min_level` and `checks`.
//!
//! The server applies it when it queues an alert for notification, so a channel never has
//! a message waiting about an alert it does not want. Three decisions, each as the agent's
//! own filter has them:
//! - `min_level` CRITICAL takes CRITICALs only: the OK that ends one ("resolved") is left
//!   out too, like the agent's `min_level` (Alertmanager would send it with its
//!   `send_resolved`; a channel that wants the resolution keeps `OK` and filters by check
//!   or device instead).
//! - `checks` has the agent's shape, `<subsystem>` or `<subsystem> <check>`, but the wire
//!   alert the server receives names no check, only its subject: an entry here is
//!   `<subject type>` or `<subject type> <subject name>` (`systemd`, `log app`). The
//!   server's own alerts about a device ("Device pi-1 silent", "back") have the subject
//!   `monitor heartbeat`: a channel with `checks` gets them only if they list `monitor` or
//!   `monitor heartbeat`.
//! - `devices` are device names, `*` and `?` matching any text and any one character
//!   (`pi-*`); silence alerts go through it like the device's own.

use std::fmt;

use monitor_wire::{Alert, Level};

/// The longest entry of `checks` or `devices`; more is a paste gone wrong.
const LONGEST_ENTRY: usize = 200;

/// A channel's `min_level`, `checks` and `devices`; every alert of every device when all
/// are left at their default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelFilter {
    min_level: MinLevel,
    checks: Vec<String>,
    devices: Vec<String>,
}

/// The least level a channel receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinLevel {
    /// Every alert.
    #[default]
    Ok,
    /// CRITICALs only (no OK, so no "resolved" either).
    Critical,
}

impl MinLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            MinLevel::Ok => "OK",
            MinLevel::Critical => "CRITICAL",
        }
    }

    /// `OK` or `CRITICAL` (any case); the message starts with `min_level: `.
    pub fn parse(text: &str) -> Result<MinLevel, String> {
        match text.trim() {
            level if level.eq_ignore_ascii_case("OK") => Ok(MinLevel::Ok),
            level if level.eq_ignore_ascii_case("CRITICAL") => Ok(MinLevel::Critical),
            other => Err(format!(
                "min_level: `{other}` is not a level: use OK (every alert) or CRITICAL (CRITICALs only)"
            )),
        }
    }
}

impl ChannelFilter {
    /// Checks what a user gave; the message starts with the field at fault (`min_level: `,
    /// `checks: `, `devices: `) and says what to write. Entries are trimmed, empty ones
    /// refused.
    pub fn new(
        min_level: Option<&str>,
        checks: &[String],
        devices: &[String],
    ) -> Result<ChannelFilter, String> {
        let min_level = match min_level {
            Some(text) if !text.trim().is_empty() => MinLevel::parse(text)?,
            _ => MinLevel::Ok,
        };
        let checks = checked_entries("checks", checks, |entry| {
            let mut words = entry.split_whitespace();
            let subject_type = words.next().unwrap_or_default();
            let subject_name: Vec<&str> = words.collect();
            Ok(if subject_name.is_empty() {
                subject_type.to_owned()
            } else {
                format!("{subject_type} {}", subject_name.join(" "))
            })
        })?;
        let devices = checked_entries("devices", devices, |entry| {
            if entry.chars().any(char::is_whitespace) {
                return Err(format!(
                    "devices: \"{entry}\" has a space: write one device name or pattern per entry, for example \"pi-*\""
                ));
            }
            Ok(entry.to_owned())
        })?;
        Ok(ChannelFilter {
            min_level,
            checks,
            devices,
        })
    }

    /// Parses comma-separated lists, as the dashboard's form and the CLI's flags give them.
    pub fn from_text(
        min_level: Option<&str>,
        checks: &str,
        devices: &str,
    ) -> Result<ChannelFilter, String> {
        ChannelFilter::new(min_level, &split_list(checks), &split_list(devices))
    }

    pub fn min_level(&self) -> MinLevel {
        self.min_level
    }

    pub fn checks(&self) -> &[String] {
        &self.checks
    }

    pub fn devices(&self) -> &[String] {
        &self.devices
    }

    /// Whether the channel takes `alert` of the device named `device_name`.
    pub fn wants(&self, device_name: &str, alert: &Alert) -> bool {
        if self.min_level == MinLevel::Critical && alert.level != Level::Critical {
            return false;
        }
        let device_wanted = self.devices.is_empty()
            || self
                .devices
                .iter()
                .any(|pattern| glob_matches(pattern, device_name));
        let check_wanted = self.checks.is_empty()
            || self.checks.iter().any(|entry| {
                let (subject_type, subject_name) = entry
                    .split_once(' ')
                    .map_or((entry.as_str(), None), |(kind, name)| (kind, Some(name)));
                subject_type == alert.subject.kind
                    && subject_name.is_none_or(|name| name == alert.subject.name)
            });
        device_wanted && check_wanted
    }
}

/// `OK` for a channel that takes everything, else what it keeps:
/// `CRITICAL; checks: systemd nginx, log app; devices: pi-*`.
impl fmt::Display for ChannelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.min_level.as_str())?;
        if !self.checks.is_empty() {
            write!(f, "; checks: {}", self.checks.join(", "))?;
        }
        if !self.devices.is_empty() {
            write!(f, "; devices: {}", self.devices.join(", "))?;
        }
        Ok(())
    }
}

/// The entries of a comma-separated list, trimmed, empty ones left out.
fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Each entry trimmed, checked for length and emptiness, then by `normal`.
fn checked_entries(
    field: &str,
    entries: &[String],
    normal: impl Fn(&str) -> Result<String, String>,
) -> Result<Vec<String>, String> {
    let example = match field {
        "checks" => {
            "<subject type> or <subject type> <subject name>, for example \"systemd nginx\""
        }
        _ => "a device name or a pattern, for example \"pi-*\"",
    };
    entries
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(format!("{field}: an entry is empty: write {example}"));
            }
            if entry.chars().count() > LONGEST_ENTRY || entry.chars().any(char::is_control) {
                return Err(format!(
                    "{field}: \"{}…\" is too long or has control characters: write {example}",
                    entry.chars().take(20).collect::<String>()
                ));
            }
            normal(entry)
        })
        .collect()
}

/// Whether `text` matches `pattern`, where `*` is any text and `?` any one character.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // The classic backtracking over the last `*`: linear in practice, never exponential.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_wire::{Details, Subject, Timestamp};
    use std::time::UNIX_EPOCH;

    fn alert(kind: &str, name: &str, level: Level) -> Alert {
        Alert {
            name: format!("{name} is {level}"),
            level,
            timestamp: Timestamp(UNIX_EPOCH),
            subject: Subject {
                name: name.into(),
                kind: kind.into(),
                status: "x".into(),
                details: Details::default(),
            },
        }
    }

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|entry| (*entry).to_owned()).collect()
    }

    #[test]
    fn globs_match_whole_names() {
        for (pattern, text, expected) in [
            ("pi-*", "pi-1", true),
            ("pi-*", "pi-", true),
            ("pi-*", "xpi-1", false),
            ("pi-?", "pi-12", false),
            ("*-gw-*", "site-gw-2", true),
            ("pi-1", "pi-1", true),
            ("pi-1", "pi-10", false),
            ("*", "", true),
        ] {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern} {text}");
        }
    }

    #[test]
    fn each_part_of_the_filter_narrows_it() {
        let everything = ChannelFilter::default();
        assert!(everything.wants("pi-1", &alert("log", "app", Level::Ok)));
        assert_eq!(everything.to_string(), "OK");

        let filter = ChannelFilter::new(
            Some("critical"),
            &list(&["systemd", " log  app "]),
            &list(&["pi-*"]),
        )
        .unwrap();
        assert_eq!(
            filter.to_string(),
            "CRITICAL; checks: systemd, log app; devices: pi-*"
        );
        assert!(filter.wants("pi-1", &alert("systemd", "nginx", Level::Critical)));
        assert!(filter.wants("pi-1", &alert("log", "app", Level::Critical)));
        assert!(
            !filter.wants("pi-1", &alert("log", "app", Level::Ok)),
            "no resolved"
        );
        assert!(!filter.wants("pi-1", &alert("log", "db", Level::Critical)));
        assert!(!filter.wants("gw-1", &alert("log", "app", Level::Critical)));
        assert!(
            !filter.wants("pi-1", &alert("monitor", "heartbeat", Level::Critical)),
            "a silence is a check like the others"
        );
    }

    #[test]
    fn bad_values_name_their_field_and_the_fix() {
        let error = ChannelFilter::new(Some("WARNING"), &[], &[]).unwrap_err();
        assert_eq!(
            error,
            "min_level: `WARNING` is not a level: use OK (every alert) or CRITICAL (CRITICALs only)"
        );
        let error = ChannelFilter::new(None, &list(&[" "]), &[]).unwrap_err();
        assert_eq!(
            error,
            "checks: an entry is empty: write <subject type> or <subject type> <subject name>, for example \"systemd nginx\""
        );
        let error = ChannelFilter::new(None, &[], &list(&["pi 1"])).unwrap_err();
        assert!(
            error.starts_with("devices: \"pi 1\" has a space"),
            "{error}"
        );
        assert_eq!(
            ChannelFilter::from_text(None, " systemd nginx, ,log ", "")
                .unwrap()
                .checks(),
            ["systemd nginx", "log"]
        );
    }
}
