//! Telegram notifications through the agent's own destination (`monitor-channels`'
//! [`TelegramDestination`]).
//!
//! The target is one string, the bot's Bot API URL followed by the chat:
//! `https://api.telegram.org/bot<token>/<chat id>` (`channel telegram` builds it from
//! `--chat-id` and the token on standard input). It is a secret: shown with the token's
//! secret part as `***`.

use monitor_channels::telegram::{TelegramConfig, TelegramDestination};
use monitor_destination::Destination;

use super::chat::ChatSender;
use super::sender::{ChannelForm, ChannelKindSpec, NewSender, SenderSettings};
use super::TargetPolicy;

/// Telegram channels: a bot and a chat.
pub(super) const KIND: ChannelKindSpec = ChannelKindSpec {
    name: "telegram",
    validate_target,
    shown_target,
    default_name: |target| {
        TelegramConfig::parse_target(target).map_or_else(
            |_| "telegram".to_owned(),
            |config| format!("telegram {}", config.chat_id),
        )
    },
    form: ChannelForm {
        heading: "Add a Telegram chat",
        target_label: "https://api.telegram.org/bot<token>/<chat id>",
        target_input: "password",
        name_placeholder: "on-call group",
    },
    new_sender,
};

fn validate_target(target: &str, policy: TargetPolicy) -> Result<(), String> {
    let config =
        TelegramConfig::parse_target(target).map_err(|error| format!("target: {error}"))?;
    allowed(&config, policy).map_err(|error| format!("target: {error}"))
}

/// Whether the policy lets the server post to the Bot API server.
fn allowed(config: &TelegramConfig, policy: TargetPolicy) -> Result<(), String> {
    if policy == TargetPolicy::AnyHost || config.is_telegram() {
        return Ok(());
    }
    Err(format!(
        "the bot must post through https://api.telegram.org, not {}: start the server with \
         --allow-private-targets to use a self-hosted Bot API server or a stand-in",
        config.api_url()
    ))
}

fn shown_target(target: &str) -> String {
    TelegramConfig::parse_target(target).map_or_else(
        |_| "<invalid Telegram target>".to_owned(),
        |config| config.redacted(),
    )
}

fn new_sender(settings: &SenderSettings<'_>) -> NewSender {
    let sender = ChatSender::new("Telegram", settings.targets, destination)?;
    Ok(Some(Box::new(sender)))
}

fn destination(
    target: &str,
    policy: TargetPolicy,
    http: &reqwest::Client,
) -> Result<Box<dyn Destination>, String> {
    let config = TelegramConfig::parse_target(target).map_err(|error| error.to_string())?;
    // A channel stored before the rule, or by a server started with the flag.
    allowed(&config, policy)?;
    Ok(Box::new(TelegramDestination::new(config, http.clone())))
}
