//! Posting rendered messages to one webhook, within its rate limit, and classifying what
//! went wrong so that the caller knows whether to retry, drop or disable.

use std::time::Duration;

use monitor_destination::OutgoingAlert;
use monitor_wire::backoff::Backoff;
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::render::{render_alerts, sanitize_username};
use crate::url::WebhookUrl;

/// Discord (and Cloudflare in front of it) wants a User-Agent naming the client.
const USER_AGENT_VALUE: &str = concat!(
    "monitor/",
    env!("CARGO_PKG_VERSION"),
    " (+https://example.invalid/monitor)"
);
/// From connecting to the end of the response body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// 5xx and network errors: 1 s, doubling per consecutive failure, at most 5 min, plus up to
/// a tenth of random jitter.
const FAILURE_BACKOFF: Backoff =
    Backoff::new(Duration::from_secs(1), Duration::from_secs(5 * 60)).with_jitter(0.1);
/// A Cloudflare ban: at least 1 min, doubling per consecutive ban, at most 1 h.
const BAN_BACKOFF: Backoff = Backoff::new(Duration::from_secs(60), Duration::from_secs(60 * 60));
/// A 429 that names no wait still waits this long: never hot-loop.
const RATE_LIMIT_FLOOR: Duration = Duration::from_secs(1);
/// How much of a response body goes into a failure message.
const BODY_EXCERPT_CHARACTERS: usize = 300;

/// One webhook's settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: WebhookUrl,
    /// The name the messages are posted as; the webhook's own name when `None`.
    pub username: Option<String>,
    /// The picture the messages are posted with; the webhook's own when `None`.
    pub avatar_url: Option<String>,
}

/// The client of one webhook. Deliveries take `&mut self`, so at most one request is in
/// flight per webhook, and the client remembers the webhook's rate-limit bucket and its
/// consecutive failures between deliveries.
#[derive(Debug)]
pub struct DiscordClient {
    config: WebhookConfig,
    http: reqwest::Client,
    /// The bucket was empty: send nothing before this.
    bucket_empty_until: Option<Instant>,
    /// 5xx answers and network errors in a row.
    failures: Backoff,
    /// Cloudflare bans in a row, for their cool-down.
    bans: Backoff,
}

/// A delivery that stopped before every record was accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryFailure {
    /// How many records, from the start, were accepted before the failure.
    pub delivered: usize,
    pub kind: FailureKind,
    /// For logs and `monitorctl alerts --pending`; never contains the token.
    pub message: String,
}

/// What the caller does with the records that were not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Try the same records again after `after`. `global`: every webhook of this agent
    /// should pause that long (Discord's global rate limit, or a Cloudflare ban of the
    /// address, which hits every webhook alike).
    Retry { after: Duration, global: bool },
    /// Never send these records together again: Discord refused them (400, 413, ...); the
    /// caller splits them to find the one at fault.
    Rejected { status: u16 },
    /// The webhook may not post at all (401: its token is wrong; 403 from Discord itself:
    /// no access to its channel): no record can get through until its settings change, and
    /// splitting would only send Discord more invalid requests (which earn a ban). Stop,
    /// keep the records, and say so.
    Unauthorized { status: u16 },
    /// The webhook was deleted (404, Unknown Webhook): stop using it and say so.
    WebhookGone,
}

impl FailureKind {
    pub fn is_retryable(self) -> bool {
        matches!(self, FailureKind::Retry { .. })
    }
}

