//! `delivery.ntfy[]`: ntfy topics.

use monitor_channels::ntfy::{NtfyAuth, NtfyConfig, NtfyDestination, Priority, TopicUrl};
use monitor_config::{MinLevel, NtfySettings};
use monitor_destination::{Filter, PlannedDestination};
use monitor_wire::Level;

use super::secret;

/// The topic's name in the outbox is `ntfy:<host>/<topic>`.
pub(super) fn plan(settings: &NtfySettings) -> Result<PlannedDestination, String> {
    let topic = TopicUrl::parse(&settings.url, settings.allow_insecure)
        .map_err(|error| format!("url: {error}"))?;
    let auth = if let Some(file) = &settings.token_file {
        NtfyAuth::Token(secret::from_file(file, "token_file")?.trim().to_owned())
    } else if let Some(variable) = &settings.token_env {
        NtfyAuth::Token(secret::from_env(variable, "token_env")?)
    } else if let Some(user) = &settings.username {
        let password = if let Some(file) = &settings.password_file {
            secret::from_file(file, "password_file")?
                .trim_end_matches(['\r', '\n'])
                .to_owned()
        } else if let Some(variable) = &settings.password_env {
            secret::from_env(variable, "password_env")?
        } else {
            return Err("username needs password_file or password_env".into());
        };
        NtfyAuth::Basic {
            user: user.clone(),
            password,
        }
    } else {
        NtfyAuth::None
    };
    let priority = |text: String, level: &str| {
        Priority::parse(&text).map_err(|error| format!("priority.{level}: {error}"))
    };
    let config = NtfyConfig {
        topic,
        auth,
        critical_priority: priority(settings.priority.critical.as_text(), "CRITICAL")?,
        ok_priority: priority(settings.priority.ok.as_text(), "OK")?,
        tags: settings.tags.clone(),
        click_url: settings.click_url.clone(),
    };
    let name = format!("ntfy:{}", config.topic.name());
    // Compared in memory only: a changed token restarts the destination.
    let identity = format!(
        "{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        settings.url,
        settings.allow_insecure,
        auth_identity(&config.auth),
        settings.token_file,
        settings.password_file,
        settings.priority,
        settings.tags,
        settings.click_url,
        settings.min_level,
        settings.checks,
        settings.username,
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
            Ok(Box::new(NtfyDestination::new(config, http)))
        }),
    })
}

fn auth_identity(auth: &NtfyAuth) -> String {
    match auth {
        NtfyAuth::None => String::new(),
        NtfyAuth::Token(token) => format!("token {token}"),
        NtfyAuth::Basic { user, password } => format!("basic {user}:{password}"),
    }
}
