//! A webhook as a [`Destination`]: its client, and the pause every webhook of the process
//! shares.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use monitor_destination::{Destination, OutgoingAlert, Verdict, VerdictFuture};
use tokio::time::Instant;

use crate::client::{DiscordClient, FailureKind};

/// Alerts per delivery: five messages at most (ten embeds each), which Discord's
/// 5-requests-per-2-seconds bucket takes without a wait.
const BATCH_SIZE: usize = 50;

/// Until when every webhook that shares it sends nothing: a global 429 or a Cloudflare ban
/// hits the address, so every webhook of the agent pauses alike. Clones share the pause.
#[derive(Debug, Clone, Default)]
pub struct GlobalPause {
    until: Arc<Mutex<Option<Instant>>>,
}

impl GlobalPause {
    /// Pauses for at least `after` from now (a longer pause already set is kept).
    pub fn extend(&self, after: Duration) {
        let until = Instant::now() + after;
        let mut paused = self
            .until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *paused = Some(paused.map_or(until, |current| current.max(until)));
    }

    /// When the pause ends, if it has not ended yet.
    pub fn until(&self) -> Option<Instant> {
        let paused = *self
            .until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        paused.filter(|until| *until > Instant::now())
    }
}

/// One webhook as a destination. Failures become verdicts: retries (a global one pauses
/// every webhook sharing `pause`), rejections (400, 413, ...: split by the caller
/// until the refused alerts are found) and a deleted webhook (gone).
#[derive(Debug)]
pub struct DiscordDestination {
    client: DiscordClient,
    pause: GlobalPause,
}

impl DiscordDestination {
    pub fn new(client: DiscordClient, pause: GlobalPause) -> Self {
        DiscordDestination { client, pause }
    }
}

impl Destination for DiscordDestination {
    fn batch_size(&self) -> usize {
        BATCH_SIZE
    }

    fn paused_until(&self) -> Option<Instant> {
        self.pause.until()
    }

    fn deliver<'a>(
        &'a mut self,
        device: &'a str,
        alerts: &'a [OutgoingAlert<'a>],
    ) -> VerdictFuture<'a> {
        Box::pin(async move {
            let Err(failure) = self.client.deliver_alerts(device, alerts).await else {
                return Verdict::Delivered;
            };
            match failure.kind {
                FailureKind::Retry { after, global } => {
                    if global {
                        self.pause.extend(after);
                    }
                    Verdict::Retry {
                        delivered: failure.delivered,
                        after,
                        message: failure.message,
                    }
                }
                // The first messages may have been taken: only the rest is split.
                FailureKind::Rejected { .. } => Verdict::Rejected {
                    delivered: failure.delivered,
                    message: failure.message,
                },
                FailureKind::Unauthorized { .. } => Verdict::Gone {
                    message: failure.message,
                },
                FailureKind::WebhookGone => Verdict::Gone {
                    message: format!(
                        "the Discord webhook was deleted (404 Unknown Webhook): {}",
                        failure.message
                    ),
                },
            }
        })
    }
}
