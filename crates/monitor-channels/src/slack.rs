//! Slack: alerts posted to an incoming webhook (<https://api.slack.com/messaging/webhooks>).
//!
//! - One message per batch: a fallback `text` for notifications, and per alert an
//!   attachment coloured by level (CRITICAL red, OK green) holding a `header` block (the
//!   title, plain text, 150 characters) and a `section` block (the body, mrkdwn, 3000
//!   characters), within Slack's 50 blocks a message
//!   (<https://api.slack.com/reference/block-kit/blocks>).
//! - An alert with a link (monitor-server's page of its device) gets an "Open" button as
//!   its section's accessory (no third block: the 50 stay enough for 25 alerts); a link
//!   longer than a button's 3000 characters is left out
//!   (<https://api.slack.com/reference/block-kit/block-elements#button>).
//! - mrkdwn text escapes `&`, `<` and `>` (<https://api.slack.com/reference/surfaces/formatting#escaping>):
//!   a log line can neither mention `@channel` nor make a link.
//! - Slack takes one message a second per webhook (<https://api.slack.com/apis/rate-limits>):
//!   messages are a second apart; a 429 waits its `Retry-After`.
//! - Errors (<https://api.slack.com/messaging/webhooks#handling_errors>): 400
//!   `invalid_payload`, `invalid_blocks`, ... refuse the message; 403 `action_prohibited` or
//!   `invalid_token`, 404 `channel_not_found` or `no_service`, 410 `channel_is_archived`
//!   mean the webhook cannot post: gone, with what to fix.
//!
//! The webhook URL's last segment is its secret: messages and `Debug` show it as `***`.

use std::fmt;
use std::time::Duration;

use monitor_destination::{Destination, OutgoingAlert, Verdict, VerdictFuture};
use monitor_wire::Level;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::http::{no_body_wait, Failure, Requests};
use crate::pace::Pace;
use crate::service_url::ServiceUrl;
use crate::text::{alert_text, cut};

/// Characters of a header block's text.
pub const HEADER_LIMIT: usize = 150;
/// Characters of a section block's text.
pub const SECTION_LIMIT: usize = 3000;
/// Blocks in a message, over all its attachments.
pub const BLOCKS_LIMIT: usize = 50;
/// Characters of a button's URL.
pub const BUTTON_URL_LIMIT: usize = 3000;
/// Characters of the fallback text we send (Slack cuts at 40000; a notification shows less).
const FALLBACK_LIMIT: usize = 500;
/// Two blocks per alert within the 50 of a message.
const BATCH_SIZE: usize = BLOCKS_LIMIT / 2;
const SPACING: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CRITICAL_COLOR: &str = "#D40E0D";
const OK_COLOR: &str = "#2EB67D";

const EXPECTED: &str = "expected https://hooks.slack.com/services/T…/B…/… (from the Slack app's Incoming Webhooks page)";

/// An incoming webhook's URL: `https://hooks.slack.com/services/{team}/{bot}/{secret}`. The
/// scheme and host are kept as given (a stand-in, a Slack-compatible relay); callers decide
/// which hosts they allow.
#[derive(Clone, PartialEq, Eq)]
pub struct SlackWebhookUrl {
    url: ServiceUrl,
    /// `{team}/{bot}`: not a secret.
    id: String,
    secret: String,
}

/// Why a text is not a webhook URL; no variant holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackUrlError {
    #[error("{0}: {EXPECTED}")]
    Url(String),
    #[error("the webhook URL on `{0}` is not /services/<team>/<bot>/<secret>: {EXPECTED}")]
    NotAWebhookPath(String),
}

impl SlackWebhookUrl {
    pub fn parse(text: &str) -> Result<SlackWebhookUrl, SlackUrlError> {
        let url = ServiceUrl::parse(text)
            .map_err(|error| SlackUrlError::Url(error.describe("webhook URL")))?;
        let not_a_webhook = || SlackUrlError::NotAWebhookPath(url.host.clone());
        let segments: Vec<&str> = url.path.trim_end_matches('/').split('/').collect();
        let ["", "services", team, bot, secret] = segments[..] else {
            return Err(not_a_webhook());
        };
        let word = |text: &str| {
            !text.is_empty()
                && text
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
        };
        if !(word(team) && word(bot) && word(secret)) {
            return Err(not_a_webhook());
        }
        Ok(SlackWebhookUrl {
            id: format!("{team}/{bot}"),
            secret: secret.to_owned(),
            url: url.clone(),
        })
    }

