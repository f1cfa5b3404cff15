//! Slack and Telegram end to end: a real monitord with a log check delivers to stand-ins
//! that follow each service's documented API, limits and errors (see
//! `tests/support/slack_standin.rs` and `telegram_standin.rs`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::harness::{append, eventually, stdout, Agent, Sandbox};
use crate::slack_standin::{self, SlackStandIn};
use crate::telegram_standin::{self, TelegramStandIn};

const SLACK_SECRET: &str = "slackSecretDoNotLog123";
const BOT_TOKEN: &str = "123456789:AAEsecret-telegram-token_DoNotLog";
const BOT_SECRET: &str = "AAEsecret-telegram-token_DoNotLog";
const CHAT: &str = "-1001234567890";
const DEVICE: &str = "pi-kitchen.lan";
/// Every Markdown, MarkdownV2 and mrkdwn special a log line can hold.
const HOSTILE: &str = r"ERROR <!channel> <@U0123|boss> <https://evil.example|click> &amp; & *bold* _it_ __u__ ~s~ ||spoiler|| `code` ```pre``` [link](http://x.y/?a=1&b=2) >quote #tag +1 -1 =eq {x} a.b! \ \* 😀";

fn slack_sandbox(slack: &SlackStandIn) -> Sandbox {
    let mut sandbox = Sandbox::new();
    sandbox.env.push((
        "TEST_SLACK_WEBHOOK".into(),
        slack.url("T0001", "B0002", SLACK_SECRET),
    ));
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "device_id: {DEVICE}\ndelivery:\n  slack:\n    - webhook_url_env: TEST_SLACK_WEBHOOK\n"
        ),
    )
    .unwrap();
    sandbox
}

fn telegram_sandbox(telegram: &TelegramStandIn) -> Sandbox {
    let sandbox = Sandbox::new();
    let token_file = sandbox.path("bot-token");
    fs::write(&token_file, format!("{BOT_TOKEN}\n")).unwrap();
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "device_id: {DEVICE}\ndelivery:\n  telegram:\n    - bot_token_file: {}\n      chat_id: {CHAT}\n      api_url: {}\n",
            token_file.display(),
            telegram.api_url()
        ),
    )
    .unwrap();
    sandbox
}

