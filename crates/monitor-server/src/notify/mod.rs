//! Sending notifications: email over SMTP, Discord, Slack and generic webhooks, ntfy,
//! Telegram and MQTT (Home Assistant), from the outbox in the
//! database (see `storage::notifications`).
//!
//! [`Notifier::run`](notifier::Notifier::run) claims due notifications, sends each, and records the outcome: sent,
//! to be retried later (a network failure, a rate limit), or failed for good (the channel
//! refused it). It sleeps until the next one is due or until the API wakes it for a new
//! one; a slow sweep picks up what another replica queued and could not send (it crashed).
//! A notification is sent at least once: a crash after sending and before recording it
//! sends it again when the lease runs out.
//!
//! The channel kinds are one list, [`ChannelKind`], here. Adding a kind: its module
//! (`<kind>.rs`: a [`ChannelKindSpec`](sender::ChannelKindSpec) saying how its target is
//! checked and shown, its dashboard form, and its [`ChannelSender`](sender::ChannelSender)),
//! its `mod`, variant and arm here, and a `channel <kind>` admin command in `main.rs`.
//! Storage, the API, the dashboard's forms and the notifier read everything else from here.

mod chat;
mod discord;
mod email;
mod filter;
mod mqtt;
pub mod notifier;
mod ntfy;
mod sender;
mod slack;
mod telegram;
mod webhook;

use std::str::FromStr;

pub use filter::{ChannelFilter, MinLevel};
use sender::{ChannelForm, ChannelKindSpec, NewSender, SenderSettings};

/// Where the HTTP channels (Discord, webhook, ntfy, Slack, Telegram) may send; email goes
/// to the SMTP relay, whatever this says. A target URL is typed in by a user: without a rule,
/// a "Discord" channel could make the server post to any host it reaches (a router's admin
/// page, a cloud metadata address).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TargetPolicy {
    /// Over HTTPS only: Discord, Slack and Telegram channels to their service's own hosts,
    /// webhook and ntfy channels to public addresses (no private, loopback or link-local
    /// host).
    #[default]
    PublicServicesOnly,
    /// Any host, over http too (`--allow-private-targets`): a relay, a self-hosted service
    /// or a stand-in on the LAN.
    AnyHost,
}

impl TargetPolicy {
    pub fn allowing_private(allowed: bool) -> TargetPolicy {
        if allowed {
            TargetPolicy::AnyHost
        } else {
            TargetPolicy::PublicServicesOnly
        }
    }
}

/// Where notifications go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// An email address, through the server's SMTP relay.
    Email,
    /// A Discord webhook URL.
    Discord,
    /// A generic webhook: its URL and an optional signing secret.
    Webhook,
    /// An ntfy topic URL, with its access token as the URL's user.
    Ntfy,
    /// A Slack incoming webhook URL.
    Slack,
    /// A Telegram bot and chat: `https://api.telegram.org/bot<token>/<chat id>`.
    Telegram,
    /// An MQTT broker for Home Assistant: `mqtts://user:password@host:8883/topic-prefix`.
    Mqtt,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 7] = [
        ChannelKind::Email,
        ChannelKind::Discord,
        ChannelKind::Webhook,
        ChannelKind::Ntfy,
        ChannelKind::Slack,
        ChannelKind::Telegram,
        ChannelKind::Mqtt,
    ];

    fn spec(self) -> &'static ChannelKindSpec {
        match self {
            ChannelKind::Email => &email::KIND,
            ChannelKind::Discord => &discord::KIND,
            ChannelKind::Webhook => &webhook::KIND,
            ChannelKind::Ntfy => &ntfy::KIND,
            ChannelKind::Slack => &slack::KIND,
            ChannelKind::Telegram => &telegram::KIND,
            ChannelKind::Mqtt => &mqtt::KIND,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// Checks a target (an address, a webhook URL) and that the policy lets the server send
    /// there; the message starts with `target: `.
    pub fn validate_target(self, target: &str, policy: TargetPolicy) -> Result<(), String> {
        (self.spec().validate_target)(target, policy)
    }

    /// The target as it may be shown: an address as it is, a webhook URL (a secret)
    /// redacted.
    pub fn shown_target(self, target: &str) -> String {
        (self.spec().shown_target)(target)
    }

    /// The channel's name when the user gives none.
    pub fn default_name(self, target: &str) -> String {
        (self.spec().default_name)(target)
    }

    /// The dashboard's form to add a channel of this kind.
    pub fn form(self) -> &'static ChannelForm {
        &self.spec().form
    }

    /// This replica's sender for the kind, `None` when the settings leave it out.
    fn new_sender(self, settings: &SenderSettings<'_>) -> NewSender {
        (self.spec().new_sender)(settings)
    }
}

impl FromStr for ChannelKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ChannelKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = ChannelKind::ALL.iter().map(|kind| kind.as_str()).collect();
                format!("unknown channel kind `{text}`: use {}", names.join(" or "))
            })
    }
}
