//! Slack notifications through the agent's own destination (`monitor-channels`'
//! [`SlackDestination`]): an incoming webhook's URL is the target, a secret shown redacted.

use monitor_channels::slack::{SlackDestination, SlackWebhookUrl};
use monitor_destination::Destination;

use super::chat::ChatSender;
use super::sender::{ChannelForm, ChannelKindSpec, NewSender, SenderSettings};
use super::TargetPolicy;

/// Slack channels: an incoming webhook URL.
pub(super) const KIND: ChannelKindSpec = ChannelKindSpec {
    name: "slack",
    validate_target,
    shown_target,
    default_name: |_| "slack".to_owned(),
    form: ChannelForm {
        heading: "Add a Slack incoming webhook",
        target_label: "Webhook URL",
        target_input: "password",
        name_placeholder: "#alerts",
    },
    new_sender,
};

fn validate_target(target: &str, policy: TargetPolicy) -> Result<(), String> {
    let url = SlackWebhookUrl::parse(target).map_err(|error| format!("target: {error}"))?;
    allowed(&url, policy).map_err(|error| format!("target: {error}"))
}

/// Whether the policy lets the server post to the webhook's host.
fn allowed(url: &SlackWebhookUrl, policy: TargetPolicy) -> Result<(), String> {
    if policy == TargetPolicy::AnyHost || url.is_slack() {
        return Ok(());
    }
    Err(format!(
        "the webhook URL must be https://hooks.slack.com/services/…, not {}: start the server \
         with --allow-private-targets to post to a relay or a stand-in on your network",
        url.origin()
    ))
}

fn shown_target(target: &str) -> String {
    SlackWebhookUrl::parse(target)
        .map_or_else(|_| "<invalid webhook URL>".to_owned(), |url| url.redacted())
}

fn new_sender(settings: &SenderSettings<'_>) -> NewSender {
    let sender = ChatSender::new("Slack", settings.targets, destination)?;
    Ok(Some(Box::new(sender)))
}

fn destination(
    target: &str,
    policy: TargetPolicy,
    http: &reqwest::Client,
) -> Result<Box<dyn Destination>, String> {
    let url = SlackWebhookUrl::parse(target).map_err(|error| error.to_string())?;
    // A channel stored before the rule, or by a server started with the flag.
    allowed(&url, policy)?;
    Ok(Box::new(SlackDestination::new(url, http.clone())))
}
