//! Generic webhook notifications through the agent's own destination (`monitor-channels`'
//! [`WebhookDestination`]): a JSON POST per subject, signed when the channel has a secret.
//!
//! The target is one line: the URL, then optionally a space and the shared secret
//! (`https://hooks.example/in s3cret`). It is shown as `https://hooks.example/… (signed)`.

use std::collections::HashMap;
use std::net::IpAddr;

use monitor_channels::webhook::{ReceiverUrl, SigningSecret, WebhookConfig, WebhookDestination};
use monitor_destination::{Destination, OutgoingAlert, Verdict};
use monitor_wire::Alert;
use reqwest::header::HeaderMap;

use super::sender::{
    ChannelForm, ChannelKindSpec, ChannelSender, NewSender, Outgoing, SendFailure, SendFuture,
    SenderSettings, SubjectDigest,
};
use super::TargetPolicy;

/// Webhook channels: a URL and an optional secret, shown redacted.
pub(super) const KIND: ChannelKindSpec = ChannelKindSpec {
    name: "webhook",
    validate_target,
    shown_target,
    default_name: |target| {
        parse(target).map_or_else(|_| "webhook".to_owned(), |(url, _)| url.host().to_owned())
    },
    form: ChannelForm {
        heading: "Add a webhook",
        target_label: "URL, then a space and the signing secret (optional)",
        target_input: "password",
        name_placeholder: "ops receiver",
    },
    new_sender,
};

/// The URL and the secret of a target.
fn parse(target: &str) -> Result<(ReceiverUrl, Option<&str>), String> {
    let target = target.trim();
    let (url, secret) = match target.split_once(char::is_whitespace) {
        Some((url, secret)) => (url, Some(secret.trim()).filter(|secret| !secret.is_empty())),
        None => (target, None),
    };
    // The policy, not the URL's scheme alone, decides where the server may post.
    let url = ReceiverUrl::parse(url, true).map_err(|error| error.to_string())?;
    Ok((url, secret))
}

fn validate_target(target: &str, policy: TargetPolicy) -> Result<(), String> {
    let (url, _) = parse(target).map_err(|error| format!("target: {error}"))?;
    public_https(url.url(), policy).map_err(|error| format!("target: {error}"))
}

/// Under [`TargetPolicy::PublicServicesOnly`]: `https`, and no host that is a private,
/// loopback or link-local address (or `localhost`).
pub(super) fn public_https(url: &reqwest::Url, policy: TargetPolicy) -> Result<(), String> {
    if policy == TargetPolicy::AnyHost {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    if url.scheme() != "https" || private_host(host) {
        return Err(format!(
            "{}://{host} is not a public https address: start the server with \
             --allow-private-targets to post to a receiver on your network",
            url.scheme()
        ));
    }
    Ok(())
}

/// Whether `host` is `localhost` or a private, loopback, link-local or carrier-grade NAT
/// address (in brackets or not): somewhere on the server's own network.
pub(super) fn private_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || match bare.parse::<IpAddr>() {
            Ok(IpAddr::V4(address)) => {
                address.is_private()
                    || address.is_loopback()
                    || address.is_link_local()
                    || address.is_unspecified()
                    || address.is_broadcast()
                    // 100.64.0.0/10, carrier-grade NAT.
                    || (address.octets()[0] == 100 && (address.octets()[1] & 0xC0) == 64)
            }
            Ok(IpAddr::V6(address)) => {
                address.is_loopback()
                    || address.is_unspecified()
                    // fc00::/7 unique local, fe80::/10 link-local.
                    || (address.segments()[0] & 0xFE00) == 0xFC00
                    || (address.segments()[0] & 0xFFC0) == 0xFE80
                    || address.to_ipv4_mapped().is_some()
            }
            Err(_) => false,
        }
}

