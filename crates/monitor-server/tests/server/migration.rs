//! A database made by a previous release opens with this one and keeps its data.
//!
//! `tests/fixtures/server-schema-v<N>/` holds one fleet made by the release whose schema
//! was at version N (`make-server-schema-fixture.sh` makes it): a SQLite file (with its
//! device-token key file from releases that keep one), a PostgreSQL dump, and in
//! `fixture.json` the tokens and the password the commands printed.
//! The test loads each fixture, starts the current server on it (which migrates it), and
//! uses the data as a person would: log in, use the tokens, read devices and alerts. It
//! asserts the data, never the schema, so it holds whatever migrations come after.
//! Fixtures of a release with heartbeats (`"heartbeats": true`, schema 7 and later) also
//! keep each device's announced interval, its own `silent_after` and a raised silence.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::admission::{ask, DeviceKey, KeyType};
use crate::api::{alert, binary, client, login, Fixture};
use crate::monitor_server::{ServerDatabase, ServerProcess};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Every `server-schema-v*` directory, oldest first.
fn fixture_directories() -> Vec<PathBuf> {
    let mut directories: Vec<PathBuf> = std::fs::read_dir(FIXTURES)
        .unwrap_or_else(|error| panic!("{FIXTURES}: {error}"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("server-schema-v"))
        })
        .collect();
    directories.sort();
    assert!(!directories.is_empty(), "no fixture in {FIXTURES}");
    directories
}

/// A copy of the fixture's SQLite file, and of its device-token key file when the release
/// kept one, in a fresh data directory, private as a server's.
fn load_sqlite(directory: &Path) -> ServerDatabase {
    let database = ServerDatabase::sqlite();
    let ServerDatabase::Sqlite(data_dir) = &database else {
        unreachable!()
    };
    for (file, required) in [("monitor-server.db", true), ("device-token.key", false)] {
        let original = directory.join(file);
        if !required && !original.exists() {
            continue;
        }
        let copy = data_dir.path().join(file);
        std::fs::copy(&original, &copy)
            .unwrap_or_else(|error| panic!("{}: {error}", original.display()));
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    database
}

/// The fixture's dump, loaded into a fresh PostgreSQL database.
fn load_postgres(directory: &Path) -> Option<ServerDatabase> {
    let database = ServerDatabase::postgres()?;
    let ServerDatabase::Postgres(postgres) = &database else {
        unreachable!()
    };
    let dump = directory.join("postgresql.sql");
    let output = Command::new("psql")
        .args([&postgres.url, "-v", "ON_ERROR_STOP=1", "-q", "-f"])
        .arg(&dump)
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "psql -f {}: {}",
        dump.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(database)
}

/// The current server on the fixture's data: everything the previous release kept is
/// there and works.
async fn check_fixture(database: ServerDatabase, fixture: &Value, engine: &str) {
    let made = &fixture[engine];
    let text = |value: &Value| value.as_str().expect("a string in fixture.json").to_owned();
    let (email, password) = (text(&fixture["email"]), text(&fixture["password"]));
    let fixture_has_heartbeats = fixture["heartbeats"] == json!(true);
    let server = ServerProcess::start(binary(), &database, &[]);
    let client = client();

    // The user logs in with the password, and the API token made then still works.
    let session = login(&client, &server.url, &email, &password).await;
    let api_token = text(&made["api_token"]);
    let with_token = client
        .get(format!(
            "{}/api/management/v1/devicemonitor/devices",
            server.url
        ))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), StatusCode::OK, "the API token");
    let wrong = login_status(&client, &server.url, &email, "not the password").await;
    assert_eq!(wrong, StatusCode::UNAUTHORIZED);

    let fixture = Fixture {
        database,
        server,
        client,
        device_token: text(&made["device_tokens"]["pi-kitchen"]),
        user_token: session,
    };
    let (devices, _) = fixture.manage("/devices").await;
    let device = |name: &str| -> Value {
        devices
            .as_array()
            .unwrap()
            .iter()
            .find(|device| device["name"] == name)
            .unwrap_or_else(|| panic!("no device {name} in {devices}"))
            .clone()
    };
    // pi-kitchen: app CRITICAL then OK, db CRITICAL; pi-garage: disk CRITICAL, muted.
    let kitchen = device("pi-kitchen");
    assert_eq!(
        (
            &kitchen["status"],
            &kitchen["alert_count"],
            &kitchen["muted"]
        ),
        (&json!("accepted"), &json!(1), &json!(false)),
        "{kitchen}"
    );
    let garage = device("pi-garage");
    assert_eq!(
        (&garage["status"], &garage["alert_count"], &garage["muted"]),
        (&json!("accepted"), &json!(1), &json!(true)),
        "{garage}"
    );
    assert_eq!(device("pi-old")["status"], "decommissioned");
    let kitchen_id = text(&kitchen["id"]);
    let (history, total) = fixture
        .manage(&format!("/devices/{kitchen_id}/alerts?sort_ascending=true"))
        .await;
    assert_eq!(total, Some(3), "{history}");
    let names: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|alert| text(&alert["name"]))
        .collect();
    assert_eq!(names, ["app is CRITICAL", "db is CRITICAL", "app is OK"]);
    if fixture_has_heartbeats {
        check_heartbeats(&fixture, &device).await;
    }

    // Both channels are there; removed, nothing is sent to them (the Discord one is a
    // real discord.com address) when the devices report below.
    let channels = fixture
        .database
        .admin_ok(binary(), &["channel", "list"], None);
    for expected in ["ops@example.com", "ops-discord"] {
        assert!(channels.contains(expected), "{expected} in {channels}");
    }
    assert!(!channels.contains("fixture-webhook-token"), "{channels}");
    for line in channels.lines().skip(1) {
        let id = line.split_whitespace().next().unwrap();
        fixture
            .database
            .admin_ok(binary(), &["channel", "remove", id], None);
    }

    // The devices' tokens report; the enrollment token admits a new device, whose JWT
    // reports too.
    fixture
        .post_alerts(&json!([alert("app", "CRITICAL", 5)]))
        .await;
    let garage_token = text(&made["device_tokens"]["pi-garage"]);
    let garage_post = fixture
        .device_post(
            "/api/devices/v1/devicemonitor/alert",
            &garage_token,
            &json!([alert("disk", "OK", 6)]),
        )
        .await;
    assert_eq!(garage_post.status(), StatusCode::NO_CONTENT);
    let key = DeviceKey::generate(KeyType::Ed25519);
    let enrollment = text(&made["enrollment_token"]);
    let identity = json!({"mac": "dc:a6:32:0f:1e:2d"});
    let (status, jwt) = ask(&fixture, &key, &identity, &enrollment, None).await;
    assert_eq!(status, StatusCode::OK, "the enrollment token: {jwt}");
    let with_jwt = fixture
        .device_post(
            "/api/devices/v1/devicemonitor/alert",
            &jwt,
            &json!([alert("net", "CRITICAL", 7)]),
        )
        .await;
    assert_eq!(with_jwt.status(), StatusCode::NO_CONTENT);

    let (devices, _) = fixture.manage("/devices").await;
    let count = |name: &str| {
        devices
            .as_array()
            .unwrap()
            .iter()
            .find(|device| device["name"] == name)
            .unwrap_or_else(|| panic!("no device {name} in {devices}"))["alert_count"]
            .clone()
    };
    assert_eq!(count("pi-kitchen"), 2, "{devices}");
    assert_eq!(count("pi-garage"), 0, "{devices}");
    assert_eq!(count("dc:a6:32:0f:1e:2d"), 1, "{devices}");
}

