//! Replicas on one PostgreSQL behind a round-robin TCP balancer, and a server that crashes
//! or is stopped.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::json;

use crate::api::{alert, binary, client, login, Fixture, EMAIL, PASSWORD};
use crate::balancer::Balancer;
use crate::discord_standin::{Behaviour, DiscordStandIn};
use crate::monitor_server::{ServerDatabase, ServerProcess};
use crate::on_both_engines;

const DEADLINE: Duration = Duration::from_secs(30);
const ALERT_PATH: &str = "/api/devices/v1/devicemonitor/alert";

/// An HTTP client that opens a connection for every request, so that the balancer sends
/// consecutive requests to the replicas in turn.
fn unpooled_client() -> Client {
    // `api::client` installs rustls' crypto provider, which building a client needs.
    client();
    Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

/// Sends `request(0)` and `request(1)` through the balancer, one to each replica
/// (round-robin), and returns both statuses.
async fn on_each_replica<F, Fut>(balancer: &Balancer, request: F) -> [StatusCode; 2]
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = StatusCode>,
{
    let before = balancer.connections();
    let statuses = [request(0).await, request(1).await];
    let after = balancer.connections();
    assert_eq!(
        [after[0] - before[0], after[1] - before[1]],
        [1, 1],
        "one request to each replica: {before:?} then {after:?}"
    );
    statuses
}

/// An Ed25519 device key, signing with the `openssl` CLI as the admission tests do.
struct DeviceKey(tempfile::TempDir);

impl DeviceKey {
    fn generate() -> DeviceKey {
        let directory = tempfile::tempdir().unwrap();
        let private = directory.path().join("private.pem");
        openssl(&[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            private.to_str().unwrap(),
        ]);
        DeviceKey(directory)
    }

    /// `auth_requests`' body for `identity` and its `X-MEN-Signature`.
    fn auth_request(&self, identity: &serde_json::Value, tenant_token: &str) -> (Vec<u8>, String) {
        use base64::Engine as _;
        let private = self.0.path().join("private.pem");
        let private = private.to_str().unwrap();
        let public = String::from_utf8(openssl(&["pkey", "-in", private, "-pubout"])).unwrap();
        let body = serde_json::to_vec(&json!({
            "id_data": identity.to_string(),
            "pubkey": public,
            "tenant_token": tenant_token,
        }))
        .unwrap();
        let message = self.0.path().join("body");
        std::fs::write(&message, &body).unwrap();
        let signature = openssl(&[
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            private,
            "-in",
            message.to_str().unwrap(),
        ]);
        (
            body,
            base64::engine::general_purpose::STANDARD.encode(signature),
        )
    }
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("the openssl CLI is needed (apt-get install openssl): {error}")
        });
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Each title among the Discord messages so far, with how often it came.
fn title_counts(discord: &DiscordStandIn) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for embed in discord.embeds() {
        *counts
            .entry(embed["title"].as_str().unwrap_or_default().to_owned())
            .or_insert(0) += 1;
    }
    counts
}

