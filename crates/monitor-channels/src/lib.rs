//! Alert destinations over HTTP besides Discord (which has `monitor-discord`): a generic
//! webhook, ntfy, Slack and Telegram. Each is a `monitor_destination::Destination`, so the
//! agent (`delivery:` in monitor.yaml) and monitor-server (its channels) drive them alike,
//! with the caller's outbox, filter and retries.
//!
//! - [`text`]: an alert as a title and a body of plain text, the same on every service
//!   (CRITICAL and OK say so in the title, not only by colour), cut by characters.
//! - `http` (private): one request and what its answer means — delivered; retry after the
//!   service's `Retry-After` (or the wait its body names) or an exponential backoff; refused
//!   for good (a 4xx about the message); gone (401, 403, 404, 410: the token or the address
//!   is wrong, fix the settings). Messages never hold the URL: it may be a secret.
//! - one module per service: its settings as the caller gives them, its rendering within the
//!   service's documented limits, and its `Destination`.
//!
//! It deliberately knows no settings file, no outbox and no HTTP client set-up: the caller
//! hands in a `reqwest::Client` with its TLS provider.

mod http;
pub mod ntfy;
mod pace;
mod service_url;
pub mod slack;
pub mod telegram;
pub mod text;
pub mod webhook;