impl DiscordClient {
    /// A client for `config.url`, posting with `http` (which must have a TLS provider).
    /// A user name Discord would refuse is replaced by `monitor`, with a warning now.
    pub fn new(mut config: WebhookConfig, http: reqwest::Client) -> Self {
        if let Some(username) = &config.username {
            let (accepted, problem) = sanitize_username(username);
            if let Some(problem) = problem {
                tracing::warn!(
                    webhook = %config.url,
                    "discord username `{username}` replaced by `{accepted}`: {}; set another `username`",
                    problem.explain(),
                );
                config.username = Some(accepted);
            }
        }
        DiscordClient {
            config,
            http,
            bucket_empty_until: None,
            failures: FAILURE_BACKOFF,
            bans: BAN_BACKOFF,
        }
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Delivers these alerts (oldest first) in as few messages as the limits allow.
    ///
    /// Before each request, waits by itself while the webhook's bucket is empty
    /// (`X-RateLimit-Remaining: 0` → `X-RateLimit-Reset-After`). Returns `Ok` when every
    /// alert was accepted. On failure, `alerts[..failure.delivered]` were accepted and the
    /// rest were not.
    ///
    /// Dropping the future stops between or during requests: a message may then have been
    /// accepted without being counted (delivery is at least once).
    pub async fn deliver_alerts(
        &mut self,
        device_id: &str,
        alerts: &[OutgoingAlert<'_>],
    ) -> Result<(), DeliveryFailure> {
        let messages = render_alerts(
            device_id,
            alerts,
            self.config.username.as_deref(),
            self.config.avatar_url.as_deref(),
        );
        let mut delivered = 0;
        for message in &messages {
            let records_in_message = message["embeds"].as_array().map_or(0, Vec::len);
            self.wait_for_bucket().await;
            if let Err((kind, text)) = self.post(message).await {
                let text = self.redact(&text);
                return Err(DeliveryFailure {
                    delivered,
                    kind,
                    message: text,
                });
            }
            delivered += records_in_message;
        }
        Ok(())
    }

    async fn wait_for_bucket(&mut self) {
        if let Some(until) = self.bucket_empty_until {
            let now = Instant::now();
            if until > now {
                tracing::debug!(webhook = %self.config.url, wait = ?(until - now), "discord rate-limit bucket empty, waiting");
                tokio::time::sleep_until(until).await;
            }
            // Cleared only after the wait: a delivery dropped while waiting leaves it set.
            self.bucket_empty_until = None;
        }
    }

    async fn post(&mut self, message: &Value) -> Result<(), (FailureKind, String)> {
        let body = serde_json::to_vec(message).expect("a JSON value always serializes");
        let sent = self
            .http
            .post(self.config.url.post_url())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, USER_AGENT_VALUE)
            .timeout(REQUEST_TIMEOUT)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Err(self.network_failure(error)),
        };
        let status = response.status();
        let rate_limit = RateLimitHeaders::read(response.headers());
        self.note_bucket(&rate_limit);
        if status.is_success() {
            // Accepted; the body (the message, with `wait=true`) is not needed.
            self.failures.reset();
            self.bans.reset();
            return Ok(());
        }
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        // The status decides; a body cut short only loses the details.
        let body = response.bytes().await.unwrap_or_default();
        let error = if is_json {
            serde_json::from_slice::<DiscordError>(&body).ok()
        } else {
            None
        };
        Err(self.classify(status, &rate_limit, error, &body))
    }

    fn classify(
        &mut self,
        status: StatusCode,
        rate_limit: &RateLimitHeaders,
        error: Option<DiscordError>,
        body: &[u8],
    ) -> (FailureKind, String) {
        let webhook = self.config.url.redacted();
        let code = status.as_u16();
        match (code, error) {
            (429, Some(error)) if rate_limit.present && error.retry_after.is_some() => {
                let from_body = seconds(error.retry_after.unwrap_or_default());
                let from_header = rate_limit.retry_after.unwrap_or_default();
                let mut after = from_body.max(from_header);
                if after.is_zero() {
                    after = RATE_LIMIT_FLOOR;
                }
                let global = error.global || rate_limit.global;
                let scope = if global { "global" } else { "this webhook" };
                (
                    FailureKind::Retry { after, global },
                    format!(
                        "discord webhook {webhook} is rate limited ({scope}): retrying in {:.3}s",
                        after.as_secs_f64()
                    ),
                )
            }
            (403, Some(error)) if rate_limit.present => (
                FailureKind::Unauthorized { status: code },
                format!(
                    "discord webhook {webhook} answered 403 forbidden ({}): the webhook may not post to its channel; check its permissions",
                    error.describe()
                ),
            ),
            (429 | 403, _) => {
                // No rate-limit headers, or an HTML page: Cloudflare banned this address.
                let after = self.bans.next_delay();
                (
                    FailureKind::Retry {
                        after,
                        global: true,
                    },
                    format!(
                        "discord webhook {webhook} answered {code} without Discord's rate-limit headers ({}): this address is banned for a while, every webhook pauses for {}s (ban {} in a row)",
                        excerpt(body),
                        after.as_secs(),
                        self.bans.failures()
                    ),
                )
            }
            (404, error) => (
                FailureKind::WebhookGone,
                format!(
                    "discord webhook {webhook} no longer exists (404, {}): it was deleted; create a new webhook and update the configuration",
                    error.map_or_else(|| excerpt(body), |error| error.describe())
                ),
            ),
            (400, error) => {
                let detail = error.map_or_else(|| excerpt(body), |error| error.describe());
                tracing::error!(webhook = %webhook, "discord rejected a message as invalid: {detail}");
                (
                    FailureKind::Rejected { status: code },
                    format!(
                        "discord rejected a message for webhook {webhook} as invalid (400, {detail}): check `username` and `avatar_url`, otherwise report this bug in monitor"
                    ),
                )
            }
            (401, _) => (
                FailureKind::Unauthorized { status: code },
                format!(
                    "discord webhook {webhook} answered 401 unauthorized: its token is wrong; copy the webhook URL again"
                ),
            ),
            (413, _) => (
                FailureKind::Rejected { status: code },
                format!(
                    "discord refused a message for webhook {webhook} as too large (413): report this bug in monitor"
                ),
            ),
            (408, _) | (500..=599, _) => {
                let after = self.failures.next_delay();
                (
                    FailureKind::Retry {
                        after,
                        global: false,
                    },
                    format!(
                        "discord webhook {webhook} answered {status}: retrying in {:.3}s (failure {} in a row)",
                        after.as_secs_f64(),
                        self.failures.failures()
                    ),
                )
            }
            (_, error) => (
                FailureKind::Rejected { status: code },
                format!(
                    "discord webhook {webhook} answered {status} ({}): check the webhook URL",
                    error.map_or_else(|| excerpt(body), |error| error.describe())
                ),
            ),
        }
    }

