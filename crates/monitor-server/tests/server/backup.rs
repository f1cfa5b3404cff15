//! `monitor-server backup <file>`: a consistent, private copy of the SQLite database taken
//! while the server serves; never over an existing file unless `--force`; PostgreSQL is
//! pointed to pg_dump.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::json;

use crate::api::{alert, binary, client, login, Fixture, EMAIL, PASSWORD};
use crate::monitor_server::{ServerDatabase, ServerProcess};

const DEADLINE: Duration = Duration::from_secs(30);
/// The instant `api::alert`'s seconds count from.
const ALERT_EPOCH_SECONDS: u64 = 1_795_262_400;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Alerts posted one after the other, `second` 1, 2, 3…, each acknowledged before the next;
/// every answer that is not 204, or slower than the deadline, is kept as a failure.
struct AlertStream {
    acknowledged: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl AlertStream {
    fn start(fixture: &Fixture) -> AlertStream {
        let acknowledged = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let request = {
            let client = fixture.client.clone();
            let url = fixture.url("/api/devices/v1/devicemonitor/alert");
            let token = fixture.device_token.clone();
            move |second: u64| {
                let level = if second % 2 == 1 { "CRITICAL" } else { "OK" };
                client
                    .post(&url)
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(5))
                    .json(&json!([alert("app", level, second)]))
                    .send()
            }
        };
        let task = tokio::spawn({
            let (acknowledged, failures, stop) =
                (acknowledged.clone(), failures.clone(), stop.clone());
            async move {
                let mut second = 1;
                while !stop.load(Ordering::SeqCst) {
                    match request(second).await {
                        Ok(response) if response.status() == StatusCode::NO_CONTENT => {
                            acknowledged.store(second, Ordering::SeqCst);
                            second += 1;
                        }
                        Ok(response) => failures
                            .lock()
                            .unwrap()
                            .push(format!("alert {second}: {}", response.status())),
                        Err(error) => failures
                            .lock()
                            .unwrap()
                            .push(format!("alert {second}: {error}")),
                    }
                }
            }
        });
        AlertStream {
            acknowledged,
            failures,
            stop,
            task,
        }
    }

    fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::SeqCst)
    }

    /// Waits until more than `count` alerts are acknowledged.
    async fn past(&self, count: u64) {
        let started = Instant::now();
        while self.acknowledged() <= count {
            assert!(
                started.elapsed() < DEADLINE,
                "the server stopped acknowledging alerts at {}: {:?}",
                self.acknowledged(),
                self.failures.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        let failures = self.failures.lock().unwrap().clone();
        (self.acknowledged.load(Ordering::SeqCst), failures)
    }
}

/// The device time (`api::alert`'s second) of every alert in the device's history.
async fn history_seconds(client: &reqwest::Client, url: &str, token: &str) -> Vec<u64> {
    let devices: serde_json::Value = client
        .get(format!("{url}/api/management/v1/devicemonitor/devices"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = devices[0]["id"].as_str().unwrap();
    let mut seconds = Vec::new();
    for page in 1.. {
        let alerts: serde_json::Value = client
            .get(format!(
                "{url}/api/management/v1/devicemonitor/devices/{id}/alerts?sort_ascending=true&per_page=500&page={page}"
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let alerts = alerts.as_array().unwrap();
        if alerts.is_empty() {
            break;
        }
        for alert in alerts {
            let at = humantime::parse_rfc3339(alert["timestamp"].as_str().unwrap()).unwrap();
            let since_epoch = at.duration_since(UNIX_EPOCH).unwrap().as_secs();
            seconds.push(since_epoch - ALERT_EPOCH_SECONDS);
        }
    }
    seconds
}

async fn integrity_check(path: &Path) -> String {
    use sqlx::Connection as _;
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let result: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    result
}

/// While alerts stream in, a backup is taken: it is a sound database, 0600, holding every
/// alert acknowledged before the backup began; the server answered every alert, during the
/// backup and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_holds_every_acknowledged_alert() {
    // The stream is faster than a device may report by default.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("server.yaml");
    std::fs::write(&config, "device_requests_per_minute: 1000000\n").unwrap();
    let fixture = Fixture::start_with(
        ServerDatabase::sqlite(),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    let stream = AlertStream::start(&fixture);
    stream.past(50).await;

    let target_dir = tempfile::tempdir().unwrap();
    let target = target_dir.path().join("monitor-server-backup.db");
    let before = stream.acknowledged();
    let ServerDatabase::Sqlite(data_dir) = &fixture.database else {
        unreachable!()
    };
    let data_dir = data_dir.path().to_owned();
    let output = tokio::task::spawn_blocking({
        let target = target.clone();
        move || {
            std::process::Command::new(binary())
                .arg("--data-dir")
                .arg(&data_dir)
                .arg("backup")
                .arg(&target)
                .env("MONITOR_SERVER_LOG", "warn")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let during = stream.acknowledged() - before;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("monitor-server-backup.db"),
        "{}",
        stderr(&output)
    );
    let after = stream.acknowledged();
    stream.past(after + 20).await;
    let (last, failures) = stream.stop().await;
    assert!(
        failures.is_empty(),
        "the server failed requests: {failures:?}"
    );
    eprintln!("alerts acknowledged: {before} before the backup, {during} during it, {last} in all");

    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert_eq!(integrity_check(&target).await, "ok");

    // A server on the copy: the user logs in and finds alerts 1..=before, and none that
    // was never acknowledged (a copy is a snapshot, not a mixture).
    let restored = ServerDatabase::sqlite();
    let ServerDatabase::Sqlite(restored_dir) = &restored else {
        unreachable!()
    };
    std::fs::copy(&target, restored_dir.path().join("monitor-server.db")).unwrap();
    // The key is not in the backup (the backup says so); a restore takes it from the
    // original data directory.
    assert!(
        stderr(&output).contains("device-token.key"),
        "{}",
        stderr(&output)
    );
    let ServerDatabase::Sqlite(original_dir) = &fixture.database else {
        unreachable!()
    };
    std::fs::copy(
        original_dir.path().join("device-token.key"),
        restored_dir.path().join("device-token.key"),
    )
    .unwrap();
    let server = ServerProcess::start(binary(), &restored, &[]);
    let client = client();
    let session = login(&client, &server.url, EMAIL, PASSWORD).await;
    let seconds = history_seconds(&client, &server.url, &session).await;
    let kept = seconds.len() as u64;
    assert!(kept >= before, "{kept} alerts kept, {before} acknowledged");
    assert!(kept <= last, "{kept} alerts kept, only {last} posted");
    assert_eq!(
        seconds,
        (1..=kept).collect::<Vec<_>>(),
        "the alerts up to the snapshot, each once"
    );
}

/// An existing file is kept unless `--force`; PostgreSQL and a missing database are
/// refused with what to do instead.
#[test]
fn backup_refuses_what_it_cannot_do_well() {
    let database = ServerDatabase::sqlite();
    database.admin_ok(binary(), &["device", "add", "pi-1"], None);
    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("backup.db");
    std::fs::write(&target, "an older backup").unwrap();
    let target_text = target.to_str().unwrap();

    let refused = database.admin(binary(), &["backup", target_text], None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(
            "backup.db exists already: choose another file, or pass --force to replace it"
        ),
        "{}",
        stderr(&refused)
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "an older backup");

    database.admin_ok(binary(), &["backup", target_text, "--force"], None);
    assert_ne!(std::fs::read(&target).unwrap(), b"an older backup");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let names: Vec<_> = std::fs::read_dir(directory.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["backup.db"], "nothing else is left behind");

    let nowhere = tempfile::tempdir().unwrap();
    let missing = std::process::Command::new(binary())
        .args(["--data-dir", nowhere.path().join("typo").to_str().unwrap()])
        .args([
            "backup",
            directory.path().join("other.db").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no database at") && stderr(&missing).contains("--data-dir"),
        "{}",
        stderr(&missing)
    );
    assert!(
        !nowhere.path().join("typo").exists(),
        "no empty database is made"
    );

    if let Some(postgres) = ServerDatabase::postgres() {
        let other = directory.path().join("postgres.db");
        let output = postgres.admin(binary(), &["backup", other.to_str().unwrap()], None);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).contains("for PostgreSQL use pg_dump"),
            "{}",
            stderr(&output)
        );
        assert!(!other.exists());
    }
}
