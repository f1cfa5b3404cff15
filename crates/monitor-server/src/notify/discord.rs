//! Discord notifications through the agent's own client (`monitor-discord`): one embed per
//! subject, red or green, within Discord's limits and rate limits.

use std::collections::HashMap;

use monitor_discord::{DiscordClient, FailureKind, WebhookConfig, WebhookUrl};
use monitor_wire::{CheckId, HistoryRecord, Subsystem};

use super::sender::{
    ChannelForm, ChannelKindSpec, ChannelSender, NewSender, Outgoing, SendFailure, SendFuture,
    SenderSettings, SubjectDigest,
};

/// Discord channels: a webhook URL, a secret shown redacted.
pub(super) const KIND: ChannelKindSpec = ChannelKindSpec {
    name: "discord",
    validate_target,
    shown_target,
    default_name: |_| "discord".to_owned(),
    form: ChannelForm {
        heading: "Add a Discord webhook",
        target_label: "Webhook URL",
        target_input: "password",
        name_placeholder: "#alerts",
    },
    new_sender,
};

fn validate_target(target: &str) -> Result<(), String> {
    WebhookUrl::parse(target)
        .map(|_| ())
        .map_err(|error| format!("target: {error}"))
}

fn shown_target(target: &str) -> String {
    WebhookUrl::parse(target)
        .map_or_else(|_| "<invalid webhook URL>".to_owned(), |url| url.redacted())
}

fn new_sender(_: &SenderSettings<'_>) -> NewSender {
    let http = reqwest::Client::builder()
        .build()
        .map_err(|error| format!("cannot make the HTTP client for Discord: {error}"))?;
    Ok(Some(Box::new(DiscordSender {
        http,
        clients: HashMap::new(),
    })))
}

struct DiscordSender {
    http: reqwest::Client,
    /// One client per channel, so each keeps its webhook's rate-limit state.
    clients: HashMap<String, DiscordClient>,
}

impl ChannelSender for DiscordSender {
    fn send<'a>(
        &'a mut self,
        message: &'a Outgoing<'a>,
        digest: &'a [SubjectDigest],
    ) -> SendFuture<'a> {
        Box::pin(async move {
            let client = match self.clients.get_mut(message.channel_id) {
                Some(client) => client,
                None => {
                    let client = client(message, &self.http)?;
                    self.clients
                        .entry(message.channel_id.to_owned())
                        .or_insert(client)
                }
            };
            send(client, message, digest).await
        })
    }
}

fn client(channel: &Outgoing<'_>, http: &reqwest::Client) -> Result<DiscordClient, SendFailure> {
    let url = WebhookUrl::parse(channel.target).map_err(|error| SendFailure::Refused {
        reason: format!("channel {}: {error}", channel.channel_name),
    })?;
    Ok(DiscordClient::new(
        WebhookConfig {
            url,
            username: Some("monitor-server".into()),
            avatar_url: None,
        },
        http.clone(),
    ))
}

/// The subject's check as the agent names it, from the alert's subject type.
fn check_of(kind: &str, name: &str) -> CheckId {
    let subsystem = match kind {
        "log" => Subsystem::Log,
        "dbus" => Subsystem::Dbus,
        "docker_event" | "dockerevents" => Subsystem::Dockerevents,
        "monitor" => Subsystem::Monitor,
        _ => Subsystem::Service,
    };
    CheckId::new(subsystem, name)
}

async fn send(
    client: &mut DiscordClient,
    notification: &Outgoing<'_>,
    digest: &[SubjectDigest],
) -> Result<(), SendFailure> {
    let records: Vec<HistoryRecord> = digest
        .iter()
        .map(|entry| {
            let mut alert = entry.latest.alert.clone();
            if entry.changes > 1 {
                let note = format!(
                    "{} changes since the last message; this is the latest.",
                    entry.changes
                );
                alert.subject.details.description = Some(match alert.subject.details.description {
                    Some(description) => format!("{note}\n{description}"),
                    None => note,
                });
            }
            HistoryRecord {
                seq: u64::try_from(entry.latest.id).unwrap_or_default(),
                check: check_of(&alert.subject.kind, &alert.subject.name),
                alert,
            }
        })
        .collect();
    client
        .deliver(notification.device_name, &records)
        .await
        .map_err(|failure| match failure.kind {
            FailureKind::Retry { after, .. } => SendFailure::Retry {
                after,
                reason: failure.message,
            },
            FailureKind::Rejected { status } => SendFailure::Refused {
                reason: format!("Discord refused the message ({status}): {}", failure.message),
            },
            FailureKind::WebhookGone => SendFailure::Refused {
                reason: format!(
                    "the webhook of channel {} was deleted: remove the channel or give a new webhook",
                    notification.channel_name
                ),
            },
        })
}
