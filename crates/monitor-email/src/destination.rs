//! The agent's email destination: a batch of alerts is one message to every recipient.

use std::time::Duration;

use lettre::message::Mailbox;
use monitor_destination::{Destination, OutgoingAlert, Verdict, VerdictFuture};
use monitor_wire::backoff::Backoff;
use monitor_wire::Level;

use crate::render::{self, Device, Entry};
use crate::smtp::{Mailer, SmtpFailure};

/// Alerts per message: a burst makes a few messages, not hundreds.
const BATCH_SIZE: usize = 20;
/// The first wait after a transient failure; it doubles up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(5 * 60);

/// Mails alerts through one relay to a list of recipients.
pub struct EmailDestination {
    mailer: Mailer,
    to: Vec<Mailbox>,
    backoff: Backoff,
}

impl EmailDestination {
    /// `to` is never empty (the planner checks).
    pub fn new(mailer: Mailer, to: Vec<Mailbox>) -> EmailDestination {
        EmailDestination {
            mailer,
            to,
            backoff: Backoff::new(FIRST_DELAY, MAX_DELAY).with_jitter(0.25),
        }
    }

    async fn send(&mut self, device: &str, alerts: &[OutgoingAlert<'_>]) -> Verdict {
        // CRITICALs first (the subject names the first), otherwise oldest first.
        let mut entries: Vec<Entry<'_>> = alerts
            .iter()
            .map(|outgoing| Entry {
                alert: outgoing.alert,
                changes: 1,
            })
            .collect();
        entries.sort_by_key(|entry| entry.alert.level != Level::Critical);
        let subject = render::subject(device, &entries);
        let text = render::text_body(
            Device {
                name: device,
                id: None,
                // Every alert of a batch is about the one device its link shows.
                link: alerts.iter().find_map(|outgoing| outgoing.link),
            },
            &entries,
        );
        match self.mailer.send(&self.to, subject, text, None).await {
            Ok(()) => {
                self.backoff.reset();
                Verdict::Delivered
            }
            Err(SmtpFailure::Transient { message }) => Verdict::Retry {
                delivered: 0,
                after: self.backoff.next_delay(),
                message,
            },
            Err(SmtpFailure::Refused { message }) => Verdict::Rejected {
                delivered: 0,
                message,
            },
            Err(SmtpFailure::LoginRefused { message } | SmtpFailure::Settings { message }) => {
                Verdict::Gone { message }
            }
        }
    }
}

impl Destination for EmailDestination {
    fn batch_size(&self) -> usize {
        BATCH_SIZE
    }

    fn deliver<'a>(
        &'a mut self,
        device: &'a str,
        alerts: &'a [OutgoingAlert<'a>],
    ) -> VerdictFuture<'a> {
        Box::pin(self.send(device, alerts))
    }
}
