//! The client of a remote backend speaking the Mender devicemonitor device API.
//!
//! - [`BackendClient`] posts alert batches to `POST /api/devices/v1/devicemonitor/alert`
//!   ([`BackendClient::send_alerts`]) and the check list to
//!   `POST /api/devices/v1/devicemonitor/config` ([`BackendClient::push_config`]).
//! - In `auth: token` mode only, [`BackendClient::send_heartbeat`] posts
//!   `{"interval_seconds": N}` to [`HEARTBEAT_PATH`], monitor-server's own endpoint (Mender's
//!   API has none), so that the server notices a device gone silent; a server that does not
//!   know it (404) is [`HeartbeatAnswer::NotServed`].
//! - [`Auth`] says where the server URL and the bearer token come from: fixed ones for
//!   self-hosted backends, or mender-auth over D-Bus on a Mender device (a new token, and a new
//!   server URL, are fetched when the backend answers 401/403).
//! - [`BackendFailure`] tells the caller what to do with a batch that was not accepted:
//!   [`BackendFailureKind::Retry`] it after a delay (exponential backoff with jitter, kept in
//!   the client across calls, or the server's `Retry-After`) or
//!   [`BackendFailureKind::Discard`] it (the backend found it invalid or too big: the
//!   caller splits it to find the alerts at fault, see `monitor_destination::Batch`).
//! - In `auth: mender` mode (Hosted Mender) alerts carry Mender's detail fields only: the
//!   agent's others are folded into `description` (`mender_schema`), since devicemonitor
//!   validates requests; `auth: token` (monitor-server) sends every field.
//! - [`BackendDestination`]: the client as a `monitor_destination::Destination` (alerts, and
//!   the check list pushed at start, on change and every `config_push_interval`).
//! - [`http_client`] builds the `reqwest` client the agent hands in: rustls with the
//!   platform's roots plus an optional extra CA ([`load_extra_ca`]), a `User-Agent`, timeouts.
//!
//! It deliberately keeps no queue: the caller (the agent's outbox) owns the alerts, chooses the
//! batches, and decides when to call again. It does not retry by itself, except once after a
//! token refresh, and never sleeps.

mod backoff;
mod destination;
mod http;
mod mender_auth;
mod mender_schema;

use std::fmt;
use std::time::Duration;

use monitor_destination::OutgoingAlert;
use monitor_wire::backoff::Backoff;
use monitor_wire::config_push::ConfigCheck;
use monitor_wire::Alert;
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

use crate::backoff::RETRY_BACKOFF;
use crate::mender_auth::MenderAuth;

pub use crate::destination::BackendDestination;
pub use crate::http::{http_client, load_extra_ca, HttpClientError, USER_AGENT};

/// Where alert batches go, below the server URL.
pub const ALERT_PATH: &str = "/api/devices/v1/devicemonitor/alert";
/// Where the check list goes, below the server URL.
pub const CONFIG_PATH: &str = "/api/devices/v1/devicemonitor/config";
/// Where heartbeats go, below the server URL: monitor-server's own endpoint, outside
/// Mender's devicemonitor API (which has no heartbeat).
pub const HEARTBEAT_PATH: &str = "/api/devices/v1/monitor/heartbeat";
/// Every request (connect, send, and reading the answer) gives up after this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for mender-auth's `JwtTokenStateChange` after `FetchJwtToken`.
pub const TOKEN_FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured: a longer one (or a date further away) is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);
/// How much of an error answer's body goes into [`BackendFailure::message`].
const ERROR_BODY_LIMIT: usize = 512;

/// Where the server URL and the device token come from.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Self-hosted backends: a server URL and a bearer token.
    Token { server_url: String, token: String },
    /// A Mender device: token and server URL come from mender-auth over D-Bus
    /// (`io.mender.AuthenticationManager` at `/io/mender/AuthenticationManager`, interface
    /// `io.mender.Authentication1`). `bus_address: None` is the system bus; `Some(address)`
    /// names another bus (tests). The server URL changes on every fetch: the newest is used.
    Mender { bus_address: Option<String> },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Token { server_url, .. } => f
                .debug_struct("Token")
                .field("server_url", server_url)
                .field("token", &"<redacted>")
                .finish(),
            Auth::Mender { bus_address } => f
                .debug_struct("Mender")
                .field("bus_address", bus_address)
                .finish(),
        }
    }
}

/// A batch (or the check list) the backend did not take, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendFailure {
    pub kind: BackendFailureKind,
    /// What went wrong, for logs and `monitorctl alerts --pending`; never holds the token.
    pub message: String,
}

