//! The backend client against real HTTP stand-ins on 127.0.0.1 and, for Mender mode, a
//! mender-auth stand-in on a real private dbus-daemon.

#[path = "../../../tests/support/devicemonitor_standin.rs"]
mod devicemonitor_standin;
#[path = "../../../tests/support/mender_auth_standin.rs"]
mod mender_auth_standin;

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use devicemonitor_standin::{DeviceMonitorStandIn, ALERT_PATH, DEFAULT_TOKEN};
use mender_auth_standin::MenderAuthStandIn;
use monitor_backend::{
    http_client, load_extra_ca, Auth, BackendClient, BackendFailure, BackendFailureKind,
    HttpClientError,
};
use monitor_destination::OutgoingAlert;
use monitor_wire::config_push::{
    CheckStatus, ConfigCheck, DbusCheckConfig, LogCheckConfig, SampledCheckConfig,
    ServiceCheckConfig, ServiceType,
};
use monitor_wire::{
    Alert, CheckId, Details, HistoryRecord, Level, LogLine, Subject, Subsystem, Timestamp,
};

const WAIT: Duration = Duration::from_secs(10);

/// A self-signed CA (EC P-256, valid until 2126), only ever parsed.
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBjDCCATGgAwIBAgIUINo5Vd1giSfwgwatJrqnxQ98Lw4wCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPbW9uaXRvciB0ZXN0IENBMCAXDTI2MTEyMjAxMzEyOFoYDzIx
MjYxMDI5MDEzMTI4WjAaMRgwFgYDVQQDDA9tb25pdG9yIHRlc3QgQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAR/7/Cti98hx1tAoDBbB3i/UsO/4IdpvkvgZmgc
S2SMQYEOjcQfXDIDlVbCEyPe99LUcbxm+dOuZzbDdV3w/X0xo1MwUTAdBgNVHQ4E
FgQUvQsgFOLxHE9+RqKNGxg1ozbufiswHwYDVR0jBBgwFoAUvQsgFOLxHE9+RqKN
Gxg1ozbufiswDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEA9SGm
grgPMIQ0MV4ZFiWQtcS/sgO44Vg0+MBYEmYg+LECIQD1NYGm/PGowzmQQ86+4mhw
GE2XM0KSOx4vMD/DH3+S0A==
-----END CERTIFICATE-----
";

fn http() -> reqwest::Client {
    // The binary installs ring at start; here the first test to get here does (the others'
    // attempts fail harmlessly: one is installed already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    http_client(None).expect("build the HTTP client")
}

fn token_client(backend: &DeviceMonitorStandIn) -> BackendClient {
    BackendClient::new(
        http(),
        Auth::Token {
            server_url: backend.url(),
            token: DEFAULT_TOKEN.to_owned(),
        },
    )
}

fn mender_client(auth: &MenderAuthStandIn) -> BackendClient {
    BackendClient::new(
        http(),
        Auth::Mender {
            bus_address: Some(auth.bus_address.clone()),
        },
    )
}

/// A log alert first observed at 2026-11-21T12:22:36Z (plus `seq` seconds).
fn record(seq: u64) -> HistoryRecord {
    HistoryRecord {
        seq,
        check: CheckId::new(Subsystem::Log, "mylog"),
        alert: Alert {
            name: "Log file contains session opened for user [a-z]*".into(),
            level: if seq.is_multiple_of(2) {
                Level::Ok
            } else {
                Level::Critical
            },
            timestamp: Timestamp(UNIX_EPOCH + Duration::from_secs(1_795_263_756 + seq)),
            subject: Subject {
                name: "mylog".into(),
                kind: "log".into(),
                status: "LOGCONTAINS".into(),
                details: Details {
                    description: Some(format!("match {seq}")),
                    line_matching: Some(LogLine {
                        line_number: 3,
                        data: "a new session opened for user root now".into(),
                    }),
                    lines_before: vec![LogLine {
                        line_number: 2,
                        data: "some line 2".into(),
                    }],
                    lines_after: vec![],
                    fields: BTreeMap::new(),
                },
            },
        },
    }
}

