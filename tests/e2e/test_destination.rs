//! `monitorctl test-destination`: one marked test alert through one destination of
//! monitor.yaml (every kind: the Discord, webhook, ntfy, Slack and Telegram stand-ins, a
//! real Mosquitto, the SMTP test relay), its outcome in words a user can act on, and no
//! secret in anything it prints.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::discord_standin::{Behaviour, DiscordStandIn};
use crate::harness::{stderr, stdout, Sandbox};
use crate::mosquitto::{BrokerSettings, Mosquitto};
use crate::ntfy_standin::{Behaviour as NtfyBehaviour, NtfyStandIn};
use crate::slack_standin::SlackStandIn;
use crate::smtp_sink::SmtpSink;
use crate::telegram_standin::TelegramStandIn;
use crate::webhook_standin::WebhookStandIn;

const WEBHOOK_ID: &str = "998877665544332211";
const WEBHOOK_TOKEN: &str = "test-destination-token-never-printed";
const BACKEND_TOKEN: &str = "backend-token-never-printed";

/// A sandbox whose monitor.yaml has the stand-in's webhook (its URL in a file) and a
/// backend, on device `pi-kitchen`.
fn sandbox_with_destinations(discord: &DiscordStandIn) -> Sandbox {
    let sandbox = Sandbox::new();
    fs::write(
        sandbox.path("webhook"),
        discord.url(WEBHOOK_ID, WEBHOOK_TOKEN),
    )
    .unwrap();
    fs::write(sandbox.path("token"), BACKEND_TOKEN).unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "device_id: pi-kitchen\ndelivery:\n  discord:\n    - webhook_url_file: {}\n      min_level: CRITICAL\n      checks: [service]\n  backend:\n    url: http://127.0.0.1:9\n    auth: token\n    token_file: {}\n",
            sandbox.path("webhook").display(),
            sandbox.path("token").display()
        ),
    )
    .unwrap();
    sandbox
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(WEBHOOK_TOKEN), "{text}");
    assert!(!text.contains(BACKEND_TOKEN), "{text}");
}

#[test]
fn a_test_alert_reaches_discord_by_setting_kind_or_name_and_leaves_the_outbox_alone() {
    let discord = DiscordStandIn::start(Behaviour::default());
    let sandbox = sandbox_with_destinations(&discord);
    for name in ["discord[0]", "discord", &format!("discord:{WEBHOOK_ID}")] {
        let sent = sandbox.monitorctl(&["test-destination", name]);
        assert!(sent.status.success(), "{name}: {}", stderr(&sent));
        assert_eq!(
            stdout(&sent),
            format!("delivery.discord[0] (discord:{WEBHOOK_ID}): sent\n")
        );
        assert_no_secret(&stdout(&sent));
        assert_no_secret(&stderr(&sent));
    }
    // Past the webhook's min_level and checks, marked as a test, naming the device.
    let embeds = discord.embeds();
    assert_eq!(embeds.len(), 3, "{embeds:#?}");
    let embed = &embeds[0];
    assert_eq!(
        embed["title"],
        "Test alert from monitorctl test-destination"
    );
    let description = embed["description"].as_str().unwrap();
    assert!(
        description.contains(
            "This is a test alert from monitorctl test-destination on pi-kitchen; nothing is wrong."
        ),
        "{description}"
    );
    assert!(
        !sandbox.state_dir().join("outbox").exists(),
        "the outbox was not touched"
    );
}

#[test]
fn a_deleted_webhook_is_reported_with_the_fix_and_exit_code_1() {
    let discord = DiscordStandIn::start(Behaviour {
        gone: true,
        ..Behaviour::default()
    });
    let sandbox = sandbox_with_destinations(&discord);
    let gone = sandbox.monitorctl(&["test-destination", "discord[0]"]);
    assert_eq!(gone.status.code(), Some(1), "{}", stderr(&gone));
    let error = stderr(&gone);
    assert!(
        error.starts_with(&format!(
            "monitorctl: delivery.discord[0] (discord:{WEBHOOK_ID}): the Discord webhook was deleted (404 Unknown Webhook)"
        )),
        "{error}"
    );
    assert!(error.contains("create a new webhook"), "{error}");
    assert!(
        error.contains("delivery.discord[0] in monitor.yaml"),
        "{error}"
    );
    assert_no_secret(&error);
    assert_no_secret(&stdout(&gone));
    assert_eq!(stdout(&gone), "");
}

