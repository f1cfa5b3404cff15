//! The sender of the chat services (Slack, Telegram): the agent's own destination of the
//! service (`monitor-channels`), one per channel so that each keeps its pace and its
//! backoff, fed the notification's latest alert per subject.
//!
//! The alerts are Mender's wire alerts, which name no check: they go out as alerts of no
//! known check, and the message shows their subject instead.

use std::collections::HashSet;

use monitor_destination::{Destination, OutgoingAlert, Verdict};
use monitor_wire::Alert;

use super::sender::{ChannelSender, Outgoing, PerChannel, SendFailure, SendFuture, SubjectDigest};
use super::TargetPolicy;

/// Makes a channel's destination from its target, or says why it cannot (no secret).
pub(super) type MakeDestination =
    fn(&str, TargetPolicy, &reqwest::Client) -> Result<Box<dyn Destination>, String>;

pub(super) struct ChatSender {
    /// `Slack`, `Telegram`: for messages.
    service: &'static str,
    http: reqwest::Client,
    targets: TargetPolicy,
    make: MakeDestination,
    destinations: PerChannel<Box<dyn Destination>>,
}

impl ChatSender {
    pub(super) fn new(
        service: &'static str,
        targets: TargetPolicy,
        make: MakeDestination,
    ) -> Result<ChatSender, String> {
        let http = reqwest::Client::builder()
            // A redirect could lead away from the service's hosts, past the target rule.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| format!("cannot make the HTTP client for {service}: {error}"))?;
        Ok(ChatSender {
            service,
            http,
            targets,
            make,
            destinations: PerChannel::default(),
        })
    }
}

impl ChannelSender for ChatSender {
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
                (self.make)(message.target, self.targets, &self.http).map_err(|error| {
                    SendFailure::Refused {
                        reason: format!("channel {}: {error}", message.channel_name),
                    }
                })
            })?;
            send(self.service, destination.as_mut(), message, digest).await
        })
    }
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
    service: &str,
    destination: &mut dyn Destination,
    notification: &Outgoing<'_>,
    digest: &[SubjectDigest],
) -> Result<(), SendFailure> {
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
        failure(service, verdict, notification)?;
    }
    Ok(())
}

/// What the notifier makes of the service's verdict: a retry after its wait, or a failure
/// for good (refused, or the channel cannot post).
fn failure(service: &str, verdict: Verdict, channel: &Outgoing<'_>) -> Result<(), SendFailure> {
    match verdict {
        Verdict::Delivered => Ok(()),
        Verdict::Retry { after, message, .. } => Err(SendFailure::Retry {
            after,
            reason: message,
        }),
        Verdict::Rejected { message, .. } => Err(SendFailure::Refused {
            reason: format!("{service} refused the message: {message}"),
        }),
        Verdict::Gone { message } => Err(SendFailure::Refused {
            reason: format!(
                "channel {} cannot post ({message}): remove the channel or add it again with new settings",
                channel.channel_name
            ),
        }),
    }
}
