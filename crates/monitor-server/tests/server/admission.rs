//! Mender-style admission: a device asks with its identity, public key and a signature made
//! by the real `openssl` CLI (RSA as the Mender client's default, ECDSA P-256, Ed25519), waits
//! as pending until a user accepts it, or is accepted at once with an enrollment token, and
//! reports with the JWT it gets.

use std::path::PathBuf;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::api::{alert, binary, Fixture};
use crate::on_both_engines;

pub(crate) const AUTH_PATH: &str = "/api/devices/v1/authentication/auth_requests";
const ALERT_PATH: &str = "/api/devices/v1/devicemonitor/alert";

#[derive(Clone, Copy, Debug)]
pub(crate) enum KeyType {
    Rsa,
    EcdsaP256,
    Ed25519,
}

/// A device's key pair in files, and signing with `openssl`.
pub(crate) struct DeviceKey {
    directory: tempfile::TempDir,
    kind: KeyType,
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

impl DeviceKey {
    pub(crate) fn generate(kind: KeyType) -> DeviceKey {
        let directory = tempfile::tempdir().unwrap();
        let private = directory.path().join("private.pem");
        let private = private.to_str().unwrap();
        match kind {
            KeyType::Rsa => openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:3072",
                "-out",
                private,
            ]),
            KeyType::EcdsaP256 => openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                private,
            ]),
            KeyType::Ed25519 => openssl(&["genpkey", "-algorithm", "ed25519", "-out", private]),
        };
        DeviceKey { directory, kind }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    pub(crate) fn public_pem(&self) -> String {
        String::from_utf8(openssl(&[
            "pkey",
            "-in",
            self.path("private.pem").to_str().unwrap(),
            "-pubout",
        ]))
        .unwrap()
    }

    /// `X-MEN-Signature` for `body`.
    pub(crate) fn sign(&self, body: &[u8]) -> String {
        let message = self.path("body");
        std::fs::write(&message, body).unwrap();
        let (key, message) = (self.path("private.pem"), message);
        let (key, message) = (key.to_str().unwrap(), message.to_str().unwrap());
        let signature = match self.kind {
            KeyType::Ed25519 => {
                openssl(&["pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", message])
            }
            _ => openssl(&["dgst", "-sha256", "-sign", key, message]),
        };
        base64(&signature)
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Sends an auth request signed with `key` (or with `signer` when given); status and body.
pub(crate) async fn ask(
    fixture: &Fixture,
    key: &DeviceKey,
    identity: &serde_json::Value,
    tenant_token: &str,
    signer: Option<&DeviceKey>,
) -> (StatusCode, String) {
    let response = ask_from(
        &fixture.client,
        fixture,
        key,
        identity,
        tenant_token,
        signer,
    )
    .await;
    (response.0, response.1)
}

/// [`ask`] with a client of one's own (another source address), with the response's
/// `Retry-After`.
pub(crate) async fn ask_from(
    client: &reqwest::Client,
    fixture: &Fixture,
    key: &DeviceKey,
    identity: &serde_json::Value,
    tenant_token: &str,
    signer: Option<&DeviceKey>,
) -> (StatusCode, String, Option<String>) {
    let body = serde_json::to_vec(&json!({
        "id_data": identity.to_string(),
        "pubkey": key.public_pem(),
        "tenant_token": tenant_token,
    }))
    .unwrap();
    let signature = signer.unwrap_or(key).sign(&body);
    let response = client
        .post(fixture.url(AUTH_PATH))
        .header("content-type", "application/json")
        .header("x-men-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    (
        response.status(),
        response.text().await.unwrap(),
        retry_after,
    )
}

async fn post_with(fixture: &Fixture, token: &str, second: u64) -> StatusCode {
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
    /// RSA (the Mender client's default): pending and refused until a user accepts it, then
    /// a JWT that reports; rejected later, the same JWT is refused at once.
    async fn a_device_waits_as_pending_until_accepted(database) {
        let fixture = Fixture::start(database).await;
        let key = DeviceKey::generate(KeyType::Rsa);
        let identity = json!({"mac": "dc:a6:32:01:02:03", "serial": "0001"});
        let (status, body) = ask(&fixture, &key, &identity, "", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.contains("the device is pending: a user must accept it"), "{body}");
        let (pending, _) = fixture.manage("/devices?status=pending").await;
        assert_eq!(pending[0]["name"], "dc:a6:32:01:02:03", "{pending}");
        let id = pending[0]["id"].as_str().unwrap().to_owned();
        // Asking again (the client retries) does not make a second device.
        let reordered = json!({"serial": "0001", "mac": "dc:a6:32:01:02:03"});
        assert_eq!(ask(&fixture, &key, &reordered, "", None).await.0, StatusCode::UNAUTHORIZED);
        let (all, _) = fixture.manage("/devices").await;
        assert_eq!(all.as_array().unwrap().len(), 2, "pi-1 and the new one: {all}");

        assert_eq!(fixture.manage_put(&format!("/devices/{id}/status"), &json!({"status": "accepted"})).await, StatusCode::NO_CONTENT);
        let (status, jwt) = ask(&fixture, &key, &identity, "", None).await;
        assert_eq!(status, StatusCode::OK, "{jwt}");
        assert_eq!(jwt.split('.').count(), 3, "{jwt}");
        assert_eq!(post_with(&fixture, &jwt, 1).await, StatusCode::NO_CONTENT);
        let (device, _) = fixture.manage(&format!("/devices/{id}")).await;
        assert_eq!(device["alert_count"], 1);

        fixture.database.admin_ok(binary(), &["device", "reject", &id], None);
        assert_eq!(post_with(&fixture, &jwt, 2).await, StatusCode::UNAUTHORIZED);
        assert_eq!(ask(&fixture, &key, &identity, "", None).await.0, StatusCode::UNAUTHORIZED);
    }
}

on_both_engines! {
    /// ECDSA and Ed25519 keys with an enrollment token: accepted at once; a wrong or expired
    /// token leaves the device pending.
    async fn an_enrollment_token_admits_a_device_at_once(database) {
        let fixture = Fixture::start(database).await;
        let token = fixture.database.admin_ok(binary(), &["enrollment", "add", "--name", "factory"], None);
        assert!(token.starts_with("met_"), "{token}");
        for (number, kind) in [KeyType::EcdsaP256, KeyType::Ed25519].into_iter().enumerate() {
            let key = DeviceKey::generate(kind);
            let identity = json!({"mac": format!("dc:a6:32:00:00:0{number}")});
            let (status, jwt) = ask(&fixture, &key, &identity, &token, None).await;
            assert_eq!(status, StatusCode::OK, "{kind:?}: {jwt}");
            assert_eq!(post_with(&fixture, &jwt, 1).await, StatusCode::NO_CONTENT, "{kind:?}");
        }
        let key = DeviceKey::generate(KeyType::Ed25519);
        let (status, _) = ask(&fixture, &key, &json!({"mac": "other"}), "met_wrong", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (pending, _) = fixture.manage("/devices?status=pending").await;
        assert_eq!(pending[0]["name"], "other");
    }
}

on_both_engines! {
    /// A signature by another key and malformed requests are refused and make no device;
    /// another key for a known identity makes a second pending device.
    async fn forged_and_malformed_requests_are_refused(database) {
        let fixture = Fixture::start(database).await;
        let key = DeviceKey::generate(KeyType::Ed25519);
        let thief = DeviceKey::generate(KeyType::Ed25519);
        let identity = json!({"mac": "dc:a6:32:aa:bb:cc"});
        let (status, body) = ask(&fixture, &key, &identity, "", Some(&thief)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("X-MEN-Signature: does not verify"), "{body}");
        let (devices, _) = fixture.manage("/devices").await;
        assert_eq!(devices.as_array().unwrap().len(), 1, "only pi-1: {devices}");

        assert_eq!(ask(&fixture, &key, &identity, "", None).await.0, StatusCode::UNAUTHORIZED);
        // Another key for the same identity is a device of its own, pending: it takes
        // nothing from the first (admission_limits.rs tells the two apart).
        let (status, body) = ask(&fixture, &thief, &identity, "", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("the device is pending"), "{body}");
        let (pending, _) = fixture.manage("/devices?status=pending").await;
        assert_eq!(pending.as_array().unwrap().len(), 2, "{pending}");

        for (body, reason) in [
            (json!({"id_data": "[1]", "pubkey": key.public_pem()}), "id_data must be a JSON object"),
            (json!({"id_data": "{\"mac\":\"x\"}", "pubkey": "ssh-ed25519 AAAA"}), "pubkey: not a PEM public key"),
            (json!({"pubkey": key.public_pem()}), "missing field `id_data`"),
        ] {
            let bytes = serde_json::to_vec(&body).unwrap();
            let response = fixture.client.post(fixture.url(AUTH_PATH))
                .header("x-men-signature", key.sign(&bytes)).body(bytes).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
            let text = response.text().await.unwrap();
            assert!(text.contains(reason), "{text} should say {reason}");
        }
        let unsigned = fixture.client.post(fixture.url(AUTH_PATH))
            .body(serde_json::to_vec(&json!({"id_data": "{\"mac\":\"y\"}", "pubkey": key.public_pem()})).unwrap())
            .send().await.unwrap();
        assert_eq!(unsigned.status(), StatusCode::BAD_REQUEST);
        // A JWT signed by another server's key is not accepted.
        let forged = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        assert_eq!(post_with(&fixture, forged, 1).await, StatusCode::UNAUTHORIZED);
    }
}
