//! Notifications: email to a local SMTP server, Discord to the stand-in that enforces
//! Discord's rules; state changes only, at most one message per interval and channel for a
//! flapping device, mute (per device, everything, and per kind of channel as Mender's email
//! switch), retries, and one message however many replicas run.

use std::time::Duration;

use serde_json::{json, Value};

use crate::api::{alert, binary, Fixture};
use crate::discord_standin::{Behaviour, DiscordStandIn, Scripted};
use crate::monitor_server::{ServerDatabase, ServerProcess};
use crate::on_both_engines;
use crate::smtp_sink::SmtpSink;

const DEADLINE: Duration = Duration::from_secs(30);
const WEBHOOK_TOKEN: &str = "secret-token-of-the-webhook";

/// A config file for the server: `notify_interval` and the rest, and Discord channels
/// allowed to post to the stand-in on 127.0.0.1.
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("server.yaml");
    std::fs::write(&path, format!("{text}allow_private_targets: true\n")).unwrap();
    let path = path.display().to_string();
    (directory, path)
}

/// The outbox's counts from `/metrics`: (sent, failed, waiting).
async fn outbox(fixture: &Fixture) -> (u64, u64, u64) {
    outbox_at(&fixture.client, &fixture.server.url, &fixture.user_token).await
}

async fn outbox_at(client: &reqwest::Client, url: &str, token: &str) -> (u64, u64, u64) {
    let text = client
        .get(format!("{url}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |state: &str| -> u64 {
        let prefix = format!("monitor_server_notifications{{state=\"{state}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
            .parse()
            .unwrap()
    };
    (count("sent"), count("failed"), count("waiting"))
}

/// Waits until the outbox counts (sent, failed, waiting) are `expected`.
pub(crate) async fn eventually_outbox(fixture: &Fixture, expected: (u64, u64, u64)) {
    let started = std::time::Instant::now();
    loop {
        let counts = outbox(fixture).await;
        if counts == expected {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "outbox {counts:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn discord_channel(fixture: &Fixture, discord: &DiscordStandIn) {
    fixture.database.admin_ok(
        binary(),
        &[
            "channel",
            "discord",
            "ops",
            "--webhook-url-stdin",
            "--allow-private-targets",
        ],
        Some(&format!("{}\n", discord.url("4242", WEBHOOK_TOKEN))),
    );
}

on_both_engines! {
    /// A CRITICAL and then its OK reach an email address with Mender's subject, the details
    /// in text and HTML (the matching line marked), from the configured sender.
    async fn state_changes_are_emailed_with_menders_subject(database) {
        let sink = tokio::task::spawn_blocking(SmtpSink::start).await.unwrap();
        let (_directory, config) = config_file("notify_interval: 1s\nemail_from: Fleet Monitor <monitor@example.com>\n");
        let fixture = Fixture::start_with(database, &["--config", &config, "--smtp-url", &sink.url()]).await;
        fixture.database.admin_ok(binary(), &["channel", "email", "ops@example.com"], None);

        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1)])).await;
        let (mail, sink) = tokio::task::spawn_blocking(move || (sink.next(DEADLINE), sink))
            .await
            .unwrap();
        assert_eq!(mail.header("Subject").as_deref(), Some("CRITICAL: Monitor Alert for app is CRITICAL on pi-1"));
        assert_eq!(mail.to, ["ops@example.com"]);
        assert_eq!(mail.from, "monitor@example.com");
        let body = mail.decoded();
        for expected in [
            "Device: pi-1",
            "CRITICAL: app is CRITICAL",
            "Subject: log app (LOGCONTAINS)",
            "Time: 2026-11-21T12:00:01.000Z",
            "Description: a pattern matched",
            ">      3  line 1",
            "       2  before",
            "<mark><b>     3  line 1</b></mark>",
            "multipart/alternative",
        ] {
            assert!(body.contains(expected), "{expected:?} in\n{body}");
        }
        assert!(!body.contains("Open") && !body.contains("<a href"), "no --public-url, no link: {body}");

        fixture.post_alerts(&json!([alert("app", "OK", 2)])).await;
        let (mail, _sink) = tokio::task::spawn_blocking(move || (sink.next(DEADLINE), sink)).await.unwrap();
        assert_eq!(mail.header("Subject").as_deref(), Some("OK: Monitor Alert for app is OK on pi-1"));
        eventually_outbox(&fixture, (2, 0, 0)).await;
    }
}

