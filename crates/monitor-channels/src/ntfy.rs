//! ntfy (<https://ntfy.sh> or a self-hosted server): one message per alert, published to a
//! topic URL as <https://docs.ntfy.sh/publish/> documents it.
//!
//! - body: the alert's text, cut by characters to stay under ntfy's message size limit
//!   (4096 bytes by default; a larger message becomes an attachment or is refused);
//! - `Title`: the alert's title, cut; RFC 2047-encoded (`=?UTF-8?B?…?=`) when it is not
//!   ASCII, which ntfy decodes (HTTP headers carry ASCII only);
//! - `Priority`: per level, by default `high` (4) for CRITICAL and `default` (3) for OK;
//! - `Tags`: `rotating_light` for CRITICAL, `white_check_mark` for OK (ntfy shows them as
//!   emojis), then the user's;
//! - `Click`: the topic's link, with `{{device}}` replaced by the device's name
//!   (URL-encoded); without one, the alert's own link when it has one (monitor-server's
//!   dashboard);
//! - `Authorization`: `Bearer <access token>`, or `Basic` for a user and password.
//!
//! ntfy answers a publish over its rate limits with 429 and
//! `{"code":42901,"http":429,"error":"limit reached: too many requests",…}` and no
//! `Retry-After`: the backoff applies (see `http`), and the outbox keeps the alert.

use std::time::Duration;

use base64::Engine;
use monitor_destination::{Destination, OutgoingAlert, Verdict, VerdictFuture};
use monitor_wire::Level;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use crate::http::{no_body_wait, Requests};
use crate::text::{alert_text, TRUNCATION_MARKER};
use crate::webhook::secure_url;

/// ntfy's default `message-size-limit`.
pub const MESSAGE_BYTES_LIMIT: usize = 4096;
/// ntfy documents no title limit; a notification shows a line of it.
pub const TITLE_LIMIT: usize = 250;
/// Alerts per delivery, one request each.
const BATCH_SIZE: usize = 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A message's priority, 1 to 5 (`min`, `low`, `default`, `high`, `max`/`urgent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority(u8);

impl Priority {
    pub const DEFAULT: Priority = Priority(3);
    pub const HIGH: Priority = Priority(4);

    /// A number 1–5 or one of ntfy's names.
    pub fn parse(text: &str) -> Result<Priority, String> {
        let number = match text.trim().to_ascii_lowercase().as_str() {
            "1" | "min" => 1,
            "2" | "low" => 2,
            "3" | "default" => 3,
            "4" | "high" => 4,
            "5" | "max" | "urgent" => 5,
            _ => {
                return Err(format!(
                    "\"{text}\" is not a priority: use 1 to 5, or min, low, default, high or max"
                ))
            }
        };
        Ok(Priority(number))
    }

    pub fn number(self) -> u8 {
        self.0
    }
}

/// How the topic's server knows us.
#[derive(Clone, PartialEq, Eq)]
pub enum NtfyAuth {
    None,
    /// An access token (`tk_…`).
    Token(String),
    Basic {
        user: String,
        password: String,
    },
}

impl std::fmt::Debug for NtfyAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            NtfyAuth::None => "None",
            NtfyAuth::Token(_) => "Token(***)",
            NtfyAuth::Basic { .. } => "Basic(***)",
        })
    }
}

impl NtfyAuth {
    fn header(&self) -> Option<HeaderValue> {
        let text = match self {
            NtfyAuth::None => return None,
            NtfyAuth::Token(token) => format!("Bearer {token}"),
            NtfyAuth::Basic { user, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
        };
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// A topic URL, checked: `https://ntfy.sh/mytopic`, one path segment.
#[derive(Clone, PartialEq, Eq)]
pub struct TopicUrl(reqwest::Url);

impl TopicUrl {
    pub fn parse(text: &str, allow_insecure: bool) -> Result<TopicUrl, String> {
        let url = secure_url(text, allow_insecure)?;
        let topic = url.path().trim_matches('/');
        if topic.is_empty() || topic.contains('/') || url.query().is_some() {
            return Err(
                "not a topic URL: write the server and the topic, for example https://ntfy.sh/mytopic"
                    .into(),
            );
        }
        Ok(TopicUrl(url))
    }

    /// `ntfy.sh/mytopic`: the name the outbox and messages use. (A topic on a server
    /// without access control is its own password: it is shown only to who reads the
    /// agent's settings, state and log.)
    pub fn name(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        let topic = self.0.path().trim_matches('/');
        match self.0.port() {
            Some(port) => format!("{host}:{port}/{topic}"),
            None => format!("{host}/{topic}"),
        }
    }

    pub fn url(&self) -> &reqwest::Url {
        &self.0
    }
}

impl std::fmt::Debug for TopicUrl {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.name())
    }
}

/// One topic, resolved.
#[derive(Debug, Clone)]
pub struct NtfyConfig {
    pub topic: TopicUrl,
    pub auth: NtfyAuth,
    pub critical_priority: Priority,
    pub ok_priority: Priority,
    /// After the level's own tag.
    pub tags: Vec<String>,
    /// With `{{device}}`; when set, it is the `Click` link even of alerts with their own.
    pub click_url: Option<String>,
}

/// One message's headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub title: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub click: Option<String>,
    pub message: String,
}

