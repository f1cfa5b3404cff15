//! Silent devices: a device that announced a heartbeat interval and misses enough of them
//! gets a CRITICAL "Device <name> silent", emailed once; heard again, the OK, emailed too.
//! Devices that never announced an interval never go silent; a device's own `silent_after`
//! (the API's and the command line's) wins over the server's; two replicas raise it once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::{binary, client, Fixture};
use crate::monitor_server::{ServerDatabase, ServerProcess};
use crate::on_both_engines;
use crate::smtp_sink::{Mail, SmtpSink};

const DEADLINE: Duration = Duration::from_secs(30);
const HEARTBEAT_PATH: &str = "/api/devices/v1/monitor/heartbeat";

/// The next mail, waited for off the runtime.
async fn next_mail(sink: SmtpSink) -> (Mail, SmtpSink) {
    tokio::task::spawn_blocking(move || (sink.next(DEADLINE), sink))
        .await
        .unwrap()
}

fn subject(mail: &Mail) -> String {
    mail.header("Subject").unwrap_or_default()
}

async fn heartbeat(fixture: &Fixture, token: &str, interval_seconds: u64) {
    let response = fixture
        .device_post(
            HEARTBEAT_PATH,
            token,
            &json!({ "interval_seconds": interval_seconds }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

async fn device(fixture: &Fixture, name: &str) -> Value {
    let (devices, _) = fixture.manage("/devices").await;
    devices
        .as_array()
        .unwrap()
        .iter()
        .find(|device| device["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {devices}"))
        .clone()
}

/// The levels of a device's alerts about its heartbeat, oldest first.
async fn heartbeat_levels(fixture: &Fixture, id: &str) -> Vec<String> {
    let (history, _) = fixture
        .manage(&format!("/devices/{id}/alerts?sort_ascending=true"))
        .await;
    history
        .as_array()
        .unwrap()
        .iter()
        .filter(|alert| {
            alert["subject"]["type"] == "monitor" && alert["subject"]["name"] == "heartbeat"
        })
        .map(|alert| alert["level"].as_str().unwrap().to_owned())
        .collect()
}

fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("server.yaml");
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (directory, path)
}

on_both_engines! {
    /// pi-1 announces 1 s heartbeats and sends no more: after 2 missed (`--silent-after 2`)
    /// it is silent, in the API and in one email; a heartbeat brings the OK, which is the next
    /// email. pi-2, which never announced an interval, is never silent. Set to `never`
    /// through the API, pi-1 stays quiet while pi-2, announcing after it, goes silent first.
    async fn a_device_that_stops_its_heartbeats_is_silent_once_and_back_when_heard(database) {
        let sink = tokio::task::spawn_blocking(SmtpSink::start).await.unwrap();
        let (_directory, config) = config_file("notify_interval: 1s\n");
        let fixture = Fixture::start_with(
            database,
            &["--config", &config, "--smtp-url", &sink.url(), "--silent-after", "2"],
        )
        .await;
        fixture.database.admin_ok(binary(), &["channel", "email", "ops@example.com"], None);
        let second_token = fixture.database.admin_ok(binary(), &["device", "add", "pi-2"], None);
        // pi-2 is heard, but announces nothing.
        fixture
            .device_post("/api/devices/v1/devicemonitor/config", &second_token, &json!([]))
            .await;

        heartbeat(&fixture, &fixture.device_token, 1).await;
        assert_eq!(device(&fixture, "pi-1").await["heartbeat_interval_seconds"], 1);
        let (mail, sink) = next_mail(sink).await;
        assert_eq!(subject(&mail), "CRITICAL: Monitor Alert for Device pi-1 silent on pi-1");
        let body = mail.decoded();
        assert!(body.contains("no word from pi-1 since") && body.contains("every 1s and 2 were missed"), "{body}");
        let pi1 = device(&fixture, "pi-1").await;
        assert!(pi1["silent_since"].is_string(), "{pi1}");
        assert_eq!(pi1["alert_count"], 1);
        let id = pi1["id"].as_str().unwrap().to_owned();
        let (latest, _) = fixture.manage(&format!("/devices/{id}/alerts/latest?level_from=CRITICAL")).await;
        assert_eq!(latest[0]["name"], "Device pi-1 silent", "{latest}");
        assert_eq!(latest[0]["subject"]["status"], "silent");

        heartbeat(&fixture, &fixture.device_token, 1).await;
        let (mail, sink) = next_mail(sink).await;
        assert_eq!(
            subject(&mail),
            "OK: Monitor Alert for Device pi-1 back on pi-1",
            "the OK is the next email: no second silent one came before it"
        );
        let pi1 = device(&fixture, "pi-1").await;
        assert!(pi1.get("silent_since").is_none(), "{pi1}");
        assert_eq!(pi1["alert_count"], 0);
        assert_eq!(heartbeat_levels(&fixture, &id).await, ["CRITICAL", "OK"]);
        let pi2 = device(&fixture, "pi-2").await;
        assert!(pi2.get("silent_since").is_none() && pi2["alert_count"] == 0, "{pi2}");

        // pi-1 never goes silent now; pi-2, heard after it, is the next silent one.
        let status = fixture
            .manage_put(&format!("/devices/{id}/silent_after"), &json!({ "silent_after": 0 }))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(device(&fixture, "pi-1").await["silent_after"], 0);
        heartbeat(&fixture, &second_token, 1).await;
        let (mail, _sink) = next_mail(sink).await;
        assert_eq!(subject(&mail), "CRITICAL: Monitor Alert for Device pi-2 silent on pi-2");
        assert_eq!(heartbeat_levels(&fixture, &id).await, ["CRITICAL", "OK"]);
        assert!(device(&fixture, "pi-1").await.get("silent_since").is_none());
    }
}

on_both_engines! {
    /// A heartbeat's mistakes are refused with what to send; a device's own `silent_after`
    /// is set and cleared from the command line and refused when it is not a number.
    async fn heartbeats_and_silent_after_refuse_bad_input(database) {
        let fixture = Fixture::start(database).await;
        for (body, expected) in [
            (json!({ "interval": 60 }), "interval_seconds"),
            (json!({ "interval_seconds": 10_000_000 }), "more than a week"),
            (json!([]), "interval_seconds"),
        ] {
            let response = fixture.device_post(HEARTBEAT_PATH, &fixture.device_token, &body).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
            let text = response.text().await.unwrap();
            assert!(text.contains(expected), "{body}: {text}");
        }
        let response = fixture
            .device_post(HEARTBEAT_PATH, "not-a-device-token", &json!({ "interval_seconds": 60 }))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

        fixture.database.admin_ok(binary(), &["device", "silent-after", "pi-1", "5"], None);
        assert_eq!(device(&fixture, "pi-1").await["silent_after"], 5);
        fixture.database.admin_ok(binary(), &["device", "silent-after", "pi-1", "default"], None);
        assert!(device(&fixture, "pi-1").await.get("silent_after").is_none());
        let output = fixture.database.admin(binary(), &["device", "silent-after", "pi-1", "soon"], None);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("`soon`: give a number of missed heartbeats such as 3, never, or default"),
            "{stderr}"
        );
        let status = fixture
            .manage_put("/devices/no-such-device/silent_after", &json!({ "silent_after": 3 }))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

/// Two replicas on one PostgreSQL both watch a device (each heard one of its heartbeats, so
/// each knows its deadline) and reach its silence together: one records it, one email goes,
/// and the OK after the device is heard again is the next email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_raise_a_silence_once() {
    let Some(database) = ServerDatabase::postgres() else {
        return;
    };
    let sink = tokio::task::spawn_blocking(SmtpSink::start).await.unwrap();
    let (_directory, config) = config_file("notify_interval: 1s\nsilent_after: 2\n");
    let args = ["--config", config.as_str(), "--smtp-url", &sink.url()];
    let token = database.admin_ok(binary(), &["device", "add", "pi-1"], None);
    database.admin_ok(binary(), &["channel", "email", "ops@example.com"], None);
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| ServerProcess::start(binary(), &database, &args));
        let second = scope.spawn(|| ServerProcess::start(binary(), &database, &args));
        (first.join().unwrap(), second.join().unwrap())
    });
    let client = client();
    let beat = |url: &str, interval_seconds: u64| {
        let request = client
            .post(format!("{url}{HEARTBEAT_PATH}"))
            .bearer_auth(&token)
            .json(&json!({ "interval_seconds": interval_seconds }));
        async move {
            assert_eq!(
                request.send().await.unwrap().status(),
                StatusCode::NO_CONTENT
            )
        }
    };
    // A new interval wakes the replica that took it: each takes one. The first, woken for
    // the shorter one, finds the device not due and reads the deadline the second has.
    beat(&first.url, 1).await;
    beat(&second.url, 2).await;

    let (mail, sink) = next_mail(sink).await;
    assert_eq!(
        subject(&mail),
        "CRITICAL: Monitor Alert for Device pi-1 silent on pi-1"
    );
    beat(&first.url, 2).await;
    let (mail, _sink) = next_mail(sink).await;
    assert_eq!(
        subject(&mail),
        "OK: Monitor Alert for Device pi-1 back on pi-1",
        "one silent email, then the OK: {}\n{}",
        first.log(),
        second.log()
    );
    let ServerDatabase::Postgres(postgres) = &database else {
        unreachable!("a PostgreSQL database")
    };
    let silences = postgres.query(
        "SELECT COUNT(*) FROM alerts WHERE subject_type = 'monitor' AND subject_name = 'heartbeat' AND level = 'CRITICAL'",
    );
    assert_eq!(silences.trim(), "1");
    let raised = [&first, &second]
        .iter()
        .map(|server| server.log().matches("device silent").count())
        .sum::<usize>();
    assert_eq!(raised, 1, "{}\n{}", first.log(), second.log());
}

