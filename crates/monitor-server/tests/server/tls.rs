//! HTTPS built in: a certificate from a test CA (made by `openssl`), HSTS and `Secure`
//! cookies over TLS, a new certificate on SIGHUP without dropping a connection, and a
//! certificate that cannot be served named at start.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};

use crate::api::{binary, EMAIL, PASSWORD};
use crate::monitor_server::{ServerDatabase, ServerProcess};
use crate::tls_certificates::TestCertificates;

const DEADLINE: Duration = Duration::from_secs(30);

/// A client that trusts only `ca` and follows no redirect (to see each answer's cookies).
fn client_trusting(ca: &TestCertificates) -> Client {
    let _ = crate::api::client(); // installs the process' crypto provider
    Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca.ca_pem()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

fn copy_certificate(from: &TestCertificates, cert: &Path, key: &Path) {
    std::fs::copy(from.cert(), cert).unwrap();
    std::fs::copy(from.key(), key).unwrap();
}

fn wait_for_log(server: &ServerProcess, text: &str, occurrences: usize) {
    let started = Instant::now();
    while server.log().matches(text).count() < occurrences {
        assert!(
            started.elapsed() < DEADLINE,
            "no `{text}` in the log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hang_up(server: &ServerProcess) {
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_hsts_secure_cookies_and_a_certificate_reloaded_on_sighup() {
    let first = TestCertificates::generate();
    let second = TestCertificates::generate();
    let served = tempfile::tempdir().unwrap();
    let (cert, key) = (
        served.path().join("cert.pem"),
        served.path().join("key.pem"),
    );
    copy_certificate(&first, &cert, &key);
    let database = ServerDatabase::sqlite();
    database.admin_ok(
        binary(),
        &["user", "add", EMAIL, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let server = ServerProcess::start(
        binary(),
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
    let healthz = format!("{}/healthz", server.url);

    let trusting_first = client_trusting(&first);
    let health = trusting_first.get(&healthz).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let login = trusting_first
        .post(format!("{}/ui/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("email", EMAIL), ("password", PASSWORD)]).unwrap())
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("monitor_session=") && cookie.ends_with("; Secure"),
        "{cookie}"
    );
    // Plain HTTP on the same port gets no answer a browser would take.
    let plain = crate::api::client()
        .get(healthz.replace("https://", "http://"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // A certificate its CA did not sign is refused.
    assert!(client_trusting(&second).get(&healthz).send().await.is_err());

    // A renewed certificate: SIGHUP serves it to new connections, while the connection
    // open before (kept alive in the first client's pool) goes on.
    copy_certificate(&second, &cert, &key);
    hang_up(&server);
    wait_for_log(&server, "reloaded the TLS certificate", 1);
    let kept = trusting_first.get(&healthz).send().await.unwrap();
    assert_eq!(kept.status(), StatusCode::OK);
    assert_eq!(
        client_trusting(&second)
            .get(&healthz)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert!(client_trusting(&first).get(&healthz).send().await.is_err());

    // A broken file on SIGHUP keeps the certificate in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    hang_up(&server);
    wait_for_log(&server, "still serving the previous certificate", 1);
    assert!(server.log().contains(cert.to_str().unwrap()));
    assert_eq!(
        client_trusting(&second)
            .get(&healthz)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

/// A key that is not the certificate's, or a missing file: the server does not start, and
/// says which file and what to give.
#[test]
fn a_certificate_that_cannot_be_served_is_named_at_start() {
    let first = TestCertificates::generate();
    let second = TestCertificates::generate();
    let database = ServerDatabase::sqlite();
    let start = |cert: &Path, key: &Path| {
        let output = Command::new(binary())
            .args(database.args())
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .env("MONITOR_SERVER_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
        String::from_utf8(output.stderr).unwrap()
    };
    let mismatched = start(&first.cert(), &second.key());
    assert!(
        mismatched.contains("the key does not fit the certificate")
            && mismatched.contains(first.cert().to_str().unwrap()),
        "{mismatched}"
    );
    let missing = first.cert().with_file_name("missing.pem");
    let error = start(&missing, &first.key());
    assert!(
        error.contains(missing.to_str().unwrap()) && error.contains("--tls-cert"),
        "{error}"
    );
}

/// Plain HTTP beyond loopback is served, with a warning that says how to add TLS; on
/// loopback there is no warning.
#[test]
fn plain_http_beyond_loopback_is_warned_about() {
    let database = ServerDatabase::sqlite();
    let exposed = ServerProcess::start(binary(), &database, &["--listen", "0.0.0.0:0"]);
    assert!(
        exposed.log().contains("serving plain HTTP") && exposed.log().contains("--tls-cert"),
        "{}",
        exposed.log()
    );
    drop(exposed);
    let local = ServerProcess::start(binary(), &database, &[]);
    assert!(
        !local.log().contains("serving plain HTTP"),
        "{}",
        local.log()
    );
}

/// `systemctl reload` (the shipped unit's `ExecReload`) sends SIGHUP whatever the server
/// serves: without TLS it must not end the server, whose default for SIGHUP is to die.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_server_survives_sighup() {
    let database = ServerDatabase::sqlite();
    let server = ServerProcess::start(binary(), &database, &[]);
    hang_up(&server);
    wait_for_log(&server, "SIGHUP: nothing to reload", 1);
    let health = crate::api::client()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}
