//! `delivery.webhook[]`: generic webhooks, a JSON POST per alert, optionally signed.

use monitor_channels::webhook::{
    parse_headers, ReceiverUrl, SigningSecret, Template, WebhookConfig, WebhookDestination,
};
use monitor_config::{MinLevel, WebhookSettings};
use monitor_destination::{Filter, PlannedDestination};
use monitor_wire::Level;

use super::secret;

/// The webhook's name in the outbox is its host and a digest of its URL: no secret, the same
/// wherever it is in the list.
pub(super) fn plan(settings: &WebhookSettings) -> Result<PlannedDestination, String> {
    let url = ReceiverUrl::parse(&settings.url, settings.allow_insecure)
        .map_err(|error| error.to_string())?;
    let template = settings
        .template
        .as_deref()
        .map(Template::parse)
        .transpose()
        .map_err(|error| error.to_string())?;
    let headers = parse_headers(
        settings
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    )
    .map_err(|error| error.to_string())?;
    let secret = if let Some(file) = &settings.secret_file {
        Some(secret::from_file(file, "secret_file")?.trim().to_owned())
    } else if let Some(variable) = &settings.secret_env {
        Some(secret::from_env(variable, "secret_env")?)
    } else {
        None
    };
    if secret.as_deref() == Some("") {
        return Err("the signing secret is empty: put the shared secret in it".into());
    }
    let name = format!("webhook:{}", url.stable_id());
    // Compared in memory only: a changed secret restarts the destination.
    let identity = format!(
        "{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        settings.url,
        settings.allow_insecure,
        settings.template,
        settings.headers,
        secret,
        settings.min_level,
        settings.checks,
        settings.secret_file
    );
    let min_level = match settings.min_level {
        MinLevel::Ok => Level::Ok,
        MinLevel::Critical => Level::Critical,
    };
    let config = WebhookConfig {
        url,
        template,
        headers,
        secret: secret.map(|secret| SigningSecret::new(secret.as_bytes())),
    };
    Ok(PlannedDestination {
        name,
        identity,
        filter: Filter::new(min_level, settings.checks.clone()),
        start: Box::new(move || {
            let http = monitor_backend::http_client(None).map_err(|error| error.to_string())?;
            Ok(Box::new(WebhookDestination::new(config, http)))
        }),
    })
}
