//! The webhook URL: parsed once, posted to the versioned API, shown only redacted.

use std::fmt;
use std::str::FromStr;

/// What a valid URL looks like; every parse error ends with it.
const EXPECTED: &str = "expected https://discord.com/api/webhooks/{id}/{token}, optionally with ?thread_id={id} (copy it from the channel's Integrations > Webhooks > Copy Webhook URL)";

/// The API version every request goes to: an unversioned path would mean v6, where
/// `retry_after` may be milliseconds and errors have an older shape.
const API_VERSION: &str = "v10";

/// A Discord webhook URL, parsed.
///
/// Accepts `https://discord.com/api/webhooks/{id}/{token}`, the `discordapp.com`,
/// `canary.` and `ptb.` hosts, versioned paths (`/api/v{N}/webhooks/...`) and an optional
/// `?thread_id=`. Scheme and host (with its port) are kept as given, so a relay or a
/// stand-in on `127.0.0.1` works.
///
/// The token is a secret: [`Display`](fmt::Display) and [`Debug`](fmt::Debug) show
/// [`WebhookUrl::redacted`], and no parse error repeats it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WebhookUrl {
    scheme: String,
    /// Host with the port, if one was given.
    host: String,
    id: String,
    token: String,
    thread_id: Option<String>,
}

/// Why a text is not a webhook URL. No variant carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookUrlError {
    #[error("the webhook URL is empty: {EXPECTED}")]
    Empty,
    #[error("the webhook URL has no scheme: {EXPECTED}")]
    MissingScheme,
    #[error("the webhook URL's scheme `{scheme}` is not https or http: {EXPECTED}")]
    UnsupportedScheme { scheme: String },
    #[error("the webhook URL has no host: {EXPECTED}")]
    MissingHost,
    #[error("the webhook URL on `{host}` carries a user name or password, which Discord never uses: {EXPECTED}")]
    Credentials { host: String },
    #[error("the webhook URL on `{host}` is not a webhook path: {EXPECTED}")]
    NotAWebhookPath { host: String },
    #[error("the webhook URL on `{host}` is Discord's Slack- or GitHub-compatible endpoint; use the plain URL without the last path segment: {EXPECTED}")]
    CompatibilityEndpoint { host: String },
    #[error("the webhook URL on `{host}` has id `{id}`, which is not a number: {EXPECTED}")]
    BadId { host: String, id: String },
    #[error("the webhook URL on `{host}` has a token with characters a Discord token never has (letters, digits, `-`, `_` and `.` only): {EXPECTED}")]
    BadToken { host: String },
    #[error("the webhook URL on `{host}` has thread_id `{thread_id}`, which is not a number: {EXPECTED}")]
    BadThreadId { host: String, thread_id: String },
}

impl WebhookUrl {
    /// Parses a webhook URL as pasted from Discord (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<WebhookUrl, WebhookUrlError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(WebhookUrlError::Empty);
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or(WebhookUrlError::MissingScheme)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(WebhookUrlError::UnsupportedScheme { scheme });
        }
        // A fragment never reaches the server; drop it before anything else.
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (before_query, query) = match rest.split_once('?') {
            Some((before, query)) => (before, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.find('/') {
            Some(slash) => before_query.split_at(slash),
            None => (before_query, ""),
        };
        if authority.contains('@') {
            let host = authority.rsplit('@').next().unwrap_or_default().to_owned();
            return Err(WebhookUrlError::Credentials { host });
        }
        if authority.is_empty() || authority.starts_with(':') {
            return Err(WebhookUrlError::MissingHost);
        }
        let host = authority.to_owned();
        let not_a_webhook = || WebhookUrlError::NotAWebhookPath { host: host.clone() };

        let mut segments = path.trim_end_matches('/').split('/');
        // The path starts with `/`, so the first segment is empty.
        if segments.next() != Some("") || segments.next() != Some("api") {
            return Err(not_a_webhook());
        }
        let mut segment = segments.next().ok_or_else(not_a_webhook)?;
        if is_api_version(segment) {
            segment = segments.next().ok_or_else(not_a_webhook)?;
        }
        if segment != "webhooks" {
            return Err(not_a_webhook());
        }
        let id = segments.next().ok_or_else(not_a_webhook)?;
        let token = segments.next().ok_or_else(not_a_webhook)?;
        match segments.next() {
            None => {}
            Some("slack" | "github") if segments.next().is_none() => {
                return Err(WebhookUrlError::CompatibilityEndpoint { host });
            }
            Some(_) => return Err(not_a_webhook()),
        }
        if !is_snowflake(id) {
            return Err(WebhookUrlError::BadId {
                host,
                id: id.to_owned(),
            });
        }
        if token.is_empty() || !token.chars().all(is_token_char) {
            return Err(WebhookUrlError::BadToken { host });
        }

        let mut thread_id = None;
        for pair in query.unwrap_or_default().split('&') {
            // Other parameters (`wait`, ...) are ours to set; ignore what was pasted.
            if let Some(value) = pair.strip_prefix("thread_id=") {
                if !is_snowflake(value) {
                    return Err(WebhookUrlError::BadThreadId {
                        host,
                        thread_id: value.to_owned(),
                    });
                }
                thread_id = Some(value.to_owned());
            }
        }

        Ok(WebhookUrl {
            scheme,
            host,
            id: id.to_owned(),
            token: token.to_owned(),
            thread_id,
        })
    }

    /// Where to post: `{scheme}://{host}/api/v10/webhooks/{id}/{token}?wait=true[&thread_id=..]`.
    /// Contains the token: never log it.
    pub fn post_url(&self) -> String {
        let mut url = format!(
            "{}://{}/api/{API_VERSION}/webhooks/{}/{}?wait=true",
            self.scheme, self.host, self.id, self.token
        );
        if let Some(thread_id) = &self.thread_id {
            url.push_str("&thread_id=");
            url.push_str(thread_id);
        }
        url
    }

    /// The URL with its token replaced by `***`, fit for logs and status output.
    pub fn redacted(&self) -> String {
        let mut url = format!(
            "{}://{}/api/webhooks/{}/***",
            self.scheme, self.host, self.id
        );
        if let Some(thread_id) = &self.thread_id {
            url.push_str("?thread_id=");
            url.push_str(thread_id);
        }
        url
    }

    /// `text` with every occurrence of the token replaced by `***`.
    pub(crate) fn redact_in(&self, text: &str) -> String {
        text.replace(&self.token, "***")
    }

    /// `https` or `http`, lowercase.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host as given, with its port if one was given.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The webhook's id (not a secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The thread the messages go to, if the URL named one.
    pub fn thread_id(&self) -> Option<&str> {
        self.thread_id.as_deref()
    }
}

impl FromStr for WebhookUrl {
    type Err = WebhookUrlError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        WebhookUrl::parse(text)
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({})", self.redacted())
    }
}

fn is_api_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|number| (1..=3).contains(&number.len()) && is_digits(number))
}

/// Discord ids are 64-bit snowflakes written in decimal.
fn is_snowflake(text: &str) -> bool {
    (1..=20).contains(&text.len()) && is_digits(text)
}

fn is_digits(text: &str) -> bool {
    text.bytes().all(|byte| byte.is_ascii_digit())
}

fn is_token_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '-' | '_' | '.')
}
