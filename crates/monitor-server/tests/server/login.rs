//! Logins cannot hurt the server: password checks are capped, failures from one address or
//! on one account are throttled with growing delays (429 with `Retry-After`), and an unknown
//! account costs the same time as a known one.
//!
//! The clients bind to other loopback addresses (127.0.0.2, …: all of 127/8 reaches the
//! server on 127.0.0.1) to be "another address".

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};

use crate::api::{Fixture, EMAIL, PASSWORD};
use crate::on_both_engines;

const LOGIN: &str = "/api/management/v1/useradm/auth/login";

/// A client whose connections come from `127.0.<third>.<fourth>`.
fn client_from(third: u8, fourth: u8) -> Client {
    crate::api::client();
    Client::builder()
        .local_address(IpAddr::from([127, 0, third, fourth]))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

async fn try_login(
    fixture: &Fixture,
    client: &Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(fixture.url(LOGIN))
        .basic_auth(email, Some(password))
        .send()
        .await
        .expect("the server answers")
}

/// `Retry-After` in seconds; panics without one.
fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{} without Retry-After", response.status()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A field of `/proc/<pid>/status` in MiB (`VmRSS`, `VmHWM`: the peak).
fn memory_mib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server runs");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib / 1024
}

/// The most memory the server may take during a storm of wrong logins.
const STORM_RSS_LIMIT_MIB: u64 = 200;
const STORM_LOGINS: usize = 500;

on_both_engines! {
    /// 500 concurrent wrong logins for the known account: the server's peak RSS stays under
    /// 200 MB (each Argon2 check is 19 MiB: unguarded, hundreds ran at once), every answer
    /// is 401, 429 or 503, and then the real user logs in from another address. (A login
    /// whose client hangs up keeps its turn until its check ends: a unit test of
    /// `login_guard`. Each connection also costs this debug build ~160 KiB, so the storm's
    /// size matters here as much as the checks do.)
    async fn a_login_storm_stays_small_and_the_real_user_still_logs_in(database) {
        let fixture = Fixture::start(database).await;
        let storm = client_from(0, 1);
        let started = Instant::now();
        let answers = futures_join_all((0..STORM_LOGINS).map(|attempt| {
            let request = storm
                .post(fixture.url(LOGIN))
                .basic_auth(EMAIL, Some(format!("wrong password {attempt}")));
            async move { request.send().await.map(|response| response.status()) }
        }))
        .await;
        let elapsed = started.elapsed();
        let count = |status| answers.iter().filter(|answer| matches!(answer, Ok(s) if *s == status)).count();
        let (unauthorized, throttled, busy) = (
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::TOO_MANY_REQUESTS),
            count(StatusCode::SERVICE_UNAVAILABLE),
        );
        let peak = memory_mib(fixture.server.pid(), "VmHWM");
        let after = memory_mib(fixture.server.pid(), "VmRSS");
        eprintln!(
            "login storm: {STORM_LOGINS} concurrent wrong logins in {elapsed:.1?}: \
             {unauthorized} × 401, {throttled} × 429, {busy} × 503; \
             server peak RSS {peak} MiB, {after} MiB after"
        );
        assert_eq!(unauthorized + throttled + busy, STORM_LOGINS, "only 401, 429 and 503: {answers:?}");
        assert!(unauthorized >= 1, "some were checked");
        assert!(peak < STORM_RSS_LIMIT_MIB, "peak RSS {peak} MiB");

        // Its turn may come after checks still running: wait as Retry-After says.
        let real_user = client_from(0, 2);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let response = try_login(&fixture, &real_user, EMAIL, PASSWORD).await;
            if response.status() == StatusCode::SERVICE_UNAVAILABLE && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_secs(retry_after(&response))).await;
                continue;
            }
            assert_eq!(response.status(), StatusCode::OK, "the real user from another address");
            break;
        }
        let peak = memory_mib(fixture.server.pid(), "VmHWM");
        assert!(peak < STORM_RSS_LIMIT_MIB, "peak RSS {peak} MiB after the real login");
    }
}

/// Runs every future at once (tokio tasks, so they really are concurrent) and collects the
/// outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await.expect("the task runs"));
    }
    outputs
}