/// Creates and enables log check `name` on `log` with `pattern` and `expiration`.
fn log_check(
    sandbox: &Sandbox,
    name: &str,
    pattern: &str,
    log: &std::path::Path,
    expiration: &str,
) {
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

/// Neither the agent's log nor what monitorctl shows holds `secret`; monitorctl names the
/// destination `name`.
fn assert_secret_kept(sandbox: &Sandbox, agent: &Agent, name: &str, secret: &str) {
    assert!(!agent.log().contains(secret), "{}", agent.log());
    let pending = stdout(&sandbox.monitorctl(&["alerts", "--pending"]));
    assert!(pending.contains(name), "{pending}");
    assert!(!pending.contains(secret), "{pending}");
}

#[test]
fn slack_gets_critical_then_ok_escaped_within_its_limits() {
    let slack = SlackStandIn::start();
    let sandbox = slack_sandbox(&slack);
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "^ERROR", &log, "1");
    let agent = sandbox.start_agent();
    append(&log, &format!("{HOSTILE}\n"));

    eventually("Slack got the CRITICAL and the OK", || {
        slack.attachments().len() >= 2
    });
    let attachments = slack.attachments();
    assert_eq!(attachments.len(), 2, "{attachments:#?}");
    let header = |index: usize| attachments[index]["blocks"][0]["text"]["text"].clone();
    assert_eq!(header(0), format!("CRITICAL: log app on {DEVICE}"));
    assert_eq!(attachments[0]["color"], "#D40E0D");
    assert_eq!(header(1), format!("OK: log app on {DEVICE}"));
    assert_eq!(attachments[1]["color"], "#2EB67D");
    let section = attachments[0]["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap();
    assert!(
        !section.contains('<') && !section.contains('>'),
        "{section}"
    );
    assert!(
        slack_standin::unescape(section).contains(&format!("1: {HOSTILE}")),
        "{section}"
    );
    let messages = slack.messages();
    assert_eq!(
        messages[0]["text"],
        format!("CRITICAL: log app on {DEVICE}")
    );
    assert!(
        slack.statuses().iter().all(|status| *status == 200),
        "{:?}",
        slack.statuses()
    );
    let requests = slack.requests();
    assert!(
        requests[1].at.duration_since(requests[0].at) >= slack_standin::MESSAGE_SPACING,
        "one message a second per webhook"
    );
    assert_secret_kept(&sandbox, &agent, "slack:T0001/B0002", SLACK_SECRET);
}

#[test]
fn slack_429_is_waited_out_and_nothing_is_lost_or_repeated() {
    let slack = SlackStandIn::start();
    slack.script([slack_standin::Scripted::RateLimited { seconds: 2 }]);
    let sandbox = slack_sandbox(&slack);
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "event", "^event$", &log, "never");
    log_check(&sandbox, "sentinel", "^sentinel$", &log, "never");
    let agent = sandbox.start_agent();
    append(&log, "event\n");
    eventually("Slack took the event after its 429", || {
        !slack.attachments().is_empty()
    });
    append(&log, "sentinel\n");
    eventually("Slack took the sentinel", || slack.attachments().len() >= 2);

    let headers: Vec<String> = slack
        .attachments()
        .iter()
        .map(|attachment| {
            attachment["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        headers,
        [
            format!("CRITICAL: log event on {DEVICE}"),
            format!("CRITICAL: log sentinel on {DEVICE}")
        ]
    );
    let requests = slack.requests();
    let statuses: Vec<u16> = requests.iter().map(|request| request.status).collect();
    assert_eq!(statuses, [429, 200, 200]);
    let waited = requests[1].at.duration_since(requests[0].at);
    assert!(
        waited >= Duration::from_secs(2),
        "Retry-After: 2 honoured, waited {waited:?}"
    );
    assert_secret_kept(&sandbox, &agent, "slack:T0001/B0002", SLACK_SECRET);
}

#[test]
fn a_gone_slack_webhook_disables_the_destination_naming_the_fix() {
    let slack = SlackStandIn::start();
    slack.set_gone(Some((404, "no_service")));
    let sandbox = slack_sandbox(&slack);
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "^ERROR", &log, "never");
    let agent = sandbox.start_agent();
    append(&log, "ERROR gone\n");
    eventually("the destination is disabled", || {
        stdout(&sandbox.monitorctl(&["alerts", "--pending"])).contains("disabled")
    });
    let pending = stdout(&sandbox.monitorctl(&["alerts", "--pending"]));
    assert!(
        pending.contains("no_service") && pending.contains("create a new incoming webhook"),
        "{pending}"
    );
    let kept = pending
        .lines()
        .find(|line| line.starts_with("slack:T0001/B0002"))
        .and_then(|line| line.split_whitespace().nth(1));
    assert_eq!(kept, Some("1"), "the alert is kept: {pending}");
    assert_eq!(slack.statuses(), [404], "no retry of a gone webhook");
    assert!(agent.log().contains("no_service"), "{}", agent.log());
    assert_secret_kept(&sandbox, &agent, "slack:T0001/B0002", SLACK_SECRET);
}

#[test]
fn telegram_gets_critical_then_ok_escaped_within_its_limits() {
    let telegram = TelegramStandIn::start(BOT_TOKEN, &[CHAT]);
    let sandbox = telegram_sandbox(&telegram);
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "^ERROR", &log, "1");
    log_check(&sandbox, "long", "^LONG", &log, "never");
    let agent = sandbox.start_agent();
    append(&log, &format!("{HOSTILE}\n"));

    eventually("Telegram got the CRITICAL and the OK", || {
        telegram.messages().len() >= 2
    });
    let messages = telegram.messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[0]
            .shown
            .starts_with(&format!("CRITICAL: log app on {DEVICE}\n")),
        "{}",
        messages[0].shown
    );
    assert!(
        messages[0].shown.contains(&format!("1: {HOSTILE}")),
        "{}",
        messages[0].shown
    );
    assert!(
        messages[1]
            .shown
            .starts_with(&format!("OK: log app on {DEVICE}\n")),
        "{}",
        messages[1].shown
    );
    for message in &messages {
        assert_eq!(message.chat_id, CHAT);
        assert_eq!(message.request["parse_mode"], "MarkdownV2");
        assert_eq!(message.request["link_preview_options"]["is_disabled"], true);
    }
    // A line over the limit, full of characters that double when escaped, is cut to fit.
    append(&log, &format!("LONG {}\n", ".-😀".repeat(3000)));
    eventually("Telegram got the long line", || {
        telegram.messages().len() >= 3
    });
    let long = &telegram.messages()[2];
    let length = long.shown.encode_utf16().count();
    assert!(length <= telegram_standin::MESSAGE_LIMIT, "{length}");
    assert!(
        telegram.statuses().iter().all(|status| *status == 200),
        "{:?}",
        telegram.statuses()
    );
    assert_secret_kept(&sandbox, &agent, &format!("telegram:{CHAT}"), BOT_SECRET);
}

