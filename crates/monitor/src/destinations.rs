//! The delivery destinations the settings name (Discord webhooks, the backend), resolved:
//! secrets read from their files or variables, URLs parsed, names given. Shared by the
//! agent's delivery and by `monitorctl notify-failure`, which delivers without the agent.

use std::time::Duration;

use monitor_backend::Auth;
use monitor_config::{BackendAuth, DiscordSettings, MinLevel, Settings};
use monitor_discord::{WebhookConfig, WebhookUrl};
use monitor_wire::{HistoryRecord, Level};

/// A destination ready to start. `name` is its key in the outbox (`backend`,
/// `discord:<webhook id>`); `identity` changes whenever its settings do (it holds secrets:
/// compare it, never print it).
pub struct PlannedDestination {
    pub name: String,
    pub identity: String,
    pub plan: DestinationPlan,
}

/// Every destination of `settings.delivery`, and a problem (file and field named, no
/// secret) for each that cannot be used.
pub fn plan_destinations(settings: &Settings) -> (Vec<PlannedDestination>, Vec<String>) {
    let mut planned = Vec::new();
    let mut problems = Vec::new();
    for (index, discord) in settings.delivery.discord.iter().enumerate() {
        match discord_plan(discord) {
            Ok((name, identity, plan)) => planned.push(PlannedDestination {
                name,
                identity,
                plan,
            }),
            Err(message) => problems.push(format!(
                "monitor.yaml: delivery.discord[{index}]: {message}; this webhook gets nothing"
            )),
        }
    }
    if let Some(backend) = &settings.delivery.backend {
        match backend_plan(backend) {
            Ok((identity, plan)) => planned.push(PlannedDestination {
                name: "backend".into(),
                identity,
                plan,
            }),
            Err(message) => problems.push(format!(
                "monitor.yaml: delivery.backend: {message}; the backend gets nothing"
            )),
        }
    }
    (planned, problems)
}

/// The device's name in alerts: `device_id` from monitor.yaml, else the hostname.
pub fn device_id(settings: &Settings) -> String {
    settings.device_id.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "unknown-device".into())
    })
}

/// What a destination needs to start.
pub enum DestinationPlan {
    Discord {
        config: WebhookConfig,
        filter: Filter,
    },
    Backend {
        auth: Auth,
        ca_file: Option<std::path::PathBuf>,
        push_every: Duration,
    },
}

/// Which alerts a Discord webhook wants (`min_level`, `checks`).
#[derive(Clone)]
pub struct Filter {
    min_level: MinLevel,
    checks: Vec<String>,
}

impl Filter {
    pub fn wants(&self, record: &HistoryRecord) -> bool {
        if self.min_level == MinLevel::Critical && record.alert.level != Level::Critical {
            return false;
        }
        self.checks.is_empty()
            || self.checks.iter().any(|entry| {
                let mut words = entry.split_whitespace();
                let subsystem = words.next().unwrap_or_default();
                subsystem == record.check.subsystem.as_str()
                    && words.next().is_none_or(|name| name == record.check.name)
            })
    }
}

/// The webhook's name in the outbox is its id: reordering webhooks keeps their progress.
fn discord_plan(settings: &DiscordSettings) -> Result<(String, String, DestinationPlan), String> {
    let text = if let Some(url) = &settings.webhook_url {
        url.clone()
    } else if let Some(file) = &settings.webhook_url_file {
        std::fs::read_to_string(file)
            .map_err(|error| format!("cannot read webhook_url_file {}: {error}", file.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    } else if let Some(variable) = &settings.webhook_url_env {
        std::env::var(variable).map_err(|_| {
            format!("the environment variable {variable} (webhook_url_env) is not set")
        })?
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
    let config = WebhookConfig {
        url,
        username: settings.username.clone(),
        avatar_url: settings.avatar_url.clone(),
    };
    let filter = Filter {
        min_level: settings.min_level,
        checks: settings.checks.clone(),
    };
    Ok((name, identity, DestinationPlan::Discord { config, filter }))
}

fn backend_plan(
    settings: &monitor_config::BackendSettings,
) -> Result<(String, DestinationPlan), String> {
    let auth = match settings.auth {
        BackendAuth::Mender => Auth::Mender {
            bus_address: settings.mender_bus.clone(),
        },
        BackendAuth::Token => {
            let token = if let Some(file) = &settings.token_file {
                std::fs::read_to_string(file)
                    .map_err(|error| format!("cannot read token_file {}: {error}", file.display()))?
                    .trim()
                    .to_owned()
            } else if let Some(variable) = &settings.token_env {
                std::env::var(variable).map_err(|_| {
                    format!("the environment variable {variable} (token_env) is not set")
                })?
            } else {
                return Err("auth: token needs token_file or token_env".into());
            };
            let server_url = settings.url.clone().ok_or("auth: token needs url")?;
            Auth::Token { server_url, token }
        }
    };
    let identity = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        settings.url,
        settings.auth,
        settings.token_file,
        settings.token_env,
        settings.ca_file,
        settings.mender_bus,
        settings.config_push_interval
    );
    Ok((
        identity,
        DestinationPlan::Backend {
            auth,
            ca_file: settings.ca_file.clone(),
            push_every: settings.config_push_interval,
        },
    ))
}
