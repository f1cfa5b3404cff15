//! `monitorctl test-destination`: one marked test alert through one destination of
//! monitor.yaml (here the Discord stand-in), its outcome in words a user can act on, and no
//! secret in anything it prints.

use std::fs;

use crate::discord_standin::{Behaviour, DiscordStandIn};
use crate::harness::{stderr, stdout, Sandbox};

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
