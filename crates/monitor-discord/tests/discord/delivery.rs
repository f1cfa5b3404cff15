//! Delivery against the stand-in, in real time (paused time would fire the client's request
//! timeout while the real socket is busy).

use std::time::{Duration, Instant};

use monitor_discord::{DeliveryFailure, DiscordClient, FailureKind, WebhookConfig, WebhookUrl};
use monitor_wire::HistoryRecord;
use serde_json::{json, Value};

use crate::discord_standin::{Behaviour, DiscordStandIn, Scripted};
use crate::*;

pub(crate) fn client_for(
    standin: &DiscordStandIn,
    username: Option<&str>,
    avatar_url: Option<&str>,
) -> DiscordClient {
    let url = WebhookUrl::parse(&standin.url(WEBHOOK_ID, TOKEN)).expect("the stand-in's URL");
    DiscordClient::new(
        WebhookConfig {
            url,
            username: username.map(str::to_owned),
            avatar_url: avatar_url.map(str::to_owned),
        },
        http_client(),
    )
}

fn titles(embeds: &[Value]) -> Vec<String> {
    embeds
        .iter()
        .map(|embed| embed["title"].as_str().unwrap().to_owned())
        .collect()
}

fn names(records: &[HistoryRecord]) -> Vec<String> {
    records
        .iter()
        .map(|record| record.alert.name.clone())
        .collect()
}

fn assert_no_token(failure: &DeliveryFailure) {
    assert!(
        !failure.message.contains(TOKEN) && !format!("{failure:?} {failure}").contains(TOKEN),
        "the token leaked: {failure:?}"
    );
}

