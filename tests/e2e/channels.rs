//! Generic webhooks and ntfy end to end: a real monitord with a log check delivering to
//! stand-ins that follow each service's documented API, limits and errors.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{append, eventually, Sandbox};
use crate::ntfy_standin::{Behaviour, NtfyStandIn, Scripted as NtfyScripted};
use crate::webhook_standin::{signature_is_valid, Scripted, WebhookStandIn};

const SECRET: &str = "shared-hmac-secret-do-not-log";
const TOKEN: &str = "tk_ntfytokendonotlog";

/// A log check `name` on `log`: `pattern`, expiring after `expiration`.
fn log_check(sandbox: &Sandbox, name: &str, pattern: &str, log: &Path, expiration: &str) {
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        name,
        pattern,
        log.to_str().unwrap(),
        expiration,
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", name]);
}

/// The sandbox's monitor.yaml.
fn settings(sandbox: &Sandbox, text: &str) {
    fs::write(sandbox.config_dir().join("monitor.yaml"), text).unwrap();
}

/// The webhook's settings: signed with the secret from `TEST_WEBHOOK_SECRET`.
fn with_webhook(sandbox: &mut Sandbox, webhook: &WebhookStandIn) {
    sandbox
        .env
        .push(("TEST_WEBHOOK_SECRET".into(), SECRET.into()));
    settings(
        sandbox,
        &format!(
            "delivery:\n  webhook:\n    - url: {}\n      secret_env: TEST_WEBHOOK_SECRET\n      headers: {{X-Team: ops}}\n",
            webhook.url("/hooks/monitor")
        ),
    );
}

/// The topic's settings: a token from a file, a click link, a user tag.
fn with_ntfy(sandbox: &Sandbox, ntfy: &NtfyStandIn) {
    fs::write(sandbox.path("ntfy-token"), format!("{TOKEN}\n")).unwrap();
    let mut permissions = fs::metadata(sandbox.path("ntfy-token"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
    fs::set_permissions(sandbox.path("ntfy-token"), permissions).unwrap();
    settings(
        sandbox,
        &format!(
            "delivery:\n  ntfy:\n    - url: {}\n      token_file: {}\n      tags: [pi]\n      click_url: https://monitor.example/devices/{{{{device}}}}\n",
            ntfy.topic_url("pi-alerts"),
            sandbox.path("ntfy-token").display()
        ),
    );
}

#[test]
fn a_signed_webhook_gets_the_critical_then_the_ok() {
    let webhook = WebhookStandIn::start(Some(SECRET));
    let mut sandbox = Sandbox::new();
    with_webhook(&mut sandbox, &webhook);
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "ERROR", &log, "2");
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR the disk is full\n");
    alerts.expect("CRITICAL", "log app");
    alerts.expect("OK", "log app");

    eventually("the webhook got the CRITICAL and the OK", || {
        webhook.accepted().len() >= 2
    });
    let requests = webhook.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for request in &requests {
        assert_eq!(request.path, "/hooks/monitor");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("x-team"), Some("ops"));
        // Verified here as a receiver would, not only by the stand-in.
        let timestamp = request.header("x-monitor-timestamp").unwrap();
        let age = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .abs_diff(timestamp.parse().unwrap());
        assert!(age < 300, "a fresh timestamp: {timestamp}");
        assert!(signature_is_valid(
            SECRET.as_bytes(),
            timestamp,
            &request.body,
            request.header("x-monitor-signature").unwrap()
        ));
        assert!(!signature_is_valid(
            b"another secret",
            timestamp,
            &request.body,
            request.header("x-monitor-signature").unwrap()
        ));
    }
    let bodies: Vec<Value> = requests.iter().map(|request| request.json()).collect();
    assert_eq!(bodies[0]["check"], "log app");
    assert_eq!(bodies[0]["alert"]["level"], "CRITICAL");
    assert!(
        bodies[0]["title"]
            .as_str()
            .unwrap()
            .starts_with("CRITICAL: log app on "),
        "{bodies:#?}"
    );
    assert_eq!(
        bodies[0]["alert"]["subject"]["details"]["line_matching"]["data"],
        "ERROR the disk is full"
    );
    assert!(bodies[0]["text"]
        .as_str()
        .unwrap()
        .contains("ERROR the disk is full"));
    assert_eq!(bodies[1]["alert"]["level"], "OK");
    assert!(bodies[1]["seq"].as_u64() > bodies[0]["seq"].as_u64());
    assert!(!agent.log().contains(SECRET), "{}", agent.log());
}

