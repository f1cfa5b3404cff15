//! `delivery.slack[]` and `delivery.telegram[]`: chat services, each entry with its own
//! progress, filter and secret (inline, or from a file or a variable).
//!
//! Where a secret may go: a Slack webhook must be `https://hooks.slack.com/...`, a
//! Telegram Bot API server any `https://` one; anything on this machine (a relay, a test
//! stand-in) is allowed, and anything else only with `allow_insecure: true`. The rule is checked
//! here for inline values and again by the agent for values read from files or variables.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{checks_entry_problem, DeliverySettings, MinLevel};
use crate::problem::Problem;

/// One Slack incoming webhook. Exactly one of `webhook_url`, `webhook_url_file` and
/// `webhook_url_env` (the URL is a secret: keep it out of the config with the last two).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// `https://hooks.slack.com/services/T…/B…/…`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// A file holding the URL (first line).
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// An environment variable holding the URL.
    #[serde(default)]
    pub webhook_url_env: Option<String>,
    /// Post to a host other than hooks.slack.com (a Slack-compatible relay), over plain
    /// `http` too. Default false; `http` to this machine is always allowed.
    #[serde(default)]
    pub allow_insecure: bool,
    /// `OK` (default: every alert) or `CRITICAL` (only CRITICALs).
    #[serde(default)]
    pub min_level: MinLevel,
    /// Only these checks, as `<subsystem>` or `<subsystem> <check>`; default every check.
    #[serde(default)]
    pub checks: Vec<String>,
}

/// One Telegram chat a bot posts to. Exactly one of `bot_token`, `bot_token_file` and
/// `bot_token_env` (the token is a secret: prefer the last two).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    /// The token @BotFather gave, `123456789:AAE…`.
    #[serde(default)]
    pub bot_token: Option<String>,
    /// A file holding the token (first line).
    #[serde(default)]
    pub bot_token_file: Option<PathBuf>,
    /// An environment variable holding the token.
    #[serde(default)]
    pub bot_token_env: Option<String>,
    /// The chat: a number (negative for groups and channels) or `@channelusername`.
    #[serde(default, deserialize_with = "number_or_text")]
    pub chat_id: Option<String>,
    /// The Bot API server; default `https://api.telegram.org` (a self-hosted one otherwise).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Reach `api_url` over plain `http` on another machine (the token crosses the network
    /// in clear). Default false; `http` to this machine is always allowed.
    #[serde(default)]
    pub allow_insecure: bool,
    /// `OK` (default: every alert) or `CRITICAL` (only CRITICALs).
    #[serde(default)]
    pub min_level: MinLevel,
    /// Only these checks, as `<subsystem>` or `<subsystem> <check>`; default every check.
    #[serde(default)]
    pub checks: Vec<String>,
}

fn default_api_url() -> String {
    "https://api.telegram.org".to_owned()
}

/// `chat_id: -100123` and `chat_id: "@channel"` alike.
fn number_or_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(i64),
        Text(String),
    }
    Ok(
        Option::<NumberOrText>::deserialize(deserializer)?.map(|value| match value {
            NumberOrText::Number(number) => number.to_string(),
            NumberOrText::Text(text) => text,
        }),
    )
}

/// Why a secret must not be sent to `url`, and the fix; `None` when it may. `official` is
/// the service's own host (`hooks.slack.com`), the only one allowed besides this machine;
/// without one, any host over `https`. `allow_insecure` allows anything.
pub fn secret_destination_problem(
    url: &str,
    official: Option<&str>,
    allow_insecure: bool,
) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host
            .rsplit_once(':')
            .map_or(host.as_str(), |(name, _)| name),
    };
    let loopback = monitor_wire::host::is_loopback(name);
    if allow_insecure || loopback {
        return None;
    }
    match official {
        Some(official) if scheme != "https" || name != official => Some(format!(
            "{scheme}://{host} is not https://{official}: the secret would go elsewhere; use https://{official}, a relay on this machine, or set allow_insecure: true if you mean it"
        )),
        None if scheme != "https" => Some(format!(
            "{scheme}://{host} is plain http to another machine: the secret would cross the network in clear; use https, a server on this machine, or set allow_insecure: true if you mean it"
        )),
        _ => None,
    }
}

/// Every problem of the Slack and Telegram entries of `delivery`.
pub(super) fn validate(delivery: &DeliverySettings, file: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |field: String, message: String| {
        problems.push(Problem::at_field(file, field, message));
    };
    for (index, slack) in delivery.slack.iter().enumerate() {
        let field = format!("delivery.slack[{index}]");
        let sources = [
            slack.webhook_url.is_some(),
            slack.webhook_url_file.is_some(),
            slack.webhook_url_env.is_some(),
        ];
        if sources.iter().filter(|set| **set).count() != 1 {
            problem(
                field.clone(),
                "set exactly one of webhook_url, webhook_url_file and webhook_url_env (the Incoming Webhooks page of your Slack app shows the URL)".to_owned(),
            );
        }
        if let Some(url) = &slack.webhook_url {
            if let Some(message) =
                secret_destination_problem(url, Some("hooks.slack.com"), slack.allow_insecure)
            {
                problem(format!("{field}.webhook_url"), message);
            }
        }
        check_entries(&mut problem, &field, &slack.checks);
    }
    for (index, telegram) in delivery.telegram.iter().enumerate() {
        let field = format!("delivery.telegram[{index}]");
        let sources = [
            telegram.bot_token.is_some(),
            telegram.bot_token_file.is_some(),
            telegram.bot_token_env.is_some(),
        ];
        if sources.iter().filter(|set| **set).count() != 1 {
            problem(
                field.clone(),
                "set exactly one of bot_token, bot_token_file and bot_token_env (@BotFather gives the token)".to_owned(),
            );
        }
        if telegram
            .chat_id
            .as_deref()
            .is_none_or(|chat| chat.trim().is_empty())
        {
            problem(
                format!("{field}.chat_id"),
                "missing: write the chat's number (-1001234567890 for a group) or @channelusername"
                    .to_owned(),
            );
        }
        if let Some(message) =
            secret_destination_problem(&telegram.api_url, None, telegram.allow_insecure)
        {
            problem(format!("{field}.api_url"), message);
        }
        check_entries(&mut problem, &field, &telegram.checks);
    }
    problems
}

fn check_entries(problem: &mut impl FnMut(String, String), field: &str, checks: &[String]) {
    for message in checks
        .iter()
        .filter_map(|entry| checks_entry_problem(entry))
    {
        problem(format!("{field}.checks"), message);
    }
}