/// The alerts of these records, as a destination is given them.
fn outgoing(records: &[HistoryRecord]) -> Vec<OutgoingAlert<'_>> {
    records.iter().map(OutgoingAlert::from).collect()
}

fn retry_after(result: Result<(), BackendFailure>) -> (Duration, String) {
    match result {
        Err(BackendFailure {
            kind: BackendFailureKind::Retry { after },
            message,
        }) => {
            eprintln!("retry after {after:?}: {message}");
            (after, message)
        }
        other => panic!("expected Retry, got {other:?}"),
    }
}

#[tokio::test]
async fn accepted_alerts_arrive_unchanged_with_their_original_timestamps() {
    let backend = DeviceMonitorStandIn::start();
    let mut client = token_client(&backend);
    let records: Vec<HistoryRecord> = (1..=3).map(record).collect();

    client
        .send_alerts(&outgoing(&records))
        .await
        .expect("accepted");

    let arrived = backend.wait_for_alerts(3, WAIT).await;
    let sent: Vec<serde_json::Value> = records
        .iter()
        .map(|record| serde_json::to_value(&record.alert).unwrap())
        .collect();
    assert_eq!(arrived, sent);
    assert_eq!(arrived[0]["timestamp"], "2026-11-21T12:22:37.000Z");
    let requests = backend.requests();
    assert_eq!(requests.len(), 1, "one batch, one request");
    assert_eq!(requests[0].path, ALERT_PATH);
    assert_eq!(requests[0].bearer.as_deref(), Some(DEFAULT_TOKEN));
    assert_eq!(
        requests[0].user_agent.as_deref(),
        Some(concat!("monitord/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(requests[0].status, 204);

    client
        .send_alerts(&outgoing(&[]))
        .await
        .expect("an empty batch is no work");
    assert_eq!(backend.requests().len(), 1, "an empty batch sends nothing");
}

#[tokio::test]
async fn an_invalid_batch_is_discarded_with_the_backends_reason() {
    let backend = DeviceMonitorStandIn::start();
    let mut client = token_client(&backend);
    let mut invalid = record(1);
    invalid.alert.subject.status = String::new();

    let failure = client
        .send_alerts(&outgoing(&[record(0), invalid]))
        .await
        .unwrap_err();

    assert_eq!(failure.kind, BackendFailureKind::Discard { status: 400 });
    assert!(
        failure
            .message
            .contains("item 1: subject.status must not be empty"),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("alerts 0..=1"),
        "{}",
        failure.message
    );
    assert!(backend.alerts().is_empty());
}

#[tokio::test]
async fn an_unavailable_backend_is_retried_with_growing_backoff_then_accepts() {
    let backend = DeviceMonitorStandIn::start();
    let mut client = token_client(&backend);
    backend.set_down(true);

    let mut delays = Vec::new();
    for _ in 0..4 {
        let (after, message) = retry_after(client.send_alerts(&outgoing(&[record(1)])).await);
        assert!(message.contains("503 Service Unavailable"), "{message}");
        assert!(message.contains("backend down"), "{message}");
        delays.push(after);
    }
    assert!(
        delays[0] >= Duration::from_secs(1) && delays[0] <= Duration::from_millis(1_250),
        "{delays:?}"
    );
    assert!(
        delays.windows(2).all(|pair| pair[0] < pair[1]),
        "not growing: {delays:?}"
    );
    assert!(delays[3] >= Duration::from_secs(8), "{delays:?}");

    backend.set_down(false);
    client
        .send_alerts(&outgoing(&[record(1)]))
        .await
        .expect("accepted once up");
    assert_eq!(backend.wait_for_alerts(1, WAIT).await.len(), 1);

    // A success resets the backoff.
    backend.fail_next(1, 502);
    let (after, message) = retry_after(client.send_alerts(&outgoing(&[record(2)])).await);
    assert!(after <= Duration::from_millis(1_250), "{after:?}");
    assert!(message.contains("502 Bad Gateway"), "{message}");
}

#[tokio::test]
async fn refused_connections_are_retried_with_growing_backoff_then_accepted() {
    let backend = DeviceMonitorStandIn::start();
    let mut client = token_client(&backend);
    backend.set_refusing(true);

    let (first, message) = retry_after(client.send_alerts(&outgoing(&[record(1)])).await);
    assert!(message.contains(&backend.url()), "{message}");
    let (second, _) = retry_after(client.send_alerts(&outgoing(&[record(1)])).await);
    assert!(first < second, "{first:?} then {second:?}");
    assert!(backend.refused_connections() >= 2);

    backend.set_refusing(false);
    client
        .send_alerts(&outgoing(&[record(1)]))
        .await
        .expect("accepted once it listens");
    assert_eq!(backend.wait_for_alerts(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn a_closed_port_is_retried_and_says_the_connection_was_refused() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut client = BackendClient::new(
        http(),
        Auth::Token {
            server_url: format!("http://127.0.0.1:{port}/"),
            token: "secret-token-value".into(),
        },
    );

    let (first, message) = retry_after(client.send_alerts(&outgoing(&[record(1)])).await);
    assert!(message.contains("cannot connect"), "{message}");
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    assert!(
        message.contains(&format!("http://127.0.0.1:{port}{ALERT_PATH}")),
        "{message}"
    );
    assert!(!message.contains("secret-token-value"), "{message}");
    let (second, _) = retry_after(client.send_alerts(&outgoing(&[record(1)])).await);
    assert!(first < second);
}

#[tokio::test]
async fn rate_limiting_is_retried_no_sooner_than_retry_after() {
    let backend = DeviceMonitorStandIn::start();
    let mut client = token_client(&backend);
    backend.rate_limit_next(1, 120);

    let (after, message) = retry_after(client.send_alerts(&outgoing(&[record(1)])).await);
    assert!(after >= Duration::from_secs(120), "{after:?}");
    assert!(message.contains("rate limited"), "{message}");
    assert!(message.contains("Retry-After 120s"), "{message}");

    client
        .send_alerts(&outgoing(&[record(1)]))
        .await
        .expect("accepted");
    assert_eq!(backend.wait_for_alerts(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn a_refused_fixed_token_is_retried_later_with_a_clear_message() {
    let backend = DeviceMonitorStandIn::start();
    backend.set_accepted_tokens(&["another-token"]);
    let mut client = token_client(&backend);

    let (after, message) = retry_after(client.send_alerts(&outgoing(&[record(1)])).await);
    assert!(after >= Duration::from_secs(1));
    assert!(
        message.contains("the backend refused the configured token (401 Unauthorized"),
        "{message}"
    );
    assert!(message.contains("check the token"), "{message}");
    assert!(
        !message.contains(DEFAULT_TOKEN),
        "the token leaked: {message}"
    );
    assert_eq!(
        backend.requests().len(),
        1,
        "a fixed token is not sent twice"
    );

    backend.fail_next(1, 403);
    let (_, message) = retry_after(client.push_config(&[]).await);
    assert!(message.contains("403 Forbidden"), "{message}");
}

#[tokio::test]
async fn the_config_push_is_the_exact_mender_json() {
    let backend = DeviceMonitorStandIn::start();
    let mut client = token_client(&backend);
    let checks = vec![
        ConfigCheck::log(
            "auth",
            CheckStatus::Enabled,
            LogCheckConfig {
                pattern: "session opened for user [a-z]*".into(),
                path: "/var/log/auth.log".into(),
                expire_seconds: Some(300),
            },
        ),
        ConfigCheck::log(
            "crasher_die",
            CheckStatus::Disabled,
            LogCheckConfig {
                pattern: ".*container die.*name=crasher.*".into(),
                path: "@docker events".into(),
                expire_seconds: None,
            },
        ),
        ConfigCheck::service(
            "crasher",
            CheckStatus::Enabled,
            ServiceCheckConfig {
                name: "crasher".into(),
                kind: ServiceType::Systemd,
            },
        ),
        ConfigCheck::dbus(
            "usb",
            CheckStatus::Enabled,
            DbusCheckConfig {
                name: "org.freedesktop.UDisks2".into(),
                pattern: "InterfacesAdded".into(),
                watch: "type='signal',interface='org.freedesktop.DBus.ObjectManager'".into(),
                alert_expiration: Some(60),
            },
        ),
    ];

    client.push_config(&checks).await.expect("accepted");

    assert_eq!(backend.wait_for_configs(1, WAIT).await.len(), 1);
    let request = &backend.requests()[0];
    assert_eq!(request.path, "/api/devices/v1/devicemonitor/config");
    assert_eq!(
        request.body,
        concat!(
            r#"[{"name":"auth","status":"enabled","type":"log","log":{"pattern":"session opened for user [a-z]*","path":"/var/log/auth.log","expire_seconds":300}},"#,
            r#"{"name":"crasher_die","status":"disabled","type":"log","log":{"pattern":".*container die.*name=crasher.*","path":"@docker events"}},"#,
            r#"{"name":"crasher","status":"enabled","type":"service","service":{"name":"crasher","type":"systemd"}},"#,
            r#"{"name":"usb","status":"enabled","type":"dbus","dbus":{"name":"org.freedesktop.UDisks2","pattern":"InterfacesAdded","watch":"type='signal',interface='org.freedesktop.DBus.ObjectManager'","alert_expiration":60}}]"#
        )
    );
}

#[tokio::test]
async fn mender_mode_takes_token_and_server_url_from_mender_auth() {
    let backend = DeviceMonitorStandIn::start();
    backend.set_accepted_tokens(&["mender-jwt"]);
    let Some(auth) = MenderAuthStandIn::start("mender-jwt", &backend.url()) else {
        return;
    };
    let mut client = mender_client(&auth);

    client
        .send_alerts(&outgoing(&[record(1)]))
        .await
        .expect("accepted");
    client.push_config(&[]).await.expect("accepted");

    assert_eq!(backend.wait_for_alerts(1, WAIT).await.len(), 1);
    let requests = backend.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests
        .iter()
        .all(|request| request.bearer.as_deref() == Some("mender-jwt")));
    assert_eq!(auth.fetch_count(), 0, "a token that works is not refreshed");
}

/// A check the agent samples (disk usage) has no type in Mender's config push. A Mender
/// server (Mender mode) is pushed the others only. A token-mode backend is offered it
/// (this project's server keeps it); when it refuses, as a Mender-like server does (the
/// stand-in, like Mender, allows log, service and dbus only), the list goes again without
/// it, and so does every later push.
#[tokio::test]
async fn a_sampled_check_is_pushed_where_the_backend_takes_it_and_left_out_for_mender() {
    let checks = vec![
        ConfigCheck::service(
            "crasher.sh",
            CheckStatus::Enabled,
            ServiceCheckConfig {
                name: "crasher".into(),
                kind: ServiceType::Systemd,
            },
        ),
        ConfigCheck::sampled(
            "root_space.sh",
            CheckStatus::Enabled,
            "diskusage",
            SampledCheckConfig {
                subject: "/".into(),
                source: "/ used".into(),
                sampling: "every 30s, threshold 90%, clear 85%".into(),
                interval_seconds: 30,
                threshold: Some(90.0),
                clear_threshold: Some(85.0),
                unit: Some("%".into()),
            },
        ),
    ];
    let only_service = r#"[{"name":"crasher.sh","status":"enabled","type":"service","service":{"name":"crasher","type":"systemd"}}]"#;

    let backend = DeviceMonitorStandIn::start();
    let mut client = token_client(&backend);
    client.push_config(&checks).await.expect("accepted");
    client.push_config(&checks).await.expect("accepted");
    let bodies: Vec<String> = backend
        .requests()
        .into_iter()
        .map(|request| request.body)
        .collect();
    assert_eq!(bodies.len(), 3, "{bodies:#?}");
    assert!(bodies[0].contains(r#""type":"diskusage","sampled":{"subject":"/""#));
    assert_eq!(bodies[1], only_service);
    assert_eq!(bodies[2], only_service, "not offered again");

    let mender = DeviceMonitorStandIn::start();
    mender.set_accepted_tokens(&["mender-jwt"]);
    let Some(auth) = MenderAuthStandIn::start("mender-jwt", &mender.url()) else {
        return;
    };
    mender_client(&auth)
        .push_config(&checks)
        .await
        .expect("accepted");
    let bodies: Vec<String> = mender
        .requests()
        .into_iter()
        .map(|request| request.body)
        .collect();
    assert_eq!(bodies, [only_service]);
}

#[tokio::test]
async fn mender_mode_refreshes_a_refused_token_and_uses_the_new_server_url() {
    // The forwarder's URL changes on every fetch: the old one keeps refusing the old token,
    // the new one takes the new token.
    let old_forwarder = DeviceMonitorStandIn::start();
    old_forwarder.set_accepted_tokens(&["fresh-jwt"]);
    let new_forwarder = DeviceMonitorStandIn::start();
    new_forwarder.set_accepted_tokens(&["fresh-jwt"]);
    let Some(auth) = MenderAuthStandIn::start("stale-jwt", &old_forwarder.url()) else {
        return;
    };
    auth.plan_fetch("fresh-jwt", &new_forwarder.url());
    let mut client = mender_client(&auth);

    client
        .send_alerts(&outgoing(&[record(1), record(2)]))
        .await
        .expect("accepted after a refresh");

    assert_eq!(auth.fetch_count(), 1);
    let old_requests = old_forwarder.requests();
    assert_eq!(old_requests.len(), 1, "{old_requests:#?}");
    assert_eq!(old_requests[0].bearer.as_deref(), Some("stale-jwt"));
    assert_eq!(old_requests[0].status, 401);
    assert_eq!(new_forwarder.wait_for_alerts(2, WAIT).await.len(), 2);
    let new_requests = new_forwarder.requests();
    assert_eq!(new_requests.len(), 1);
    assert_eq!(new_requests[0].bearer.as_deref(), Some("fresh-jwt"));

    // Later requests ask mender-auth again and so go to the newest URL.
    client
        .send_alerts(&outgoing(&[record(3)]))
        .await
        .expect("accepted");
    assert_eq!(new_forwarder.wait_for_alerts(3, WAIT).await.len(), 3);
    assert_eq!(old_forwarder.requests().len(), 1);
    assert_eq!(auth.fetch_count(), 1);
}

#[tokio::test]
async fn mender_mode_fetches_a_token_when_mender_auth_has_none_yet() {
    let backend = DeviceMonitorStandIn::start();
    backend.set_accepted_tokens(&["first-jwt"]);
    let Some(auth) = MenderAuthStandIn::start("", "") else {
        return;
    };
    auth.plan_fetch("first-jwt", &backend.url());
    let mut client = mender_client(&auth);

    client
        .send_alerts(&outgoing(&[record(1)]))
        .await
        .expect("accepted");

    assert_eq!(auth.fetch_count(), 1);
    assert_eq!(backend.wait_for_alerts(1, WAIT).await.len(), 1);
    assert_eq!(backend.requests()[0].bearer.as_deref(), Some("first-jwt"));
}

#[tokio::test]
async fn mender_mode_retries_later_when_even_the_new_token_is_refused() {
    let backend = DeviceMonitorStandIn::start();
    backend.set_accepted_tokens(&["never-issued"]);
    let Some(auth) = MenderAuthStandIn::start("stale-jwt", &backend.url()) else {
        return;
    };
    auth.plan_fetch("fresh-jwt", &backend.url());
    let mut client = mender_client(&auth);

    let (_, message) = retry_after(client.send_alerts(&outgoing(&[record(1)])).await);

    assert!(
        message.contains("refused the device token (401 Unauthorized"),
        "{message}"
    );
    assert!(
        message.contains("even after mender-auth fetched a new one"),
        "{message}"
    );
    assert!(
        !message.contains("fresh-jwt") && !message.contains("stale-jwt"),
        "{message}"
    );
    let tokens: Vec<_> = backend
        .requests()
        .into_iter()
        .map(|request| request.bearer)
        .collect();
    assert_eq!(tokens, [Some("stale-jwt".into()), Some("fresh-jwt".into())]);
    assert_eq!(auth.fetch_count(), 1);
}

#[tokio::test]
async fn mender_mode_retries_later_when_mender_auth_cannot_fetch_a_token() {
    let Some(auth) = MenderAuthStandIn::start("", "") else {
        return;
    };
    auth.plan_fetch_failure();
    let mut client = mender_client(&auth);

    let (_, message) = retry_after(client.send_alerts(&outgoing(&[record(1)])).await);

    assert!(
        message.contains("mender-auth could not fetch a device token"),
        "{message}"
    );
    assert_eq!(auth.fetch_count(), 1);
}

#[tokio::test]
async fn mender_mode_without_a_bus_is_retried() {
    let mut client = BackendClient::new(
        http(),
        Auth::Mender {
            bus_address: Some("unix:path=/nonexistent/monitor-test-bus".into()),
        },
    );

    let (_, message) = retry_after(client.send_alerts(&outgoing(&[record(1)])).await);

    assert!(
        message.contains(
            "cannot connect to the bus at unix:path=/nonexistent/monitor-test-bus for mender-auth"
        ),
        "{message}"
    );
}

#[test]
fn an_extra_ca_file_loads_into_the_http_client() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("ca.pem");
    std::fs::write(&path, TEST_CA_PEM).unwrap();

    load_extra_ca(&path).expect("the CA loads");
    http_client(Some(&path)).expect("a client trusting the CA");
}

#[test]
fn a_bad_extra_ca_is_a_clear_error_naming_the_file() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let directory = tempfile::tempdir().unwrap();

    let missing = directory.path().join("missing-ca.pem");
    let error = http_client(Some(&missing)).unwrap_err();
    assert!(matches!(error, HttpClientError::ReadCa { .. }));
    assert_eq!(
        error.to_string(),
        format!(
            "cannot read the extra CA certificate {}: No such file or directory (os error 2)",
            missing.display()
        )
    );

    let not_pem = directory.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let error = load_extra_ca(&not_pem).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the extra CA certificate {} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----): give a PEM file",
            not_pem.display()
        )
    );

    let broken = directory.path().join("broken-ca.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let error = load_extra_ca(&broken).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!(
            "the extra CA certificate {} is not valid PEM",
            broken.display()
        )),
        "{error}"
    );
}

#[tokio::test]
async fn as_a_destination_failures_become_verdicts_and_the_config_is_pushed() {
    use monitor_backend::BackendDestination;
    use monitor_destination::{Destination, Verdict};

    let backend = DeviceMonitorStandIn::start();
    let mut destination = BackendDestination::new(token_client(&backend), Duration::from_secs(90));
    assert_eq!(
        destination.config_push_interval(),
        Some(Duration::from_secs(90))
    );
    let records = [record(1), record(2)];

    backend.set_down(true);
    let verdict = destination.deliver("device", &outgoing(&records)).await;
    assert!(
        matches!(&verdict, Verdict::Retry { delivered: 0, message, .. } if message.contains("503")),
        "{verdict:?}"
    );
    backend.set_down(false);

    let mut invalid = record(3);
    invalid.alert.subject.status = String::new();
    let verdict = destination
        .deliver("device", &outgoing(std::slice::from_ref(&invalid)))
        .await;
    assert!(
        matches!(&verdict, Verdict::Rejected { delivered: 0, message } if message.contains("alerts 3..=3")),
        "{verdict:?}"
    );

    assert_eq!(
        destination.deliver("device", &outgoing(&records)).await,
        Verdict::Delivered
    );
    assert_eq!(backend.wait_for_alerts(2, WAIT).await.len(), 2);
    assert_eq!(destination.push_config(&[]).await, Verdict::Delivered);
    assert_eq!(backend.configs().len(), 1);
}
