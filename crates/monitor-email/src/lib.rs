//! Alerts by email, for monitor-server's email channels and the agent's `delivery.email[]`
//! alike.
//!
//! - [`render`]: Mender's subject (`<LEVEL>: Monitor Alert for <alert name> on <device>`,
//!   with `(and N more)` for several) and the bodies: plain text, and HTML for the server.
//! - [`smtp`]: a [`smtp::Mailer`] (one SMTP relay, STARTTLS, TLS or plain, an optional
//!   login) that sends one message and says what a failure means ([`smtp::SmtpFailure`]:
//!   try again, the message refused, the login refused, the settings wrong), never with the
//!   password in it.
//! - [`EmailDestination`]: the agent's [`monitor_destination::Destination`] over a mailer:
//!   a batch of alerts is one message, failures are verdicts (retry with backoff, rejected,
//!   gone).
//!
//! It deliberately reads no settings file and no secret: callers resolve both and hand in
//! what to send and where.

mod destination;
pub mod render;
pub mod smtp;

pub use destination::EmailDestination;
