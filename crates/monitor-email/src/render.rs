//! What an email about alerts says: Mender's subject and a text and an HTML body.

use std::fmt::Write as _;

use monitor_wire::{Alert, Level, LogLine};

/// One alert of a message, and how many state changes of its subject it stands for (more
/// than one when a subject flapped between two messages; the alert is the latest).
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub alert: &'a Alert,
    pub changes: usize,
}

/// The device a message is about: its name, its id when it differs (the server's), and
/// the page about it a reader can open (the server's dashboard, with `--public-url`).
#[derive(Debug, Clone, Copy)]
pub struct Device<'a> {
    pub name: &'a str,
    pub id: Option<&'a str>,
    pub link: Option<&'a str>,
}

/// Mender's subject for one alert; with several, the first one (the caller puts the most
/// important first) and how many more. `entries` is never empty.
pub fn subject(device_name: &str, entries: &[Entry<'_>]) -> String {
    let first = entries[0].alert;
    let changes: usize = entries.iter().map(|entry| entry.changes).sum();
    let mut subject = format!(
        "{}: Monitor Alert for {} on {device_name}",
        first.level, first.name
    );
    if changes > 1 {
        let _ = write!(subject, " (and {} more)", changes - 1);
    }
    // A header holds one line: a name with a line break would start another header.
    subject.replace(['\r', '\n'], " ")
}

fn lines(details: &monitor_wire::Details) -> Vec<(&LogLine, bool)> {
    let mut lines: Vec<(&LogLine, bool)> = details
        .lines_before
        .iter()
        .map(|line| (line, false))
        .collect();
    if let Some(line) = &details.line_matching {
        lines.push((line, true));
    }
    lines.extend(details.lines_after.iter().map(|line| (line, false)));
    lines
}

fn device_line(device: Device<'_>) -> String {
    let mut line = match device.id {
        Some(id) => format!("Device: {} (id {id})\n", device.name),
        None => format!("Device: {}\n", device.name),
    };
    if let Some(link) = device.link {
        // One line: a link with a line break could add lines of its own.
        let _ = writeln!(line, "Open: {}", link.replace(['\r', '\n'], ""));
    }
    line
}

/// The plain-text body: the device, then each alert with its subject, time, description
/// and log lines (the matching one marked `>`).
pub fn text_body(device: Device<'_>, entries: &[Entry<'_>]) -> String {
    let mut text = device_line(device);
    for entry in entries {
        let alert = entry.alert;
        let _ = write!(
            text,
            "\n{}: {}\nSubject: {} {} ({})\nTime: {}\n",
            alert.level,
            alert.name,
            alert.subject.kind,
            alert.subject.name,
            alert.subject.status,
            alert.timestamp
        );
        if entry.changes > 1 {
            let _ = writeln!(
                text,
                "Changes: {} since the last message; this is the latest",
                entry.changes
            );
        }
        if let Some(description) = &alert.subject.details.description {
            let _ = writeln!(text, "Description: {description}");
        }
        let lines = lines(&alert.subject.details);
        if !lines.is_empty() {
            text.push_str("Log:\n");
            for (line, matching) in lines {
                let marker = if matching { '>' } else { ' ' };
                let _ = writeln!(text, "{marker} {:>6}  {}", line.line_number, line.data);
            }
        }
    }
    text
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The HTML body: what the text body says, with the level in colour.
pub fn html_body(device: Device<'_>, entries: &[Entry<'_>]) -> String {
    let mut html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><p>Device <b>{}</b>",
        escape(device.name)
    );
    if let Some(id) = device.id {
        let _ = write!(html, " <small>(id {})</small>", escape(id));
    }
    html.push_str("</p>");
    if let Some(link) = device.link {
        let _ = write!(html, "<p><a href=\"{}\">Open</a></p>", escape(link));
    }
    for entry in entries {
        let alert = entry.alert;
        let color = match alert.level {
            Level::Critical => "#c0392b",
            Level::Ok => "#27ae60",
        };
        let _ = write!(
            html,
            "<h3 style=\"color:{color}\">{}: {}</h3><table>\
             <tr><td>Subject</td><td>{} {} ({})</td></tr><tr><td>Time</td><td>{}</td></tr>",
            alert.level,
            escape(&alert.name),
            escape(&alert.subject.kind),
            escape(&alert.subject.name),
            escape(&alert.subject.status),
            alert.timestamp
        );
        if entry.changes > 1 {
            let _ = write!(
                html,
                "<tr><td>Changes</td><td>{} since the last message; this is the latest</td></tr>",
                entry.changes
            );
        }
        if let Some(description) = &alert.subject.details.description {
            let _ = write!(
                html,
                "<tr><td>Description</td><td>{}</td></tr>",
                escape(description)
            );
        }
        html.push_str("</table>");
        let lines = lines(&alert.subject.details);
        if !lines.is_empty() {
            html.push_str("<pre style=\"background:#f4f4f4;padding:8px\">");
            for (line, matching) in lines {
                let text = format!("{:>6}  {}", line.line_number, escape(&line.data));
                if matching {
                    let _ = writeln!(html, "<mark><b>{text}</b></mark>");
                } else {
                    let _ = writeln!(html, "{text}");
                }
            }
            html.push_str("</pre>");
        }
    }
    html.push_str("</body></html>");
    html
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use monitor_wire::{Details, Subject, Timestamp};

    use super::*;

    fn alert(level: Level, name: &str) -> Alert {
        Alert {
            name: name.into(),
            level,
            timestamp: Timestamp(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            subject: Subject {
                name: "kernel_oops".into(),
                kind: "log".into(),
                status: "LOGCONTAINS".into(),
                details: Details {
                    description: Some("Oops in the kernel".into()),
                    line_matching: Some(LogLine {
                        line_number: 12,
                        data: "kernel: Oops".into(),
                    }),
                    lines_before: vec![LogLine {
                        line_number: 11,
                        data: "before".into(),
                    }],
                    ..Details::default()
                },
            },
        }
    }

    #[test]
    fn the_subject_is_menders_on_one_line_and_counts_the_others() {
        let critical = alert(Level::Critical, "Kernel oops\r\nBcc: x@example.com");
        let ok = alert(Level::Ok, "Disk");
        let one = [Entry {
            alert: &critical,
            changes: 1,
        }];
        assert_eq!(
            subject("pi", &one),
            "CRITICAL: Monitor Alert for Kernel oops  Bcc: x@example.com on pi"
        );
        let several = [
            Entry {
                alert: &ok,
                changes: 2,
            },
            Entry {
                alert: &critical,
                changes: 1,
            },
        ];
        assert_eq!(
            subject("pi", &several),
            "OK: Monitor Alert for Disk on pi (and 2 more)"
        );
    }

    #[test]
    fn the_text_body_names_the_device_and_marks_the_matching_line() {
        let critical = alert(Level::Critical, "Kernel oops");
        let entries = [Entry {
            alert: &critical,
            changes: 1,
        }];
        let agent = Device {
            name: "pi",
            id: None,
            link: None,
        };
        assert_eq!(
            text_body(agent, &entries),
            "Device: pi\n\nCRITICAL: Kernel oops\nSubject: log kernel_oops (LOGCONTAINS)\nTime: 2023-11-14T22:13:20.000Z\nDescription: Oops in the kernel\nLog:\n      11  before\n>     12  kernel: Oops\n"
        );
        let server = Device {
            name: "pi",
            id: Some("0123"),
            link: None,
        };
        assert!(text_body(server, &entries).starts_with("Device: pi (id 0123)\n\n"));
        assert!(html_body(server, &entries).contains("<mark><b>    12  kernel: Oops</b></mark>"));
        let linked = Device {
            link: Some("https://monitor.example/ui/devices/0123?a=1&b=\"2\""),
            ..server
        };
        assert!(text_body(linked, &entries).starts_with(
            "Device: pi (id 0123)\nOpen: https://monitor.example/ui/devices/0123?a=1&b=\"2\"\n\n"
        ));
        assert!(html_body(linked, &entries).contains(
            "<a href=\"https://monitor.example/ui/devices/0123?a=1&amp;b=&quot;2&quot;\">Open</a>"
        ));
    }
}