#[tokio::test]
async fn a_burst_of_200_alerts_arrives_once_in_order_without_a_single_429() {
    let standin = DiscordStandIn::start(Behaviour::default());
    let mut client = client_for(&standin, Some("systemd"), None);
    let records: Vec<HistoryRecord> = (0..200).map(numbered_log_alert).collect();

    let started = Instant::now();
    client
        .deliver_alerts(DEVICE, &outgoing(&records))
        .await
        .expect("delivered");
    let elapsed = started.elapsed();

    let statuses = standin.statuses();
    assert!(statuses.iter().all(|&status| status == 200), "{statuses:?}");
    assert_eq!(standin.request_count(), 20, "10 embeds per message");
    assert_eq!(titles(&standin.embeds()), names(&records));

    // No 6 requests within any 2 s: the client waited whenever the bucket was empty.
    let requests = standin.requests();
    for window in requests.windows(6) {
        let span = window[5].at.duration_since(window[0].at);
        assert!(span >= Duration::from_secs(2), "6 requests in {span:?}");
    }
    // 20 requests at 5 per 2 s: three full waits, and not much more.
    assert!(elapsed >= Duration::from_secs(6), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");

    for request in &requests {
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(
            request.header("user-agent"),
            Some(concat!(
                "monitor/",
                env!("CARGO_PKG_VERSION"),
                " (+https://example.invalid/monitor)"
            ))
        );
        assert_eq!(request.header("authorization"), None);
        assert_eq!(request.query, "wait=true");
    }
    for message in standin.messages() {
        assert_eq!(message["allowed_mentions"], json!({"parse": []}));
        assert_eq!(message["username"], "systemd");
    }
}

#[tokio::test]
async fn the_client_waits_for_an_empty_bucket_between_deliveries() {
    let standin = DiscordStandIn::start(Behaviour {
        limit: 2,
        window: Duration::from_millis(800),
        gone: false,
    });
    let mut client = client_for(&standin, None, None);
    for index in 0..5 {
        client
            .deliver_alerts(DEVICE, &outgoing(&[numbered_log_alert(index)]))
            .await
            .expect("delivered");
    }
    assert_eq!(standin.statuses(), [200; 5]);
    let requests = standin.requests();
    for window in requests.windows(3) {
        assert!(window[2].at.duration_since(window[0].at) >= Duration::from_millis(800));
    }
}

#[tokio::test]
async fn a_429_is_retried_after_the_larger_of_body_and_header() {
    let standin = DiscordStandIn::start(Behaviour::default());
    let mut client = client_for(&standin, None, None);
    let records = [service_justfail_critical()];
    standin.script([
        Scripted::RateLimited {
            retry_after: 1.5,
            retry_after_header: 2,
            global: false,
        },
        Scripted::RateLimited {
            retry_after: 41.25,
            retry_after_header: 1,
            global: false,
        },
        Scripted::RateLimited {
            retry_after: 0.5,
            retry_after_header: 1,
            global: true,
        },
    ]);
    let expected = [
        (Duration::from_secs(2), false),
        (Duration::from_millis(41_250), false),
        (Duration::from_secs(1), true),
    ];
    for (after, global) in expected {
        let failure = client
            .deliver_alerts(DEVICE, &outgoing(&records))
            .await
            .unwrap_err();
        assert_eq!(failure.kind, FailureKind::Retry { after, global });
        assert_eq!(failure.delivered, 0);
        assert!(failure.kind.is_retryable());
        assert_no_token(&failure);
    }
    client
        .deliver_alerts(DEVICE, &outgoing(&records))
        .await
        .expect("delivered once the limit passed");
    assert_eq!(standin.embeds().len(), 1);
}

#[tokio::test]
async fn a_cloudflare_ban_cools_down_for_a_minute_growing_and_pauses_every_webhook() {
    let standin = DiscordStandIn::start(Behaviour::default());
    let mut client = client_for(&standin, None, None);
    let records = [service_justfail_critical()];
    standin.script([
        Scripted::HtmlBan,
        Scripted::HtmlBan,
        Scripted::ServerError(503),
        Scripted::HtmlBan,
    ]);
    let first = client
        .deliver_alerts(DEVICE, &outgoing(&records))
        .await
        .unwrap_err();
    assert_eq!(
        first.kind,
        FailureKind::Retry {
            after: Duration::from_secs(60),
            global: true
        }
    );
    assert!(first.message.contains("banned"), "{}", first.message);
    assert_no_token(&first);
    let second = client
        .deliver_alerts(DEVICE, &outgoing(&records))
        .await
        .unwrap_err();
    assert_eq!(
        second.kind,
        FailureKind::Retry {
            after: Duration::from_secs(120),
            global: true
        }
    );
    // A 5xx in between is not a success: the ban keeps growing.
    let server_error = client
        .deliver_alerts(DEVICE, &outgoing(&records))
        .await
        .unwrap_err();
    assert!(matches!(
        server_error.kind,
        FailureKind::Retry { global: false, .. }
    ));
    let third = client
        .deliver_alerts(DEVICE, &outgoing(&records))
        .await
        .unwrap_err();
    assert_eq!(
        third.kind,
        FailureKind::Retry {
            after: Duration::from_secs(240),
            global: true
        }
    );
    client
        .deliver_alerts(DEVICE, &outgoing(&records))
        .await
        .expect("delivered");

    // A 403 from Discord itself (JSON, rate-limit headers) says the webhook may not post:
    // not a ban, and no record of the batch is at fault.
    standin.script([Scripted::Json {
        status: 403,
        body: json!({"message": "Missing Access", "code": 50001}),
    }]);
    let rejected = client
        .deliver_alerts(DEVICE, &outgoing(&records))
        .await
        .unwrap_err();
    assert_eq!(rejected.kind, FailureKind::Unauthorized { status: 403 });
    assert!(!rejected.kind.is_retryable());
    assert_no_token(&rejected);
}

#[tokio::test]
async fn a_deleted_webhook_is_gone() {
    let standin = DiscordStandIn::start(Behaviour {
        gone: true,
        ..Behaviour::default()
    });
    let mut client = client_for(&standin, None, None);
    let failure = client
        .deliver_alerts(DEVICE, &outgoing(&[service_justfail_critical()]))
        .await
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::WebhookGone);
    assert_eq!(failure.delivered, 0);
    assert!(failure.message.contains("10015"), "{}", failure.message);
    assert!(failure
        .message
        .contains("/api/webhooks/112233445566778899/***"));
    assert_no_token(&failure);
}

#[tokio::test]
async fn an_invalid_form_body_is_rejected_and_never_retried() {
    let standin = DiscordStandIn::start(Behaviour::default());
    // Discord refuses an avatar URL that is not a URL.
    let mut client = client_for(&standin, None, Some("systemd.png"));
    let failure = client
        .deliver_alerts(DEVICE, &outgoing(&[service_justfail_critical()]))
        .await
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Rejected { status: 400 });
    assert!(failure.message.contains("50035"), "{}", failure.message);
    assert!(
        failure.message.contains("avatar_url"),
        "{}",
        failure.message
    );
    assert_no_token(&failure);
    assert_eq!(standin.request_count(), 1);

    for (status, kind) in [
        (401, FailureKind::Unauthorized { status: 401 }),
        (413, FailureKind::Rejected { status: 413 }),
    ] {
        standin.script([Scripted::Json {
            status,
            body: json!({"message": "no", "code": 0}),
        }]);
        let mut client = client_for(&standin, None, None);
        let failure = client
            .deliver_alerts(DEVICE, &outgoing(&[service_justfail_critical()]))
            .await
            .unwrap_err();
        assert_eq!(failure.kind, kind);
        assert!(!failure.kind.is_retryable());
    }
}

