//! The channel kinds: the one list. A kind is its module (`email.rs`, `discord.rs`: its
//! [`ChannelKindSpec`] and its sender) plus its variant and arm here; the admin command
//! line has a `channel <kind>` command per kind (`main.rs`). Storage, the API, the
//! dashboard's forms and the notifier read everything else from here.

use std::str::FromStr;

use super::sender::{ChannelForm, ChannelKindSpec, NewSender, SenderSettings};
use super::{discord, email};

/// Where notifications go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// An email address, through the server's SMTP relay.
    Email,
    /// A Discord webhook URL.
    Discord,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 2] = [ChannelKind::Email, ChannelKind::Discord];

    fn spec(self) -> &'static ChannelKindSpec {
        match self {
            ChannelKind::Email => &email::KIND,
            ChannelKind::Discord => &discord::KIND,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// Checks a target (an address, a webhook URL); the message starts with `target: `.
    pub fn validate_target(self, target: &str) -> Result<(), String> {
        (self.spec().validate_target)(target)
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
    pub(super) fn new_sender(self, settings: &SenderSettings<'_>) -> NewSender {
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