on_both_engines! {
    /// Wrong passwords for one account from a few addresses (each well under its own
    /// limit) get 429 with `Retry-After` from those addresses, through the API and the
    /// dashboard alike; the real user logs in from an address that did not fail.
    async fn failures_on_one_account_are_throttled(database) {
        let fixture = Fixture::start(database).await;
        let addresses: Vec<Client> = (10..13).map(|host| client_from(0, host)).collect();
        let mut refused = None;
        // 5 failures start the account's delays; a few more in case one block ran out
        // before the next try (on a slow machine), each block twice as long.
        for attempt in 0..12 {
            let response = try_login(&fixture, &addresses[attempt % 3], EMAIL, "wrong password").await;
            match response.status() {
                StatusCode::UNAUTHORIZED => continue,
                StatusCode::TOO_MANY_REQUESTS => {
                    refused = Some((attempt, response));
                    break;
                }
                other => panic!("attempt {attempt}: {other}"),
            }
        }
        let (attempt, response) = refused.expect("throttled within 12 failures");
        assert!(attempt >= 5, "5 failures are free, throttled at attempt {attempt}");
        assert!(retry_after(&response) >= 1);
        let error: serde_json::Value = response.json().await.unwrap();
        assert!(error["error"].as_str().unwrap().contains("try again in"), "{error}");

        // Each address that never failed on the account gets one guess, which doubles the
        // block again (to 8 s here: time enough for what follows).
        for host in 13..16 {
            let response = try_login(&fixture, &client_from(0, host), EMAIL, "wrong password").await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "a new address is checked");
        }
        let right = try_login(&fixture, &addresses[0], EMAIL, PASSWORD).await;
        assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS, "not checked while blocked");
        let dashboard = addresses[0]
            .post(fixture.url("/ui/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([("email", EMAIL), ("password", PASSWORD)]).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(dashboard.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(retry_after(&dashboard) >= 1);

        let other = try_login(&fixture, &client_from(0, 19), EMAIL, PASSWORD).await;
        assert_eq!(other.status(), StatusCode::OK, "an address that did not fail");
    }
}

on_both_engines! {
    /// Wrong logins from one address, each for another (unknown) account, get 429 with
    /// `Retry-After` after 10; even the right password is not checked from there then,
    /// while another address logs in.
    async fn failures_from_one_address_are_throttled(database) {
        let fixture = Fixture::start(database).await;
        let address = client_from(0, 30);
        let mut refused = None;
        for attempt in 0..20 {
            let response = try_login(&fixture, &address, &format!("nobody{attempt}@example.com"), "guess").await;
            match response.status() {
                StatusCode::UNAUTHORIZED => continue,
                StatusCode::TOO_MANY_REQUESTS => {
                    refused = Some((attempt, retry_after(&response)));
                    break;
                }
                other => panic!("attempt {attempt}: {other}"),
            }
        }
        let (attempt, seconds) = refused.expect("throttled within 20 failures");
        assert!(attempt >= 10, "10 failures are free, throttled at attempt {attempt}");
        assert!(seconds >= 1);
        let right = try_login(&fixture, &address, EMAIL, PASSWORD).await;
        assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
        let other = try_login(&fixture, &client_from(0, 31), EMAIL, PASSWORD).await;
        assert_eq!(other.status(), StatusCode::OK);
    }
}

/// How long a login takes, from its own address (so the throttle stays out of it).
async fn login_time(fixture: &Fixture, host: u8, email: &str) -> Duration {
    let client = client_from(1, host);
    let started = Instant::now();
    let response = try_login(fixture, &client, email, "not the password").await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{email}");
    elapsed
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Without the dummy hash an unknown email took a tenth of a known one (no Argon2 check).
/// Not flaky: both now do the same Argon2 work, which is most of a login's time; the
/// attempts alternate, so a busy moment of the shared machine hits both kinds alike, the
/// median drops the odd slow one, and the factor allowed (2.5) is far from the 10 seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_known_accounts_take_comparable_time() {
    let fixture = Fixture::start(crate::monitor_server::ServerDatabase::sqlite()).await;
    const UNKNOWN: &str = "nobody@example.com";
    // Warm up both paths (the dummy hash is made on first use).
    login_time(&fixture, 1, UNKNOWN).await;
    login_time(&fixture, 2, EMAIL).await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..7 {
        known.push(login_time(&fixture, 10 + 2 * round, EMAIL).await);
        unknown.push(login_time(&fixture, 11 + 2 * round, UNKNOWN).await);
    }
    let (known, unknown) = (median(known), median(unknown));
    eprintln!("login time, median of 7: known account {known:?}, unknown account {unknown:?}");
    let (slower, faster) = (known.max(unknown), known.min(unknown));
    assert!(
        slower.as_secs_f64() < 2.5 * faster.as_secs_f64(),
        "known {known:?}, unknown {unknown:?}"
    );
}