    /// Where to post: holds the secret, never log it.
    pub fn post_url(&self) -> String {
        format!(
            "{}://{}/services/{}/{}",
            self.url.scheme, self.url.host, self.id, self.secret
        )
    }

    /// The URL with its secret replaced by `***`.
    pub fn redacted(&self) -> String {
        format!(
            "{}://{}/services/{}/***",
            self.url.scheme, self.url.host, self.id
        )
    }

    /// `{team}/{bot}`, the webhook's ids: not a secret.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Slack's own `https://hooks.slack.com`.
    pub fn is_slack(&self) -> bool {
        self.url.is_https_on("hooks.slack.com")
    }

    /// Over https, or to this machine.
    pub fn is_https_or_loopback(&self) -> bool {
        self.url.scheme == "https" || self.url.is_loopback()
    }

    /// `https` or `http`, and the host with its port, for messages.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.url.scheme, self.url.host)
    }
}

impl fmt::Debug for SlackWebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlackWebhookUrl({})", self.redacted())
    }
}

impl fmt::Display for SlackWebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `text` safe in mrkdwn: `&`, `<` and `>` as Slack's entities.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            // Control characters other than line ends say nothing in a message.
            other if other.is_control() && other != '\n' => escaped.push(' '),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The message for `alerts` (at most 25) about `device`.
pub fn render(device: &str, alerts: &[OutgoingAlert<'_>]) -> Value {
    let texts: Vec<_> = alerts
        .iter()
        .map(|alert| (alert.alert.level, alert_text(device, alert), alert.link))
        .collect();
    let attachments: Vec<Value> = texts
        .iter()
        .take(BATCH_SIZE)
        .map(|(level, text, link)| {
            let title = cut(&plain(&text.title), HEADER_LIMIT);
            // Cut before escaping so that an entity is never split; an escape is at most
            // five characters, so a fifth of the room keeps the escaped text inside.
            let body = escape_within(&text.body, SECTION_LIMIT);
            let mut section = json!({"type": "section", "text": {"type": "mrkdwn", "text": body}});
            if let Some(link) = link.filter(|link| link.chars().count() <= BUTTON_URL_LIMIT) {
                section["accessory"] = json!({
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open", "emoji": false},
                    "url": link,
                });
            }
            json!({
                "color": color(*level),
                "fallback": title,
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": false}},
                    section,
                ],
            })
        })
        .collect();
    let mut fallback = texts
        .first()
        .map(|(_, text, _)| plain(&text.title))
        .unwrap_or_default();
    if texts.len() > 1 {
        fallback.push_str(&format!(" (and {} more)", texts.len() - 1));
    }
    json!({
        "text": escape(&cut(&fallback, FALLBACK_LIMIT)),
        "attachments": attachments,
    })
}

/// `text` escaped, cut before escaping so that the escaped text has at most `limit`
/// characters.
fn escape_within(text: &str, limit: usize) -> String {
    let escaped = escape(text);
    if escaped.chars().count() <= limit {
        return escaped;
    }
    // Keep the longest beginning whose escape fits, with the marker.
    let mut kept = String::new();
    let mut length = 0;
    for character in text.chars() {
        let grows = escape(&character.to_string()).chars().count();
        if length + grows + 1 > limit {
            break;
        }
        length += grows;
        kept.push(character);
    }
    kept.push(crate::text::TRUNCATION_MARKER);
    escape(&kept)
}

fn plain(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() {
                ' '
            } else {
                character
            }
        })
        .collect()
}

fn color(level: Level) -> &'static str {
    match level {
        Level::Critical => CRITICAL_COLOR,
        Level::Ok => OK_COLOR,
    }
}

/// An incoming webhook as a [`Destination`].
pub struct SlackDestination {
    http: reqwest::Client,
    url: SlackWebhookUrl,
    requests: Requests,
    pace: Pace,
}

impl SlackDestination {
    /// Posts with `http` (which must have a TLS provider).
    pub fn new(url: SlackWebhookUrl, http: reqwest::Client) -> SlackDestination {
        SlackDestination {
            http,
            url,
            requests: Requests::new("Slack"),
            pace: Pace::new(SPACING),
        }
    }

