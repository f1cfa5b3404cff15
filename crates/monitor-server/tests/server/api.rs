//! A small client for the server's APIs, and a running server with a device and a user.

use std::path::Path;

use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

use crate::monitor_server::{ServerDatabase, ServerProcess};

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_monitor-server"))
}

pub const PASSWORD: &str = "correct horse battery";
pub const EMAIL: &str = "admin@example.com";

/// A server with one device (`pi-1`, its token in `device_token`) and one user logged in.
pub struct Fixture {
    pub database: ServerDatabase,
    pub server: ServerProcess,
    pub client: Client,
    pub device_token: String,
    pub user_token: String,
}

impl Fixture {
    pub async fn start(database: ServerDatabase) -> Fixture {
        Fixture::start_with(database, &[]).await
    }

    pub async fn start_with(database: ServerDatabase, server_args: &[&str]) -> Fixture {
        let device_token = database.admin_ok(binary(), &["device", "add", "pi-1"], None);
        database.admin_ok(
            binary(),
            &["user", "add", EMAIL, "--password-stdin"],
            Some(&format!("{PASSWORD}\n")),
        );
        let server = ServerProcess::start(binary(), &database, server_args);
        let client = client();
        let user_token = login(&client, &server.url, EMAIL, PASSWORD).await;
        Fixture {
            database,
            server,
            client,
            device_token,
            user_token,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// Posts a JSON body to the device API with a token.
    pub async fn device_post(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("the server answers")
    }

    pub async fn post_alerts(&self, alerts: &Value) -> StatusCode {
        let response = self
            .device_post(
                "/api/devices/v1/devicemonitor/alert",
                &self.device_token,
                alerts,
            )
            .await;
        let status = response.status();
        assert!(
            status == StatusCode::NO_CONTENT,
            "{status}: {}",
            response.text().await.unwrap_or_default()
        );
        status
    }

    /// GETs a management path as the logged-in user; returns the answer and X-Total-Count.
    pub async fn manage(&self, path: &str) -> (Value, Option<u64>) {
        let response = self
            .client
            .get(self.url(&format!("/api/management/v1/devicemonitor{path}")))
            .bearer_auth(&self.user_token)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let total = response
            .headers()
            .get("x-total-count")
            .map(|value| value.to_str().unwrap().parse().unwrap());
        (response.json().await.expect("JSON"), total)
    }

    pub async fn manage_put(&self, path: &str, body: &Value) -> StatusCode {
        self.client
            .put(self.url(&format!("/api/management/v1/devicemonitor{path}")))
            .bearer_auth(&self.user_token)
            .json(body)
            .send()
            .await
            .expect("the server answers")
            .status()
    }

    /// The id of the device called `name`.
    pub async fn device_id(&self, name: &str) -> String {
        let (devices, _) = self.manage("/devices").await;
        devices
            .as_array()
            .unwrap()
            .iter()
            .find(|device| device["name"] == name)
            .unwrap_or_else(|| panic!("no device {name} in {devices}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

pub fn client() -> Client {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

pub async fn login(client: &Client, server_url: &str, email: &str, password: &str) -> String {
    let response = client
        .post(format!("{server_url}/api/management/v1/useradm/auth/login"))
        .basic_auth(email, Some(password))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// A Mender-shaped alert; `second` is its device time (seconds after a fixed instant).
pub fn alert(subject: &str, level: &str, second: u64) -> Value {
    let timestamp = humantime_timestamp(second);
    serde_json::json!({
        "name": format!("{subject} is {level}"),
        "level": level,
        "timestamp": timestamp,
        "subject": {
            "name": subject,
            "type": "log",
            "status": "LOGCONTAINS",
            "details": {
                "description": "a pattern matched",
                "line_matching": {"line_number": 3, "data": format!("line {second}")},
                "lines_before": [{"line_number": 2, "data": "before"}]
            }
        }
    })
}

/// `2026-11-21T12:00:00Z` plus `second` seconds, in RFC 3339.
pub fn humantime_timestamp(second: u64) -> String {
    let base = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_262_400);
    humantime::format_rfc3339_seconds(base + std::time::Duration::from_secs(second)).to_string()
}

#[test]
fn timestamps_are_counted_from_the_fixed_instant() {
    assert_eq!(humantime_timestamp(0), "2026-11-21T12:00:00Z");
    assert_eq!(
        humantime_timestamp(86_400 * 11 + 61),
        "2026-12-02T12:01:01Z"
    );
}
