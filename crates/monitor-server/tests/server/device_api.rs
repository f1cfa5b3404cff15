//! The device API: what Mender's agents and `monitord` post, and every way it is refused.

use reqwest::StatusCode;
use serde_json::json;

use crate::api::{alert, binary, Fixture};
use crate::on_both_engines;

const ALERT_PATH: &str = "/api/devices/v1/devicemonitor/alert";
const CONFIG_PATH: &str = "/api/devices/v1/devicemonitor/config";

on_both_engines! {
    /// An alert sent again (a lost reply, a resend after a crash) is stored once.
    async fn alerts_are_stored_once_even_when_sent_again(database) {
        let fixture = Fixture::start(database).await;
        let batch = json!([alert("app", "CRITICAL", 1), alert("app", "OK", 2)]);
        fixture.post_alerts(&batch).await;
        fixture.post_alerts(&batch).await;
        let id = fixture.device_id("pi-1").await;
        let (alerts, total) = fixture.manage(&format!("/devices/{id}/alerts")).await;
        assert_eq!(total, Some(2), "{alerts}");
        assert_eq!(alerts[0]["level"], "OK");
        assert_eq!(alerts[0]["subject"]["details"]["line_matching"]["data"], "line 2");
        assert_eq!(alerts[1]["timestamp"], "2026-11-21T12:00:01.000Z");
    }
}

on_both_engines! {
    /// A body that is not an array of alerts gets 400 and a reason that names the problem;
    /// nothing of it is stored.
    async fn invalid_alerts_get_400_with_the_reason(database) {
        let fixture = Fixture::start(database).await;
        let cases = [
            (json!({"name": "not an array"}), "JSON array of alerts"),
            (json!([{"name": "x", "level": "WARNING", "timestamp": "2026-11-21T12:00:00Z",
                     "subject": {"name": "s", "type": "log", "status": "x"}}]), "unknown variant `WARNING`"),
            (json!([{"name": "x", "level": "OK", "timestamp": "yesterday",
                     "subject": {"name": "s", "type": "log", "status": "x"}}]), "timestamp `yesterday`"),
            (json!([{"name": "x", "level": "OK", "timestamp": "2026-11-21T12:00:00Z",
                     "subject": {"name": "s", "type": "log"}}]), "missing field `status`"),
            (json!([alert("good", "OK", 1), {"name": "x", "level": "OK", "timestamp": "2026-11-21T12:00:00Z",
                     "subject": {"name": "", "type": "log", "status": "x"}}]), "alert 1: subject.name is empty"),
        ];
        for (body, reason) in cases {
            let response = fixture.device_post(ALERT_PATH, &fixture.device_token, &body).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
            let answer: serde_json::Value = response.json().await.unwrap();
            let error = answer["error"].as_str().unwrap();
            assert!(error.contains(reason), "{error} should say {reason}");
        }
        let id = fixture.device_id("pi-1").await;
        let (_, total) = fixture.manage(&format!("/devices/{id}/alerts")).await;
        assert_eq!(total, Some(0));
    }
}

on_both_engines! {
    /// A body over the limit gets 413, too many alerts in one request 400.
    async fn bodies_are_size_limited(database) {
        let directory = tempfile::tempdir().unwrap();
        let config = directory.path().join("server.yaml");
        std::fs::write(&config, "max_body_bytes: 4096\nmax_alerts_per_request: 3\n").unwrap();
        let fixture = Fixture::start_with(database, &["--config", config.to_str().unwrap()]).await;
        let mut huge = alert("app", "CRITICAL", 1);
        huge["subject"]["details"]["description"] = json!("x".repeat(5000));
        let response = fixture.device_post(ALERT_PATH, &fixture.device_token, &json!([huge])).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let four: Vec<_> = (0..4).map(|second| alert("app", "OK", second)).collect();
        let response = fixture.device_post(ALERT_PATH, &fixture.device_token, &json!(four)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "4 alerts in one request: send at most 3 at a time");
    }
}

on_both_engines! {
    /// A connection serves the next request even when a request's body comes a moment after
    /// its headers and its route needs no body (here a 401 before any body is read): hyper
    /// closes a connection whose body was not read when the answer went out, without saying
    /// so, and Go's client in mender-client then failed its next request with a broken pipe.
    async fn a_body_sent_late_never_costs_the_connection(database) {
        use std::io::{Read, Write};
        let fixture = Fixture::start(database).await;
        let address = fixture.url("").trim_start_matches("http://").to_owned();
        let body = r#"{"device_provides":{}}"#;
        let outcome = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_millis(300)))
                .unwrap();
            write!(
                stream,
                "POST /api/devices/v2/deployments/device/deployments/next HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer not-a-token\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .unwrap();
            // An answer before the body is what made the old server drop the connection
            // once the body came: the server reads the body first.
            let mut answers = Vec::new();
            let mut buffer = [0u8; 4096];
            if let Ok(read) = stream.read(&mut buffer) {
                answers.extend_from_slice(&buffer[..read]);
            }
            assert!(
                answers.is_empty(),
                "answered before the body was read: {}",
                String::from_utf8_lossy(&answers)
            );
            stream.write_all(body.as_bytes()).unwrap();
            stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
            while !String::from_utf8_lossy(&answers).contains("401 Unauthorized") {
                let read = stream.read(&mut buffer).unwrap();
                assert!(read > 0, "closed before the first answer");
                answers.extend_from_slice(&buffer[..read]);
            }
            let second = stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .and_then(|()| {
                    let mut text = Vec::new();
                    while !String::from_utf8_lossy(&text).contains("\r\n\r\n") {
                        let read = stream.read(&mut buffer)?;
                        if read == 0 {
                            break;
                        }
                        text.extend_from_slice(&buffer[..read]);
                    }
                    Ok(String::from_utf8_lossy(&text).into_owned())
                });
            second.map_err(|error| error.to_string())
        })
        .await
        .unwrap();
        let second = outcome.expect("the connection takes a second request");
        assert!(second.starts_with("HTTP/1.1 200"), "second answer: {second:?}");
    }
}

