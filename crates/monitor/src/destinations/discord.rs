//! `delivery.discord[]`: Discord webhooks.

use std::sync::LazyLock;

use monitor_config::{DiscordSettings, MinLevel};
use monitor_destination::{Filter, PlannedDestination};
use monitor_discord::{DiscordClient, DiscordDestination, GlobalPause, WebhookConfig, WebhookUrl};
use monitor_wire::Level;

use super::secret;

/// A global 429 or a Cloudflare ban pauses every webhook of this process: they share its
/// address.
static PAUSE: LazyLock<GlobalPause> = LazyLock::new(GlobalPause::default);

/// The webhook's name in the outbox is its id: reordering webhooks keeps their progress.
pub(super) fn plan(settings: &DiscordSettings) -> Result<PlannedDestination, String> {
    let text = if let Some(url) = &settings.webhook_url {
        url.clone()
    } else if let Some(file) = &settings.webhook_url_file {
        secret::from_file(file, "webhook_url_file")?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    } else if let Some(variable) = &settings.webhook_url_env {
        secret::from_env(variable, "webhook_url_env")?
    } else {
        return Err("no webhook_url, webhook_url_file or webhook_url_env".into());
    };
    let url = WebhookUrl::parse(&text).map_err(|error| error.to_string())?;
    let name = format!("discord:{}", url.id());
    let identity = format!(
        "{}|{:?}|{:?}|{:?}|{:?}|{}",
        url.post_url(),
        settings.username,
        settings.avatar_url,
        settings.min_level,
        settings.checks,
        url.redacted()
    );
    let min_level = match settings.min_level {
        MinLevel::Ok => Level::Ok,
        MinLevel::Critical => Level::Critical,
    };
    let config = WebhookConfig {
        url,
        username: settings.username.clone(),
        avatar_url: settings.avatar_url.clone(),
    };
    Ok(PlannedDestination {
        name,
        identity,
        filter: Filter::new(min_level, settings.checks.clone()),
        start: Box::new(move || {
            let http = monitor_backend::http_client(None).map_err(|error| error.to_string())?;
            let client = DiscordClient::new(config, http);
            Ok(Box::new(DiscordDestination::new(client, PAUSE.clone())))
        }),
    })
}