#[test]
fn a_template_shapes_the_webhook_body() {
    let webhook = WebhookStandIn::start(None);
    let sandbox = Sandbox::new();
    settings(
        &sandbox,
        &format!(
            "delivery:\n  webhook:\n    - url: {}\n      template: '{{\"msg\": \"{{{{level}}}} {{{{check}}}}: {{{{status}}}}\", \"who\": \"{{{{device}}}}\"}}'\n      min_level: CRITICAL\n",
            webhook.url("/in")
        ),
    );
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "ERROR", &log, "2");
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR \"quoted\" and \\ slashed\n");
    alerts.expect("CRITICAL", "log app");
    alerts.expect("OK", "log app");
    // min_level CRITICAL: the OK is not sent; a second CRITICAL is the sentinel.
    append(&log, "ERROR again\n");
    alerts.expect("CRITICAL", "log app");
    eventually("the webhook got both CRITICALs", || {
        webhook.accepted().len() >= 2
    });
    let accepted = webhook.accepted();
    assert_eq!(accepted.len(), 2, "{accepted:#?}");
    assert_eq!(accepted[0]["msg"], "CRITICAL log app: LOGCONTAINS");
    assert!(accepted[0]["who"].is_string());
}

/// A 429 with `Retry-After` is waited out: the alert arrives after the wait, once, and
/// what came after it (a sentinel) arrives after it, once.
#[test]
fn a_webhook_429_is_waited_out_and_nothing_is_lost_or_repeated() {
    let webhook = WebhookStandIn::start(Some(SECRET));
    webhook.script([Scripted::RateLimited { retry_after: 2 }]);
    let mut sandbox = Sandbox::new();
    with_webhook(&mut sandbox, &webhook);
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "ERROR", &log, "never");
    log_check(&sandbox, "sentinel", "SENTINEL", &log, "never");
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR one\n");
    alerts.expect("CRITICAL", "log app");
    eventually("the webhook took the alert", || {
        webhook.accepted().len() == 1
    });
    append(&log, "SENTINEL\n");
    alerts.expect("CRITICAL", "log sentinel");
    eventually("the webhook took the sentinel", || {
        webhook.accepted().len() == 2
    });
    let requests = webhook.requests();
    assert_eq!(
        requests
            .iter()
            .map(|request| request.status)
            .collect::<Vec<_>>(),
        [429, 200, 200],
        "{requests:#?}"
    );
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_secs(2), "waited {waited:?}");
    let checks: Vec<Value> = webhook
        .accepted()
        .iter()
        .map(|body| body["check"].clone())
        .collect();
    assert_eq!(checks, ["log app", "log sentinel"]);
}

/// A receiver that answers 404 is gone: the agent says so, names no secret, and sends no
/// more.
#[test]
fn a_webhook_404_disables_it_with_a_message_that_names_no_secret() {
    let webhook = WebhookStandIn::start(Some(SECRET));
    webhook.set_status(Some(404));
    let mut sandbox = Sandbox::new();
    with_webhook(&mut sandbox, &webhook);
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "ERROR", &log, "never");
    log_check(&sandbox, "other", "OTHER", &log, "never");
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR one\n");
    alerts.expect("CRITICAL", "log app");
    eventually("the agent disabled the webhook", || {
        agent.log().contains("this destination is disabled")
    });
    let log_text = agent.log();
    assert!(
        log_text.contains("the webhook answered 404 Not Found"),
        "{log_text}"
    );
    assert!(!log_text.contains(SECRET), "{log_text}");
    assert!(!log_text.contains("/hooks/monitor"), "{log_text}");
    let status = sandbox.monitorctl(&["status"]);
    let shown = crate::harness::stdout(&status);
    assert!(!shown.contains(SECRET), "{shown}");
    append(&log, "OTHER\n");
    alerts.expect("CRITICAL", "log other");
    alerts.assert_quiet_for(Duration::from_millis(500));
    assert_eq!(webhook.requests().len(), 1, "{:#?}", webhook.requests());
}

