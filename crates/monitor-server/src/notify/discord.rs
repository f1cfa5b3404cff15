//! Discord notifications through the agent's own destination (`monitor-discord`'s
//! [`DiscordDestination`]): one embed per subject, red or green, within Discord's limits and
//! rate limits.
//!
//! The alerts are Mender's wire alerts, which name no check: they go out as alerts of no
//! known check, and the embed shows their subject instead.

use std::collections::HashSet;

use monitor_destination::{Destination, OutgoingAlert, Verdict};
use monitor_discord::{DiscordClient, DiscordDestination, GlobalPause, WebhookConfig, WebhookUrl};
use monitor_wire::Alert;
use tokio::time::Instant;

use super::sender::{
    ChannelForm, ChannelKindSpec, ChannelSender, NewSender, Outgoing, PerChannel, SendFailure,
    SendFuture, SenderSettings, SubjectDigest,
};
use super::TargetPolicy;

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

/// Discord's own webhook hosts; anything else needs `--allow-private-targets`.
const DISCORD_HOSTS: [&str; 6] = [
    "discord.com",
    "discordapp.com",
    "canary.discord.com",
    "ptb.discord.com",
    "canary.discordapp.com",
    "ptb.discordapp.com",
];

fn validate_target(target: &str, policy: TargetPolicy) -> Result<(), String> {
    let url = WebhookUrl::parse(target).map_err(|error| format!("target: {error}"))?;
    allowed(&url, policy).map_err(|error| format!("target: {error}"))
}

/// Whether the policy lets the server post to the webhook's host.
fn allowed(url: &WebhookUrl, policy: TargetPolicy) -> Result<(), String> {
    if policy == TargetPolicy::AnyHost {
        return Ok(());
    }
    let host = url.host().to_ascii_lowercase();
    let host = host.strip_suffix(":443").unwrap_or(&host);
    if url.scheme() == "https" && DISCORD_HOSTS.contains(&host) {
        return Ok(());
    }
    Err(format!(
        "the webhook URL must be https://discord.com/api/webhooks/… (or discordapp.com, \
         canary. or ptb.), not {}://{}: start the server with --allow-private-targets to \
         post to a relay or a stand-in on your network",
        url.scheme(),
        url.host()
    ))
}

fn shown_target(target: &str) -> String {
    WebhookUrl::parse(target)
        .map_or_else(|_| "<invalid webhook URL>".to_owned(), |url| url.redacted())
}

fn new_sender(settings: &SenderSettings<'_>) -> NewSender {
    let http = reqwest::Client::builder()
        // A redirect could lead away from Discord's hosts, past the target rule.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| format!("cannot make the HTTP client for Discord: {error}"))?;
    Ok(Some(Box::new(DiscordSender {
        http,
        targets: settings.targets,
        pause: GlobalPause::default(),
        destinations: PerChannel::default(),
    })))
}

struct DiscordSender {
    http: reqwest::Client,
    targets: TargetPolicy,
    /// A global rate limit or a ban hits this server's address: every webhook pauses alike.
    pause: GlobalPause,
    /// One destination per channel, so each keeps its webhook's rate-limit state.
    destinations: PerChannel<DiscordDestination>,
}

impl ChannelSender for DiscordSender {
    fn keep_only(&mut self, channels: &HashSet<&str>) {
        self.destinations.keep_only(channels);
    }

    fn send<'a>(
        &'a mut self,
        message: &'a Outgoing<'a>,
        digest: &'a [SubjectDigest],
    ) -> SendFuture<'a> {
        Box::pin(async move {
            let destination = self.destinations.get_or_make(message.channel_id, || {
                destination(message, self.targets, &self.http, &self.pause)
            })?;
            send(destination, message, digest).await
        })
    }
}

fn destination(
    channel: &Outgoing<'_>,
    targets: TargetPolicy,
    http: &reqwest::Client,
    pause: &GlobalPause,
) -> Result<DiscordDestination, SendFailure> {
    let url = WebhookUrl::parse(channel.target).map_err(|error| SendFailure::Refused {
        reason: format!("channel {}: {error}", channel.channel_name),
    })?;
    // A channel stored before the rule, or by a server started with the flag.
    allowed(&url, targets).map_err(|error| SendFailure::Refused {
        reason: format!("channel {}: {error}", channel.channel_name),
    })?;
    let client = DiscordClient::new(
        WebhookConfig {
            url,
            username: Some("monitor-server".into()),
            avatar_url: None,
        },
        http.clone(),
    );
    Ok(DiscordDestination::new(client, pause.clone()))
}

/// The subject's latest alert, saying how many changes it stands for when more than one.
fn latest_alert(entry: &SubjectDigest) -> Alert {
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
    alert
}

async fn send(
    destination: &mut DiscordDestination,
    notification: &Outgoing<'_>,
    digest: &[SubjectDigest],
) -> Result<(), SendFailure> {
    if let Some(until) = destination.paused_until() {
        return Err(SendFailure::Retry {
            after: until.saturating_duration_since(Instant::now()),
            reason: "Discord paused every webhook of this server (a global rate limit or a ban)"
                .into(),
        });
    }
    let alerts: Vec<Alert> = digest.iter().map(latest_alert).collect();
    let outgoing: Vec<OutgoingAlert<'_>> = digest
        .iter()
        .zip(&alerts)
        .map(|(entry, alert)| OutgoingAlert {
            seq: u64::try_from(entry.latest.id).unwrap_or_default(),
            check: None,
            alert,
            link: notification.device_page,
        })
        .collect();
    for batch in outgoing.chunks(destination.batch_size()) {
        let verdict = destination.deliver(notification.device_name, batch).await;
        failure(verdict, notification)?;
    }
    Ok(())
}

/// What the notifier makes of Discord's verdict: a retry after Discord's wait, or a failure
/// for good (refused, or the webhook deleted).
fn failure(verdict: Verdict, channel: &Outgoing<'_>) -> Result<(), SendFailure> {
    match verdict {
        Verdict::Delivered => Ok(()),
        Verdict::Retry { after, message, .. } => Err(SendFailure::Retry {
            after,
            reason: message,
        }),
        Verdict::Rejected { message, .. } => Err(SendFailure::Refused {
            reason: format!("Discord refused the message: {message}"),
        }),
        // Deleted (404), a wrong token (401) or no access to its channel (403): the
        // destination's message says which, without the webhook's token.
        Verdict::Gone { message } => Err(SendFailure::Refused {
            reason: format!(
                "the webhook of channel {} cannot post ({message}): remove the channel or give a new webhook",
                channel.channel_name
            ),
        }),
    }
}
