//! A generic webhook: one JSON `POST` per alert, to any receiver.
//!
//! The body is [`default_body`] (`device`, `check`, `seq`, `title`, `text`, the wire
//! `alert` as Mender has it, and `url` when the alert has a link: monitor-server's page of
//! its device), or the user's [`Template`] with the alert's fields put in.
//! With a shared secret each request is signed: `X-Monitor-Timestamp: <unix seconds>` and
//! `X-Monitor-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, so a
//! receiver can check that the body came from here and is recent.
//!
//! The URL must be `https` unless its host is loopback or the user allows plain HTTP: a
//! signature proves who sent a body, it does not hide it.

use std::fmt;
use std::time::{Duration, SystemTime};

use monitor_destination::{Destination, OutgoingAlert, Verdict, VerdictFuture};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Url;
use ring::hmac;
use serde_json::{json, Value};

use crate::http::{no_body_wait, Requests};
use crate::text::{alert_text, level_word};

/// Alerts per delivery, one request each.
const BATCH_SIZE: usize = 20;
/// A receiver that does not answer within this is retried later.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The placeholders a template may hold, each `{{name}}`.
pub const PLACEHOLDERS: [&str; 8] = [
    "device",
    "level",
    "check",
    "subject",
    "status",
    "title",
    "text",
    "timestamp",
];

/// What is wrong with a webhook's settings; each message names the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("url: {0}")]
    Url(String),
    #[error("template: {0}")]
    Template(String),
    #[error("headers: {0}")]
    Header(String),
}

/// The receiver's URL, checked: `https`, or a loopback host, or plain HTTP allowed.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceiverUrl(Url);

impl ReceiverUrl {
    pub fn parse(text: &str, allow_insecure: bool) -> Result<ReceiverUrl, WebhookError> {
        secure_url(text, allow_insecure)
            .map(ReceiverUrl)
            .map_err(WebhookError::Url)
    }

    /// The host, for names and messages (never the path or the query: they may hold a
    /// token).
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// `https://host/…`: what may be shown.
    pub fn redacted(&self) -> String {
        format!("{}://{}/…", self.0.scheme(), self.authority())
    }

    /// A stable short name that shows no secret: the host and a digest of the whole URL.
    pub fn stable_id(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.0.as_str().as_bytes());
        format!("{}-{}", self.authority(), &hex(digest.as_ref())[..12])
    }

    fn authority(&self) -> String {
        match self.0.port() {
            Some(port) => format!("{}:{port}", self.host()),
            None => self.host().to_owned(),
        }
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Debug for ReceiverUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.redacted())
    }
}

/// `text` as a URL the channels here may send to: `http(s)`, a host, no user or password
/// (services take tokens in headers), and `https` unless the host is loopback or
/// `allow_insecure`.
pub(crate) fn secure_url(text: &str, allow_insecure: bool) -> Result<Url, String> {
    let url = Url::parse(text.trim())
        .map_err(|error| format!("not a URL ({error}): write it as https://host/path"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("not an http(s) URL: write it as https://host/path".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "holds a user or password: give the secret in its own setting, not in the URL".into(),
        );
    }
    if url.scheme() == "http" && !allow_insecure && !is_loopback(&url) {
        return Err(format!(
            "http://{} sends alerts unencrypted: use https, or set allow_insecure: true for a \
             receiver on a network you trust",
            url.host_str().unwrap_or_default()
        ));
    }
    Ok(url)
}

/// 127.0.0.0/8, ::1 or `localhost`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    monitor_wire::host::is_loopback(url.host_str().unwrap_or_default())
}

/// A user's JSON body with `{{placeholders}}`: checked once, filled per alert. Values are
/// put in JSON-string-escaped (without quotes), so a placeholder belongs inside a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(String);

