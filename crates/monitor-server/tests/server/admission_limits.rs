//! Admission an attacker cannot steer: new pending devices limited per source address and
//! capped in number (the oldest dropped, counted in `/metrics`); two devices claiming one
//! MAC told apart by their key's fingerprint, as the device itself shows it; and a replayed
//! `auth_requests` body getting the token the device holds, never a fresh one.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::admission::{ask, ask_from, DeviceKey, KeyType, AUTH_PATH};
use crate::api::{binary, Fixture};
use crate::on_both_engines;

/// A client whose requests come from `127.0.0.<last>` (all of 127/8 is this host).
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .unwrap()
}

/// The fingerprint exactly as the README tells a user to read it on the device.
fn fingerprint_on_the_device(key: &DeviceKey) -> String {
    let private = key.path("private.pem");
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl pkey -in '{}' -pubout -outform DER | sha256sum",
            private.display()
        ))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_owned()
}

async fn pending(fixture: &Fixture) -> Vec<Value> {
    let (pending, _) = fixture.manage("/devices?status=pending").await;
    pending.as_array().unwrap().clone()
}

async fn metrics(fixture: &Fixture) -> String {
    let response = fixture
        .client
        .get(fixture.url("/metrics"))
        .bearer_auth(&fixture.user_token)
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}