/// `alert` about `device` as an ntfy message, within ntfy's limits.
pub fn publication(config: &NtfyConfig, device: &str, alert: &OutgoingAlert<'_>) -> Publication {
    let text = alert_text(device, alert);
    let (priority, level_tag) = match alert.alert.level {
        Level::Critical => (config.critical_priority, "rotating_light"),
        Level::Ok => (config.ok_priority, "white_check_mark"),
    };
    let mut tags = vec![level_tag.to_owned()];
    tags.extend(config.tags.iter().cloned());
    Publication {
        title: crate::text::cut(&text.title, TITLE_LIMIT),
        priority,
        tags,
        // The topic's own link wins over the sender's page of the alert.
        click: config
            .click_url
            .as_ref()
            .map(|url| url.replace("{{device}}", &url_encoded(device)))
            .or_else(|| alert.link.map(str::to_owned)),
        message: cut_bytes(&text.body, MESSAGE_BYTES_LIMIT),
    }
}

/// `text` cut between characters so that it, with the marker, takes at most `limit` bytes.
pub fn cut_bytes(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let room = limit.saturating_sub(TRUNCATION_MARKER.len_utf8());
    let mut end = room;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATION_MARKER}", &text[..end])
}

fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// A header value as ntfy reads it: as it is when printable ASCII, else RFC 2047's
/// base64 encoded-word.
fn header_text(text: &str) -> HeaderValue {
    let printable = text.bytes().all(|byte| (0x20..0x7f).contains(&byte));
    let text = if printable {
        text.to_owned()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// One topic as a destination.
#[derive(Debug)]
pub struct NtfyDestination {
    http: reqwest::Client,
    config: NtfyConfig,
    requests: Requests,
}

impl NtfyDestination {
    pub fn new(config: NtfyConfig, http: reqwest::Client) -> NtfyDestination {
        NtfyDestination {
            http,
            config,
            requests: Requests::new("ntfy").with_fixes(fixes),
        }
    }

    fn request(&self, device: &str, alert: &OutgoingAlert<'_>) -> reqwest::RequestBuilder {
        let publication = publication(&self.config, device, alert);
        let mut request = self
            .http
            .post(self.config.topic.url().clone())
            .timeout(REQUEST_TIMEOUT)
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .header("Title", header_text(&publication.title))
            .header("Priority", publication.priority.number().to_string())
            .header("Tags", header_text(&publication.tags.join(",")));
        if let Some(click) = &publication.click {
            request = request.header("Click", header_text(click));
        }
        if let Some(authorization) = self.config.auth.header() {
            request = request.header(AUTHORIZATION, authorization);
        }
        request.body(publication.message)
    }
}

impl Destination for NtfyDestination {
    fn batch_size(&self) -> usize {
        BATCH_SIZE
    }

    fn deliver<'a>(
        &'a mut self,
        device: &'a str,
        alerts: &'a [OutgoingAlert<'a>],
    ) -> VerdictFuture<'a> {
        Box::pin(async move {
            for (delivered, alert) in alerts.iter().enumerate() {
                let request = self.request(device, alert);
                if let Err(failure) = self.requests.send(request, no_body_wait).await {
                    return failure.verdict(delivered);
                }
            }
            Verdict::Delivered
        })
    }
}