impl Template {
    /// Checks that every placeholder is known and that the text is JSON once they are
    /// filled.
    pub fn parse(text: &str) -> Result<Template, WebhookError> {
        let template = Template(text.to_owned());
        let filled = template.fill(|name| {
            if PLACEHOLDERS.contains(&name) {
                Ok(format!("sample {name}"))
            } else {
                Err(WebhookError::Template(format!(
                    "unknown placeholder {{{{{name}}}}}: use {}",
                    PLACEHOLDERS
                        .iter()
                        .map(|known| format!("{{{{{known}}}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        })?;
        serde_json::from_str::<Value>(&filled).map_err(|error| {
            WebhookError::Template(format!(
                "not JSON once its placeholders are filled ({error}): put each placeholder \
                 inside a string, for example {{\"message\": \"{{{{title}}}}\"}}"
            ))
        })?;
        Ok(template)
    }

    fn fill(
        &self,
        mut value: impl FnMut(&str) -> Result<String, WebhookError>,
    ) -> Result<String, WebhookError> {
        let mut filled = String::with_capacity(self.0.len());
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find("{{") {
            let Some(length) = rest[start + 2..].find("}}") else {
                break;
            };
            filled.push_str(&rest[..start]);
            let name = rest[start + 2..start + 2 + length].trim();
            filled.push_str(&value(name)?);
            rest = &rest[start + 2 + length + 2..];
        }
        filled.push_str(rest);
        Ok(filled)
    }

    /// The body for `alert` about `device`.
    pub fn render(&self, device: &str, alert: &OutgoingAlert<'_>) -> String {
        let text = alert_text(device, alert);
        let wire = alert.alert;
        self.fill(|name| {
            let value = match name {
                "device" => device.to_owned(),
                "level" => level_word(wire.level).to_owned(),
                "check" => alert.check.map(ToString::to_string).unwrap_or_default(),
                "subject" => wire.subject.name.clone(),
                "status" => wire.subject.status.clone(),
                "title" => text.title.clone(),
                "text" => text.body.clone(),
                "timestamp" => wire.timestamp.to_string(),
                _ => String::new(),
            };
            Ok(json_string_content(&value))
        })
        .unwrap_or_default()
    }
}

/// `value` escaped for the inside of a JSON string.
fn json_string_content(value: &str) -> String {
    let quoted = Value::String(value.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The body without a template.
pub fn default_body(device: &str, alert: &OutgoingAlert<'_>) -> Value {
    let text = alert_text(device, alert);
    let mut body = json!({
        "device": device,
        "check": alert.check.map(ToString::to_string),
        "seq": alert.seq,
        "title": text.title,
        "text": text.body,
        "alert": alert.alert,
    });
    if let Some(link) = alert.link {
        body["url"] = Value::from(link);
    }
    body
}

/// Extra request headers, checked: valid names and values, and none of those the HTTP
/// client sets itself.
pub fn parse_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<HeaderMap, WebhookError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            WebhookError::Header(format!(
                "\"{name}\" is not a valid header name: use letters, digits and dashes"
            ))
        })?;
        if matches!(
            header.as_str(),
            "host" | "content-length" | "transfer-encoding"
        ) || header.as_str().starts_with("x-monitor-")
        {
            return Err(WebhookError::Header(format!(
                "{name} is set by the agent itself: remove it"
            )));
        }
        let value = HeaderValue::from_str(value).map_err(|_| {
            WebhookError::Header(format!(
                "the value of {name} is not a valid header value: use printable ASCII on one line"
            ))
        })?;
        map.insert(header, value);
    }
    Ok(map)
}

/// A shared secret for signatures; never shown.
#[derive(Clone)]
pub struct SigningSecret(hmac::Key);

impl SigningSecret {
    pub fn new(secret: &[u8]) -> SigningSecret {
        SigningSecret(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// `sha256=<hex>` of `<timestamp>.<body>`.
    pub fn sign(&self, timestamp: u64, body: &[u8]) -> String {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        format!("sha256={}", hex(context.sign().as_ref()))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SigningSecret(***)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// One webhook, resolved.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: ReceiverUrl,
    pub template: Option<Template>,
    pub headers: HeaderMap,
    pub secret: Option<SigningSecret>,
}

/// One webhook as a destination.
#[derive(Debug)]
pub struct WebhookDestination {
    http: reqwest::Client,
    config: WebhookConfig,
    requests: Requests,
}

impl WebhookDestination {
    pub fn new(config: WebhookConfig, http: reqwest::Client) -> WebhookDestination {
        WebhookDestination {
            http,
            config,
            requests: Requests::new("the webhook").with_fixes(fixes),
        }
    }

    fn request(&self, device: &str, alert: &OutgoingAlert<'_>) -> reqwest::RequestBuilder {
        let body = match &self.config.template {
            Some(template) => template.render(device, alert),
            None => default_body(device, alert).to_string(),
        };
        let mut request = self
            .http
            .post(self.config.url.url().clone())
            .timeout(REQUEST_TIMEOUT)
            .headers(self.config.headers.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.config.secret {
            let timestamp = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            request = request
                .header("X-Monitor-Timestamp", timestamp.to_string())
                .header(
                    "X-Monitor-Signature",
                    secret.sign(timestamp, body.as_bytes()),
                );
        }
        request.body(body)
    }
}

impl Destination for WebhookDestination {
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

/// What to do when the receiver refuses a request for good.
fn fixes(status: u16) -> Option<&'static str> {
    match status {
        401 | 403 => Some("the receiver refused the request: check secret_file or secret_env and headers (such as Authorization) against what it expects"),
        404 | 410 => Some("no receiver at this address: check url"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_wire::{Alert, CheckId, Details, Level, Subject, Subsystem, Timestamp};

    fn wire(level: Level) -> Alert {
        Alert {
            name: "alert".into(),
            level,
            timestamp: Timestamp(std::time::UNIX_EPOCH),
            subject: Subject {
                name: "app".into(),
                kind: "log".into(),
                status: "LOGCONTAINS".into(),
                details: Details {
                    description: Some("a \"quoted\"\nline".into()),
                    ..Details::default()
                },
            },
        }
    }

    #[test]
    fn urls_need_https_unless_loopback_or_allowed() {
        assert!(ReceiverUrl::parse("https://hooks.example/x", false).is_ok());
        assert!(ReceiverUrl::parse("http://127.0.0.1:8080/x", false).is_ok());
        assert!(ReceiverUrl::parse("http://[::1]/x", false).is_ok());
        assert!(ReceiverUrl::parse("http://localhost/x", false).is_ok());
        assert!(ReceiverUrl::parse("http://192.168.1.5/x", true).is_ok());
        let error = ReceiverUrl::parse("http://192.168.1.5/x", false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "url: http://192.168.1.5 sends alerts unencrypted: use https, or set allow_insecure: true for a receiver on a network you trust"
        );
        assert!(ReceiverUrl::parse("ftp://x/y", true).is_err());
        let url = ReceiverUrl::parse("https://hooks.example/secret-path?token=t", false).unwrap();
        assert_eq!(url.redacted(), "https://hooks.example/…");
        assert!(!format!("{url:?} {}", url.stable_id()).contains("secret"));
    }

    #[test]
    fn templates_are_filled_with_escaped_values_and_checked_once() {
        let template =
            Template::parse(r#"{"text": "{{title}}: {{text}}", "level": "{{ level }}"}"#).unwrap();
        let check = CheckId::new(Subsystem::Log, "app");
        let alert = wire(Level::Critical);
        let body = template.render(
            "pi",
            &OutgoingAlert {
                seq: 3,
                check: Some(&check),
                alert: &alert,
                link: None,
            },
        );
        let value: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["level"], "CRITICAL");
        assert!(value["text"]
            .as_str()
            .unwrap()
            .starts_with("CRITICAL: log app on pi: Status: LOGCONTAINS\na \"quoted\"\nline"));
        let error = Template::parse(r#"{"text": {{title}}}"#).unwrap_err();
        assert!(
            error.to_string().starts_with("template: not JSON once"),
            "{error}"
        );
        let error = Template::parse(r#"{"text": "{{nope}}"}"#).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("template: unknown placeholder {{nope}}: use {{device}}"),
            "{error}"
        );
    }

    #[test]
    fn the_default_body_carries_the_wire_alert() {
        let alert = wire(Level::Ok);
        let body = default_body(
            "pi",
            &OutgoingAlert {
                seq: 9,
                check: None,
                alert: &alert,
                link: None,
            },
        );
        assert_eq!(body["check"], Value::Null);
        assert_eq!(body["seq"], 9);
        assert_eq!(body["title"], "OK: log app on pi");
        assert_eq!(body["alert"]["level"], "OK");
        assert_eq!(body["alert"]["subject"]["status"], "LOGCONTAINS");
        assert!(body.get("url").is_none(), "no link, no url: {body}");
        let linked = default_body(
            "pi",
            &OutgoingAlert {
                seq: 9,
                check: None,
                alert: &alert,
                link: Some("https://monitor.example/ui/devices/d1"),
            },
        );
        assert_eq!(linked["url"], "https://monitor.example/ui/devices/d1");
    }

    #[test]
    fn headers_the_client_sets_or_invalid_ones_are_refused() {
        assert!(parse_headers([("Authorization", "Bearer x")]).is_ok());
        for (name, value) in [("Host", "x"), ("content-length", "1"), ("bad name", "x")] {
            assert!(parse_headers([(name, value)]).is_err(), "{name}");
        }
        assert!(parse_headers([("X-A", "two\nlines")]).is_err());
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_timestamp_and_the_body() {
        // RFC 4231 test case 2's key and data, split as "<timestamp>.<body>" would be.
        let secret = SigningSecret::new(b"Jefe");
        let mut context = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"));
        context.update(b"1700000000.{\"a\":1}");
        assert_eq!(
            secret.sign(1_700_000_000, b"{\"a\":1}"),
            format!("sha256={}", hex(context.sign().as_ref()))
        );
        let known = SigningSecret::new(b"Jefe");
        let mut context = hmac::Context::with_key(&known.0);
        context.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(context.sign().as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
