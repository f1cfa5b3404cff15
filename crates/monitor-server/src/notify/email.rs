//! Email notifications over SMTP (lettre), one message per notification, with Mender's
//! subject `<LEVEL>: Monitor Alert for <alert name> on <device>` and a text and an HTML body.

use std::fmt::Write as _;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use monitor_wire::{Level, LogLine};

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

/// The longest an SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl EmailSender {
    fn new(settings: &SmtpSettings) -> Result<EmailSender, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.url)
            .map_err(|error| {
                format!(
                    "smtp_url {}: {error} (use smtp://host:25, smtp://user:password@host:587?tls=required or smtps://host:465)",
                    redact_url(&settings.url)
                )
            })?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let from = settings.from.parse().map_err(|error| {
            format!(
                "email_from `{}`: {error} (use an address such as monitor <monitor@example.com>)",
                settings.from
            )
        })?;
        Ok(EmailSender { transport, from })
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
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject(notification.device_name, digest))
            .multipart(MultiPart::alternative_plain_html(
                text_body(notification, digest),
                html_body(notification, digest),
            ))
            .map_err(|error| SendFailure::Refused {
                reason: format!("the message cannot be built: {error}"),
            })?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => Err(SendFailure::Refused {
                reason: format!("the SMTP server refused the message: {error}"),
            }),
            Err(error) => Err(SendFailure::Retry {
                after: Duration::ZERO,
                reason: format!("SMTP: {error}"),
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

/// Mender's subject for one alert; with several, the most important one and how many more.
fn subject(device_name: &str, digest: &[SubjectDigest]) -> String {
    let first = &digest[0].latest.alert;
    let changes: usize = digest.iter().map(|entry| entry.changes).sum();
    let mut subject = format!(
        "{}: Monitor Alert for {} on {device_name}",
        first.level, first.name
    );
    if changes > 1 {
        let _ = write!(subject, " (and {} more)", changes - 1);
    }
    subject
}

fn lines(details: &monitor_wire::Details) -> Vec<(&LogLine, bool)> {
    let mut lines: Vec<(&LogLine, bool)> = details
        .lines_before
        .iter()
        .map(|line| (line, false))
        .collect();
    if let Some(line) = &details.line_matching {
        lines.push((line, true));
    }
    lines.extend(details.lines_after.iter().map(|line| (line, false)));
    lines
}

fn text_body(notification: &Outgoing<'_>, digest: &[SubjectDigest]) -> String {
    let mut text = format!(
        "Device: {} (id {})\n",
        notification.device_name, notification.device_id
    );
    for entry in digest {
        let alert = &entry.latest.alert;
        let _ = write!(
            text,
            "\n{}: {}\nSubject: {} {} ({})\nTime: {}\n",
            alert.level,
            alert.name,
            alert.subject.kind,
            alert.subject.name,
            alert.subject.status,
            alert.timestamp
        );
        if entry.changes > 1 {
            let _ = writeln!(
                text,
                "Changes: {} since the last message; this is the latest",
                entry.changes
            );
        }
        if let Some(description) = &alert.subject.details.description {
            let _ = writeln!(text, "Description: {description}");
        }
        let lines = lines(&alert.subject.details);
        if !lines.is_empty() {
            text.push_str("Log:\n");
            for (line, matching) in lines {
                let marker = if matching { '>' } else { ' ' };
                let _ = writeln!(text, "{marker} {:>6}  {}", line.line_number, line.data);
            }
        }
    }
    text
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn html_body(notification: &Outgoing<'_>, digest: &[SubjectDigest]) -> String {
    let mut html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><p>Device <b>{}</b> <small>(id {})</small></p>",
        escape(notification.device_name),
        escape(notification.device_id)
    );
    for entry in digest {
        let alert = &entry.latest.alert;
        let color = match alert.level {
            Level::Critical => "#c0392b",
            Level::Ok => "#27ae60",
        };
        let _ = write!(
            html,
            "<h3 style=\"color:{color}\">{}: {}</h3><table>\
             <tr><td>Subject</td><td>{} {} ({})</td></tr><tr><td>Time</td><td>{}</td></tr>",
            alert.level,
            escape(&alert.name),
            escape(&alert.subject.kind),
            escape(&alert.subject.name),
            escape(&alert.subject.status),
            alert.timestamp
        );
        if entry.changes > 1 {
            let _ = write!(
                html,
                "<tr><td>Changes</td><td>{} since the last message; this is the latest</td></tr>",
                entry.changes
            );
        }
        if let Some(description) = &alert.subject.details.description {
            let _ = write!(
                html,
                "<tr><td>Description</td><td>{}</td></tr>",
                escape(description)
            );
        }
        html.push_str("</table>");
        let lines = lines(&alert.subject.details);
        if !lines.is_empty() {
            html.push_str("<pre style=\"background:#f4f4f4;padding:8px\">");
            for (line, matching) in lines {
                let text = format!("{:>6}  {}", line.line_number, escape(&line.data));
                if matching {
                    let _ = writeln!(html, "<mark><b>{text}</b></mark>");
                } else {
                    let _ = writeln!(html, "{text}");
                }
            }
            html.push_str("</pre>");
        }
    }
    html.push_str("</body></html>");
    html
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