/// Whether a failed batch is sent again. Retry logic branches on this, never on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendFailureKind {
    /// 429 (`Retry-After` honoured), 5xx, other unexpected answers, network errors, timeouts,
    /// mender-auth not ready, a token refused even after a refresh: send the same batch again
    /// after `after` (exponential backoff with jitter from 1 s doubling to 5 min, counted over
    /// consecutive failures and reset by a success).
    Retry { after: Duration },
    /// 400 (also 413 and 422): the backend will never take this batch as it is: send its
    /// alerts in smaller batches to find the one at fault, and never send that one again.
    /// The client has logged it (with the backend's reason) at `warn`.
    Discard { status: u16 },
}

/// What a backend made of a heartbeat it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatAnswer {
    /// Taken: the server now expects the next one within the announced interval.
    Taken,
    /// The server has no heartbeat endpoint (404 or 405: an older monitor-server, or a
    /// devicemonitor server that is not this project's), or the client is in Mender mode:
    /// send no more. The message says which.
    NotServed { message: String },
}

/// The server URL and bearer token one request uses.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) server_url: String,
    pub(crate) token: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("server_url", &self.server_url)
            .field("token", &"<redacted>")
            .finish()
    }
}

enum CredentialSource {
    Fixed(Credentials),
    Mender(MenderAuth),
}

/// What one request came to.
enum Outcome {
    Accepted,
    /// 401 or 403: the token is not (or no longer) good.
    Unauthorized {
        status: StatusCode,
        reason: String,
    },
    Discard {
        status: StatusCode,
        message: String,
    },
    /// 404 or 405: the server has no such endpoint (retried for alerts and the config, which
    /// every devicemonitor server serves; the end of heartbeats).
    NotFound {
        message: String,
    },
    /// Try again, not before `at_least` (the server's `Retry-After`, or zero).
    Retry {
        at_least: Duration,
        message: String,
    },
}

/// The devicemonitor client. Calls take `&mut self`: one request at a time, which keeps the
/// consecutive-failure count and the token refresh simple.
pub struct BackendClient {
    http: reqwest::Client,
    credentials: CredentialSource,
    backoff: Backoff,
    /// Heartbeats back off on their own, so that a failing one never lengthens the wait of
    /// alerts.
    heartbeat_backoff: Backoff,
    /// Push only the check types Mender's API knows: in Mender mode, and once a token-mode
    /// backend refused the others (a devicemonitor server that is not this project's).
    mender_types_only: bool,
}

