//! Replicas on one PostgreSQL, and a server that crashes or is stopped.

use reqwest::StatusCode;
use serde_json::json;

use crate::api::{alert, binary, client, login, Fixture, EMAIL, PASSWORD};
use crate::monitor_server::{ServerDatabase, ServerProcess};
use crate::on_both_engines;

/// Two servers on one fresh PostgreSQL start together (one migrates, the other waits), and
/// act as one: a device may post to either, an alert resent to the other is kept once, a
/// login on one works on the other, and a device rejected through one is refused by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgresql_act_as_one() {
    let Some(database) = ServerDatabase::postgres() else {
        return;
    };
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| ServerProcess::start(binary(), &database, &[]));
        let second = scope.spawn(|| ServerProcess::start(binary(), &database, &[]));
        (first.join().unwrap(), second.join().unwrap())
    });
    let token = database.admin_ok(binary(), &["device", "add", "pi-1"], None);
    database.admin_ok(
        binary(),
        &["user", "add", EMAIL, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let client = client();
    let post = |server: &ServerProcess, body: serde_json::Value| {
        let request = client
            .post(format!("{}/api/devices/v1/devicemonitor/alert", server.url))
            .bearer_auth(&token)
            .json(&body);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(
        post(&first, json!([alert("app", "CRITICAL", 1)])).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post(
            &second,
            json!([alert("app", "CRITICAL", 1), alert("db", "CRITICAL", 2)])
        )
        .await,
        StatusCode::NO_CONTENT
    );

    let session = login(&client, &first.url, EMAIL, PASSWORD).await;
    let devices: serde_json::Value = client
        .get(format!(
            "{}/api/management/v1/devicemonitor/devices",
            second.url
        ))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(devices[0]["alert_count"], 2, "{devices}");
    let id = devices[0]["id"].as_str().unwrap();
    let history = client
        .get(format!(
            "{}/api/management/v1/devicemonitor/devices/{id}/alerts",
            first.url
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

    let rejected = client
        .put(format!(
            "{}/api/management/v1/devicemonitor/devices/{id}/status",
            first.url
        ))
        .bearer_auth(&session)
        .json(&json!({"status": "rejected"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        post(&second, json!([alert("app", "OK", 3)])).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&first, json!([alert("app", "OK", 3)])).await,
        StatusCode::UNAUTHORIZED
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
