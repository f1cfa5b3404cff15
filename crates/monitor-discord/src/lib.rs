//! Delivery of alerts to a Discord channel through a webhook.
//!
//! - [`WebhookUrl`]: the pasted webhook URL, parsed and checked; it is a secret, so it only
//!   ever shows itself redacted (`https://discord.com/api/webhooks/1234/***`).
//! - [`render_alerts`]: alerts → message bodies, one embed per alert (red CRITICAL, green OK,
//!   orange flapping; the alert's check when known, its subject otherwise), coalesced into as few messages as Discord's limits allow (≤ 10 embeds,
//!   ≤ 6000 characters over all embeds), every text cut by characters within its limit.
//!   Mentions are always disabled: a log line may say `@everyone`.
//! - [`DiscordClient`]: one per webhook, one request in flight. It waits by itself while the
//!   rate-limit bucket is empty, and says how each failure is to be handled
//!   ([`FailureKind`]: retry after a wait, drop the records, or disable the webhook).
//! - [`DiscordDestination`]: a client as a `monitor_destination::Destination`, its failures
//!   as verdicts; a global rate limit or a ban pauses every webhook sharing its
//!   [`GlobalPause`].
//!
//! It deliberately does not queue, persist or schedule retries: the caller (the agent's
//! delivery loop with its outbox, monitor-server's notifier with its own) owns which alerts are pending and when to try again, and
//! waits out the pause [`DiscordDestination`] reports. It builds no HTTP client either: the
//! caller hands one in, with its TLS provider.

mod client;
mod destination;
mod render;
mod url;

pub use client::{DeliveryFailure, DiscordClient, FailureKind, WebhookConfig};
pub use destination::{DiscordDestination, GlobalPause};
pub use render::render_alerts;
pub use url::{WebhookUrl, WebhookUrlError};
