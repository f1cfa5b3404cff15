//! The agent and monitor-server together: `monitord` in `auth: token` mode reports to a real
//! server (SQLite) over real HTTP, and the alerts show in the management API and in Mender's
//! inventory API.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{append, eventually, monitord_binary, Sandbox};
use crate::monitor_server::{ServerDatabase, ServerProcess};
use crate::tls_certificates::TestCertificates;

pub(crate) const EMAIL: &str = "ops@example.com";
pub(crate) const PASSWORD: &str = "a long enough password";

/// `monitor-server`, built next to `monitord` by `cargo test --workspace`.
pub(crate) fn server_binary() -> PathBuf {
    let binary = Path::new(monitord_binary()).with_file_name("monitor-server");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p monitor-server` (`cargo test --workspace` does)",
        binary.display()
    );
    binary
}

/// The management API, as a user would use it.
pub(crate) struct Management {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    url: String,
    token: String,
}

impl Management {
    pub(crate) fn login(url: &str) -> Management {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let token = runtime.block_on(async {
            let response = client
                .post(format!("{url}/api/management/v1/useradm/auth/login"))
                .basic_auth(EMAIL, Some(PASSWORD))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            response.text().await.unwrap()
        });
        Management {
            client,
            runtime,
            url: url.to_owned(),
            token,
        }
    }

    /// GET a devicemonitor management path: the JSON and X-Total-Count.
    pub(crate) fn get(&self, path: &str) -> (Value, Option<String>) {
        self.runtime.block_on(async {
            let response = self
                .client
                .get(format!(
                    "{}/api/management/v1/devicemonitor{path}",
                    self.url
                ))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            let total = response
                .headers()
                .get("x-total-count")
                .map(|value| value.to_str().unwrap().to_owned());
            (response.json().await.unwrap(), total)
        })
    }

    /// PUT JSON to a devicemonitor management path; the status code.
    pub(crate) fn put(&self, path: &str, body: &Value) -> u16 {
        self.runtime.block_on(async {
            self.client
                .put(format!(
                    "{}/api/management/v1/devicemonitor{path}",
                    self.url
                ))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    }

    /// A dashboard page, with the session as the browser would send it.
    pub(crate) fn dashboard(&self, path: &str) -> String {
        self.runtime.block_on(async {
            let response = self
                .client
                .get(format!("{}{path}", self.url))
                .header("cookie", format!("monitor_session={}", self.token))
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            response.text().await.unwrap()
        })
    }

    /// GET a path of Mender's inventory management API.
    pub(crate) fn inventory(&self, path: &str) -> Value {
        self.runtime.block_on(async {
            let response = self
                .client
                .get(format!("{}/api/management/v1/inventory{path}", self.url))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            response.json().await.unwrap()
        })
    }

    /// `(alerts, alert_count)` as Mender's `get_alerts_and_alert_count_for_device`
    /// (`tests/tests/test_monitor_client.py`, mendersoftware/integration) reads them: the
    /// attributes of scope `monitor` in the device's inventory.
    fn alerts_and_alert_count(&self, devid: &str) -> (Value, Value) {
        let inventory = self.inventory(&format!("/devices/{devid}"));
        let attribute = |name: &str| {
            inventory["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|item| item["scope"] == "monitor" && item["name"] == name)
                .map_or(Value::Null, |item| item["value"].clone())
        };
        (attribute("alerts"), attribute("alert_count"))
    }

    fn device(&self) -> Value {
        let (devices, _) = self.get("/devices");
        devices[0].clone()
    }
}

/// A log line on the device becomes an open alert on the server (`alert_count` 1), with the
/// matching line; clearing it closes it (`alert_count` 0); the checks the agent pushed are
/// shown; and an alert made while the server is down arrives once it is back.
#[test]
fn the_agent_in_token_mode_reports_to_monitor_server() {
    let server_binary = server_binary();
    let database = ServerDatabase::sqlite();
    let token = database.admin_ok(&server_binary, &["device", "add", "pi-e2e"], None);
    database.admin_ok(
        &server_binary,
        &["user", "add", EMAIL, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let server = ServerProcess::start(&server_binary, &database, &[]);
    let management = Management::login(&server.url);

    let sandbox = Sandbox::new();
    fs::write(sandbox.path("token"), &token).unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "delivery:\n  backend:\n    url: {}\n    auth: token\n    token_file: {}\n",
            server.url,
            sandbox.path("token").display()
        ),
    )
    .unwrap();
    let log = sandbox.path("app.log");
    fs::write(&log, "starting\n").unwrap();
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "app",
        "ERROR",
        log.to_str().unwrap(),
        "never",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    // A kind of the agent's own, which Mender's config push has no type for.
    sandbox.monitorctl_quietly(&["create", "diskusage", "root_space", "/", "99"]);
    sandbox.monitorctl_quietly(&["enable", "diskusage", "root_space"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    append(&log, "ERROR the database went away\n");
    alerts.expect("CRITICAL", "log app");
    eventually("the server counts one open alert", || {
        management.device()["alert_count"] == 1
    });
    let device = management.device();
    assert_eq!(device["name"], "pi-e2e");
    let id = device["id"].as_str().unwrap().to_owned();
    let (latest, _) = management.get(&format!("/devices/{id}/alerts/latest"));
    assert_eq!(latest[0]["subject"]["name"], "app", "{latest}");
    assert_eq!(
        latest[0]["subject"]["details"]["line_matching"]["data"],
        "ERROR the database went away"
    );
    eventually("the agent pushed its checks", || {
        let (config, _) = management.get(&format!("/devices/{id}/config"));
        config.as_array().is_some_and(|checks| {
            checks
                .iter()
                .any(|check| check["name"] == "app.sh" && check["log"]["pattern"] == "ERROR")
                && checks.iter().any(|check| {
                    check["name"] == "root_space.sh"
                        && check["type"] == "diskusage"
                        && check["sampled"]["threshold"] == 99.0
                        && check["sampled"]["unit"] == "%"
                })
        })
    });
    let page = management.dashboard(&format!("/ui/devices/{id}"));
    assert!(
        page.contains("<td>diskusage</td>") && page.contains("every 30s, threshold 99%"),
        "{page}"
    );

    sandbox.monitorctl_quietly(&["clear", "log", "app"]);
    alerts.expect("OK", "log app");
    eventually("the server counts no open alert", || {
        management.device()["alert_count"] == 0
    });

    // The server goes away; the agent keeps the alert and delivers it when it is back.
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    assert!(server.stop().success());
    append(&log, "ERROR again\n");
    alerts.expect("CRITICAL", "log app");
    let listen = format!("127.0.0.1:{port}");
    let server = ServerProcess::start(&server_binary, &database, &["--listen", &listen]);
    let management = Management::login(&server.url);
    eventually("the alert made while the server was down arrived", || {
        management.device()["alert_count"] == 1
    });
    let (history, total) = management.get(&format!("/devices/{id}/alerts"));
    assert_eq!(total.as_deref(), Some("3"), "{history}");
    assert!(
        !server.log().contains(&token),
        "the device token is not logged"
    );
    assert!(!agent.log().contains(&token), "{}", agent.log());
}

/// The open alerts of a device, from `monitor-server device list` on the server's database.
fn open_alerts(server_binary: &Path, database: &ServerDatabase, device: &str) -> u64 {
    let list = database.admin_ok(server_binary, &["device", "list", "--json"], None);
    let devices: Value = serde_json::from_str(&list).unwrap();
    devices
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == device)
        .and_then(|entry| entry["alert_count"].as_u64())
        .unwrap_or_else(|| panic!("no device {device} in {list}"))
}

/// monitor-server serving HTTPS with a certificate from a test CA: the agent whose
/// `ca_file` is another CA refuses the server and keeps its alert; with the CA that signed
/// the certificate, the alert arrives.
#[test]
fn the_agent_reaches_monitor_server_over_tls_through_its_ca_file() {
    let server_binary = server_binary();
    let served = TestCertificates::generate();
    let other = TestCertificates::generate();
    let database = ServerDatabase::sqlite();
    let token = database.admin_ok(&server_binary, &["device", "add", "pi-tls"], None);
    let (cert, key) = (served.cert(), served.key());
    let server = ServerProcess::start(
        &server_binary,
        &database,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    let sandbox = Sandbox::new();
    fs::write(sandbox.path("token"), &token).unwrap();
    let trust = |ca: &Path| {
        fs::write(
            sandbox.config_dir().join("monitor.yaml"),
            format!(
                "delivery:\n  backend:\n    url: {}\n    auth: token\n    token_file: {}\n    ca_file: {}\n",
                server.url,
                sandbox.path("token").display(),
                ca.display()
            ),
        )
        .unwrap()
    };
    trust(&other.ca());
    let log = sandbox.path("app.log");
    fs::write(&log, "starting\n").unwrap();
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "app",
        "ERROR",
        log.to_str().unwrap(),
        "never",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR over TLS\n");
    alerts.expect("CRITICAL", "log app");
    eventually("the agent refused the server's certificate", || {
        agent.log().contains("invalid peer certificate")
    });
    assert_eq!(open_alerts(&server_binary, &database, "pi-tls"), 0);
    agent.stop();

    trust(&served.ca());
    let agent = sandbox.start_agent();
    eventually("the alert kept by the agent arrived over TLS", || {
        open_alerts(&server_binary, &database, "pi-tls") == 1
    });
    assert!(
        !agent.log().contains("invalid peer certificate"),
        "{}",
        agent.log()
    );
}

/// A script's alert (`monitorctl raise`) reaches monitor-server, where Mender's suite finds
/// it: `alerts` and `alert_count` in scope `monitor` of the inventory API, and the latest
/// alerts from `level_from=CRITICAL`, oldest first.
#[test]
fn a_raised_alert_shows_in_menders_inventory_attributes_on_monitor_server() {
    let server_binary = server_binary();
    let database = ServerDatabase::sqlite();
    let token = database.admin_ok(&server_binary, &["device", "add", "pi-raise"], None);
    database.admin_ok(
        &server_binary,
        &["user", "add", EMAIL, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let server = ServerProcess::start(&server_binary, &database, &[]);
    let management = Management::login(&server.url);
    let sandbox = Sandbox::new();
    fs::write(sandbox.path("token"), &token).unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "delivery:\n  backend:\n    url: {}\n    auth: token\n    token_file: {}\n",
            server.url,
            sandbox.path("token").display()
        ),
    )
    .unwrap();
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let devid = management.device()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        management.alerts_and_alert_count(&devid),
        (Value::Bool(false), Value::from(0))
    );

    for subject in ["disk_root", "backup"] {
        sandbox.monitorctl_quietly(&["raise", "CRITICAL", subject]);
        alerts.expect("CRITICAL", &format!("monitor {subject}"));
    }
    sandbox.monitorctl_quietly(&["raise", "OK", "disk_root"]);
    alerts.expect("OK", "monitor disk_root");
    eventually("the server has the three alerts", || {
        management
            .get(&format!("/devices/{devid}/alerts"))
            .1
            .as_deref()
            == Some("3")
    });
    assert_eq!(
        management.alerts_and_alert_count(&devid),
        (Value::Bool(true), Value::from(1))
    );
    let (latest, total) = management.get(&format!("/devices/{devid}/alerts/latest"));
    assert_eq!(total.as_deref(), Some("2"));
    assert_eq!(
        latest[0]["subject"]["name"], "backup",
        "oldest first: {latest}"
    );
    assert_eq!(latest[1]["subject"]["name"], "disk_root", "{latest}");
    let (critical, _) = management.get(&format!(
        "/devices/{devid}/alerts/latest?level_from=CRITICAL"
    ));
    assert_eq!(critical.as_array().unwrap().len(), 1, "{critical}");
    assert_eq!(critical[0]["subject"]["type"], "script");
    let listed = management.inventory("/devices?monitor/alerts=true");
    assert_eq!(listed[0]["id"], devid.as_str());
}