async fn until_notified(discord: &DiscordStandIn, titles: &[&str]) {
    let started = Instant::now();
    loop {
        let counts = title_counts(discord);
        if titles.iter().all(|title| counts.contains_key(*title)) {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "waiting for {titles:?}, got {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two servers on one fresh PostgreSQL start together (one migrates, the other waits) and,
/// behind one address (a round-robin TCP balancer), act as one: a login on either works on
/// both, so do the device's token and a device JWT (one signing key), an alert resent to the
/// other replica is kept once, each notification is sent once, and a device rejected
/// through one is refused by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgresql_act_as_one() {
    let Some(database) = ServerDatabase::postgres() else {
        return;
    };
    let discord = DiscordStandIn::start(Behaviour {
        limit: 100,
        ..Behaviour::default()
    });
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("server.yaml");
    // The Discord stand-in is on 127.0.0.1, which channels may only post to when allowed.
    std::fs::write(
        &config,
        "notify_interval: 1s\nallow_private_targets: true\n",
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| ServerProcess::start(binary(), &database, &args));
        let second = scope.spawn(|| ServerProcess::start(binary(), &database, &args));
        (first.join().unwrap(), second.join().unwrap())
    });
    let balancer = Balancer::start(&[&first.url, &second.url]);
    let url = balancer.url();
    let token = database.admin_ok(binary(), &["device", "add", "pi-1"], None);
    database.admin_ok(
        binary(),
        &["user", "add", EMAIL, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    database.admin_ok(
        binary(),
        &[
            "channel",
            "discord",
            "ops",
            "--webhook-url-stdin",
            "--allow-private-targets",
        ],
        Some(&format!(
            "{}\n",
            discord.url("4242", "replica-webhook-token")
        )),
    );
    let enrollment = database.admin_ok(binary(), &["enrollment", "add"], None);
    let client = unpooled_client();
    let post = |token: &str, body: serde_json::Value| {
        let request = client
            .post(format!("{url}{ALERT_PATH}"))
            .bearer_auth(token)
            .json(&body);
        async move { request.send().await.unwrap().status() }
    };

    // Users: a login answered by either replica, and its session accepted by both.
    let login_url = format!("{url}/api/management/v1/useradm/auth/login");
    let logins = on_each_replica(&balancer, |_| async {
        client
            .post(&login_url)
            .basic_auth(EMAIL, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .status()
    })
    .await;
    assert_eq!(logins, [StatusCode::OK; 2]);
    let session = login(&client, &url, EMAIL, PASSWORD).await;
    let devices_url = format!("{url}/api/management/v1/devicemonitor/devices");
    let listed = on_each_replica(&balancer, |_| async {
        client
            .get(&devices_url)
            .bearer_auth(&session)
            .send()
            .await
            .unwrap()
            .status()
    })
    .await;
    assert_eq!(listed, [StatusCode::OK; 2], "one session, both replicas");

    // The device's token on each replica; the same alert resent to the other is kept once.
    let reported = on_each_replica(&balancer, |_| {
        post(
            &token,
            json!([alert("app", "CRITICAL", 1), alert("db", "CRITICAL", 2)]),
        )
    })
    .await;
    assert_eq!(reported, [StatusCode::NO_CONTENT; 2]);
    let devices: serde_json::Value = client
        .get(&devices_url)
        .bearer_auth(&session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(devices[0]["alert_count"], 2, "{devices}");
    let id = devices[0]["id"].as_str().unwrap().to_owned();
    let history = client
        .get(format!(
            "{url}/api/management/v1/devicemonitor/devices/{id}/alerts"
        ))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        history.headers()["x-total-count"],
        "2",
        "the resent alert is kept once"
    );

    // A device admitted through one replica reports with its JWT to both.
    let key = DeviceKey::generate();
    let (body, signature) = key.auth_request(&json!({"mac": "dc:a6:32:12:34:56"}), &enrollment);
    let admitted = client
        .post(format!("{url}/api/devices/v1/authentication/auth_requests"))
        .header("content-type", "application/json")
        .header("x-men-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(admitted.status(), StatusCode::OK);
    let jwt = admitted.text().await.unwrap();
    let with_jwt = on_each_replica(&balancer, |replica| {
        post(
            &jwt,
            json!([alert(&format!("net{replica}"), "CRITICAL", 3)]),
        )
    })
    .await;
    assert_eq!(
        with_jwt,
        [StatusCode::NO_CONTENT; 2],
        "one signing key on both replicas"
    );

    // Notifications: alerts arriving through both replicas are each sent once; the
    // sentinel, posted after all of them arrived, comes after no duplicate.
    for check in 0..10u64 {
        let status = post(
            &token,
            json!([alert(&format!("check{check}"), "CRITICAL", 10 + check)]),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let mut titles = vec![
        "app is CRITICAL".to_owned(),
        "db is CRITICAL".to_owned(),
        "net0 is CRITICAL".to_owned(),
        "net1 is CRITICAL".to_owned(),
    ];
    titles.extend((0..10).map(|check| format!("check{check} is CRITICAL")));
    let expected: Vec<&str> = titles.iter().map(String::as_str).collect();
    until_notified(&discord, &expected).await;
    assert_eq!(
        post(&token, json!([alert("sentinel", "CRITICAL", 30)])).await,
        StatusCode::NO_CONTENT
    );
    until_notified(&discord, &["sentinel is CRITICAL"]).await;
    let counts = title_counts(&discord);
    let twice: Vec<_> = counts.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(counts.len(), expected.len() + 1, "{counts:?}");

    // Rejected through one replica, the device is refused by both.
    let rejected = client
        .put(format!(
            "{url}/api/management/v1/devicemonitor/devices/{id}/status"
        ))
        .bearer_auth(&session)
        .json(&json!({"status": "rejected"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), StatusCode::NO_CONTENT);
    let refused =
        on_each_replica(&balancer, |_| post(&token, json!([alert("app", "OK", 40)]))).await;
    assert_eq!(refused, [StatusCode::UNAUTHORIZED; 2]);
    assert!(
        !first.log().contains("replica-webhook-token")
            && !second.log().contains("replica-webhook-token"),
        "the webhook URL is a secret"
    );
}

on_both_engines! {
    /// What was acknowledged with 204 survives a `kill -9` of the server; SIGTERM stops it
    /// cleanly; neither the device's nor the user's token is ever logged.
    async fn acknowledged_alerts_survive_a_crash(database) {
        let fixture = Fixture::start(database).await;
        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1)])).await;
        let Fixture { database, server, device_token, user_token, .. } = fixture;
        for secret in [&device_token, &user_token] {
            assert!(!server.log().contains(secret.as_str()), "{}", server.log());
        }
        server.kill_hard();

        let server = ServerProcess::start(binary(), &database, &[]);
        let client = client();
        let devices: serde_json::Value = client
            .get(format!("{}/api/management/v1/devicemonitor/devices", server.url))
            .bearer_auth(&user_token)
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(devices[0]["alert_count"], 1, "{devices}");
        let status = server.stop();
        assert!(status.success(), "SIGTERM: {status:?}");
    }
}
