//! `delivery.telegram[]`: a bot's messages to Telegram chats.

use monitor_channels::telegram::{BotToken, ChatId, TelegramConfig, TelegramDestination};
use monitor_config::{MinLevel, TelegramSettings};
use monitor_destination::{Filter, PlannedDestination};
use monitor_wire::Level;

use super::secret;

/// The chat's name in the outbox is `telegram:<chat id>` (no secret): reordering chats
/// keeps their progress.
pub(super) fn plan(settings: &TelegramSettings) -> Result<PlannedDestination, String> {
    let token = if let Some(token) = &settings.bot_token {
        token.clone()
    } else if let Some(file) = &settings.bot_token_file {
        secret::from_file(file, "bot_token_file")?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    } else if let Some(variable) = &settings.bot_token_env {
        secret::from_env(variable, "bot_token_env")?
    } else {
        return Err("no bot_token, bot_token_file or bot_token_env".into());
    };
    let token = BotToken::parse(&token).map_err(|error| error.to_string())?;
    let chat = settings.chat_id.as_deref().ok_or("no chat_id")?;
    let chat = ChatId::parse(chat).map_err(|error| error.to_string())?;
    let config = TelegramConfig::new(&settings.api_url, token, chat)
        .map_err(|error| format!("api_url: {error}"))?;
    if let Some(problem) =
        monitor_config::secret_destination_problem(config.api_url(), None, settings.allow_insecure)
    {
        return Err(format!("api_url: {problem}"));
    }
    let name = format!("telegram:{}", config.chat_id);
    let identity = format!(
        "{}|{}|{:?}|{:?}",
        config.target(),
        settings.allow_insecure,
        settings.min_level,
        settings.checks
    );
    let min_level = match settings.min_level {
        MinLevel::Ok => Level::Ok,
        MinLevel::Critical => Level::Critical,
    };
    Ok(PlannedDestination {
        name,
        identity,
        filter: Filter::new(min_level, settings.checks.clone()),
        start: Box::new(move || {
            let http = monitor_backend::http_client(None).map_err(|error| error.to_string())?;
            Ok(Box::new(TelegramDestination::new(config, http)))
        }),
    })
}
