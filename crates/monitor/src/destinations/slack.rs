//! `delivery.slack[]`: Slack incoming webhooks.

use monitor_channels::slack::{SlackDestination, SlackWebhookUrl};
use monitor_config::{MinLevel, SlackSettings};
use monitor_destination::{Filter, PlannedDestination};
use monitor_wire::Level;

use super::secret;

/// The webhook's name in the outbox is `slack:<team>/<bot>`, its ids (the secret is the
/// URL's last segment): reordering webhooks keeps their progress.
pub(super) fn plan(settings: &SlackSettings) -> Result<PlannedDestination, String> {
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
    let url = SlackWebhookUrl::parse(&text).map_err(|error| error.to_string())?;
    if let Some(problem) = monitor_config::secret_destination_problem(
        &url.origin(),
        Some("hooks.slack.com"),
        settings.allow_insecure,
    ) {
        return Err(format!("the webhook URL {}: {problem}", url.redacted()));
    }
    let name = format!("slack:{}", url.id());
    let identity = format!(
        "{}|{}|{:?}|{:?}",
        url.post_url(),
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
            Ok(Box::new(SlackDestination::new(url, http)))
        }),
    })
}