impl fmt::Debug for BackendClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.credentials {
            CredentialSource::Fixed(credentials) => format!("{credentials:?}"),
            CredentialSource::Mender(mender) => format!("{mender:?}"),
        };
        f.debug_struct("BackendClient")
            .field("auth", &auth)
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl BackendClient {
    /// A client using `http` (build it with [`http_client`]). Nothing is contacted yet.
    pub fn new(http: reqwest::Client, auth: Auth) -> Self {
        let credentials = match auth {
            Auth::Token { server_url, token } => {
                CredentialSource::Fixed(Credentials { server_url, token })
            }
            Auth::Mender { bus_address } => CredentialSource::Mender(MenderAuth::new(bus_address)),
        };
        let mender_types_only = matches!(credentials, CredentialSource::Mender(_));
        BackendClient {
            http,
            credentials,
            backoff: RETRY_BACKOFF,
            heartbeat_backoff: RETRY_BACKOFF,
            mender_types_only,
        }
    }

    /// Posts these alerts (original timestamps; in Mender mode with their details in Mender's
    /// schema) as one JSON array to [`ALERT_PATH`]. The caller keeps batches small (16 or
    /// fewer). An empty batch sends nothing.
    pub async fn send_alerts(
        &mut self,
        alerts: &[OutgoingAlert<'_>],
    ) -> Result<(), BackendFailure> {
        if alerts.is_empty() {
            return Ok(());
        }
        let body = match self.credentials {
            CredentialSource::Fixed(_) => {
                let wire: Vec<&Alert> = alerts.iter().map(|outgoing| outgoing.alert).collect();
                serde_json::to_vec(&wire)
            }
            CredentialSource::Mender(_) => {
                let wire: Vec<Alert> = alerts
                    .iter()
                    .map(|outgoing| mender_schema::mender_schema(outgoing.alert))
                    .collect();
                serde_json::to_vec(&wire)
            }
        }
        .expect("alerts serialize to JSON");
        let first = alerts.first().map_or(0, |outgoing| outgoing.seq);
        let last = alerts.last().map_or(0, |outgoing| outgoing.seq);
        let what = format!("alerts {first}..={last}");
        self.post(ALERT_PATH, &what, body).await
    }

    /// Posts the list of checks to [`CONFIG_PATH`]. A Mender server gets the types it knows
    /// (log, service, D-Bus) only: it refuses the whole list for one it does not. A
    /// token-mode backend gets every check (this project's server shows the agent's own
    /// kinds too); if it refuses them, it is a Mender-like server: the list goes again
    /// without them, and so from then on.
    pub async fn push_config(&mut self, checks: &[ConfigCheck]) -> Result<(), BackendFailure> {
        let has_own_kinds = checks.iter().any(|check| !check.kind.is_mender());
        if has_own_kinds && !self.mender_types_only {
            match self.post_config(checks.iter().collect()).await {
                Err(BackendFailure {
                    kind: BackendFailureKind::Discard { status: 400 },
                    ..
                }) => {
                    tracing::info!(
                        "the backend refused the check list with this agent's own kinds                          (diskusage, temperature...): pushing Mender's kinds only from now on"
                    );
                    self.mender_types_only = true;
                }
                result => return result,
            }
        }
        let pushed = checks
            .iter()
            .filter(|check| !self.mender_types_only || check.kind.is_mender())
            .collect();
        self.post_config(pushed).await
    }

    async fn post_config(&mut self, checks: Vec<&ConfigCheck>) -> Result<(), BackendFailure> {
        let body = serde_json::to_vec(&checks).expect("checks serialize to JSON");
        let what = format!("config ({} checks)", checks.len());
        self.post(CONFIG_PATH, &what, body).await
    }

    /// Posts `{"interval_seconds": N}` to [`HEARTBEAT_PATH`]: the device is alive and the next
    /// heartbeat comes within `interval` (whole seconds, rounded up); `None` sends
    /// `{"interval_seconds": 0}`: no heartbeat will come, so the server stops waiting for
    /// them. Only in `auth: token` mode: a Mender client gets [`HeartbeatAnswer::NotServed`]
    /// without a request. Failures back off on their own count, apart from alerts'.
    pub async fn send_heartbeat(
        &mut self,
        interval: Option<Duration>,
    ) -> Result<HeartbeatAnswer, BackendFailure> {
        if matches!(self.credentials, CredentialSource::Mender(_)) {
            return Ok(HeartbeatAnswer::NotServed {
                message: "Mender's devicemonitor API has no heartbeat".to_owned(),
            });
        }
        let seconds = interval.map_or(0, |interval| {
            interval.as_secs() + u64::from(interval.subsec_nanos() > 0)
        });
        let body = serde_json::to_vec(&serde_json::json!({ "interval_seconds": seconds }))
            .expect("a heartbeat serializes to JSON");
        let (at_least, message) = match self.post_refreshing_once(HEARTBEAT_PATH, &body).await {
            Outcome::Accepted => {
                self.heartbeat_backoff.reset();
                tracing::debug!(interval_seconds = %seconds, "backend took the heartbeat");
                return Ok(HeartbeatAnswer::Taken);
            }
            Outcome::NotFound { message } | Outcome::Discard { message, .. } => {
                self.heartbeat_backoff.reset();
                return Ok(HeartbeatAnswer::NotServed { message });
            }
            Outcome::Unauthorized { status, reason } => (
                Duration::ZERO,
                format!(
                    "the backend refused the configured token ({status}{reason}): check the \
                     token in the configuration; will try again later"
                ),
            ),
            Outcome::Retry { at_least, message } => (at_least, message),
        };
        Err(BackendFailure {
            kind: BackendFailureKind::Retry {
                after: self.heartbeat_backoff.next_delay().max(at_least),
            },
            message: format!("heartbeat: {message}"),
        })
    }

    async fn post(&mut self, path: &str, what: &str, body: Vec<u8>) -> Result<(), BackendFailure> {
        match self.post_refreshing_once(path, &body).await {
            Outcome::Accepted => {
                self.backoff.reset();
                tracing::debug!(what, "backend accepted");
                Ok(())
            }
            Outcome::Discard { status, message } => {
                // The backend answered: it is reachable, so this is no reason to back off.
                self.backoff.reset();
                let message = format!("{what}: {message}");
                tracing::warn!(status = status.as_u16(), "{message}");
                Err(BackendFailure {
                    kind: BackendFailureKind::Discard {
                        status: status.as_u16(),
                    },
                    message,
                })
            }
            Outcome::Unauthorized { status, reason } => {
                let message = match self.credentials {
                    CredentialSource::Fixed(_) => format!(
                        "{what}: the backend refused the configured token ({status}{reason}): \
                         check the token in the configuration; will try again later"
                    ),
                    CredentialSource::Mender(_) => format!(
                        "{what}: the backend refused the device token ({status}{reason}) even \
                         after mender-auth fetched a new one; will try again later, the token \
                         may be accepted then"
                    ),
                };
                Err(self.retry(Duration::ZERO, message))
            }
            Outcome::Retry { at_least, message } => {
                Err(self.retry(at_least, format!("{what}: {message}")))
            }
            Outcome::NotFound { message } => {
                Err(self.retry(Duration::ZERO, format!("{what}: {message}")))
            }
        }
    }

    fn retry(&mut self, at_least: Duration, message: String) -> BackendFailure {
        let after = self.backoff.next_delay().max(at_least);
        tracing::debug!(after = ?after, "{message}; will retry");
        BackendFailure {
            kind: BackendFailureKind::Retry { after },
            message,
        }
    }

    /// One request; on 401/403 a token refresh (Mender mode) and one more request.
    async fn post_refreshing_once(&mut self, path: &str, body: &[u8]) -> Outcome {
        let credentials = match &mut self.credentials {
            CredentialSource::Fixed(credentials) => credentials.clone(),
            CredentialSource::Mender(mender) => match mender.current().await {
                Ok(credentials) => credentials,
                Err(message) => return retry_now(message),
            },
        };
        let outcome = self.attempt(&credentials, path, body).await;
        let Outcome::Unauthorized { status, reason } = &outcome else {
            return outcome;
        };
        // A fixed token cannot be refreshed: sending it again would be refused again.
        let CredentialSource::Mender(mender) = &mut self.credentials else {
            return outcome;
        };
        tracing::info!(
            "the backend refused the device token ({status}{reason}): fetching a new one from mender-auth"
        );
        match mender.fetch().await {
            Ok(fresh) => self.attempt(&fresh, path, body).await,
            Err(message) => retry_now(format!(
                "the backend refused the device token ({status}{reason}) and {message}"
            )),
        }
    }

    async fn attempt(&self, credentials: &Credentials, path: &str, body: &[u8]) -> Outcome {
        let url = format!("{}{path}", credentials.server_url.trim_end_matches('/'));
        let request = self
            .http
            .post(&url)
            .bearer_auth(&credentials.token)
            .header(CONTENT_TYPE, "application/json")
            .timeout(REQUEST_TIMEOUT)
            .body(body.to_vec());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return retry_now(format!("POST {url}: {}", error_chain(error))),
        };
        let status = response.status();
        if status.is_success() {
            return Outcome::Accepted;
        }
        let retry_after = retry_after(response.headers());
        let reason = match read_error_body(&mut response).await {
            Some(text) => format!(": {text}"),
            None => String::new(),
        };
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Outcome::Unauthorized { status, reason }
            }
            StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNPROCESSABLE_ENTITY => Outcome::Discard {
                status,
                message: if status == StatusCode::PAYLOAD_TOO_LARGE {
                    format!("POST {url}: the backend refused them as too large ({status}{reason})")
                } else {
                    format!("POST {url}: the backend refused them as invalid ({status}{reason})")
                },
            },
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Outcome::NotFound {
                message: format!("POST {url}: {status}{reason}"),
            },
            StatusCode::TOO_MANY_REQUESTS => {
                let at_least = retry_after.unwrap_or(Duration::ZERO);
                let hint = match retry_after {
                    Some(after) => format!(", Retry-After {}s", after.as_secs()),
                    None => String::new(),
                };
                Outcome::Retry {
                    at_least,
                    message: format!("POST {url}: rate limited ({status}{hint}{reason})"),
                }
            }
            _ => Outcome::Retry {
                at_least: retry_after.unwrap_or(Duration::ZERO),
                message: format!("POST {url}: {status}{reason}"),
            },
        }
    }
}

fn retry_now(message: String) -> Outcome {
    Outcome::Retry {
        at_least: Duration::ZERO,
        message,
    }
}

/// `Retry-After` as delta-seconds or an HTTP date, at most [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    backoff::parse_retry_after(value, std::time::SystemTime::now())
        .map(|after| after.min(MAX_RETRY_AFTER))
}

/// The start of an error answer's body, on one line, or `None` if it is empty or unreadable.
async fn read_error_body(response: &mut reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < ERROR_BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() > ERROR_BODY_LIMIT {
        let mut end = ERROR_BODY_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    (!text.is_empty()).then_some(text)
}

/// A reqwest error and its causes (`connection refused` sits deep down), without the URL,
/// which the caller names already.
fn error_chain(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        format!("timed out after {}s", REQUEST_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let error = error.without_url();
    let mut text = kind;
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    let mut last = String::new();
    while let Some(cause) = source {
        let line = cause.to_string();
        // Layers often repeat their cause's text; say each thing once.
        if !line.is_empty() && !last.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        last = line;
        source = cause.source();
    }
    text
}