on_both_engines! {
    /// A device flapping 41 times sends two Discord messages: the first change at once, then
    /// one message at the end of the interval with the latest state and how many changes it
    /// stands for. Repeats of the same state send nothing.
    async fn a_flapping_device_never_floods_a_channel(database) {
        let discord = DiscordStandIn::start(Behaviour::default());
        let (_directory, config) = config_file("notify_interval: 2s\n");
        let fixture = Fixture::start_with(database, &["--config", &config]).await;
        discord_channel(&fixture, &discord);

        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1)])).await;
        eventually_outbox(&fixture, (1, 0, 0)).await;
        assert_eq!(discord.embeds().len(), 1);
        assert_eq!(discord.embeds()[0]["color"], 0xFF0000);
        assert!(discord.embeds()[0].get("url").is_none(), "no --public-url, no link");

        for batch in 0..4u64 {
            let flaps: Vec<Value> = (0..10u64)
                .map(|index| {
                    let second = 2 + batch * 10 + index;
                    alert("app", if second % 2 == 0 { "OK" } else { "CRITICAL" }, second)
                })
                .collect();
            fixture.post_alerts(&json!(flaps)).await;
        }
        // The same state again changes nothing.
        fixture.post_alerts(&json!([alert("app", "CRITICAL", 41), alert("app", "CRITICAL", 1)])).await;
        eventually_outbox(&fixture, (2, 0, 0)).await;
        let messages = discord.messages();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        let digest = &messages[1]["embeds"][0];
        assert_eq!(digest["color"], 0xFF0000, "the latest state is CRITICAL: {digest}");
        let description = digest["description"].as_str().unwrap();
        assert!(description.starts_with("40 changes since the last message; this is the latest."), "{description}");
        assert_eq!(messages[1]["username"], "monitor-server");
        assert!(!fixture.server.log().contains(WEBHOOK_TOKEN), "the webhook URL is a secret");
    }
}

on_both_engines! {
    /// Nothing is queued for a muted device or while everything is muted; unmuted, it is.
    async fn muted_devices_queue_nothing(database) {
        let discord = DiscordStandIn::start(Behaviour::default());
        let fixture = Fixture::start_with(database, &["--allow-private-targets"]).await;
        discord_channel(&fixture, &discord);
        fixture.database.admin_ok(binary(), &["mute", "--device", "pi-1"], None);
        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1)])).await;
        assert_eq!(outbox(&fixture).await, (0, 0, 0));
        fixture.database.admin_ok(binary(), &["unmute", "--device", "pi-1"], None);
        fixture.database.admin_ok(binary(), &["mute"], None);
        fixture.post_alerts(&json!([alert("app", "OK", 2)])).await;
        assert_eq!(outbox(&fixture).await, (0, 0, 0));
        fixture.database.admin_ok(binary(), &["unmute"], None);
        fixture.post_alerts(&json!([alert("app", "CRITICAL", 3)])).await;
        eventually_outbox(&fixture, (1, 0, 0)).await;
        assert_eq!(discord.messages().len(), 1);
    }
}

on_both_engines! {
    /// Mender's email switch, `PUT …/settings/global/channel/alerts/email/status
    /// {"enabled": false}` (its UI's `changeNotificationSetting`), turns email off for every
    /// device while Discord still notifies; `enabled: true` turns it back on.
    async fn menders_email_switch_mutes_email_channels_only(database) {
        let sink = tokio::task::spawn_blocking(SmtpSink::start).await.unwrap();
        let discord = DiscordStandIn::start(Behaviour::default());
        let (_directory, config) = config_file("notify_interval: 1s\n");
        let fixture = Fixture::start_with(database, &["--config", &config, "--smtp-url", &sink.url()]).await;
        fixture.database.admin_ok(binary(), &["channel", "email", "ops@example.com"], None);
        discord_channel(&fixture, &discord);
        let email_status = "/settings/global/channel/alerts/email/status";
        let (status, _) = fixture.manage(email_status).await;
        assert_eq!(status, json!({"enabled": true}));

        assert_eq!(fixture.manage_put(email_status, &json!({"enabled": false})).await, reqwest::StatusCode::NO_CONTENT);
        let (status, _) = fixture.manage(email_status).await;
        assert_eq!(status, json!({"enabled": false}));
        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1)])).await;
        // Only Discord's message was queued: an email would be waiting or sent too.
        eventually_outbox(&fixture, (1, 0, 0)).await;
        assert_eq!(discord.messages().len(), 1);

        assert_eq!(fixture.manage_put(email_status, &json!({"enabled": true})).await, reqwest::StatusCode::NO_CONTENT);
        fixture.post_alerts(&json!([alert("app", "OK", 2)])).await;
        eventually_outbox(&fixture, (3, 0, 0)).await;
        // The first email is the OK: the CRITICAL was never emailed.
        let mail = tokio::task::spawn_blocking(move || sink.next(DEADLINE)).await.unwrap();
        assert_eq!(mail.header("Subject").as_deref(), Some("OK: Monitor Alert for app is OK on pi-1"));

        assert_eq!(fixture.manage_put("/settings/global/channel/alerts/sms/status", &json!({"enabled": false})).await, reqwest::StatusCode::BAD_REQUEST);
        assert_eq!(fixture.manage_put(email_status, &json!({"enabled": "no"})).await, reqwest::StatusCode::BAD_REQUEST);
    }
}

