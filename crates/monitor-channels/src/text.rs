//! An alert as plain text: a title that says the level and what it is about, and a body with
//! what the alert carries. Services with their own layout (Slack's blocks, Telegram's
//! Markdown) start from these and escape them their way.

use monitor_destination::OutgoingAlert;
use monitor_wire::{Level, LogLine};

/// Marks where text was cut.
pub const TRUNCATION_MARKER: char = '…';

/// An alert in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertText {
    /// `CRITICAL: log app on pi-kitchen` / `OK: service nginx.service on pi-kitchen`.
    pub title: String,
    /// What it is about (the check, and its subject when that says more), the status, the
    /// description, the matching log line with its context, and when it was seen; one item
    /// per line.
    pub body: String,
}

/// `alert` about `device`, in words.
pub fn alert_text(device: &str, alert: &OutgoingAlert<'_>) -> AlertText {
    let wire = alert.alert;
    let what = about(alert);
    let title = format!("{}: {what} on {device}", level_word(wire.level));
    let mut body = Vec::new();
    body.push(format!("Status: {}", wire.subject.status));
    if let Some(description) = &wire.subject.details.description {
        body.push(description.clone());
    }
    let details = &wire.subject.details;
    if let Some(matching) = &details.line_matching {
        body.push(String::new());
        body.extend(
            details
                .lines_before
                .iter()
                .map(|line| context_line(line, "  ")),
        );
        body.push(context_line(matching, "> "));
        body.extend(
            details
                .lines_after
                .iter()
                .map(|line| context_line(line, "  ")),
        );
        body.push(String::new());
    }
    body.push(format!("Seen: {}", wire.timestamp));
    AlertText {
        title,
        body: body.join("\n"),
    }
}

/// `CRITICAL` or `OK`.
pub fn level_word(level: Level) -> &'static str {
    match level {
        Level::Critical => "CRITICAL",
        Level::Ok => "OK",
    }
}

/// The check (`log app`), with its subject when that names something else (a unit of the
/// all-units check: `service failed_units (nginx.service)`); the subject alone when the
/// check is not known (monitor-server's alerts: `systemd nginx.service`).
pub fn about(alert: &OutgoingAlert<'_>) -> String {
    let subject = &alert.alert.subject;
    match alert.check {
        Some(check) if check.name == subject.name => check.to_string(),
        Some(check) => format!("{check} ({})", subject.name),
        None => format!("{} {}", subject.kind, subject.name),
    }
}

fn context_line(line: &LogLine, marker: &str) -> String {
    format!("{marker}{}: {}", line.line_number, line.data)
}

/// `text` cut to at most `limit` characters (not bytes), the marker inside the limit.
pub fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(1)).collect();
    if limit > 0 {
        cut.push(TRUNCATION_MARKER);
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_wire::{Alert, CheckId, Details, Subject, Subsystem, Timestamp};

    fn alert(level: Level, name: &str, line: Option<&str>) -> Alert {
        Alert {
            name: "alert".into(),
            level,
            timestamp: Timestamp(std::time::UNIX_EPOCH),
            subject: Subject {
                name: name.into(),
                kind: "systemd".into(),
                status: "not-running".into(),
                details: Details {
                    description: Some("it stopped".into()),
                    line_matching: line.map(|data| LogLine {
                        line_number: 7,
                        data: data.into(),
                    }),
                    ..Details::default()
                },
            },
        }
    }

    #[test]
    fn the_title_says_the_level_the_check_and_the_device() {
        let check = CheckId::new(Subsystem::Service, "failed_units");
        let wire = alert(Level::Critical, "nginx.service", Some("boom"));
        let text = alert_text(
            "pi",
            &OutgoingAlert {
                seq: 1,
                check: Some(&check),
                alert: &wire,
                link: None,
            },
        );
        assert_eq!(
            text.title,
            "CRITICAL: service failed_units (nginx.service) on pi"
        );
        assert!(text.body.starts_with("Status: not-running\nit stopped\n"));
        assert!(text.body.contains("> 7: boom"));
        let ok = alert(Level::Ok, "nginx.service", None);
        let text = alert_text(
            "pi",
            &OutgoingAlert {
                seq: 2,
                check: None,
                alert: &ok,
                link: None,
            },
        );
        assert_eq!(text.title, "OK: systemd nginx.service on pi");
    }

    #[test]
    fn cuts_count_characters_and_keep_the_marker_inside_the_limit() {
        assert_eq!(cut("ééééé", 5), "ééééé");
        assert_eq!(cut("éééééé", 5), "éééé…");
        assert_eq!(cut("abc", 0), "");
    }
}
