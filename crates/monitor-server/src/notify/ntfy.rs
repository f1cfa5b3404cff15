//! ntfy notifications through the agent's own destination (`monitor-channels`'
//! [`NtfyDestination`]): a message per subject, priority and tags by level.
//!
//! The target is the topic URL; an access token goes in it as the user
//! (`https://tk_abc@ntfy.example/alerts`, sent as `Authorization: Bearer`), a user and
//! password as `https://user:password@ntfy.example/alerts` (basic auth). It is shown with
//! the secret as `***`.

use std::collections::HashMap;

use monitor_channels::ntfy::{NtfyAuth, NtfyConfig, NtfyDestination, Priority, TopicUrl};

use super::sender::{
    ChannelForm, ChannelKindSpec, ChannelSender, NewSender, Outgoing, SendFailure, SendFuture,
    SenderSettings, SubjectDigest,
};
use super::webhook::{no_redirects, public_https, send_digest};
use super::TargetPolicy;

/// ntfy channels: a topic URL, its token shown redacted.
pub(super) const KIND: ChannelKindSpec = ChannelKindSpec {
    name: "ntfy",
    validate_target,
    shown_target,
    default_name: |target| {
        parse(target).map_or_else(
            |_| "ntfy".to_owned(),
            |(topic, _)| topic.name().rsplit('/').next().unwrap_or("ntfy").to_owned(),
        )
    },
    form: ChannelForm {
        heading: "Add an ntfy topic",
        target_label: "Topic URL (https://tk_token@ntfy.example/topic for a token)",
        target_input: "password",
        name_placeholder: "phone",
    },
    new_sender,
};

/// The topic and how to authenticate, from a target.
fn parse(target: &str) -> Result<(TopicUrl, NtfyAuth), String> {
    let mut url = reqwest::Url::parse(target.trim())
        .map_err(|error| format!("not a URL ({error}): write it as https://ntfy.sh/mytopic"))?;
    let user = percent_decoded(url.username());
    let password = url.password().map(percent_decoded);
    let auth = match (user.is_empty(), password) {
        (true, None) => NtfyAuth::None,
        (false, None) => NtfyAuth::Token(user),
        (_, Some(password)) => NtfyAuth::Basic { user, password },
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    // The policy, not the URL's scheme alone, decides where the server may post.
    let topic = TopicUrl::parse(url.as_str(), true)?;
    Ok((topic, auth))
}

pub(super) fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn validate_target(target: &str, policy: TargetPolicy) -> Result<(), String> {
    let (topic, _) = parse(target).map_err(|error| format!("target: {error}"))?;
    public_https(topic.url(), policy).map_err(|error| format!("target: {error}"))
}

fn shown_target(target: &str) -> String {
    match parse(target) {
        Ok((topic, NtfyAuth::None)) => format!("{}://{}", topic.url().scheme(), topic.name()),
        Ok((topic, _)) => format!("{}://***@{}", topic.url().scheme(), topic.name()),
        Err(_) => "<invalid topic URL>".to_owned(),
    }
}

fn new_sender(settings: &SenderSettings<'_>) -> NewSender {
    let http = no_redirects("ntfy")?;
    Ok(Some(Box::new(NtfySender {
        http,
        targets: settings.targets,
        destinations: HashMap::new(),
    })))
}

struct NtfySender {
    http: reqwest::Client,
    targets: TargetPolicy,
    /// One destination per channel, so each keeps its backoff.
    destinations: HashMap<String, NtfyDestination>,
}

impl ChannelSender for NtfySender {
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
            send_digest(destination, "ntfy", message, digest).await
        })
    }
}

fn destination(
    channel: &Outgoing<'_>,
    targets: TargetPolicy,
    http: &reqwest::Client,
) -> Result<NtfyDestination, SendFailure> {
    let refused = |error: String| SendFailure::Refused {
        reason: format!("channel {}: {error}", channel.channel_name),
    };
    let (topic, auth) = parse(channel.target).map_err(refused)?;
    // A channel stored before the rule, or by a server started with the flag.
    public_https(topic.url(), targets).map_err(refused)?;
    let config = NtfyConfig {
        topic,
        auth,
        critical_priority: Priority::HIGH,
        ok_priority: Priority::DEFAULT,
        tags: Vec::new(),
        click_url: None,
    };
    Ok(NtfyDestination::new(config, http.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_in_the_url_is_a_bearer_token_shown_redacted() {
        let (topic, auth) = parse("https://tk_abc@ntfy.example/alerts").unwrap();
        assert_eq!(topic.url().as_str(), "https://ntfy.example/alerts");
        assert_eq!(auth, NtfyAuth::Token("tk_abc".into()));
        let (_, auth) = parse("https://me:p%40ss@ntfy.example/alerts").unwrap();
        assert_eq!(
            auth,
            NtfyAuth::Basic {
                user: "me".into(),
                password: "p@ss".into()
            }
        );
        assert_eq!(
            shown_target("https://tk_abc@ntfy.example/alerts"),
            "https://***@ntfy.example/alerts"
        );
        assert_eq!(
            shown_target("https://ntfy.sh/alerts"),
            "https://ntfy.sh/alerts"
        );
        let public = TargetPolicy::PublicServicesOnly;
        assert!(validate_target("https://ntfy.sh/alerts", public).is_ok());
        assert!(validate_target("http://ntfy.sh/alerts", public).is_err());
        assert!(validate_target("https://192.168.1.2/alerts", public).is_err());
        assert!(validate_target("https://ntfy.sh/", public).is_err());
        assert!(validate_target("http://192.168.1.2/alerts", TargetPolicy::AnyHost).is_ok());
    }
}