/// What to do when ntfy refuses a message for good
/// (<https://docs.ntfy.sh/publish/#authentication>).
fn fixes(status: u16) -> Option<&'static str> {
    match status {
        401 => Some("the access token (or user and password) is wrong: check token_file or token_env (or username and password_file)"),
        403 => Some("this topic is protected and may not be written with these credentials: set token_file or token_env to a token with write access to it"),
        404 | 410 => Some("check url: the topic's URL, such as https://ntfy.sh/my-pi-alerts"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_wire::{Alert, CheckId, Details, Subject, Subsystem, Timestamp};

    fn config() -> NtfyConfig {
        NtfyConfig {
            topic: TopicUrl::parse("https://ntfy.sh/pi-alerts", false).unwrap(),
            auth: NtfyAuth::Token("tk_secret".into()),
            critical_priority: Priority::HIGH,
            ok_priority: Priority::DEFAULT,
            tags: vec!["pi".into()],
            click_url: Some("https://monitor.example/devices/{{device}}".into()),
        }
    }

    #[test]
    fn a_critical_is_high_with_a_siren_and_an_ok_default_with_a_check_mark() {
        let check = CheckId::new(Subsystem::Log, "app");
        let mut wire = Alert {
            name: "alert".into(),
            level: Level::Critical,
            timestamp: Timestamp(std::time::UNIX_EPOCH),
            subject: Subject {
                name: "app".into(),
                kind: "log".into(),
                status: "LOGCONTAINS".into(),
                details: Details::default(),
            },
        };
        let critical = publication(
            &config(),
            "pi kitchen",
            &OutgoingAlert {
                seq: 1,
                check: Some(&check),
                alert: &wire,
                link: None,
            },
        );
        assert_eq!(critical.title, "CRITICAL: log app on pi kitchen");
        assert_eq!(critical.priority, Priority::HIGH);
        assert_eq!(critical.tags, ["rotating_light", "pi"]);
        assert_eq!(
            critical.click.as_deref(),
            Some("https://monitor.example/devices/pi%20kitchen")
        );
        wire.level = Level::Ok;
        let ok = publication(
            &config(),
            "pi",
            &OutgoingAlert {
                seq: 2,
                check: Some(&check),
                alert: &wire,
                link: None,
            },
        );
        assert_eq!(ok.priority, Priority::DEFAULT);
        assert_eq!(ok.tags, ["white_check_mark", "pi"]);
    }

    #[test]
    fn the_alerts_own_link_is_the_click_unless_the_topic_has_one() {
        let check = CheckId::new(Subsystem::Log, "app");
        let wire = Alert {
            name: "alert".into(),
            level: Level::Critical,
            timestamp: Timestamp(std::time::UNIX_EPOCH),
            subject: Subject {
                name: "app".into(),
                kind: "log".into(),
                status: "LOGCONTAINS".into(),
                details: Details::default(),
            },
        };
        let linked = OutgoingAlert {
            seq: 1,
            check: Some(&check),
            alert: &wire,
            link: Some("https://monitor.example/ui/devices/d1"),
        };
        let topic_link = publication(&config(), "pi", &linked);
        assert_eq!(
            topic_link.click.as_deref(),
            Some("https://monitor.example/devices/pi")
        );
        let without = NtfyConfig {
            click_url: None,
            ..config()
        };
        let alert_link = publication(&without, "pi", &linked);
        assert_eq!(
            alert_link.click.as_deref(),
            Some("https://monitor.example/ui/devices/d1")
        );
        let none = publication(
            &without,
            "pi",
            &OutgoingAlert {
                link: None,
                ..linked
            },
        );
        assert_eq!(none.click, None);
    }

    #[test]
    fn messages_are_cut_between_characters_under_the_byte_limit() {
        let long = "é".repeat(3000);
        let cut = cut_bytes(&long, MESSAGE_BYTES_LIMIT);
        assert!(cut.len() <= MESSAGE_BYTES_LIMIT);
        assert!(cut.ends_with(TRUNCATION_MARKER));
        assert_eq!(cut_bytes("short", MESSAGE_BYTES_LIMIT), "short");
    }

    #[test]
    fn non_ascii_titles_are_rfc_2047_encoded() {
        assert_eq!(header_text("OK: log app"), "OK: log app");
        assert_eq!(header_text("é"), "=?UTF-8?B?w6k=?=");
    }

    #[test]
    fn topic_urls_name_a_topic_and_priorities_take_names() {
        assert_eq!(
            TopicUrl::parse("https://ntfy.sh/mytopic", false)
                .unwrap()
                .name(),
            "ntfy.sh/mytopic"
        );
        assert!(TopicUrl::parse("https://ntfy.sh/", false).is_err());
        assert!(TopicUrl::parse("https://ntfy.sh/a/b", false).is_err());
        assert!(TopicUrl::parse("http://ntfy.lan/a", false).is_err());
        assert_eq!(Priority::parse("urgent"), Ok(Priority(5)));
        assert!(Priority::parse("6").is_err());
        assert!(!format!("{:?}", config()).contains("tk_secret"));
    }
}