    async fn post(&mut self, message: &Value) -> Result<(), Failure> {
        let request = self
            .http
            .post(self.url.post_url())
            .header(CONTENT_TYPE, "application/json")
            .timeout(REQUEST_TIMEOUT)
            .body(message.to_string());
        self.pace.wait().await;
        let answer = self
            .requests
            .send_refined(request, no_body_wait, refine)
            .await;
        self.pace.sent();
        answer
            .map(|_| ())
            .map_err(|failure| self.about_webhook(failure))
    }

    fn about_webhook(&self, failure: Failure) -> Failure {
        let redact = |message: String| {
            format!(
                "webhook {}: {}",
                self.url.redacted(),
                message.replace(&self.url.secret, "***")
            )
        };
        match failure {
            Failure::Retry { after, message } => Failure::Retry {
                after,
                message: redact(message),
            },
            Failure::Rejected { message } => Failure::Rejected {
                message: redact(message),
            },
            Failure::Gone { message } => Failure::Gone {
                message: redact(message),
            },
        }
    }
}

impl fmt::Debug for SlackDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlackDestination({})", self.url.redacted())
    }
}

impl Destination for SlackDestination {
    fn batch_size(&self) -> usize {
        BATCH_SIZE
    }

    fn paused_until(&self) -> Option<Instant> {
        self.pace.until()
    }

    fn deliver<'a>(
        &'a mut self,
        device: &'a str,
        alerts: &'a [OutgoingAlert<'a>],
    ) -> VerdictFuture<'a> {
        Box::pin(async move {
            let mut delivered = 0;
            for part in alerts.chunks(BATCH_SIZE) {
                if let Err(failure) = self.post(&render(device, part)).await {
                    return failure.verdict(delivered);
                }
                delivered += part.len();
            }
            Verdict::Delivered
        })
    }
}

