//! Server hygiene: slow clients are cut off and cannot hold every connection, every answer
//! carries the security headers, `/metrics` needs a token, Discord channels post only to
//! Discord, and a device cannot forge a line of the server's log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::admission::{ask, DeviceKey, KeyType};
use crate::api::{binary, client, Fixture};
use crate::monitor_server::{ServerDatabase, ServerProcess};
use crate::on_both_engines;

const DEADLINE: Duration = Duration::from_secs(30);

/// A config file for the server; kept as long as the returned directory.
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("server.yaml");
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (directory, path)
}

fn address(server: &ServerProcess) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or the deadline, a failure); what it sent.
fn read_until_closed(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(error) => panic!("the server did not close the connection: {error}"),
    }
    String::from_utf8_lossy(&received).into_owned()
}

async fn healthy(server: &ServerProcess) {
    let health = client()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// A client that never finishes its headers, and one that never finishes its body, are cut
/// off within the timeouts; other clients are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_while_others_are_served() {
    let (_directory, config) = config_file("header_timeout: 1s\nbody_timeout: 1s\n");
    let database = ServerDatabase::sqlite();
    let server = ServerProcess::start(binary(), &database, &["--config", &config]);

    let mut slow_headers = TcpStream::connect(address(&server)).unwrap();
    slow_headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut slow_body = TcpStream::connect(address(&server)).unwrap();
    slow_body
        .write_all(
            b"POST /api/devices/v1/devicemonitor/alert HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{\"lev",
        )
        .unwrap();
    let started = Instant::now();
    healthy(&server).await;

    let (headers_answer, body_answer) = tokio::task::spawn_blocking(move || {
        (
            read_until_closed(&mut slow_headers),
            read_until_closed(&mut slow_body),
        )
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "cut off after {elapsed:?}"
    );
    assert!(!headers_answer.contains("200 OK"), "{headers_answer}");
    assert!(
        body_answer.is_empty() || body_answer.starts_with("HTTP/1.1 400"),
        "{body_answer}"
    );
    healthy(&server).await;
}

/// Reads one answer with a `Content-Length` body from a connection kept open.
fn read_answer(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed mid-answer");
        received.push(byte[0]);
    }
    let head = String::from_utf8(received).unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("a content-length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// A connection idle between requests is not cut at the header timeout (a client reusing it
/// then would find it closing under its request), only at `idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_last_until_the_idle_timeout() {
    let (_directory, config) = config_file("header_timeout: 1s\nidle_timeout: 3s\n");
    let database = ServerDatabase::sqlite();
    let server = ServerProcess::start(binary(), &database, &["--config", &config]);
    let address = address(&server);
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&address).unwrap();
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        stream.write_all(request).unwrap();
        assert!(read_answer(&mut stream).starts_with("HTTP/1.1 200"));
        // Idle for twice the header timeout: what is measured here is a duration.
        std::thread::sleep(Duration::from_secs(2));
        stream.write_all(request).unwrap();
        assert!(read_answer(&mut stream).starts_with("HTTP/1.1 200"));
        let idle_since = Instant::now();
        read_until_closed(&mut stream);
        let idle = idle_since.elapsed();
        assert!(
            idle >= Duration::from_secs(2) && idle < Duration::from_secs(15),
            "closed after {idle:?}"
        );
    })
    .await
    .unwrap();
}

/// With `max_connections: 1`, a client that holds the only connection makes the next wait
/// until it is cut off, and no longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_a_free_one() {
    let (_directory, config) = config_file("header_timeout: 1s\nmax_connections: 1\n");
    let database = ServerDatabase::sqlite();
    let server = ServerProcess::start(binary(), &database, &["--config", &config]);
    let address = address(&server);
    let (cut_off, served) = tokio::task::spawn_blocking(move || {
        let mut holding = TcpStream::connect(&address).unwrap();
        let mut waiting = TcpStream::connect(&address).unwrap();
        waiting
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let holder = std::thread::spawn(move || {
            read_until_closed(&mut holding);
            Instant::now()
        });
        let answer = read_until_closed(&mut waiting);
        let served = Instant::now();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        (holder.join().unwrap(), served)
    })
    .await
    .unwrap();
    assert!(
        served >= cut_off,
        "the second client was served while the first held the only connection"
    );
}

/// At `max_connections`, a new connection closes the one idle the longest between requests
/// and is served at once, rather than waiting for `idle_timeout`: an agent's client keeps
/// its connection a minute after each heartbeat, so 10,000 devices hold 10,000 of them.
/// The connection idle for less time keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_a_new_connection_closes_the_one_idle_the_longest() {
    let (_directory, config) = config_file("idle_timeout: 10m\nmax_connections: 2\n");
    let database = ServerDatabase::sqlite();
    let server = ServerProcess::start(binary(), &database, &["--config", &config]);
    let address = address(&server);
    tokio::task::spawn_blocking(move || {
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut oldest = TcpStream::connect(&address).unwrap();
        oldest.write_all(request).unwrap();
        assert!(read_answer(&mut oldest).starts_with("HTTP/1.1 200"));
        let mut newer = TcpStream::connect(&address).unwrap();
        newer.write_all(request).unwrap();
        assert!(read_answer(&mut newer).starts_with("HTTP/1.1 200"));

        // Both idle, both slots taken: a third is served within the deadline (30 s, far
        // below the idle timeout of 10 minutes).
        let mut third = TcpStream::connect(&address).unwrap();
        third
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let answer = read_until_closed(&mut third);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(
            read_until_closed(&mut oldest),
            "",
            "the oldest idle connection closes, with nothing sent"
        );
        newer.write_all(request).unwrap();
        assert!(read_answer(&mut newer).starts_with("HTTP/1.1 200"));
    })
    .await
    .unwrap();
}

