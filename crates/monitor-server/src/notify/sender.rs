//! What every channel kind's module provides and gets: its [`ChannelKindSpec`] (how its
//! target is checked and shown, its form in the dashboard, how to make its sender), and the
//! [`Outgoing`] message its [`ChannelSender`] sends.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::TargetPolicy;
use crate::settings::SmtpSettings;
use crate::storage::{Channel, StoredAlert};

/// One kind of channel, described by its module (`email::KIND`, `discord::KIND`).
pub struct ChannelKindSpec {
    /// As stored and as users write it.
    pub name: &'static str,
    /// Checks a target and that the policy lets the server send there; the message starts
    /// with `target: `.
    pub validate_target: fn(&str, TargetPolicy) -> Result<(), String>,
    /// The target as it may be shown (a secret redacted).
    pub shown_target: fn(&str) -> String,
    /// The channel's name when the user gives none.
    pub default_name: fn(&str) -> String,
    pub form: ChannelForm,
    /// This replica's sender for the kind; `None` when the settings leave it out (email
    /// without an SMTP relay).
    pub new_sender: fn(&SenderSettings<'_>) -> NewSender,
}

/// A kind's sender for this replica, `None` when the settings leave the kind out.
pub type NewSender = Result<Option<Box<dyn ChannelSender>>, String>;

/// What the server's settings give the senders.
pub struct SenderSettings<'a> {
    pub smtp: Option<&'a SmtpSettings>,
    /// Checked again before each channel's first message, for channels stored before.
    pub targets: TargetPolicy,
}

/// The dashboard's form to add a channel of a kind.
pub struct ChannelForm {
    pub heading: &'static str,
    pub target_label: &'static str,
    /// The target input's `type`: `email`, or `password` for a secret.
    pub target_input: &'static str,
    pub name_placeholder: &'static str,
}

/// One message to one channel about one device.
pub struct Outgoing<'a> {
    pub channel_id: &'a str,
    pub channel_name: &'a str,
    /// An address, a webhook URL: may be a secret, never logged.
    pub target: &'a str,
    pub device_id: &'a str,
    pub device_name: &'a str,
    /// The dashboard's page of the device (with `--public-url`): the message links it.
    pub device_page: Option<&'a str>,
    /// Including this one.
    pub attempts: u32,
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendFailure>> + Send + 'a>>;

/// Sends messages of one channel kind.
pub trait ChannelSender: Send {
    fn send<'a>(
        &'a mut self,
        message: &'a Outgoing<'a>,
        digest: &'a [SubjectDigest],
    ) -> SendFuture<'a>;

    /// Called for every channel of the kind when the notifier starts, before any message:
    /// a kind that keeps a connection (MQTT, whose availability is the server's) opens it
    /// now rather than with the channel's first message.
    fn open(&mut self, _channel: &Channel) {}

    /// Called with the channels that exist now, after a wake-up or a sweep: a kind that
    /// keeps something per channel (a connection, a rate limit) drops what it keeps for the
    /// others, removed meanwhile. An MQTT connection so closed makes the broker publish the
    /// server's last will for that channel.
    fn keep_only(&mut self, _channels: &HashSet<&str>) {}
}

/// What a sender keeps per channel (a destination with its connection or rate-limit
/// state): made with the channel's first message, dropped once the channel is removed.
pub(super) struct PerChannel<D>(HashMap<String, D>);

impl<D> Default for PerChannel<D> {
    fn default() -> Self {
        PerChannel(HashMap::new())
    }
}

impl<D> PerChannel<D> {
    /// The channel's own, made by `make` the first time.
    pub(super) fn get_or_make(
        &mut self,
        channel_id: &str,
        make: impl FnOnce() -> Result<D, SendFailure>,
    ) -> Result<&mut D, SendFailure> {
        Ok(match self.0.entry(channel_id.to_owned()) {
            Entry::Occupied(kept) => kept.into_mut(),
            Entry::Vacant(new) => new.insert(make()?),
        })
    }

    /// For [`ChannelSender::keep_only`].
    pub(super) fn keep_only(&mut self, channels: &HashSet<&str>) {
        self.0
            .retain(|channel_id, _| channels.contains(channel_id.as_str()));
    }
}

/// What a failed send means for the notification.
#[derive(Debug)]
pub enum SendFailure {
    /// Try again after this long.
    Retry { after: Duration, reason: String },
    /// The channel refused it for good.
    Refused { reason: String },
}

/// The latest alert of each subject in a notification, and how many state changes of that
/// subject the notification carries (more than one when a subject flapped meanwhile).
#[derive(Debug, Clone)]
pub struct SubjectDigest {
    pub latest: StoredAlert,
    pub changes: usize,
}

/// One entry per subject, ordered by their latest alert; CRITICAL subjects first.
pub fn digest(alerts: &[StoredAlert]) -> Vec<SubjectDigest> {
    let mut subjects: Vec<SubjectDigest> = Vec::new();
    for alert in alerts {
        let subject = &alert.alert.subject;
        match subjects.iter_mut().find(|entry| {
            entry.latest.alert.subject.kind == subject.kind
                && entry.latest.alert.subject.name == subject.name
        }) {
            Some(entry) => {
                entry.changes += 1;
                if alert.alert.timestamp >= entry.latest.alert.timestamp {
                    entry.latest = alert.clone();
                }
            }
            None => subjects.push(SubjectDigest {
                latest: alert.clone(),
                changes: 1,
            }),
        }
    }
    subjects.sort_by_key(|entry| {
        (
            entry.latest.alert.level != monitor_wire::Level::Critical,
            std::cmp::Reverse(entry.latest.alert.timestamp),
        )
    });
    subjects
}