/// What to fix when Slack says the webhook cannot post; its body is the error's name.
fn refine(status: StatusCode, body: &str) -> Option<Failure> {
    let error = crate::http::reason(body);
    let fix = match (status.as_u16(), error.as_str()) {
        (403, "action_prohibited") => "an admin restricted posting to this channel; ask them, or use another channel's webhook",
        (403, _) => "the webhook's token was refused; create a new incoming webhook and update the URL",
        (404, "channel_not_found") => "its channel was deleted; create a webhook for another channel and update the URL",
        (404, _) => "the webhook was removed or its app disabled; create a new incoming webhook and update the URL",
        (410, _) => "its channel is archived; unarchive it, or create a webhook for another channel and update the URL",
        _ => return None,
    };
    Some(Failure::Gone {
        message: format!("Slack answered {}: {error}: {fix}", status.as_u16()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_wire::{Alert, CheckId, Details, LogLine, Subject, Subsystem, Timestamp};

    fn alert(level: Level, line: &str) -> Alert {
        Alert {
            name: "alert".into(),
            level,
            timestamp: Timestamp(std::time::UNIX_EPOCH),
            subject: Subject {
                name: "app".into(),
                kind: "log".into(),
                status: "LOGCONTAINS".into(),
                details: Details {
                    line_matching: Some(LogLine {
                        line_number: 3,
                        data: line.into(),
                    }),
                    ..Details::default()
                },
            },
        }
    }

    fn unescape(text: &str) -> String {
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    #[test]
    fn a_hostile_line_is_escaped_and_colours_say_the_level() {
        let hostile = "<!channel> <@U123> <https://evil.example|click> &amp; *bold* `x` > quote";
        let check = CheckId::new(Subsystem::Log, "app");
        let critical = alert(Level::Critical, hostile);
        let ok = alert(Level::Ok, "fine");
        let message = render(
            "pi",
            &[
                OutgoingAlert {
                    seq: 1,
                    check: Some(&check),
                    alert: &critical,
                    link: None,
                },
                OutgoingAlert {
                    seq: 2,
                    check: Some(&check),
                    alert: &ok,
                    link: None,
                },
            ],
        );
        assert_eq!(message["text"], "CRITICAL: log app on pi (and 1 more)");
        let attachments = message["attachments"].as_array().unwrap();
        assert_eq!(attachments[0]["color"], CRITICAL_COLOR);
        assert_eq!(attachments[1]["color"], OK_COLOR);
        let blocks = &attachments[0]["blocks"];
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "CRITICAL: log app on pi");
        let section = blocks[1]["text"]["text"].as_str().unwrap();
        assert!(!section.contains('<'), "{section}");
        assert!(
            unescape(section).contains(&format!("> 3: {hostile}")),
            "{section}"
        );
    }

    #[test]
    fn blocks_stay_within_slacks_limits() {
        let check = CheckId::new(Subsystem::Log, "a".repeat(200));
        let long = alert(Level::Critical, &"<&>".repeat(2000));
        let alerts: Vec<OutgoingAlert<'_>> = (0..BATCH_SIZE as u64)
            .map(|seq| OutgoingAlert {
                seq,
                check: Some(&check),
                alert: &long,
                link: None,
            })
            .collect();
        let message = render("pi", &alerts);
        let attachments = message["attachments"].as_array().unwrap();
        let blocks: usize = attachments
            .iter()
            .map(|a| a["blocks"].as_array().unwrap().len())
            .sum();
        assert!(blocks <= BLOCKS_LIMIT);
        for attachment in attachments {
            let header = attachment["blocks"][0]["text"]["text"].as_str().unwrap();
            let section = attachment["blocks"][1]["text"]["text"].as_str().unwrap();
            assert!(header.chars().count() <= HEADER_LIMIT);
            assert!(section.chars().count() <= SECTION_LIMIT);
            assert!(section.chars().count() > SECTION_LIMIT - 6);
            // The cut never splits an entity.
            for (index, _) in section.match_indices('&') {
                let rest = &section[index + 1..];
                assert!(
                    ["amp;", "lt;", "gt;"]
                        .iter()
                        .any(|entity| rest.starts_with(entity)),
                    "{section}"
                );
            }
        }
    }

    #[test]
    fn a_link_is_an_open_button_beside_the_section() {
        let check = CheckId::new(Subsystem::Log, "app");
        let critical = alert(Level::Critical, "boom");
        let linked = OutgoingAlert {
            seq: 1,
            check: Some(&check),
            alert: &critical,
            link: Some("https://monitor.example/ui/devices/d1"),
        };
        let message = render("pi", &[linked]);
        let section = &message["attachments"][0]["blocks"][1];
        assert_eq!(section["accessory"]["type"], "button");
        assert_eq!(section["accessory"]["text"]["text"], "Open");
        assert_eq!(
            section["accessory"]["url"],
            "https://monitor.example/ui/devices/d1"
        );
        let unlinked = render(
            "pi",
            &[OutgoingAlert {
                link: None,
                ..linked
            }],
        );
        assert!(unlinked["attachments"][0]["blocks"][1]
            .get("accessory")
            .is_none());
        let long = format!("https://monitor.example/{}", "a".repeat(BUTTON_URL_LIMIT));
        let too_long = render(
            "pi",
            &[OutgoingAlert {
                link: Some(&long),
                ..linked
            }],
        );
        assert!(too_long["attachments"][0]["blocks"][1]
            .get("accessory")
            .is_none());
    }

    #[test]
    fn the_url_parses_and_never_shows_its_secret() {
        let url = SlackWebhookUrl::parse("https://hooks.slack.com/services/T000/B000/XXXXsecret")
            .unwrap();
        assert!(url.is_slack());
        assert_eq!(url.id(), "T000/B000");
        assert_eq!(
            url.redacted(),
            "https://hooks.slack.com/services/T000/B000/***"
        );
        assert!(!format!("{url:?} {url}").contains("XXXXsecret"));
        assert_eq!(
            url.post_url(),
            "https://hooks.slack.com/services/T000/B000/XXXXsecret"
        );
        let local = SlackWebhookUrl::parse("http://127.0.0.1:9/services/T1/B2/s").unwrap();
        assert!(!local.is_slack() && local.is_https_or_loopback());
        let error = SlackWebhookUrl::parse("https://hooks.slack.com/workflows/T1/hidden42")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hidden42"), "{error}");
        assert!(SlackWebhookUrl::parse("https://hooks.slack.com/services/T1/B2").is_err());
    }

    #[test]
    fn gone_answers_say_what_to_fix() {
        let gone =
            |status: u16, body: &str| match refine(StatusCode::from_u16(status).unwrap(), body) {
                Some(Failure::Gone { message }) => message,
                other => panic!("{status} {body}: {other:?}"),
            };
        assert!(gone(404, "no_service").contains("create a new incoming webhook"));
        assert!(gone(410, "channel_is_archived").contains("unarchive"));
        assert!(gone(403, "action_prohibited").contains("admin"));
        assert!(refine(StatusCode::BAD_REQUEST, "invalid_blocks").is_none());
        assert!(refine(StatusCode::TOO_MANY_REQUESTS, "").is_none());
    }
}