#[test]
fn an_unknown_name_lists_the_destinations_and_the_backend_is_not_sent_a_test() {
    let discord = DiscordStandIn::start(Behaviour::default());
    let sandbox = sandbox_with_destinations(&discord);
    let unknown = sandbox.monitorctl(&["test-destination", "slack"]);
    assert_eq!(unknown.status.code(), Some(1));
    let listed = stderr(&unknown);
    assert_eq!(
        listed,
        format!(
            "monitorctl: no destination \"slack\" in monitor.yaml; the destinations of monitor.yaml, by setting and by name:\n  discord[0]  discord:{WEBHOOK_ID}\n  backend     backend\ntest one with e.g. monitorctl test-destination discord[0]\n"
        )
    );
    let all = sandbox.monitorctl(&["test-destination"]);
    assert!(all.status.success(), "{}", stderr(&all));
    assert!(
        stdout(&all).contains("  backend     backend\n"),
        "{}",
        stdout(&all)
    );

    let backend = sandbox.monitorctl(&["test-destination", "backend"]);
    assert_eq!(backend.status.code(), Some(1));
    let refused = stderr(&backend);
    assert!(
        refused.starts_with("monitorctl: delivery.backend (backend): not sent: the server would record a test alert as a real alert"),
        "{refused}"
    );
    for output in [&unknown, &all, &backend] {
        assert_no_secret(&stdout(output));
        assert_no_secret(&stderr(output));
    }
    assert!(discord.requests().is_empty());
}

#[test]
fn a_bad_setting_is_named_with_its_file_and_field() {
    let sandbox = Sandbox::new();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        "delivery:\n  discord:\n    - webhook_url_env: TEST_DESTINATION_UNSET_VARIABLE\n",
    )
    .unwrap();
    let output = sandbox.monitorctl(&["test-destination", "discord[0]"]);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(
        error.starts_with("monitor.yaml: delivery.discord[0]: the environment variable TEST_DESTINATION_UNSET_VARIABLE (webhook_url_env) is not set; this webhook gets nothing\n"),
        "{error}"
    );
    assert!(
        error.contains("monitor.yaml has no destination that can be used"),
        "{error}"
    );
}

// Every other kind: success prints `<setting> (<name>): sent` and the stand-in got the
// marked test alert; a typical refusal exits 1 with the service's answer and the fix.

const SECRET: &str = "test-destination-secret-never-printed";
const MARK: &str = "This is a test alert from monitorctl test-destination on pi-kitchen";

/// A sandbox on device `pi-kitchen` whose monitor.yaml's delivery is `delivery`, with
/// `SECRET` in the file `secret` (mode 600).
fn sandbox_delivering(delivery: impl FnOnce(&Sandbox) -> String) -> Sandbox {
    let sandbox = Sandbox::new();
    let secret = sandbox.path("secret");
    fs::write(&secret, format!("{SECRET}\n")).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let settings = format!("device_id: pi-kitchen\ndelivery:\n{}", delivery(&sandbox));
    fs::write(sandbox.config_dir().join("monitor.yaml"), settings).unwrap();
    sandbox
}

/// `monitorctl test-destination <name>` succeeds and prints `line`.
fn assert_sent(sandbox: &Sandbox, name: &str, line: &str) {
    let sent = sandbox.monitorctl(&["test-destination", name]);
    assert!(sent.status.success(), "{name}: {}", stderr(&sent));
    assert_eq!(stdout(&sent), format!("{line}\n"));
    assert_eq!(stderr(&sent), "");
}

/// `monitorctl test-destination <name>` exits 1 and prints `error` on stderr, only; no
/// secret anywhere.
fn assert_refused(sandbox: &Sandbox, name: &str, error: &str) {
    let refused = sandbox.monitorctl(&["test-destination", name]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert_eq!(stderr(&refused), format!("monitorctl: {error}\n"));
    assert_eq!(stdout(&refused), "");
    assert!(!stderr(&refused).contains(SECRET));
}

/// The name `monitorctl test-destination` lists for `setting`.
fn listed_name(sandbox: &Sandbox, setting: &str) -> String {
    let listed = stdout(&sandbox.monitorctl(&["test-destination"]));
    listed
        .lines()
        .find_map(|line| line.trim().strip_prefix(setting))
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|| panic!("{setting} is not listed: {listed}"))
}

fn secret_file(sandbox: &Sandbox) -> String {
    sandbox.path("secret").display().to_string()
}

