//! Discord notifications through the agent's own client (`monitor-discord`): one embed per
//! subject, red or green, within Discord's limits and rate limits.

use monitor_discord::{DiscordClient, FailureKind, WebhookConfig, WebhookUrl};
use monitor_wire::{CheckId, HistoryRecord, Subsystem};

use super::{SendFailure, SubjectDigest};
use crate::storage::{Channel, ClaimedNotification};

pub(super) fn client(
    channel: &Channel,
    http: &reqwest::Client,
) -> Result<DiscordClient, SendFailure> {
    let url = WebhookUrl::parse(&channel.target).map_err(|error| SendFailure::Refused {
        reason: format!("channel {}: {error}", channel.name),
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

pub(super) async fn send(
    client: &mut DiscordClient,
    notification: &ClaimedNotification,
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
        .deliver(&notification.device_name, &records)
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
                    notification.channel.name
                ),
            },
        })
}
