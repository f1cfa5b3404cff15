//! Secrets apart from data: the device-token signing key lives in its own 0600 file, the
//! SQLite files are 0600, a copy of the database alone forges no device token, an old
//! database's key moves out once without logging devices out, and `key rotate` makes
//! devices authenticate again while `device add` tokens keep working.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::json;

use crate::admission::{ask, DeviceKey, KeyType};
use crate::api::{alert, binary, Fixture};
use crate::monitor_server::{ServerDatabase, ServerProcess};
use crate::on_both_engines;

const ALERT_PATH: &str = "/api/devices/v1/devicemonitor/alert";

/// Where the key file is: the data directory's on SQLite, one the test gives on PostgreSQL
/// (no data directory there; replicas are given the same file).
fn key_file(database: &ServerDatabase, elsewhere: &Path) -> PathBuf {
    match database {
        ServerDatabase::Sqlite(directory) => directory.path().join("device-token.key"),
        ServerDatabase::Postgres(_) => elsewhere.join("device-token.key"),
    }
}

/// The flags that point at the key file (none on SQLite: it is the default there).
fn key_args(database: &ServerDatabase, key_file: &Path) -> Vec<String> {
    if database.is_postgres() {
        vec!["--key-file".into(), key_file.display().to_string()]
    } else {
        Vec::new()
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A device JWT as the server makes them, signed with `key`.
fn forge(key: &[u8], device_id: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"jti": "forged", "sub": device_id, "iat": now, "exp": now + 3600,
               "iss": "monitor-server", "mender.device": true})
        .to_string(),
    );
    let signed = format!("{header}.{claims}");
    let signature = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        signed.as_bytes(),
    );
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

/// Every `settings` row of a database, read with SQL as a thief with a copy would.
async fn settings_rows(url: &str) -> Vec<(String, String)> {
    use sqlx::Row as _;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url)
        .await
        .expect("open the database");
    let rows = sqlx::query("SELECT key, value FROM settings")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get("key"), row.get("value")))
        .collect();
    pool.close().await;
    rows
}

/// The database's URL; on SQLite, of a copy of its files (as a leaked backup would be).
fn leaked_database(database: &ServerDatabase, copy: &Path) -> String {
    match database {
        ServerDatabase::Sqlite(directory) => {
            for suffix in ["", "-wal"] {
                let from = directory.path().join(format!("monitor-server.db{suffix}"));
                if from.exists() {
                    std::fs::copy(&from, copy.join(format!("monitor-server.db{suffix}"))).unwrap();
                }
            }
            format!("sqlite://{}", copy.join("monitor-server.db").display())
        }
        ServerDatabase::Postgres(database) => database.url.clone(),
    }
}

/// A device admitted through `auth_requests` with an enrollment token, and its JWT.
async fn admitted_device(
    fixture: &Fixture,
    key_args: &[String],
) -> (DeviceKey, serde_json::Value, String) {
    let mut args: Vec<&str> = vec!["enrollment", "add"];
    args.extend(key_args.iter().map(String::as_str));
    let enrollment = fixture.database.admin_ok(binary(), &args, None);
    let key = DeviceKey::generate(KeyType::Ed25519);
    let identity = json!({"mac": "dc:a6:32:0a:0b:0c"});
    let (status, jwt) = ask(fixture, &key, &identity, &enrollment, None).await;
    assert_eq!(status, StatusCode::OK, "{jwt}");
    (key, identity, jwt)
}

async fn post(fixture: &Fixture, token: &str, second: u64) -> StatusCode {
    fixture
        .device_post(
            ALERT_PATH,
            token,
            &json!([alert("app", "CRITICAL", second)]),
        )
        .await
        .status()
}

on_both_engines! {
    /// The key is in a 0600 file, the SQLite files are 0600, and with a copy of the
    /// database nobody forges a device token: no setting signs one (the key file does).
    async fn a_leaked_database_lets_nobody_report_as_a_device(database) {
        let elsewhere = tempfile::tempdir().unwrap();
        let key_path = key_file(&database, elsewhere.path());
        let key_args = key_args(&database, &key_path);
        let server_args: Vec<&str> = key_args.iter().map(String::as_str).collect();
        let fixture = Fixture::start_with(database, &server_args).await;
        let (_, _, jwt) = admitted_device(&fixture, &key_args).await;
        assert_eq!(post(&fixture, &jwt, 1).await, StatusCode::NO_CONTENT);
        let (devices, _) = fixture.manage("/devices?status=accepted").await;
        let device_id = devices.as_array().unwrap().iter()
            .find(|device| device["name"] == "dc:a6:32:0a:0b:0c").unwrap()["id"]
            .as_str().unwrap().to_owned();

        assert_eq!(mode(&key_path), 0o600, "{}", key_path.display());
        if let ServerDatabase::Sqlite(directory) = &fixture.database {
            for file in ["monitor-server.db", "monitor-server.db-wal", "monitor-server.db-shm"] {
                assert_eq!(mode(&directory.path().join(file)), 0o600, "{file}");
            }
        }

        let copy = tempfile::tempdir().unwrap();
        let rows = settings_rows(&leaked_database(&fixture.database, copy.path())).await;
        assert!(!rows.is_empty(), "the settings are read");
        assert!(rows.iter().all(|(key, _)| key != "device_jwt.hs256_key"), "{rows:?}");
        for (name, value) in &rows {
            for candidate in [hex::decode(value).unwrap_or_default(), value.as_bytes().to_vec()] {
                let forged = forge(&candidate, &device_id);
                assert_eq!(post(&fixture, &forged, 2).await, StatusCode::UNAUTHORIZED, "signed with the setting {name}");
            }
        }
        // The same forgery with the key file's key is accepted: the test forges correctly.
        let key = hex::decode(std::fs::read_to_string(&key_path).unwrap().trim()).unwrap();
        assert_eq!(post(&fixture, &forge(&key, &device_id), 3).await, StatusCode::NO_CONTENT);
    }
}