#[test]
fn a_webhook_gets_the_test_alert_and_a_404_is_named_with_the_fix() {
    let webhook = WebhookStandIn::start(Some(SECRET));
    let sandbox = sandbox_delivering(|sandbox| {
        format!(
            "  webhook:\n    - url: {}\n      secret_file: {}\n      min_level: CRITICAL\n",
            webhook.url("/hooks/monitor"),
            secret_file(sandbox)
        )
    });
    let name = listed_name(&sandbox, "webhook[0]");
    assert!(name.starts_with("webhook:127.0.0.1:"), "{name}");
    assert_sent(
        &sandbox,
        "webhook",
        &format!("delivery.webhook[0] ({name}): sent"),
    );
    let accepted = webhook.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    let text = accepted[0].to_string();
    assert!(text.contains(MARK), "{text}");
    assert_eq!(webhook.requests()[0].signature_valid, Some(true));

    webhook.set_status(Some(404));
    assert_refused(
        &sandbox,
        "webhook[0]",
        &format!("delivery.webhook[0] ({name}): the webhook answered 404 Not Found: {{\"error\":\"no such hook\"}}: no receiver at this address: check url; monitord stops sending to it until delivery.webhook[0] in monitor.yaml changes"),
    );
}

#[test]
fn ntfy_gets_the_test_alert_and_a_wrong_token_is_named_with_the_fix() {
    let ntfy = NtfyStandIn::start(NtfyBehaviour {
        token: Some(SECRET.into()),
        ..NtfyBehaviour::default()
    });
    let sandbox = sandbox_delivering(|sandbox| {
        format!(
            "  ntfy:\n    - url: {}\n      token_file: {}\n",
            ntfy.topic_url("pi-alerts"),
            secret_file(sandbox)
        )
    });
    let name = listed_name(&sandbox, "ntfy[0]");
    assert_sent(
        &sandbox,
        "ntfy",
        &format!("delivery.ntfy[0] ({name}): sent"),
    );
    let messages = ntfy.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(
        messages[0]["message"].as_str().unwrap().contains(MARK),
        "{}",
        messages[0]
    );

    let wrong = sandbox_delivering(|sandbox| {
        fs::write(sandbox.path("wrong"), "tk_wrongtoken\n").unwrap();
        format!(
            "  ntfy:\n    - url: {}\n      token_file: {}\n",
            ntfy.topic_url("pi-alerts"),
            sandbox.path("wrong").display()
        )
    });
    assert_refused(&wrong, "ntfy", &format!("delivery.ntfy[0] ({name}): ntfy answered 401 Unauthorized: {{\"code\":40101,\"error\":\"unauthorized\",\"http\":401,\"link\":\"https://ntfy.sh/docs/publish/#authentication\"}}: the access token (or user and password) is wrong: check token_file or token_env (or username and password_file); monitord stops sending to it until delivery.ntfy[0] in monitor.yaml changes"));
}

#[test]
fn slack_gets_the_test_alert_and_a_revoked_webhook_is_named_with_the_fix() {
    let slack = SlackStandIn::start();
    let sandbox = sandbox_delivering(|sandbox| {
        fs::write(sandbox.path("secret"), slack.url("T0001", "B0002", SECRET)).unwrap();
        format!(
            "  slack:\n    - webhook_url_file: {}\n",
            secret_file(sandbox)
        )
    });
    let name = "slack:T0001/B0002";
    assert_sent(
        &sandbox,
        "slack",
        &format!("delivery.slack[0] ({name}): sent"),
    );
    let messages = slack.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(messages[0].to_string().contains(MARK), "{}", messages[0]);

    slack.set_gone(Some((403, "action_prohibited")));
    assert_refused(
        &sandbox,
        "slack",
        &format!("delivery.slack[0] ({name}): webhook {}***: Slack answered 403: action_prohibited: an admin restricted posting to this channel; ask them, or use another channel's webhook; monitord stops sending to it until delivery.slack[0] in monitor.yaml changes", slack.url("T0001", "B0002", "")),
    );
}

