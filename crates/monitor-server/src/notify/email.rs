//! Email notifications over SMTP, one message per notification, with Mender's subject
//! `<LEVEL>: Monitor Alert for <alert name> on <device>` and a text and an HTML body
//! (rendered and sent by monitor-email, which the agent's `delivery.email` shares).

use std::time::Duration;

use lettre::message::Mailbox;
use monitor_email::render::{self, Device, Entry};
use monitor_email::smtp::{Mailer, SmtpFailure};

use monitor_wire::backoff::Backoff;

use super::sender::{
    ChannelForm, ChannelKindSpec, ChannelSender, NewSender, Outgoing, SendFailure, SendFuture,
    SenderSettings, SubjectDigest,
};
use crate::settings::{redact_url, SmtpSettings};

/// Email channels: an address, through the server's SMTP relay.
pub(super) const KIND: ChannelKindSpec = ChannelKindSpec {
    name: "email",
    validate_target,
    shown_target: str::to_owned,
    default_name: str::to_owned,
    form: ChannelForm {
        heading: "Add an email recipient",
        target_label: "Address",
        target_input: "email",
        name_placeholder: "ops",
    },
    new_sender,
};

/// An address lettre can send to.
/// The SMTP relay is the administrator's: any address may be written to.
fn validate_target(target: &str, _: super::TargetPolicy) -> Result<(), String> {
    target
        .parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|error| format!("target: `{target}` is not an email address ({error})"))
}

fn new_sender(settings: &SenderSettings<'_>) -> NewSender {
    Ok(match settings.smtp {
        Some(smtp) => Some(Box::new(EmailSender::new(smtp)?)),
        None => None,
    })
}

struct EmailSender {
    mailer: Mailer,
}

impl EmailSender {
    fn new(settings: &SmtpSettings) -> Result<EmailSender, String> {
        let from: Mailbox = settings.from.parse().map_err(|error| {
            format!(
                "email_from `{}`: {error} (use an address such as monitor <monitor@example.com>)",
                settings.from
            )
        })?;
        let mailer = Mailer::from_url(&settings.url, from).map_err(|error| {
            format!(
                "smtp_url {}: {error} (use smtp://host:25, smtp://user:password@host:587?tls=required or smtps://host:465)",
                redact_url(&settings.url)
            )
        })?;
        Ok(EmailSender { mailer })
    }

    async fn send_one(
        &self,
        notification: &Outgoing<'_>,
        digest: &[SubjectDigest],
    ) -> Result<(), SendFailure> {
        let to: Mailbox = notification
            .target
            .parse()
            .map_err(|error| SendFailure::Refused {
                reason: format!(
                    "the address of channel {} is invalid: {error}",
                    notification.channel_name
                ),
            })?;
        let entries: Vec<Entry<'_>> = digest
            .iter()
            .map(|entry| Entry {
                alert: &entry.latest.alert,
                changes: entry.changes,
            })
            .collect();
        let device = Device {
            name: notification.device_name,
            id: Some(notification.device_id),
            link: notification.device_page,
        };
        let sent = self
            .mailer
            .send(
                &[to],
                render::subject(notification.device_name, &entries),
                render::text_body(device, &entries),
                Some(render::html_body(device, &entries)),
            )
            .await;
        match sent {
            Ok(()) => Ok(()),
            // As before the relay's settings were shared: what is not a 5xx is retried.
            Err(SmtpFailure::Transient { message } | SmtpFailure::Settings { message }) => {
                Err(SendFailure::Retry {
                    after: Duration::ZERO,
                    reason: format!("SMTP: {message}"),
                })
            }
            Err(failure) => Err(SendFailure::Refused {
                reason: format!("the SMTP server refused the message: {}", failure.message()),
            }),
        }
    }
}

impl ChannelSender for EmailSender {
    fn send<'a>(
        &'a mut self,
        message: &'a Outgoing<'a>,
        digest: &'a [SubjectDigest],
    ) -> SendFuture<'a> {
        Box::pin(async move {
            self.send_one(message, digest)
                .await
                .map_err(|failure| with_backoff(failure, message.attempts))
        })
    }
}

/// A retry without its own wait gets an exponential one: 30 s doubling to 30 min.
fn with_backoff(failure: SendFailure, attempts: u32) -> SendFailure {
    match failure {
        SendFailure::Retry { after, reason } if after.is_zero() => {
            let mut backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(1800));
            // The cap is reached after 7 failures; counting more changes nothing.
            for _ in 0..attempts.min(8) {
                backoff.next_delay();
            }
            SendFailure::Retry {
                after: backoff.peek(),
                reason,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_unless_the_channel_said_when() {
        let retry = |after| SendFailure::Retry {
            after,
            reason: String::new(),
        };
        let wait = |failure| match failure {
            SendFailure::Retry { after, .. } => after,
            SendFailure::Refused { .. } => panic!(),
        };
        assert_eq!(
            wait(with_backoff(retry(Duration::ZERO), 1)),
            Duration::from_secs(30)
        );
        assert_eq!(
            wait(with_backoff(retry(Duration::ZERO), 3)),
            Duration::from_secs(120)
        );
        assert_eq!(
            wait(with_backoff(retry(Duration::ZERO), 40)),
            Duration::from_secs(1800)
        );
        assert_eq!(
            wait(with_backoff(retry(Duration::from_secs(7)), 3)),
            Duration::from_secs(7)
        );
    }
}