/// pi-kitchen announced 60 s and is never silent, pi-garage's own `silent_after` is 5 (it
/// never announced an interval), pi-shed missed its 1 s heartbeat and is silent: the server
/// keeps all of it, and does not raise pi-shed's silence again.
async fn check_heartbeats(fixture: &Fixture, device: &dyn Fn(&str) -> Value) {
    let heartbeat = |device: &Value| {
        (
            device["heartbeat_interval_seconds"].clone(),
            device["silent_after"].clone(),
            device["silent_since"].is_string(),
        )
    };
    let kitchen = device("pi-kitchen");
    assert_eq!(
        heartbeat(&kitchen),
        (json!(60), json!(0), false),
        "{kitchen}"
    );
    let garage = device("pi-garage");
    assert_eq!(
        heartbeat(&garage),
        (Value::Null, json!(5), false),
        "{garage}"
    );
    let shed = device("pi-shed");
    assert_eq!(heartbeat(&shed), (json!(1), json!(1), true), "{shed}");
    assert_eq!(shed["alert_count"], 1, "{shed}");
    let shed_id = shed["id"].as_str().unwrap();
    let (history, total) = fixture.manage(&format!("/devices/{shed_id}/alerts")).await;
    assert_eq!(total, Some(1), "raised once, before the upgrade: {history}");
    assert_eq!(history[0]["name"], "Device pi-shed silent");
    assert_eq!(history[0]["level"], "CRITICAL");
}

async fn login_status(
    client: &reqwest::Client,
    url: &str,
    email: &str,
    password: &str,
) -> StatusCode {
    client
        .post(format!("{url}/api/management/v1/useradm/auth/login"))
        .basic_auth(email, Some(password))
        .send()
        .await
        .unwrap()
        .status()
}

fn read_fixture(directory: &Path) -> Value {
    let path = directory.join("fixture.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

mod a_previous_releases_database_keeps_its_data {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        for directory in fixture_directories() {
            eprintln!("fixture {}", directory.display());
            check_fixture(load_sqlite(&directory), &read_fixture(&directory), "sqlite").await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        for directory in fixture_directories() {
            eprintln!("fixture {}", directory.display());
            let Some(database) = load_postgres(&directory) else {
                return;
            };
            check_fixture(database, &read_fixture(&directory), "postgres").await;
        }
    }
}
