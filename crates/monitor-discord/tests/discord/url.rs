use monitor_discord::{WebhookUrl, WebhookUrlError};

use crate::TOKEN;

#[test]
fn webhook_urls_parse_into_the_versioned_post_url() {
    // (pasted, post URL, redacted)
    let table = [
        (
            "https://discord.com/api/webhooks/1234/TOKEN",
            "https://discord.com/api/v10/webhooks/1234/TOKEN?wait=true",
            "https://discord.com/api/webhooks/1234/***",
        ),
        (
            "https://discordapp.com/api/webhooks/1234/TOKEN",
            "https://discordapp.com/api/v10/webhooks/1234/TOKEN?wait=true",
            "https://discordapp.com/api/webhooks/1234/***",
        ),
        (
            "https://canary.discord.com/api/webhooks/1234/TOKEN",
            "https://canary.discord.com/api/v10/webhooks/1234/TOKEN?wait=true",
            "https://canary.discord.com/api/webhooks/1234/***",
        ),
        (
            "https://ptb.discord.com/api/webhooks/1234/TOKEN",
            "https://ptb.discord.com/api/v10/webhooks/1234/TOKEN?wait=true",
            "https://ptb.discord.com/api/webhooks/1234/***",
        ),
        (
            "https://discord.com/api/v6/webhooks/1234/TOKEN",
            "https://discord.com/api/v10/webhooks/1234/TOKEN?wait=true",
            "https://discord.com/api/webhooks/1234/***",
        ),
        (
            "https://discord.com/api/v10/webhooks/1234/TOKEN/",
            "https://discord.com/api/v10/webhooks/1234/TOKEN?wait=true",
            "https://discord.com/api/webhooks/1234/***",
        ),
        (
            "https://discord.com/api/webhooks/1234/TOKEN?thread_id=5678",
            "https://discord.com/api/v10/webhooks/1234/TOKEN?wait=true&thread_id=5678",
            "https://discord.com/api/webhooks/1234/***?thread_id=5678",
        ),
        (
            "  https://discord.com/api/webhooks/1234/TOKEN?wait=false&thread_id=5678#fragment\n",
            "https://discord.com/api/v10/webhooks/1234/TOKEN?wait=true&thread_id=5678",
            "https://discord.com/api/webhooks/1234/***?thread_id=5678",
        ),
        (
            "HTTPS://discord.com/api/webhooks/1234/TOKEN",
            "https://discord.com/api/v10/webhooks/1234/TOKEN?wait=true",
            "https://discord.com/api/webhooks/1234/***",
        ),
        (
            "http://127.0.0.1:40123/api/webhooks/1234/TOKEN",
            "http://127.0.0.1:40123/api/v10/webhooks/1234/TOKEN?wait=true",
            "http://127.0.0.1:40123/api/webhooks/1234/***",
        ),
    ];
    for (pasted, post_url, redacted) in table {
        let pasted = pasted.replace("TOKEN", TOKEN);
        let url = WebhookUrl::parse(&pasted).unwrap_or_else(|error| panic!("{pasted}: {error}"));
        assert_eq!(url.post_url(), post_url.replace("TOKEN", TOKEN), "{pasted}");
        assert_eq!(url.redacted(), redacted, "{pasted}");
        assert_eq!(url.to_string(), redacted, "{pasted}");
        assert_eq!(format!("{url:?}"), format!("WebhookUrl({redacted})"));
        assert!(!format!("{url} {url:?} {url:#?}").contains(TOKEN));
        assert_eq!(url.id(), "1234");
        assert_eq!(pasted.parse::<WebhookUrl>().unwrap(), url);
    }
}

#[test]
fn bad_webhook_urls_say_what_a_valid_one_looks_like_without_the_token() {
    let expected = "expected https://discord.com/api/webhooks/{id}/{token}, optionally with ?thread_id={id} (copy it from the channel's Integrations > Webhooks > Copy Webhook URL)";
    let table = [
        ("", WebhookUrlError::Empty, "the webhook URL is empty"),
        (
            "discord.com/api/webhooks/1234/TOKEN",
            WebhookUrlError::MissingScheme,
            "the webhook URL has no scheme",
        ),
        (
            "ftp://discord.com/api/webhooks/1234/TOKEN",
            WebhookUrlError::UnsupportedScheme {
                scheme: "ftp".into(),
            },
            "the webhook URL's scheme `ftp` is not https or http",
        ),
        (
            "https:///api/webhooks/1234/TOKEN",
            WebhookUrlError::MissingHost,
            "the webhook URL has no host",
        ),
        (
            "https://me:TOKEN@discord.com/api/webhooks/1234/TOKEN",
            WebhookUrlError::Credentials {
                host: "discord.com".into(),
            },
            "the webhook URL on `discord.com` carries a user name or password, which Discord never uses",
        ),
        (
            "https://discord.com/api/channels/1234/messages",
            WebhookUrlError::NotAWebhookPath {
                host: "discord.com".into(),
            },
            "the webhook URL on `discord.com` is not a webhook path",
        ),
        (
            "https://discord.com/api/webhooks/1234",
            WebhookUrlError::NotAWebhookPath {
                host: "discord.com".into(),
            },
            "the webhook URL on `discord.com` is not a webhook path",
        ),
        (
            "https://discord.com/webhooks/1234/TOKEN",
            WebhookUrlError::NotAWebhookPath {
                host: "discord.com".into(),
            },
            "the webhook URL on `discord.com` is not a webhook path",
        ),
        (
            "https://discord.com/api/webhooks/1234/TOKEN/messages/99",
            WebhookUrlError::NotAWebhookPath {
                host: "discord.com".into(),
            },
            "the webhook URL on `discord.com` is not a webhook path",
        ),
        (
            "https://discord.com/api/webhooks/1234/TOKEN/slack",
            WebhookUrlError::CompatibilityEndpoint {
                host: "discord.com".into(),
            },
            "the webhook URL on `discord.com` is Discord's Slack- or GitHub-compatible endpoint; use the plain URL without the last path segment",
        ),
        (
            "https://discord.com/api/webhooks/abc/TOKEN",
            WebhookUrlError::BadId {
                host: "discord.com".into(),
                id: "abc".into(),
            },
            "the webhook URL on `discord.com` has id `abc`, which is not a number",
        ),
        (
            "https://discord.com/api/webhooks/1234/TOKEN%20x",
            WebhookUrlError::BadToken {
                host: "discord.com".into(),
            },
            "the webhook URL on `discord.com` has a token with characters a Discord token never has (letters, digits, `-`, `_` and `.` only)",
        ),
        (
            "https://discord.com/api/webhooks/1234/TOKEN?thread_id=general",
            WebhookUrlError::BadThreadId {
                host: "discord.com".into(),
                thread_id: "general".into(),
            },
            "the webhook URL on `discord.com` has thread_id `general`, which is not a number",
        ),
    ];
    for (pasted, error, text) in table {
        let pasted = pasted.replace("TOKEN", TOKEN);
        let actual = WebhookUrl::parse(&pasted).expect_err(&pasted);
        assert_eq!(actual, error, "{pasted}");
        assert_eq!(
            actual.to_string(),
            format!("{text}: {expected}"),
            "{pasted}"
        );
        assert!(
            !format!("{actual} {actual:?}").contains(TOKEN),
            "{pasted}: the error shows the token"
        );
    }
}