on_both_engines! {
    /// "Device <name> silent" goes through a channel's filter like the device's own alerts:
    /// `--devices pi-2` leaves pi-1's silence out, `--checks "monitor heartbeat"` takes it.
    /// pi-2's silence, which passes both, comes after pi-1's and shows nothing else came.
    async fn silence_goes_through_the_channels_filters(database) {
        let sink = tokio::task::spawn_blocking(SmtpSink::start).await.unwrap();
        let (_directory, config) = config_file("notify_interval: 1s\n");
        let fixture = Fixture::start_with(
            database,
            &["--config", &config, "--smtp-url", &sink.url(), "--silent-after", "2"],
        )
        .await;
        fixture.database.admin_ok(binary(), &["channel", "email", "pi-2@example.com", "--devices", "pi-2"], None);
        fixture.database.admin_ok(
            binary(),
            &["channel", "email", "heartbeats@example.com", "--checks", "monitor heartbeat", "--min-level", "CRITICAL"],
            None,
        );
        let second_token = fixture.database.admin_ok(binary(), &["device", "add", "pi-2"], None);

        heartbeat(&fixture, &fixture.device_token, 1).await;
        let (mail, sink) = next_mail(sink).await;
        assert_eq!(subject(&mail), "CRITICAL: Monitor Alert for Device pi-1 silent on pi-1");
        assert_eq!(mail.to, ["heartbeats@example.com"]);

        heartbeat(&fixture, &second_token, 1).await;
        let (first, sink) = next_mail(sink).await;
        let (second, _sink) = next_mail(sink).await;
        let mut to: Vec<String> = [first, second]
            .iter()
            .map(|mail| {
                assert_eq!(subject(mail), "CRITICAL: Monitor Alert for Device pi-2 silent on pi-2");
                mail.to.join(",")
            })
            .collect();
        to.sort();
        assert_eq!(to, ["heartbeats@example.com", "pi-2@example.com"]);
    }
}