#[test]
fn ntfy_gets_the_critical_high_with_a_siren_then_the_ok() {
    let ntfy = NtfyStandIn::start(Behaviour {
        token: Some(TOKEN.into()),
        ..Behaviour::default()
    });
    let sandbox = Sandbox::new();
    with_ntfy(&sandbox, &ntfy);
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "ERROR", &log, "2");
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    // Longer than ntfy's message limit: cut, not refused.
    append(&log, &format!("ERROR {}\n", "é".repeat(3000)));
    alerts.expect("CRITICAL", "log app");
    alerts.expect("OK", "log app");

    eventually("ntfy got the CRITICAL and the OK", || {
        ntfy.messages().len() >= 2
    });
    let requests = ntfy.requests();
    assert_eq!(
        requests
            .iter()
            .map(|request| request.status)
            .collect::<Vec<_>>(),
        [200, 200],
        "{requests:#?}"
    );
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let messages = ntfy.messages();
    let critical = &messages[0];
    assert_eq!(critical["topic"], "pi-alerts");
    assert!(
        critical["title"]
            .as_str()
            .unwrap()
            .starts_with("CRITICAL: log app on "),
        "{critical:#}"
    );
    assert_eq!(critical["priority"], 4);
    assert_eq!(
        critical["tags"],
        serde_json::json!(["rotating_light", "pi"])
    );
    assert!(critical["click"]
        .as_str()
        .unwrap()
        .starts_with("https://monitor.example/devices/"));
    let message = critical["message"].as_str().unwrap();
    assert!(
        message.len() <= 4096 && message.ends_with('…'),
        "{}",
        message.len()
    );
    let ok = &messages[1];
    assert_eq!(ok["priority"], 3);
    assert_eq!(ok["tags"], serde_json::json!(["white_check_mark", "pi"]));
    assert!(!agent.log().contains(TOKEN), "{}", agent.log());
}

/// ntfy's 429 carries no `Retry-After`: the backoff applies, and the alert and the sentinel
/// after it each arrive once, in order.
#[test]
fn an_ntfy_429_is_retried_and_nothing_is_lost_or_repeated() {
    let ntfy = NtfyStandIn::start(Behaviour::default());
    ntfy.script([NtfyScripted::RateLimited, NtfyScripted::RateLimited]);
    let sandbox = Sandbox::new();
    settings(
        &sandbox,
        &format!("delivery:\n  ntfy:\n    - url: {}\n", ntfy.topic_url("pi")),
    );
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "ERROR", &log, "never");
    log_check(&sandbox, "sentinel", "SENTINEL", &log, "never");
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let started = Instant::now();
    append(&log, "ERROR one\n");
    alerts.expect("CRITICAL", "log app");
    eventually("ntfy took the alert", || ntfy.messages().len() == 1);
    assert!(started.elapsed() >= Duration::from_millis(1500));
    append(&log, "SENTINEL\n");
    alerts.expect("CRITICAL", "log sentinel");
    eventually("ntfy took the sentinel", || ntfy.messages().len() == 2);
    let statuses: Vec<u16> = ntfy
        .requests()
        .iter()
        .map(|request| request.status)
        .collect();
    assert_eq!(statuses, [429, 429, 200, 200]);
    let titles: Vec<String> = ntfy
        .messages()
        .iter()
        .map(|message| message["title"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        titles[0].contains("log app") && titles[1].contains("log sentinel"),
        "{titles:?}"
    );
    assert!(
        agent.log().contains("limit reached: too many requests"),
        "{}",
        agent.log()
    );
}

/// A wrong token (401) is not retried: the topic is disabled, and the log names the
/// answer, not the token.
#[test]
fn a_wrong_ntfy_token_disables_the_topic_without_showing_it() {
    let ntfy = NtfyStandIn::start(Behaviour {
        token: Some("tk_the_right_one".into()),
        ..Behaviour::default()
    });
    let sandbox = Sandbox::new();
    with_ntfy(&sandbox, &ntfy);
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "ERROR", &log, "never");
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR one\n");
    alerts.expect("CRITICAL", "log app");
    eventually("the agent disabled the topic", || {
        agent.log().contains("this destination is disabled")
    });
    let log_text = agent.log();
    assert!(
        log_text.contains("ntfy answered 401 Unauthorized"),
        "{log_text}"
    );
    assert!(!log_text.contains(TOKEN), "{log_text}");
    assert_eq!(ntfy.requests().len(), 1);
}