on_both_engines! {
    /// Pages, API answers and errors all carry the security headers; plain HTTP gets no HSTS.
    async fn every_answer_carries_the_security_headers(database) {
        let fixture = Fixture::start(database).await;
        let answers = [
            fixture.client.get(fixture.url("/ui/login")).send().await.unwrap(),
            fixture.client.get(fixture.url("/ui/devices")).send().await.unwrap(),
            fixture.client.get(fixture.url("/healthz")).send().await.unwrap(),
            fixture.client.get(fixture.url("/metrics")).send().await.unwrap(),
            fixture.client.get(fixture.url("/api/management/v1/devicemonitor/devices")).bearer_auth(&fixture.user_token).send().await.unwrap(),
            fixture.client.get(fixture.url("/api/management/v1/devicemonitor/devices")).send().await.unwrap(),
            fixture.client.get(fixture.url("/no/such/page")).send().await.unwrap(),
        ];
        for answer in answers {
            let headers = answer.headers();
            let what = format!("{} {}", answer.url().path(), answer.status());
            let csp = headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{what}: {csp}");
            assert_eq!(headers["x-frame-options"], "DENY", "{what}");
            assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
            assert_eq!(headers["referrer-policy"], "same-origin", "{what}");
            assert!(headers.get("strict-transport-security").is_none(), "{what}");
        }
        // The dashboard has no inline script for the policy to block: its live update is a file.
        let page = fixture.client.get(fixture.url("/ui/devices")).header("cookie", format!("monitor_session={}", fixture.user_token)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("<script src=\"/ui/live.js\""), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        let script = fixture.client.get(fixture.url("/ui/live.js")).send().await.unwrap();
        assert_eq!(script.headers()["content-type"], "text/javascript");
    }
}

/// `/metrics` names every device: it needs an API token or the metrics token, unless the
/// server is started with `--metrics-public`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_token_unless_public() {
    let token_directory = tempfile::tempdir().unwrap();
    let token_file = token_directory.path().join("metrics-token");
    std::fs::write(&token_file, "scraper-token-0123456789\n").unwrap();
    let fixture = Fixture::start_with(
        ServerDatabase::sqlite(),
        &["--metrics-token-file", token_file.to_str().unwrap()],
    )
    .await;
    let metrics = |token: Option<&str>| {
        let mut request = fixture.client.get(fixture.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(metrics(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(metrics(Some("wrong")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        metrics(Some(&fixture.device_token)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(metrics(Some(&fixture.user_token)).await, StatusCode::OK);
    assert_eq!(
        metrics(Some("scraper-token-0123456789")).await,
        StatusCode::OK
    );

    let public = ServerProcess::start(binary(), &fixture.database, &["--metrics-public"]);
    let answer = client()
        .get(format!("{}/metrics", public.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer
        .text()
        .await
        .unwrap()
        .contains("monitor_server_devices"));
}

on_both_engines! {
    /// A Discord channel posts only to Discord's own hosts over HTTPS, through the API and the
    /// command line alike, unless the server allows private targets.
    async fn discord_channels_post_only_to_discord(database) {
        let fixture = Fixture::start(database).await;
        let add = |target: &str| {
            let request = fixture
                .client
                .post(fixture.url("/api/management/v1/devicemonitor/settings/channels"))
                .bearer_auth(&fixture.user_token)
                .json(&json!({"kind": "discord", "name": "ops", "target": target}));
            async move {
                let answer = request.send().await.unwrap();
                (answer.status(), answer.text().await.unwrap())
            }
        };
        for target in [
            "http://127.0.0.1:9/api/webhooks/1/token",
            "https://169.254.169.254/api/webhooks/1/token",
            "http://discord.com/api/webhooks/1/token",
            "https://discord.com.evil.example/api/webhooks/1/token",
        ] {
            let (status, body) = add(target).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{target}: {body}");
            assert!(body.contains("--allow-private-targets"), "{target}: {body}");
        }
        for target in [
            "https://discord.com/api/webhooks/1/token",
            "https://ptb.discordapp.com/api/webhooks/2/token",
            "https://canary.discord.com:443/api/v10/webhooks/3/token",
        ] {
            let (status, body) = add(target).await;
            assert!(status.is_success(), "{target}: {status} {body}");
        }
        let local = "http://127.0.0.1:9/api/webhooks/4/token\n";
        let refused = fixture.database.admin(binary(), &["channel", "discord", "lan", "--webhook-url-stdin"], Some(local));
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("--allow-private-targets"));
        fixture.database.admin_ok(binary(), &["channel", "discord", "lan", "--webhook-url-stdin", "--allow-private-targets"], Some(local));
    }
}

/// A MAC with a newline and a terminal escape cannot forge or hide a line of the server's
/// log: the control characters are written escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_forge_a_log_line() {
    let fixture = Fixture::start(ServerDatabase::sqlite()).await;
    let key = DeviceKey::generate(KeyType::EcdsaP256);
    let forged = "2030-01-01T00:00:00.000000Z  INFO monitor_server: device status device=pi-1 status=accepted";
    let mac = format!("dc:a6:32:00:00:01\n{forged}\r\x1b[2K");
    let (status, body) = ask(&fixture, &key, &json!({ "mac": mac }), "", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let started = Instant::now();
    while !fixture.server.log().contains("asked to join") {
        assert!(started.elapsed() < DEADLINE, "{}", fixture.server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = fixture.server.log();
    assert!(
        log.lines().all(|line| !line.starts_with("2030-01-01")),
        "a forged line:\n{log}"
    );
    assert!(!log.contains('\r') && !log.contains('\x1b'), "{log:?}");
    assert!(
        log.contains(&format!("dc:a6:32:00:00:01\\n{forged}")),
        "{log}"
    );
}
