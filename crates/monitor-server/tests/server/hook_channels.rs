//! Generic webhook and ntfy channels: a device's alert reaches both stand-ins, signed and
//! with ntfy's priority and tags; their secrets are shown redacted and never logged.

use std::time::Duration;

use serde_json::json;

use crate::api::{alert, binary, Fixture};
use crate::ntfy_standin::{Behaviour, NtfyStandIn};
use crate::on_both_engines;
use crate::webhook_standin::{signature_is_valid, WebhookStandIn};

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