#[tokio::test]
async fn a_503_backs_off_doubling_and_succeeds_once_it_clears() {
    let standin = DiscordStandIn::start(Behaviour::default());
    let mut client = client_for(&standin, None, None);
    let records = [service_justfail_critical()];
    standin.script([Scripted::ServerError(503), Scripted::ServerError(502)]);

    let mut waits = Vec::new();
    for base in [1, 2] {
        let failure = client
            .deliver_alerts(DEVICE, &outgoing(&records))
            .await
            .unwrap_err();
        let FailureKind::Retry { after, global } = failure.kind else {
            panic!("{failure:?}");
        };
        assert!(!global);
        let base = Duration::from_secs(base);
        assert!(after >= base && after < base.mul_f64(1.1), "{after:?}");
        assert_no_token(&failure);
        waits.push(after);
    }
    client
        .deliver_alerts(DEVICE, &outgoing(&records))
        .await
        .expect("delivered once it cleared");
    assert_eq!(titles(&standin.embeds()), names(&records));
    assert_eq!(standin.statuses(), [503, 502, 200]);

    // The count starts over after a success.
    standin.script([Scripted::ServerError(500)]);
    let failure = client
        .deliver_alerts(DEVICE, &outgoing(&records))
        .await
        .unwrap_err();
    let FailureKind::Retry { after, .. } = failure.kind else {
        panic!("{failure:?}");
    };
    assert!(after < Duration::from_millis(1100), "{after:?}");
}

#[tokio::test]
async fn a_failure_mid_burst_says_how_many_records_were_delivered() {
    let standin = DiscordStandIn::start(Behaviour::default());
    let mut client = client_for(&standin, None, None);
    let records: Vec<HistoryRecord> = (0..25).map(numbered_log_alert).collect();
    standin.script([Scripted::Accept, Scripted::ServerError(503)]);

    let failure = client
        .deliver_alerts(DEVICE, &outgoing(&records))
        .await
        .unwrap_err();
    assert_eq!(failure.delivered, 10);
    assert!(failure.kind.is_retryable());
    client
        .deliver_alerts(DEVICE, &outgoing(&records[failure.delivered..]))
        .await
        .expect("the rest delivered");
    assert_eq!(titles(&standin.embeds()), names(&records));
}

#[tokio::test]
async fn an_unreachable_webhook_is_retried_without_showing_the_token() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = WebhookUrl::parse(&format!(
        "http://127.0.0.1:{port}/api/webhooks/{WEBHOOK_ID}/{TOKEN}"
    ))
    .unwrap();
    let mut client = DiscordClient::new(
        WebhookConfig {
            url,
            username: None,
            avatar_url: None,
        },
        http_client(),
    );
    let failure = client
        .deliver_alerts(DEVICE, &outgoing(&[service_justfail_critical()]))
        .await
        .unwrap_err();
    assert!(
        matches!(failure.kind, FailureKind::Retry { global: false, after } if after >= Duration::from_secs(1)),
        "{failure:?}"
    );
    assert!(
        failure.message.contains("could not be reached"),
        "{}",
        failure.message
    );
    assert_no_token(&failure);
}

#[tokio::test]
async fn a_thread_and_a_refused_username_are_handled() {
    let standin = DiscordStandIn::start(Behaviour::default());
    let url = WebhookUrl::parse(&format!(
        "{}?thread_id=4242",
        standin.url(WEBHOOK_ID, TOKEN)
    ))
    .unwrap();
    let mut client = DiscordClient::new(
        WebhookConfig {
            url,
            username: Some("Discord Alerts".into()),
            avatar_url: Some("https://example.invalid/systemd.png".into()),
        },
        http_client(),
    );
    client
        .deliver_alerts(
            DEVICE,
            &outgoing(&[service_justfail_critical(), service_justfail_ok()]),
        )
        .await
        .expect("delivered");
    let requests = standin.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].query, "wait=true&thread_id=4242");
    let message = &standin.messages()[0];
    assert_eq!(message["username"], "monitor");
    assert_eq!(message["avatar_url"], "https://example.invalid/systemd.png");
    assert_eq!(message["embeds"].as_array().unwrap().len(), 2);
}
