//! One test binary for the Discord client: URL parsing, rendering snapshots and limits, and
//! delivery against a real HTTP stand-in for Discord.

#[path = "../../../../tests/support/discord_standin.rs"]
mod discord_standin;

mod delivery;
mod destination;
mod render;
mod standin;
mod url;

use std::collections::BTreeMap;
use std::path::PathBuf;

use monitor_destination::OutgoingAlert;
use monitor_wire::{
    Alert, CheckId, Details, HistoryRecord, Level, LogLine, Subject, Subsystem, Timestamp,
};
use serde_json::Value;

/// The token every test URL carries; it must never show up in what the client prints.
pub const TOKEN: &str = "s3cr3t-T0KEN_never.shown";
pub const WEBHOOK_ID: &str = "112233445566778899";
pub const DEVICE: &str = "raspberrypi-4b-kitchen";

pub fn timestamp(text: &str) -> Timestamp {
    Timestamp(humantime::parse_rfc3339(text).expect("a test timestamp"))
}

/// The alerts of these records, as a destination is given them.
pub fn outgoing(records: &[HistoryRecord]) -> Vec<OutgoingAlert<'_>> {
    records.iter().map(OutgoingAlert::from).collect()
}

pub fn record(seq: u64, check: CheckId, alert: Alert) -> HistoryRecord {
    HistoryRecord { seq, check, alert }
}

/// Seed 000: `justfail.service` failed; the alert carries its `systemctl status`.
pub fn service_justfail_critical() -> HistoryRecord {
    let status = "× justfail.service - This will just fail
     Loaded: loaded (/home/pi/.config/systemd/user/justfail.service; static)
     Active: failed (Result: exit-code) since Sun 2023-11-19 10:01:44 CET; 567ms ago
    Process: 27410 ExecStart=sh -c echo fail; exit 1 (code=exited, status=1/FAILURE)
   Main PID: 27410 (code=exited, status=1/FAILURE)
        CPU: 11ms";
    record(
        41,
        CheckId::new(Subsystem::Service, "justfail"),
        Alert {
            name: "Service justfail not running".into(),
            level: Level::Critical,
            timestamp: timestamp("2023-11-19T09:01:44.567Z"),
            subject: Subject {
                name: "justfail".into(),
                kind: "systemd".into(),
                status: "not-running".into(),
                details: Details {
                    description: Some(status.into()),
                    ..Details::default()
                },
            },
        },
    )
}

pub fn service_justfail_ok() -> HistoryRecord {
    let mut fields = BTreeMap::new();
    fields.insert("reason".into(), Value::from("the service is running again"));
    record(
        42,
        CheckId::new(Subsystem::Service, "justfail"),
        Alert {
            name: "Service justfail not running".into(),
            level: Level::Ok,
            timestamp: timestamp("2023-11-19T09:05:00Z"),
            subject: Subject {
                name: "justfail".into(),
                kind: "systemd".into(),
                status: "running".into(),
                details: Details {
                    fields,
                    ..Details::default()
                },
            },
        },
    )
}

pub fn log_line(line_number: u64, data: &str) -> LogLine {
    LogLine {
        line_number,
        data: data.into(),
    }
}

/// A log alert with context; one line pings `@everyone` and one has backticks.
pub fn log_crasher_critical() -> HistoryRecord {
    record(
        43,
        CheckId::new(Subsystem::Log, "crasher_app"),
        Alert {
            name: "Log file contains ERROR".into(),
            level: Level::Critical,
            timestamp: timestamp("2023-11-19T09:10:02.250Z"),
            subject: Subject {
                name: "crasher_app".into(),
                kind: "log".into(),
                status: "LOGCONTAINS".into(),
                details: Details {
                    description: Some("crasher_app logged an error".into()),
                    line_matching: Some(log_line(
                        120,
                        "2023-11-19 10:10:02 ERROR @everyone the sensor ```died``` (errno 5)",
                    )),
                    lines_before: vec![
                        log_line(118, "2023-11-19 10:10:01 INFO reading sensor"),
                        log_line(119, "2023-11-19 10:10:02 WARN sensor slow to answer"),
                    ],
                    lines_after: vec![log_line(121, "2023-11-19 10:10:02 INFO restarting")],
                    fields: BTreeMap::new(),
                },
            },
        },
    )
}

pub fn service_crasher_flapping() -> HistoryRecord {
    record(
        44,
        CheckId::new(Subsystem::Service, "crasher"),
        Alert {
            name: "Service crasher going up and down".into(),
            level: Level::Critical,
            timestamp: timestamp("2023-11-19T09:20:00Z"),
            subject: Subject {
                name: "crasher".into(),
                kind: "systemd".into(),
                status: "flapping".into(),
                details: Details::default(),
            },
        },
    )
}

/// A small log alert numbered `index`, for bursts.
pub fn numbered_log_alert(index: u64) -> HistoryRecord {
    record(
        index,
        CheckId::new(Subsystem::Log, "burst"),
        Alert {
            name: format!("Log file contains burst line {index}"),
            level: Level::Critical,
            timestamp: timestamp("2023-11-19T09:30:00Z"),
            subject: Subject {
                name: "burst".into(),
                kind: "log".into(),
                status: "LOGCONTAINS".into(),
                details: Details {
                    line_matching: Some(log_line(index, &format!("line {index} ERROR"))),
                    ..Details::default()
                },
            },
        },
    )
}

/// Compares `actual` with `tests/discord/snapshots/{name}.json`; `UPDATE_SNAPSHOTS=1`
/// rewrites the file instead (review the diff).
pub fn assert_snapshot(name: &str, actual: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/discord/snapshots")
        .join(format!("{name}.json"));
    let actual = serde_json::to_string_pretty(actual).expect("JSON") + "\n";
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::write(&path, &actual).expect("write the snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "snapshot {}: {error}; run with UPDATE_SNAPSHOTS=1 and review it",
            path.display()
        )
    });
    assert!(
        actual == expected,
        "snapshot {} differs (UPDATE_SNAPSHOTS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// The HTTP client the agent would hand in: reqwest with rustls on ring.
pub fn http_client() -> reqwest::Client {
    // Installing twice fails harmlessly: tests share the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("an HTTP client")
}