on_both_engines! {
    /// A database from before the key file: its key moves out once, so the JWTs devices
    /// hold keep working; the database keeps only a check of it.
    async fn an_old_databases_key_moves_out_and_devices_keep_working(database) {
        let elsewhere = tempfile::tempdir().unwrap();
        let key_path = key_file(&database, elsewhere.path());
        let key_args = key_args(&database, &key_path);
        let server_args: Vec<&str> = key_args.iter().map(String::as_str).collect();
        let fixture = Fixture::start_with(database, &server_args).await;
        let (_, _, jwt) = admitted_device(&fixture, &key_args).await;
        assert_eq!(post(&fixture, &jwt, 1).await, StatusCode::NO_CONTENT);
        let Fixture { database, server, client, device_token, user_token } = fixture;
        server.stop();

        // Make it an old database: the key in `settings`, no check, no file.
        let url = match &database {
            ServerDatabase::Sqlite(directory) => format!("sqlite://{}", directory.path().join("monitor-server.db").display()),
            ServerDatabase::Postgres(database) => database.url.clone(),
        };
        let key_hex = std::fs::read_to_string(&key_path).unwrap().trim().to_owned();
        {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&url).await.unwrap();
            sqlx::query("DELETE FROM settings WHERE key = 'device_jwt.key_check'").execute(&pool).await.unwrap();
            sqlx::query("INSERT INTO settings (key, value) VALUES ('device_jwt.hs256_key', $1)")
                .bind(&key_hex).execute(&pool).await.unwrap();
            pool.close().await;
        }
        std::fs::remove_file(&key_path).unwrap();

        let server = ServerProcess::start(binary(), &database, &server_args);
        let fixture = Fixture { database, server, client, device_token, user_token };
        assert_eq!(post(&fixture, &jwt, 2).await, StatusCode::NO_CONTENT, "the old JWT still works");
        assert_eq!(std::fs::read_to_string(&key_path).unwrap().trim(), key_hex);
        assert_eq!(mode(&key_path), 0o600);
        let rows = settings_rows(&url).await;
        assert!(rows.iter().all(|(key, _)| key != "device_jwt.hs256_key"), "moved out: {rows:?}");
        assert!(rows.iter().any(|(key, _)| key == "device_jwt.key_check"), "{rows:?}");
        assert!(fixture.server.log().contains("moved the device-token key out of the database"), "{}", fixture.server.log());
    }
}

on_both_engines! {
    /// `key rotate` while the server runs: the old JWT gets 401, the device authenticates
    /// again and reports; a `device add` token is no JWT and keeps working.
    async fn key_rotation_makes_devices_authenticate_again(database) {
        let elsewhere = tempfile::tempdir().unwrap();
        let key_path = key_file(&database, elsewhere.path());
        let key_args = key_args(&database, &key_path);
        let server_args: Vec<&str> = key_args.iter().map(String::as_str).collect();
        let fixture = Fixture::start_with(database, &server_args).await;
        let (key, identity, jwt) = admitted_device(&fixture, &key_args).await;
        assert_eq!(post(&fixture, &jwt, 1).await, StatusCode::NO_CONTENT);
        let before = std::fs::read_to_string(&key_path).unwrap();

        let mut rotate = vec!["key", "rotate"];
        rotate.extend(server_args.iter().copied());
        let output = fixture.database.admin(binary(), &rotate, None);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stderr).contains("devices authenticate again"));
        assert_ne!(std::fs::read_to_string(&key_path).unwrap(), before);
        assert_eq!(mode(&key_path), 0o600);

        let refused = fixture.device_post(ALERT_PATH, &jwt, &json!([alert("app", "OK", 2)])).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let (status, fresh) = ask(&fixture, &key, &identity, "", None).await;
        assert_eq!(status, StatusCode::OK, "{fresh}");
        assert_eq!(post(&fixture, &fresh, 3).await, StatusCode::NO_CONTENT);
        assert_eq!(post(&fixture, &fixture.device_token, 4).await, StatusCode::NO_CONTENT);
        // Admin commands load the new key too (they refuse a key the database does not know).
        let mut list = vec!["device", "list"];
        list.extend(server_args.iter().copied());
        fixture.database.admin_ok(binary(), &list, None);
    }
}

/// A replica given a missing or another key file refuses to start, saying what to do.
#[test]
fn a_missing_or_different_key_file_is_refused() {
    let database = ServerDatabase::sqlite();
    database.admin_ok(binary(), &["device", "add", "pi-1"], None);
    let elsewhere = tempfile::tempdir().unwrap();
    let missing = elsewhere.path().join("other.key");
    let missing_flag = missing.display().to_string();
    let output = database.admin(
        binary(),
        &["device", "list", "--key-file", &missing_flag],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the device-token key file is missing, but the database was used with one"),
        "{stderr}"
    );
    assert!(
        !missing.exists(),
        "no key is made that the database does not know"
    );

    std::fs::write(&missing, format!("{}\n", "ab".repeat(32))).unwrap();
    let output = database.admin(
        binary(),
        &["device", "list", "--key-file", &missing_flag],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("this is not the device-token key the database was used with"),
        "{stderr}"
    );
}
