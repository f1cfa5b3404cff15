//! Alerts as Hosted Mender's schema has them. Its public alert details
//! (`mendersoftware/gui` `AlertDetails.ts`) are `description`, `line_matching`,
//! `lines_before` and `lines_after` only, and devicemonitor validates requests (1.2.0,
//! MEN-5427): an unknown field may earn the batch a 400. In `auth: mender` mode the agent's
//! other details (a unit's states, a container's exit code, a signal's arguments, the log's
//! `path`, ...) are folded into `description`, one readable `key: value` line each, so
//! nothing is lost to the people reading the alert.

use monitor_wire::Alert;
use serde_json::Value;

/// `alert` with its details in Mender's schema (a copy; the agent's history keeps them all).
pub(crate) fn mender_schema(alert: &Alert) -> Alert {
    let mut alert = alert.clone();
    let details = &mut alert.subject.details;
    if details.fields.is_empty() {
        return alert;
    }
    let fields = std::mem::take(&mut details.fields);
    let mut text = details.description.take().unwrap_or_default();
    for (key, value) in fields {
        let value = match value {
            Value::Null => continue,
            Value::String(text) => text,
            other => other.to_string(),
        };
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&key);
        text.push(':');
        // A multi-line value (a unit's last journal lines) reads best indented below its key.
        if value.contains('\n') {
            for line in value.lines() {
                text.push_str("\n  ");
                text.push_str(line);
            }
        } else {
            text.push(' ');
            text.push_str(&value);
        }
    }
    details.description = (!text.is_empty()).then_some(text);
    alert
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use monitor_wire::{Details, Level, LogLine, Subject, Timestamp};
    use serde_json::json;

    use super::*;

    fn alert(description: Option<&str>, fields: Value) -> Alert {
        Alert {
            name: "Service crond not running".into(),
            level: Level::Critical,
            timestamp: Timestamp(UNIX_EPOCH),
            subject: Subject {
                name: "crond".into(),
                kind: "systemd".into(),
                status: "not-running".into(),
                details: Details {
                    description: description.map(str::to_owned),
                    line_matching: Some(LogLine {
                        line_number: 3,
                        data: "a line".into(),
                    }),
                    fields: serde_json::from_value(fields).unwrap(),
                    ..Details::default()
                },
            },
        }
    }

    #[test]
    fn other_details_are_folded_into_the_description_as_key_value_lines() {
        let folded = mender_schema(&alert(
            Some("crond.service stopped"),
            json!({
                "active_state": "failed",
                "n_restarts": 3,
                "args": ["a", 1],
                "journal": "line one\nline two",
                "nothing": null,
            }),
        ));
        let details = &folded.subject.details;
        assert!(details.fields.is_empty());
        assert_eq!(
            details.description.as_deref(),
            Some(
                "crond.service stopped\nactive_state: failed\nargs: [\"a\",1]\njournal:\n  line one\n  line two\nn_restarts: 3"
            )
        );
        assert_eq!(details.line_matching.as_ref().unwrap().data, "a line");
        let wire = serde_json::to_value(&folded).unwrap();
        let keys: Vec<&String> = wire["subject"]["details"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(keys, ["description", "line_matching"]);
    }

    #[test]
    fn an_alert_with_mender_fields_only_is_unchanged() {
        let plain = alert(Some("ERROR present in /var/log/app.log"), json!({}));
        assert_eq!(mender_schema(&plain), plain);
        let no_description = mender_schema(&alert(None, json!({"path": "/var/log/app.log"})));
        assert_eq!(
            no_description.subject.details.description.as_deref(),
            Some("path: /var/log/app.log")
        );
    }
}