#[test]
fn telegram_retry_after_is_waited_out_and_nothing_is_lost_or_repeated() {
    let telegram = TelegramStandIn::start(BOT_TOKEN, &[CHAT]);
    telegram.script([telegram_standin::Scripted::RateLimited { seconds: 2 }]);
    let sandbox = telegram_sandbox(&telegram);
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "event", "^event$", &log, "never");
    log_check(&sandbox, "sentinel", "^sentinel$", &log, "never");
    let agent = sandbox.start_agent();
    append(&log, "event\n");
    eventually("Telegram took the event after its 429", || {
        !telegram.messages().is_empty()
    });
    append(&log, "sentinel\n");
    eventually("Telegram took the sentinel", || {
        telegram.messages().len() >= 2
    });

    let titles: Vec<String> = telegram
        .messages()
        .iter()
        .map(|message| message.shown.lines().next().unwrap().to_owned())
        .collect();
    assert_eq!(
        titles,
        [
            format!("CRITICAL: log event on {DEVICE}"),
            format!("CRITICAL: log sentinel on {DEVICE}")
        ]
    );
    let requests = telegram.requests();
    let statuses: Vec<u16> = requests.iter().map(|request| request.status).collect();
    assert_eq!(statuses, [429, 200, 200]);
    let waited = requests[1].at.duration_since(requests[0].at);
    assert!(
        waited >= Duration::from_secs(2),
        "parameters.retry_after honoured, waited {waited:?}"
    );
    assert!(
        requests[2].at.duration_since(requests[1].at) >= Duration::from_secs(3),
        "twenty messages a minute to a group"
    );
    assert_secret_kept(&sandbox, &agent, &format!("telegram:{CHAT}"), BOT_SECRET);
}

#[test]
fn a_blocked_telegram_bot_disables_the_destination_naming_the_fix() {
    let telegram = TelegramStandIn::start(BOT_TOKEN, &[CHAT]);
    telegram.set_blocked(CHAT, true);
    let sandbox = telegram_sandbox(&telegram);
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "^ERROR", &log, "never");
    let agent = sandbox.start_agent();
    append(&log, "ERROR gone\n");
    eventually("the destination is disabled", || {
        stdout(&sandbox.monitorctl(&["alerts", "--pending"])).contains("disabled")
    });
    let pending = stdout(&sandbox.monitorctl(&["alerts", "--pending"]));
    assert!(
        pending.contains("bot was blocked by the user") && pending.contains("add it back"),
        "{pending}"
    );
    assert_eq!(telegram.statuses(), [403], "no retry of a blocked bot");
    assert!(agent.log().contains("blocked"), "{}", agent.log());
    assert_secret_kept(&sandbox, &agent, &format!("telegram:{CHAT}"), BOT_SECRET);
}

#[test]
fn a_wrong_telegram_token_is_named_without_the_token() {
    let telegram = TelegramStandIn::start("987654321:AAEanother-token", &[CHAT]);
    let sandbox = telegram_sandbox(&telegram);
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "^ERROR", &log, "never");
    let agent = sandbox.start_agent();
    append(&log, "ERROR wrong token\n");
    eventually("the destination is disabled", || {
        stdout(&sandbox.monitorctl(&["alerts", "--pending"])).contains("disabled")
    });
    let pending = stdout(&sandbox.monitorctl(&["alerts", "--pending"]));
    assert!(
        pending.contains("401") && pending.contains("bot token is wrong"),
        "{pending}"
    );
    assert_secret_kept(&sandbox, &agent, &format!("telegram:{CHAT}"), BOT_SECRET);
}
