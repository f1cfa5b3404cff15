//! Generic webhook and ntfy channels: a device's alert reaches both stand-ins, signed and
//! with ntfy's priority and tags; their secrets are shown redacted and never logged.

use std::time::Duration;

use serde_json::json;

use crate::api::{alert, binary, Fixture};
use crate::notifications::eventually_outbox;
use crate::ntfy_standin::{Behaviour, NtfyStandIn};
use crate::on_both_engines;
use crate::webhook_standin::{signature_is_valid, WebhookStandIn};

const FORM: &str = "application/x-www-form-urlencoded";
const SECRET: &str = "webhook-signing-secret-never-shown";
const TOKEN: &str = "tk_ntfy_token_never_shown";

/// How long a channel's first message may take.
const DEADLINE: Duration = Duration::from_secs(30);

on_both_engines! {
    async fn a_webhook_and_an_ntfy_channel_get_a_devices_alert(database) {
        let webhook = WebhookStandIn::start(Some(SECRET));
        let ntfy = NtfyStandIn::start(Behaviour {
            token: Some(TOKEN.into()),
            ..Behaviour::default()
        });
        let fixture = Fixture::start_with(database, &["--allow-private-targets"]).await;
        fixture.database.admin_ok(
            binary(),
            &["channel", "webhook", "receiver", "--target-stdin", "--allow-private-targets"],
            Some(&format!("{} {SECRET}\n", webhook.url("/in/abc"))),
        );
        let ntfy_url = ntfy.topic_url("fleet").replace("http://", &format!("http://{TOKEN}@"));
        fixture.database.admin_ok(
            binary(),
            &["channel", "ntfy", "phone", "--target-stdin", "--allow-private-targets"],
            Some(&format!("{ntfy_url}\n")),
        );
        let listed = fixture.database.admin_ok(binary(), &["channel", "list"], None);
        assert!(listed.contains("(signed)") && listed.contains("http://***@127.0.0.1"), "{listed}");
        assert!(!listed.contains(SECRET) && !listed.contains(TOKEN), "{listed}");

        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1)])).await;
        webhook.wait_for_requests(1, DEADLINE);
        ntfy.wait_for_requests(1, DEADLINE);

        let request = &webhook.requests()[0];
        assert_eq!(request.signature_valid, Some(true));
        assert!(signature_is_valid(
            SECRET.as_bytes(),
            request.header("x-monitor-timestamp").unwrap(),
            &request.body,
            request.header("x-monitor-signature").unwrap(),
        ));
        let body = request.json();
        assert_eq!(body["alert"]["level"], "CRITICAL");
        assert_eq!(body["check"], serde_json::Value::Null, "the server knows no check");
        assert_eq!(body["device"], "pi-1");
        assert!(body.get("url").is_none(), "no --public-url, no url: {body}");

        let message = &ntfy.messages()[0];
        assert_eq!(message["priority"], 4);
        assert_eq!(message["tags"], json!(["rotating_light"]));
        assert!(message["title"].as_str().unwrap().starts_with("CRITICAL: "), "{message}");
        assert!(message.get("click").is_none(), "no --public-url, no Click: {message}");
        assert_eq!(
            ntfy.requests()[0].header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        let log = fixture.server.log();
        assert!(!log.contains(SECRET) && !log.contains(TOKEN), "{log}");
    }
}

on_both_engines! {
    /// With a public URL (here the file's `public_url`), the webhook's JSON has a `url` and
    /// the ntfy message a `Click`: the dashboard's page of the device.
    async fn a_public_url_is_the_webhooks_url_and_ntfys_click(database) {
        let webhook = WebhookStandIn::start(None);
        let ntfy = NtfyStandIn::start(Behaviour::default());
        let directory = tempfile::tempdir().unwrap();
        let config = directory.path().join("server.yaml");
        std::fs::write(&config, "public_url: http://monitor.lan:8080\nallow_private_targets: true\n").unwrap();
        let fixture = Fixture::start_with(database, &["--config", config.to_str().unwrap()]).await;
        fixture.database.admin_ok(
            binary(),
            &["channel", "webhook", "receiver", "--target-stdin", "--allow-private-targets"],
            Some(&format!("{}\n", webhook.url("/in/abc"))),
        );
        fixture.database.admin_ok(
            binary(),
            &["channel", "ntfy", "phone", "--target-stdin", "--allow-private-targets"],
            Some(&format!("{}\n", ntfy.topic_url("fleet"))),
        );
        let page = format!("http://monitor.lan:8080/ui/devices/{}", fixture.device_id("pi-1").await);

        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1)])).await;
        webhook.wait_for_requests(1, DEADLINE);
        ntfy.wait_for_requests(1, DEADLINE);
        assert_eq!(webhook.requests()[0].json()["url"], page.as_str());
        assert_eq!(ntfy.messages()[0]["click"], page.as_str());
    }
}