fn shown_target(target: &str) -> String {
    match parse(target) {
        Ok((url, Some(_))) => format!("{} (signed)", url.redacted()),
        Ok((url, None)) => url.redacted(),
        Err(_) => "<invalid webhook URL>".to_owned(),
    }
}

fn new_sender(settings: &SenderSettings<'_>) -> NewSender {
    let http = no_redirects("the webhook")?;
    Ok(Some(Box::new(WebhookSender {
        http,
        targets: settings.targets,
        destinations: HashMap::new(),
    })))
}

/// A client that follows no redirect: one could lead past the target rule.
pub(super) fn no_redirects(service: &str) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| format!("cannot make the HTTP client for {service}: {error}"))
}

struct WebhookSender {
    http: reqwest::Client,
    targets: TargetPolicy,
    /// One destination per channel, so each keeps its backoff.
    destinations: HashMap<String, WebhookDestination>,
}

impl ChannelSender for WebhookSender {
    fn send<'a>(
        &'a mut self,
        message: &'a Outgoing<'a>,
        digest: &'a [SubjectDigest],
    ) -> SendFuture<'a> {
        Box::pin(async move {
            let destination = match self.destinations.get_mut(message.channel_id) {
                Some(destination) => destination,
                None => {
                    let destination = destination(message, self.targets, &self.http)?;
                    self.destinations
                        .entry(message.channel_id.to_owned())
                        .or_insert(destination)
                }
            };
            send_digest(destination, "the webhook", message, digest).await
        })
    }
}

fn destination(
    channel: &Outgoing<'_>,
    targets: TargetPolicy,
    http: &reqwest::Client,
) -> Result<WebhookDestination, SendFailure> {
    let refused = |error: String| SendFailure::Refused {
        reason: format!("channel {}: {error}", channel.channel_name),
    };
    let (url, secret) = parse(channel.target).map_err(refused)?;
    // A channel stored before the rule, or by a server started with the flag.
    public_https(url.url(), targets).map_err(refused)?;
    let config = WebhookConfig {
        url,
        template: None,
        headers: HeaderMap::new(),
        secret: secret.map(|secret| SigningSecret::new(secret.as_bytes())),
    };
    Ok(WebhookDestination::new(config, http.clone()))
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

/// Delivers each subject's latest alert as an alert of no known check (the server's alerts
/// name none), and says what the verdict means for the notification.
pub(super) async fn send_digest(
    destination: &mut dyn Destination,
    service: &str,
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
        match destination.deliver(notification.device_name, batch).await {
            Verdict::Delivered => {}
            Verdict::Retry { after, message, .. } => {
                return Err(SendFailure::Retry {
                    after,
                    reason: message,
                })
            }
            Verdict::Rejected { message, .. } => {
                return Err(SendFailure::Refused {
                    reason: format!("{service} refused the message: {message}"),
                })
            }
            // 401, 403, 404, 410: the message says which, without the target's secret.
            Verdict::Gone { message } => {
                return Err(SendFailure::Refused {
                    reason: format!(
                    "channel {} cannot post ({message}): remove the channel or give a new target",
                    notification.channel_name
                ),
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_a_url_and_an_optional_secret_shown_redacted() {
        let shown = shown_target("https://hooks.example/in/abc s3cret");
        assert_eq!(shown, "https://hooks.example/… (signed)");
        assert_eq!(
            shown_target("https://hooks.example/in"),
            "https://hooks.example/…"
        );
        let public = TargetPolicy::PublicServicesOnly;
        assert!(validate_target("https://hooks.example/in s", public).is_ok());
        for private in [
            "http://hooks.example/in",
            "https://127.0.0.1/in",
            "https://10.1.2.3/in",
            "https://169.254.169.254/latest",
            "https://[fd00::1]/in",
            "https://localhost/in",
        ] {
            let error = validate_target(private, public).unwrap_err();
            assert!(error.contains("--allow-private-targets"), "{error}");
        }
        assert!(validate_target("http://10.1.2.3/in", TargetPolicy::AnyHost).is_ok());
    }
}