on_both_engines! {
    /// Unknown tokens, rejected and decommissioned devices get 401; a device accepted again
    /// reports again.
    async fn only_accepted_devices_with_their_token_may_report(database) {
        let fixture = Fixture::start(database).await;
        let body = json!([alert("app", "CRITICAL", 1)]);
        let unknown = fixture.device_post(ALERT_PATH, "mdt_0000", &body).await;
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
        let missing = fixture.client.post(fixture.url(ALERT_PATH)).json(&body).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        // A user's token is not a device's.
        let user = fixture.device_post(ALERT_PATH, &fixture.user_token, &body).await;
        assert_eq!(user.status(), StatusCode::UNAUTHORIZED);

        let id = fixture.device_id("pi-1").await;
        fixture.database.admin_ok(binary(), &["device", "reject", "pi-1"], None);
        let rejected = fixture.device_post(ALERT_PATH, &fixture.device_token, &body).await;
        assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
        let answer: serde_json::Value = rejected.json().await.unwrap();
        assert_eq!(answer["error"], "the device is rejected");

        assert_eq!(fixture.manage_put(&format!("/devices/{id}/status"), &json!({"status": "accepted"})).await, StatusCode::NO_CONTENT);
        fixture.post_alerts(&body).await;

        assert_eq!(fixture.manage_put(&format!("/devices/{id}/status"), &json!({"status": "decommissioned"})).await, StatusCode::NO_CONTENT);
        let decommissioned = fixture.device_post(ALERT_PATH, &fixture.device_token, &body).await;
        assert_eq!(decommissioned.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            fixture.manage_put(&format!("/devices/{id}/status"), &json!({"status": "accepted"})).await,
            StatusCode::CONFLICT,
            "decommissioning is for good"
        );
        // The history stays.
        let (_, total) = fixture.manage(&format!("/devices/{id}/alerts")).await;
        assert_eq!(total, Some(1));
    }
}

on_both_engines! {
    /// A device posting in a loop gets 429 with Retry-After; other devices are not held up.
    async fn a_device_over_its_rate_gets_429_with_retry_after(database) {
        let directory = tempfile::tempdir().unwrap();
        let config = directory.path().join("server.yaml");
        std::fs::write(&config, "device_requests_per_minute: 3\n").unwrap();
        let fixture = Fixture::start_with(database, &["--config", config.to_str().unwrap()]).await;
        let other = fixture.database.admin_ok(binary(), &["device", "add", "pi-2"], None);
        let body = json!([alert("app", "OK", 1)]);
        for _ in 0..3 {
            fixture.post_alerts(&body).await;
        }
        let limited = fixture.device_post(ALERT_PATH, &fixture.device_token, &body).await;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=20).contains(&retry_after), "{retry_after}");
        let response = fixture.device_post(ALERT_PATH, &other, &body).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
}

on_both_engines! {
    /// The check list a device pushes is what the management API shows; a bad one is refused.
    async fn the_pushed_configuration_is_shown(database) {
        let fixture = Fixture::start(database).await;
        let id = fixture.device_id("pi-1").await;
        let (before, _) = fixture.manage(&format!("/devices/{id}/config")).await;
        assert_eq!(before, json!([]));
        let checks = json!([
            {"name": "crasher_app", "status": "enabled", "type": "log",
             "log": {"pattern": "Traceback", "path": "/var/log/app.log", "expire_seconds": 300}},
            {"name": "nginx", "status": "disabled", "type": "service",
             "service": {"name": "nginx", "type": "systemd"}}
        ]);
        let response = fixture.device_post(CONFIG_PATH, &fixture.device_token, &checks).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let (shown, _) = fixture.manage(&format!("/devices/{id}/config")).await;
        assert_eq!(shown, checks);
        let bad = fixture.device_post(CONFIG_PATH, &fixture.device_token, &json!([{"name": "x", "status": "maybe", "type": "log"}])).await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let (still, _) = fixture.manage(&format!("/devices/{id}/config")).await;
        assert_eq!(still, checks);
    }
}