    fn network_failure(&mut self, error: reqwest::Error) -> (FailureKind, String) {
        let after = self.failures.next_delay();
        let error = error.without_url();
        let mut cause = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            cause.push_str(": ");
            cause.push_str(&inner.to_string());
            source = inner.source();
        }
        (
            FailureKind::Retry {
                after,
                global: false,
            },
            format!(
                "discord webhook {} could not be reached ({cause}): retrying in {:.3}s (failure {} in a row)",
                self.config.url.redacted(),
                after.as_secs_f64(),
                self.failures.failures()
            ),
        )
    }

    /// The next wait after a 5xx or network error: 1 s doubling to 5 min, plus jitter so
    /// that devices that failed together do not retry together.
    fn note_bucket(&mut self, rate_limit: &RateLimitHeaders) {
        if let (Some(0), Some(reset_after)) = (rate_limit.remaining, rate_limit.reset_after) {
            let until = Instant::now() + reset_after;
            self.bucket_empty_until =
                Some(self.bucket_empty_until.map_or(until, |old| old.max(until)));
        }
    }

    /// Defence in depth: whatever ended up in a message, the token does not.
    fn redact(&self, text: &str) -> String {
        self.config.url.redact_in(text)
    }
}

/// Float seconds from Discord; nonsense (negative, NaN, absurdly large) becomes zero or a day.
fn seconds(value: f64) -> Duration {
    if value.is_nan() || value <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(value).unwrap_or(Duration::from_secs(24 * 60 * 60))
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "empty body".to_owned();
    }
    crate::render::keep_beginning(&text, BODY_EXCERPT_CHARACTERS)
}

/// Discord's rate-limit headers, as far as they were sent.
#[derive(Debug, Default)]
struct RateLimitHeaders {
    /// Any `X-RateLimit-*` header: the answer came from Discord, not from Cloudflare.
    present: bool,
    remaining: Option<u64>,
    reset_after: Option<Duration>,
    global: bool,
    retry_after: Option<Duration>,
}

impl RateLimitHeaders {
    fn read(headers: &HeaderMap) -> RateLimitHeaders {
        let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let number = |name: &str| text(name).and_then(|value| value.trim().parse::<f64>().ok());
        RateLimitHeaders {
            present: headers
                .keys()
                .any(|name| name.as_str().starts_with("x-ratelimit-")),
            remaining: text("x-ratelimit-remaining").and_then(|value| value.trim().parse().ok()),
            reset_after: number("x-ratelimit-reset-after").map(seconds),
            global: text("x-ratelimit-global")
                .is_some_and(|value| value.eq_ignore_ascii_case("true")),
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<f64>().ok())
                .map(seconds),
        }
    }
}

/// Discord's JSON error body (v10), all fields optional.
#[derive(Debug, Deserialize)]
struct DiscordError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<u64>,
    #[serde(default)]
    errors: Option<Value>,
    #[serde(default)]
    retry_after: Option<f64>,
    #[serde(default)]
    global: bool,
}

impl DiscordError {
    fn describe(&self) -> String {
        let mut text = String::new();
        if let Some(code) = self.code {
            text.push_str(&format!("code {code}"));
        }
        if let Some(message) = &self.message {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(message);
        }
        if let Some(errors) = &self.errors {
            text.push_str(": ");
            text.push_str(&crate::render::keep_beginning(
                &errors.to_string(),
                BODY_EXCERPT_CHARACTERS,
            ));
        }
        if text.is_empty() {
            text.push_str("no details");
        }
        text
    }
}