on_both_engines! {
    /// Three new pending devices a minute per address here: the fourth from one address is
    /// 429 with `Retry-After` and makes nothing, while a known device asking again, an
    /// enrolled device and other addresses go on; past four pending devices the oldest
    /// are dropped and counted.
    async fn new_pending_devices_are_limited_per_address_and_capped(database) {
        let config = tempfile::tempdir().unwrap();
        let path = config.path().join("server.yaml");
        std::fs::write(&path, "pending_devices_per_minute: 3\nmax_pending_devices: 4\n").unwrap();
        let fixture = Fixture::start_with(database, &["--config", path.to_str().unwrap()]).await;
        let keys: Vec<DeviceKey> = (0..7).map(|_| DeviceKey::generate(KeyType::Ed25519)).collect();
        let identity = |number: usize| json!({"mac": format!("02:00:00:00:00:0{number}")});
        let home = client_from(1);

        for (number, key) in keys.iter().enumerate().take(3) {
            let (status, body, _) = ask_from(&home, &fixture, key, &identity(number), "", None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "device {number}: {body}");
        }
        let (status, _, _) = ask_from(&home, &fixture, &keys[0], &identity(0), "", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a pending device asking again is not new");
        let (status, body, retry_after) = ask_from(&home, &fixture, &keys[3], &identity(3), "", None).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        let seconds: u64 = retry_after.expect("a Retry-After").parse().unwrap();
        assert!((1..=20).contains(&seconds), "{seconds}");
        assert!(body.contains("try again in"), "{body}");
        assert_eq!(pending(&fixture).await.len(), 3, "the refused request made no device");

        let enrollment = fixture.database.admin_ok(binary(), &["enrollment", "add"], None);
        let enrolled = DeviceKey::generate(KeyType::Ed25519);
        let (status, jwt, _) = ask_from(&home, &fixture, &enrolled, &json!({"mac": "enrolled"}), &enrollment, None).await;
        assert_eq!(status, StatusCode::OK, "an enrolled device is not held back: {jwt}");

        // Another address: devices 3 to 5 join, and the pending list keeps the newest four.
        let other = client_from(2);
        for (number, key) in keys.iter().enumerate().take(6).skip(3) {
            let (status, body, _) = ask_from(&other, &fixture, key, &identity(number), "", None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "device {number}: {body}");
        }
        let names: Vec<String> = pending(&fixture).await.iter()
            .map(|device| device["name"].as_str().unwrap().to_owned()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        let newest = ["02:00:00:00:00:02", "02:00:00:00:00:03", "02:00:00:00:00:04", "02:00:00:00:00:05"];
        assert_eq!(sorted, newest, "devices 0 and 1, the oldest, were dropped: {names:?}");
        let text = metrics(&fixture).await;
        assert!(text.contains("monitor_server_pending_devices_dropped_total 2\n"), "{text}");

        // A dropped device that asks again is pending once more (from a third address).
        let (status, _, _) = ask_from(&client_from(3), &fixture, &keys[0], &identity(0), "", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let names: Vec<String> = pending(&fixture).await.iter()
            .map(|device| device["name"].as_str().unwrap().to_owned()).collect();
        assert!(names.contains(&"02:00:00:00:00:00".to_owned()), "{names:?}");
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(metrics(&fixture).await.contains("monitor_server_pending_devices_dropped_total 3\n"));
    }
}

on_both_engines! {
    /// An impostor asks first with a real device's MAC: both wait as pending, the list (API,
    /// CLI, dashboard) shows each one's id and key fingerprint, `device accept <mac>` refuses
    /// and names both, a wrong `--key-sha256` accepts nothing, and the id with the
    /// fingerprint read on the device accepts the real one only.
    async fn two_devices_claiming_one_mac_are_told_apart_by_their_key(database) {
        let fixture = Fixture::start(database).await;
        let impostor = DeviceKey::generate(KeyType::Ed25519);
        let device = DeviceKey::generate(KeyType::Rsa);
        let mac = "dc:a6:32:07:08:09";
        let identity = json!({"mac": mac});
        assert_eq!(ask(&fixture, &impostor, &identity, "", None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(ask(&fixture, &device, &identity, "", None).await.0, StatusCode::UNAUTHORIZED);

        let device_key = fingerprint_on_the_device(&device);
        let impostor_key = fingerprint_on_the_device(&impostor);
        let listed = pending(&fixture).await;
        assert_eq!(listed.len(), 2, "{listed:?}");
        let id_with = |fingerprint: &str| -> String {
            let found = listed.iter().find(|entry| entry["key_sha256"] == fingerprint)
                .unwrap_or_else(|| panic!("{fingerprint} in {listed:?}"));
            assert_eq!(found["identity_data"], identity.to_string());
            found["id"].as_str().unwrap().to_owned()
        };
        let (device_id, impostor_id) = (id_with(&device_key), id_with(&impostor_key));
        // The first to ask has the plain name: the name says nothing about which is real.
        let impostor_entry = listed.iter().find(|entry| entry["id"] == impostor_id.as_str()).unwrap();
        assert_eq!(impostor_entry["name"], mac);

        let list = fixture.database.admin_ok(binary(), &["device", "list", "--status", "pending"], None);
        for expected in [&device_id, &impostor_id, &device_key, &impostor_key, &mac.to_owned()] {
            assert!(list.contains(expected.as_str()), "{expected} in\n{list}");
        }
        assert!(list.starts_with("ID "), "{list}");

        let refused = fixture.database.admin(binary(), &["device", "accept", mac], None);
        assert!(!refused.status.success());
        let message = String::from_utf8_lossy(&refused.stderr);
        assert!(message.contains(&format!("2 devices claim `{mac}`")), "{message}");
        for expected in [&device_id, &impostor_id, &device_key, &impostor_key] {
            assert!(message.contains(expected.as_str()), "{expected} in\n{message}");
        }

        let wrong = fixture.database.admin(binary(), &["device", "accept", &device_id, "--key-sha256", &impostor_key], None);
        assert!(!wrong.status.success());
        let message = String::from_utf8_lossy(&wrong.stderr);
        assert!(message.contains("nothing accepted"), "{message}");
        assert_eq!(ask(&fixture, &device, &identity, "", None).await.0, StatusCode::UNAUTHORIZED);

        let accepted = fixture.database.admin(binary(), &["device", "accept", &device_id, "--key-sha256", &device_key.to_uppercase()], None);
        assert!(accepted.status.success(), "{accepted:?}");
        assert!(String::from_utf8_lossy(&accepted.stderr).contains(&device_key));
        let (status, jwt) = ask(&fixture, &device, &identity, "", None).await;
        assert_eq!(status, StatusCode::OK, "{jwt}");
        let (status, body) = ask(&fixture, &impostor, &identity, "", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("pending"), "{body}");

        // The dashboard's pending list shows the impostor, still waiting, with its key.
        let page = fixture.client.get(fixture.url("/ui/pending"))
            .header("cookie", format!("monitor_session={}", fixture.user_token))
            .send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        assert!(page.contains(&impostor_key), "{page}");
        assert!(page.contains(&impostor_id), "{page}");
        assert!(!page.contains(&device_key), "the accepted device is no longer pending: {page}");
    }
}

on_both_engines! {
    /// A captured request replayed byte for byte (from another address too) gets the very
    /// token the device holds, not a fresh one; the device's own repeated request, which is
    /// the same bytes, keeps working.
    async fn a_replayed_auth_request_gets_no_fresh_token(database) {
        let fixture = Fixture::start(database).await;
        let enrollment = fixture.database.admin_ok(binary(), &["enrollment", "add"], None);
        let key = DeviceKey::generate(KeyType::Rsa);
        let body = serde_json::to_vec(&json!({
            "id_data": json!({"mac": "dc:a6:32:0a:0b:0c"}).to_string(),
            "pubkey": key.public_pem(),
            "tenant_token": enrollment,
        })).unwrap();
        let signature = key.sign(&body);
        let send = |client: reqwest::Client| {
            let (body, signature, url) = (body.clone(), signature.clone(), fixture.url(AUTH_PATH));
            async move {
                let response = client.post(url).header("content-type", "application/json")
                    .header("x-men-signature", signature).body(body).send().await.unwrap();
                (response.status(), response.text().await.unwrap())
            }
        };
        let (status, token) = send(client_from(1)).await;
        assert_eq!(status, StatusCode::OK, "{token}");
        for from in [1, 2] {
            let (status, replayed) = send(client_from(from)).await;
            assert_eq!(status, StatusCode::OK, "{replayed}");
            assert_eq!(replayed, token, "a replay from 127.0.0.{from} got a fresh token");
        }
        let alert = json!([crate::api::alert("app", "CRITICAL", 1)]);
        let response = fixture.device_post("/api/devices/v1/devicemonitor/alert", &token, &alert).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
}