#[test]
fn telegram_gets_the_test_alert_and_a_wrong_token_is_named_with_the_fix() {
    const CHAT: &str = "-1001234567890";
    let token = format!("123456789:{SECRET}");
    let telegram = TelegramStandIn::start(&token, &[CHAT]);
    let settings = |sandbox: &Sandbox, token: &str| {
        fs::write(sandbox.path("secret"), format!("{token}\n")).unwrap();
        format!(
            "  telegram:\n    - bot_token_file: {}\n      chat_id: \"{CHAT}\"\n      api_url: {}\n",
            secret_file(sandbox),
            telegram.api_url()
        )
    };
    let sandbox = sandbox_delivering(|sandbox| settings(sandbox, &token));
    let name = format!("telegram:{CHAT}");
    assert_sent(
        &sandbox,
        "telegram",
        &format!("delivery.telegram[0] ({name}): sent"),
    );
    let messages = telegram.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(messages[0].shown.contains(MARK), "{}", messages[0].shown);

    let wrong = sandbox_delivering(|sandbox| settings(sandbox, &format!("987654321:{SECRET}")));
    assert_refused(
        &wrong,
        "telegram",
        &format!("delivery.telegram[0] ({name}): chat {CHAT}: Telegram answered 401: Unauthorized: the bot token is wrong or was revoked; set the token @BotFather gives; monitord stops sending to it until delivery.telegram[0] in monitor.yaml changes"),
    );
}

#[test]
fn mqtt_gets_the_test_alert_and_a_refused_login_is_named_with_the_fix() {
    let Some(broker) = Mosquitto::start(BrokerSettings {
        login: Some(("pi".into(), SECRET.into())),
        tls: false,
    }) else {
        return;
    };
    let settings = |sandbox: &Sandbox, password: &str| {
        fs::write(sandbox.path("secret"), format!("{password}\n")).unwrap();
        format!(
            "  mqtt:\n    - url: {}\n      username: pi\n      password_file: {}\n",
            broker.url(),
            secret_file(sandbox)
        )
    };
    let sandbox = sandbox_delivering(|sandbox| settings(sandbox, SECRET));
    let name = "mqtt:monitor-pi-kitchen@127.0.0.1";
    assert_sent(
        &sandbox,
        "mqtt",
        &format!("delivery.mqtt[0] ({name}:{}): sent", broker.port),
    );
    // What the broker keeps (a subscriber now gets the retained messages): the test's
    // sensor, marked, and off: Home Assistant is not left with a problem on.
    let mut watcher = broker.watch("monitor/#");
    let state = watcher.expect_payload("monitor/pi-kitchen/monitor/test destination/state", "OFF");
    assert!(state.retained);
    let attributes = watcher.expect(
        "monitor/pi-kitchen/monitor/test destination/attributes",
        |payload| payload.contains(MARK),
    );
    assert!(attributes.payload.contains(MARK), "{}", attributes.payload);

    let wrong = sandbox_delivering(|sandbox| settings(sandbox, "not-the-password"));
    assert_refused(
        &wrong,
        "mqtt",
        &format!("delivery.mqtt[0] ({name}:{}): not sent, for now: the connection to the MQTT broker was lost before it acknowledged everything: the broker refused the user name or password: check username and password_file (or password_env), and the broker's password file; monitord would try again later", broker.port),
    );
}

#[test]
fn email_gets_the_test_alert_and_a_refused_login_is_named_with_the_fix() {
    let sink = SmtpSink::start_with_login("pi", SECRET);
    let settings = |sandbox: &Sandbox, password: &str| {
        fs::write(sandbox.path("secret"), format!("{password}\n")).unwrap();
        format!(
            "  email:\n    - smtp_host: 127.0.0.1\n      smtp_port: {}\n      tls: none\n      username: pi\n      password_file: {}\n      from: pi@example.com\n      to: [ops@example.com]\n",
            sink.port,
            secret_file(sandbox)
        )
    };
    let sandbox = sandbox_delivering(|sandbox| settings(sandbox, SECRET));
    let name = "email:ops@example.com@127.0.0.1";
    assert_sent(
        &sandbox,
        "email",
        &format!("delivery.email[0] ({name}): sent"),
    );
    let mail = sink.next(crate::harness::DEADLINE);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some(
            "CRITICAL: Monitor Alert for Test alert from monitorctl test-destination on pi-kitchen"
        )
    );
    assert!(mail.decoded().contains(MARK), "{}", mail.decoded());

    let wrong = sandbox_delivering(|sandbox| settings(sandbox, "not-the-password"));
    assert_refused(
        &wrong,
        "email",
        &format!("delivery.email[0] ({name}): 127.0.0.1:{} refused the login (permanent error (535): 5.7.8 Authentication credentials invalid): check username and the password in password_file or password_env; monitord stops sending to it until delivery.email[0] in monitor.yaml changes", sink.port),
    );
}