on_both_engines! {
    /// A Discord 5xx is retried; a deleted webhook fails the notification for good.
    async fn failures_are_retried_or_given_up_as_discord_says(database) {
        let discord = DiscordStandIn::start(Behaviour::default());
        discord.script([Scripted::ServerError(502)]);
        let (_directory, config) = config_file("notify_interval: 1s\n");
        let fixture = Fixture::start_with(database, &["--config", &config]).await;
        discord_channel(&fixture, &discord);
        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1)])).await;
        eventually_outbox(&fixture, (1, 0, 0)).await;
        assert_eq!(discord.statuses(), [502, 200]);

        discord.set_gone(true);
        fixture.post_alerts(&json!([alert("app", "OK", 2)])).await;
        eventually_outbox(&fixture, (1, 1, 0)).await;
        assert!(fixture.server.log().contains("was deleted") && fixture.server.log().contains("remove the channel or give a new webhook"), "{}", fixture.server.log());
    }
}

/// Two replicas on one PostgreSQL, both able to send: an alert is notified once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_send_each_notification_once() {
    let Some(database) = ServerDatabase::postgres() else {
        return;
    };
    let discord = DiscordStandIn::start(Behaviour {
        limit: 100,
        ..Behaviour::default()
    });
    let (_directory, config) = config_file("notify_interval: 1s\n");
    let fixture = Fixture::start_with(database, &["--config", &config]).await;
    discord_channel(&fixture, &discord);
    let second = ServerProcess::start(binary(), &fixture.database, &["--config", &config]);
    for subject in 0..20u64 {
        let replica = if subject % 2 == 0 {
            &fixture.server.url
        } else {
            &second.url
        };
        let response = fixture
            .client
            .post(format!("{replica}/api/devices/v1/devicemonitor/alert"))
            .bearer_auth(&fixture.device_token)
            .json(&json!([alert(
                &format!("check{subject}"),
                "CRITICAL",
                subject
            )]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }
    let started = std::time::Instant::now();
    loop {
        let (sent, failed, waiting) = outbox(&fixture).await;
        if waiting == 0 {
            assert_eq!(failed, 0);
            assert!(sent >= 1, "{sent}");
            break;
        }
        assert!(started.elapsed() < DEADLINE, "still waiting: {waiting}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut titles: Vec<String> = discord
        .embeds()
        .iter()
        .map(|embed| embed["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    let before = titles.len();
    titles.dedup();
    assert_eq!(
        before,
        titles.len(),
        "an alert was notified twice: {titles:#?}"
    );
    assert_eq!(titles.len(), 20, "{titles:#?}");
}

on_both_engines! {
    /// A Slack and a Telegram channel each get a device's CRITICAL, within each service's
    /// rules (the stand-ins refuse anything else); `channel list` shows neither secret.
    async fn slack_and_telegram_channels_get_a_devices_alert(database) {
        use crate::slack_standin::SlackStandIn;
        use crate::telegram_standin::TelegramStandIn;
        const SLACK_SECRET: &str = "slack-secret-of-the-channel";
        const BOT_TOKEN: &str = "4242:AAE-telegram-secret-of-the-channel";
        let slack = SlackStandIn::start();
        let telegram = TelegramStandIn::start(BOT_TOKEN, &["-100777"]);
        let (_directory, config) = config_file("notify_interval: 1s\n");
        let fixture = Fixture::start_with(database, &["--config", &config]).await;
        fixture.database.admin_ok(
            binary(),
            &["channel", "slack", "ops-slack", "--webhook-url-stdin", "--allow-private-targets"],
            Some(&format!("{}\n", slack.url("T1", "B2", SLACK_SECRET))),
        );
        let api_url = telegram.api_url();
        fixture.database.admin_ok(
            binary(),
            &[
                "channel", "telegram", "ops-telegram", "--chat-id", "-100777", "--api-url", &api_url,
                "--bot-token-stdin", "--allow-private-targets",
            ],
            Some(&format!("{BOT_TOKEN}\n")),
        );
        let listed = fixture.database.admin_ok(binary(), &["channel", "list"], None);
        assert!(listed.contains("slack") && listed.contains("/services/T1/B2/***"), "{listed}");
        assert!(listed.contains("telegram") && listed.contains("/bot4242:***/-100777"), "{listed}");
        assert!(!listed.contains(SLACK_SECRET) && !listed.contains("AAE-telegram"), "{listed}");

        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1)])).await;
        eventually_outbox(&fixture, (2, 0, 0)).await;
        let attachments = slack.attachments();
        assert_eq!(attachments.len(), 1, "{attachments:#?}");
        assert_eq!(attachments[0]["blocks"][0]["text"]["text"], "CRITICAL: log app on pi-1");
        assert_eq!(attachments[0]["color"], "#D40E0D");
        assert!(attachments[0]["blocks"][1].get("accessory").is_none(), "no --public-url, no button");
        let messages = telegram.messages();
        assert_eq!(messages.len(), 1, "{messages:#?}");
        assert!(messages[0].shown.starts_with("CRITICAL: log app on pi-1\n"), "{}", messages[0].shown);
        assert!(!messages[0].shown.contains("Open:"), "{}", messages[0].shown);
        assert_eq!(messages[0].chat_id, "-100777");
        let log = fixture.server.log();
        assert!(!log.contains(SLACK_SECRET) && !log.contains("AAE-telegram"), "{log}");
    }
}

on_both_engines! {
    /// With --public-url, a device's CRITICAL links the dashboard's page of the device (under
    /// the URL's path) in every kind of message: the email's text and HTML, Discord's embed,
    /// Slack's button and Telegram's last line, each within its service's rules (the
    /// stand-ins refuse anything else).
    async fn a_public_url_links_the_devices_page_in_every_message(database) {
        use crate::slack_standin::SlackStandIn;
        use crate::telegram_standin::TelegramStandIn;
        const BOT_TOKEN: &str = "4242:AAE-telegram-secret-of-the-channel";
        let sink = tokio::task::spawn_blocking(SmtpSink::start).await.unwrap();
        let discord = DiscordStandIn::start(Behaviour::default());
        let slack = SlackStandIn::start();
        let telegram = TelegramStandIn::start(BOT_TOKEN, &["-100777"]);
        let (_directory, config) = config_file("notify_interval: 1s\n");
        let fixture = Fixture::start_with(
            database,
            &["--config", &config, "--smtp-url", &sink.url(), "--public-url", "https://monitor.example/fleet/"],
        )
        .await;
        fixture.database.admin_ok(binary(), &["channel", "email", "ops@example.com"], None);
        discord_channel(&fixture, &discord);
        fixture.database.admin_ok(
            binary(),
            &["channel", "slack", "ops-slack", "--webhook-url-stdin", "--allow-private-targets"],
            Some(&format!("{}\n", slack.url("T1", "B2", "slack-secret"))),
        );
        let api_url = telegram.api_url();
        fixture.database.admin_ok(
            binary(),
            &[
                "channel", "telegram", "ops-telegram", "--chat-id", "-100777", "--api-url", &api_url,
                "--bot-token-stdin", "--allow-private-targets",
            ],
            Some(&format!("{BOT_TOKEN}\n")),
        );
        let page = format!("https://monitor.example/fleet/ui/devices/{}", fixture.device_id("pi-1").await);

        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1)])).await;
        let mail = tokio::task::spawn_blocking(move || sink.next(DEADLINE)).await.unwrap();
        eventually_outbox(&fixture, (4, 0, 0)).await;
        let body = mail.decoded();
        let open_line = format!("Open: {page}");
        assert!(body.contains("Device: pi-1 (id ") && body.lines().any(|line| line.trim_end() == open_line), "{body}");
        assert!(body.contains(&format!("<a href=\"{page}\">Open</a>")), "{body}");
        assert_eq!(discord.embeds()[0]["url"], page.as_str());
        let attachments = slack.attachments();
        assert_eq!(attachments[0]["blocks"][1]["accessory"]["url"], page.as_str(), "{attachments:#?}");
        let shown = &telegram.messages()[0].shown;
        assert!(shown.starts_with("CRITICAL: log app on pi-1\n"), "{shown}");
        assert!(shown.ends_with(&format!("\nOpen: {page}")), "{shown}");
    }
}