#[test]
fn private_targets_are_refused_without_the_flag() {
    for (kind, target) in [
        ("webhook", "http://127.0.0.1:9/in"),
        ("webhook", "https://10.0.0.7/in secret"),
        ("ntfy", "https://tk_x@192.168.1.2/topic"),
    ] {
        let database = crate::monitor_server::ServerDatabase::sqlite();
        let output = database.admin(
            binary(),
            &["channel", kind, "x", "--target-stdin"],
            Some(&format!("{target}\n")),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{kind} {target}: {stderr}");
        assert!(stderr.contains("--allow-private-targets"), "{stderr}");
        assert!(
            !stderr.contains("secret") && !stderr.contains("tk_x"),
            "{stderr}"
        );
    }
}

/// `(channel path, device, subject type and name, level)` of each alert a webhook got.
fn received(webhook: &WebhookStandIn) -> Vec<(String, String, String, String)> {
    webhook
        .requests()
        .iter()
        .map(|request| {
            let body = request.json();
            let alert = &body["alert"];
            let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
            (
                request.path.clone(),
                text(&body["device"]),
                format!(
                    "{} {}",
                    text(&alert["subject"]["type"]),
                    text(&alert["subject"]["name"])
                ),
                text(&alert["level"]),
            )
        })
        .collect()
}

fn entry(path: &str, device: &str, subject: &str, level: &str) -> (String, String, String, String) {
    (
        path.to_owned(),
        device.to_owned(),
        subject.to_owned(),
        level.to_owned(),
    )
}

async fn post_as(fixture: &Fixture, token: &str, alerts: serde_json::Value) {
    let response = fixture
        .device_post("/api/devices/v1/devicemonitor/alert", token, &alerts)
        .await;
    assert_eq!(response.status(), 204);
}

fn typed(mut alert: serde_json::Value, subject_type: &str) -> serde_json::Value {
    alert["subject"]["type"] = subject_type.into();
    alert
}

on_both_engines! {
    /// Two channels with different filters: `only-critical` takes CRITICALs of `log app`
    /// and `log sentinel` from every device, `gateways` everything of the devices `gw-*`.
    /// Each gets exactly what its filter lets through, before and after a restart; a
    /// sentinel that passes both filters, posted last, shows that nothing else came.
    async fn each_channel_gets_what_its_filter_lets_through(database) {
        let webhook = WebhookStandIn::start(None);
        let directory = tempfile::tempdir().unwrap();
        let config = directory.path().join("server.yaml");
        std::fs::write(&config, "notify_interval: 1s\nallow_private_targets: true\n").unwrap();
        let config = config.display().to_string();
        let arguments = ["--config", config.as_str()];
        let fixture = Fixture::start_with(database, &arguments).await;
        let gateway_token = fixture.database.admin_ok(binary(), &["device", "add", "gw-1"], None);

        // Bad values: the field and the fix, and no channel added.
        let output = fixture.database.admin(
            binary(),
            &["channel", "webhook", "bad", "--target-stdin", "--allow-private-targets", "--min-level", "WARNING"],
            Some(&format!("{}\n", webhook.url("/in/bad"))),
        );
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(
            error.contains("--min-level: `WARNING` is not a level: use OK (every alert) or CRITICAL (CRITICALs only)"),
            "{error}"
        );
        let response = fixture
            .client
            .post(fixture.url("/api/management/v1/devicemonitor/settings/channels"))
            .bearer_auth(&fixture.user_token)
            .json(&json!({"kind": "webhook", "name": "bad", "target": webhook.url("/in/bad"), "devices": ["pi 1"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            error["error"],
            "devices: \"pi 1\" has a space: write one device name or pattern per entry, for example \"pi-*\""
        );

        // One channel from the CLI, one from the API.
        fixture.database.admin_ok(
            binary(),
            &[
                "channel", "webhook", "only-critical", "--target-stdin", "--allow-private-targets",
                "--min-level", "CRITICAL", "--checks", "log app, log sentinel",
            ],
            Some(&format!("{}\n", webhook.url("/in/critical"))),
        );
        let response = fixture
            .client
            .post(fixture.url("/api/management/v1/devicemonitor/settings/channels"))
            .bearer_auth(&fixture.user_token)
            .json(&json!({"kind": "webhook", "name": "gateways", "target": webhook.url("/in/gateways"), "devices": ["gw-*"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let (channels, _) = fixture.manage("/settings/channels").await;
        let shown: Vec<_> = channels
            .as_array()
            .unwrap()
            .iter()
            .map(|channel| (channel["name"].clone(), channel["min_level"].clone(), channel["checks"].clone(), channel["devices"].clone()))
            .collect();
        assert_eq!(
            shown,
            [
                (json!("gateways"), json!("OK"), json!([]), json!(["gw-*"])),
                (json!("only-critical"), json!("CRITICAL"), json!(["log app", "log sentinel"]), json!([])),
            ]
        );
        let listed = fixture.database.admin_ok(binary(), &["channel", "list"], None);
        assert!(listed.contains("CRITICAL; checks: log app, log sentinel"), "{listed}");
        assert!(listed.contains("OK; devices: gw-*"), "{listed}");


        // pi-1's app and db, gw-1's app: CRITICAL.
        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1), alert("db", "CRITICAL", 1)])).await;
        post_as(&fixture, &gateway_token, json!([alert("app", "CRITICAL", 1)])).await;
        webhook.wait_for_requests(3, DEADLINE);
        // Their OKs, and a systemd unit of gw-1.
        fixture.post_alerts(&json!([alert("app", "OK", 2)])).await;
        post_as(&fixture, &gateway_token, json!([alert("app", "OK", 2), typed(alert("nginx", "CRITICAL", 2), "systemd")])).await;
        webhook.wait_for_requests(5, DEADLINE);
        // The sentinel.
        post_as(&fixture, &gateway_token, json!([alert("sentinel", "CRITICAL", 3)])).await;
        webhook.wait_for_requests(7, DEADLINE);

        let mut got = received(&webhook);
        let sentinels = got.split_off(5);
        let mut before = got;
        before.sort();
        assert_eq!(
            before,
            [
                entry("/in/critical", "gw-1", "log app", "CRITICAL"),
                entry("/in/critical", "pi-1", "log app", "CRITICAL"),
                entry("/in/gateways", "gw-1", "log app", "CRITICAL"),
                entry("/in/gateways", "gw-1", "log app", "OK"),
                entry("/in/gateways", "gw-1", "systemd nginx", "CRITICAL"),
            ]
        );
        let mut sentinels = sentinels;
        sentinels.sort();
        assert_eq!(
            sentinels,
            [
                entry("/in/critical", "gw-1", "log sentinel", "CRITICAL"),
                entry("/in/gateways", "gw-1", "log sentinel", "CRITICAL"),
            ]
        );

        // The filters survive a restart.
        let Fixture { database, server, client, device_token, .. } = fixture;
        server.stop();
        let server = crate::monitor_server::ServerProcess::start(binary(), &database, &arguments);
        let user_token = crate::api::login(&client, &server.url, crate::api::EMAIL, crate::api::PASSWORD).await;
        let fixture = Fixture { database, server, client, device_token, user_token };
        // pi-1: db OK (neither), app CRITICAL (only-critical); gw-1: nginx OK (gateways).
        fixture.post_alerts(&json!([alert("db", "OK", 4), alert("app", "CRITICAL", 4)])).await;
        post_as(&fixture, &gateway_token, json!([typed(alert("nginx", "OK", 4), "systemd")])).await;
        webhook.wait_for_requests(9, DEADLINE);
        post_as(&fixture, &gateway_token, json!([alert("sentinel", "OK", 5), alert("app", "CRITICAL", 5)])).await;
        webhook.wait_for_requests(12, DEADLINE);
        let got = received(&webhook);
        let mut after = got[7..9].to_vec();
        after.sort();
        assert_eq!(
            after,
            [
                entry("/in/critical", "pi-1", "log app", "CRITICAL"),
                entry("/in/gateways", "gw-1", "systemd nginx", "OK"),
            ]
        );
        let mut sentinels = got[9..].to_vec();
        sentinels.sort();
        assert_eq!(
            sentinels,
            [
                entry("/in/critical", "gw-1", "log app", "CRITICAL"),
                entry("/in/gateways", "gw-1", "log app", "CRITICAL"),
                entry("/in/gateways", "gw-1", "log sentinel", "OK"),
            ]
        );
        // Notifications, not requests: a message per device and channel each time.
        eventually_outbox(&fixture, (10, 0, 0)).await;
    }
}

/// The dashboard's form sets a channel's filter, shows it in the list, and refuses a bad
/// value naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_form_sets_a_channels_filter() {
    let fixture = Fixture::start_with(
        crate::monitor_server::ServerDatabase::sqlite(),
        &["--allow-private-targets"],
    )
    .await;
    let webhook = WebhookStandIn::start(None);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .post(fixture.url("/ui/login"))
        .header("content-type", FORM)
        .body(
            serde_urlencoded::to_string([
                ("email", crate::api::EMAIL),
                ("password", crate::api::PASSWORD),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let target = webhook.url("/in/form");
    let add = |min_level: &'static str, devices: &'static str| {
        let request = client
            .post(fixture.url("/ui/settings/channels"))
            .header("cookie", &cookie)
            .header("content-type", FORM)
            .body(
                serde_urlencoded::to_string([
                    ("kind", "webhook"),
                    ("target", target.as_str()),
                    ("name", "form"),
                    ("min_level", min_level),
                    ("checks", "systemd, log app"),
                    ("devices", devices),
                ])
                .unwrap(),
            );
        async move { request.send().await.unwrap() }
    };

    let refused = add("LOUD", "pi-*").await;
    assert_eq!(refused.status(), 400);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains(
            "min_level: `LOUD` is not a level: use OK (every alert) or CRITICAL (CRITICALs only)"
        ),
        "{page}"
    );
    let added = add("CRITICAL", "pi-*, gw-1").await;
    assert_eq!(added.status(), 303);

    let (channels, _) = fixture.manage("/settings/channels").await;
    assert_eq!(channels.as_array().unwrap().len(), 1, "{channels}");
    assert_eq!(channels[0]["min_level"], "CRITICAL");
    assert_eq!(channels[0]["checks"], json!(["systemd", "log app"]));
    assert_eq!(channels[0]["devices"], json!(["pi-*", "gw-1"]));
    let settings = client
        .get(fixture.url("/ui/settings"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        settings.contains("CRITICAL; checks: systemd, log app; devices: pi-*, gw-1"),
        "{settings}"
    );

    // Edited through the API and the command line; bad values change nothing.
    let id = channels[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/management/v1/devicemonitor/settings/channels/{id}/filter");
    let put = |body: serde_json::Value, path: String| {
        let request = fixture
            .client
            .put(fixture.url(&path))
            .bearer_auth(&fixture.user_token)
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    let edited = put(json!({"min_level": "OK"}), path.clone()).await;
    assert_eq!(edited.status(), 200);
    let edited: serde_json::Value = edited.json().await.unwrap();
    assert_eq!(
        (&edited["min_level"], &edited["checks"], &edited["devices"]),
        (&json!("OK"), &json!([]), &json!([]))
    );
    let refused = put(json!({"checks": [""]}), path.clone()).await;
    assert_eq!(refused.status(), 400);
    let missing = put(json!({}), path.replace(&id, "no-such-channel")).await;
    assert_eq!(missing.status(), 404);
    let output = fixture.database.admin(
        binary(),
        &["channel", "filter", &id, "--devices", "pi 1"],
        None,
    );
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && error.contains("--devices: \"pi 1\" has a space"),
        "{error}"
    );
    fixture.database.admin_ok(
        binary(),
        &["channel", "filter", &id, "--checks", "log app"],
        None,
    );
    let listed = fixture
        .database
        .admin_ok(binary(), &["channel", "list"], None);
    assert!(listed.contains("OK; checks: log app"), "{listed}");

    // The running server applies the new filter: `log db` stays out, the sentinel
    // `log app` comes alone.
    fixture
        .post_alerts(&json!([alert("db", "CRITICAL", 1)]))
        .await;
    fixture
        .post_alerts(&json!([alert("app", "CRITICAL", 2)]))
        .await;
    webhook.wait_for_requests(1, DEADLINE);
    eventually_outbox(&fixture, (1, 0, 0)).await;
    assert_eq!(
        received(&webhook),
        [entry("/in/form", "pi-1", "log app", "CRITICAL")]
    );
}
