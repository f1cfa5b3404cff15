//! Telegram: a bot posts alerts to one chat through the Bot API's `sendMessage`
//! (<https://core.telegram.org/bots/api#sendmessage>).
//!
//! - The text is MarkdownV2 (<https://core.telegram.org/bots/api#markdownv2-style>): the
//!   title bold, everything else plain with each reserved character (and `\`) escaped, so a
//!   log line can never open an entity or make the message unparsable. Link previews are
//!   off. An alert's link (monitor-server's page of its device) is a last line `Open: <url>`,
//!   which Telegram's apps make a link.
//! - A message holds at most 4096 characters after entity parsing. Text is cut before it is
//!   escaped (an escape is never split), counting UTF-16 code units as Telegram does for
//!   entities (never fewer than characters). Several alerts share a message while they fit.
//! - Telegram asks bots to send at most one message a second to a chat and twenty a minute
//!   to a group (<https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this>):
//!   messages to a user are a second apart, to a group or a channel three seconds.
//! - Answers are `{"ok":true,"result":...}` or `{"ok":false,"error_code":N,"description":...}`;
//!   a 429 says its wait in `parameters.retry_after`. A chat the bot cannot reach (400 `chat
//!   not found`, a group upgraded to a supergroup, 403 blocked or kicked), a wrong token
//!   (401, 404) are gone: the message says what to fix. Other 400s refuse the message.
//!
//! The bot token is in the URL's path: it never appears in a message, a log or `Debug`.

use std::fmt;
use std::time::Duration;

use monitor_destination::{Destination, OutgoingAlert, Verdict, VerdictFuture};
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::http::{Failure, Requests};
use crate::pace::Pace;
use crate::service_url::ServiceUrl;
use crate::text::{alert_text, TRUNCATION_MARKER};

/// Telegram's own Bot API server.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";
/// Characters of a message after entity parsing.
pub const MESSAGE_LIMIT: usize = 4096;
/// Characters of a title (Telegram has no title; a title longer than this says too much).
const TITLE_LIMIT: usize = 256;
/// Characters of an alert's `Open:` line (its link); a longer one is left out.
const LINK_LIMIT: usize = 1024;
/// Between two messages to a user.
const PRIVATE_CHAT_SPACING: Duration = Duration::from_secs(1);
/// Between two messages to a group or a channel: twenty a minute.
const GROUP_SPACING: Duration = Duration::from_secs(3);
/// Alerts per delivery; they go in as few messages as fit.
const BATCH_SIZE: usize = 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Every character MarkdownV2 reserves, and the escape itself.
const RESERVED: &[char] = &[
    '_', '*', '[', ']', '(', ')', '~', '`', '>', '#', '+', '-', '=', '|', '{', '}', '.', '!', '\\',
];

/// What a bot token, a chat id or a target looks like.
const TOKEN_EXPECTED: &str =
    "expected the token @BotFather gave, such as 123456789:AAE-abcdefghijklmnopqrstuvwxyz012345";
const CHAT_EXPECTED: &str =
    "expected a number (-1001234567890 for a group or a channel) or @channelusername";
const TARGET_EXPECTED: &str = "expected https://api.telegram.org/bot<token>/<chat id>";

/// A bot's token, `<bot id>:<secret>`. `Debug` and `Display` show the bot id only.
#[derive(Clone, PartialEq, Eq)]
pub struct BotToken(String);

/// A chat: a number (negative for groups and channels) or a public channel's `@username`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatId {
    Number(i64),
    Channel(String),
}

/// Where the bot posts.
#[derive(Clone, PartialEq, Eq)]
pub struct TelegramConfig {
    /// The Bot API server without a trailing `/`: [`DEFAULT_API_URL`], or a self-hosted one.
    api_url: String,
    api: ServiceUrl,
    pub bot_token: BotToken,
    pub chat_id: ChatId,
}

/// Why a setting is not usable; no variant holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelegramError {
    #[error("the bot token is empty: {TOKEN_EXPECTED}")]
    EmptyToken,
    #[error(
        "the bot token is not <bot id>:<secret> of letters, digits, `-` and `_`: {TOKEN_EXPECTED}"
    )]
    BadToken,
    #[error("the chat id `{0}` is not a chat: {CHAT_EXPECTED}")]
    BadChat(String),
    #[error("{0}: expected https://api.telegram.org or a self-hosted Bot API server's URL")]
    BadApiUrl(String),
    #[error("the target is not a Bot API URL with a bot and a chat: {TARGET_EXPECTED}")]
    BadTarget,
}

impl BotToken {
    pub fn parse(text: &str) -> Result<BotToken, TelegramError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TelegramError::EmptyToken);
        }
        let (bot, secret) = text.split_once(':').ok_or(TelegramError::BadToken)?;
        let valid = !bot.is_empty()
            && bot.bytes().all(|byte| byte.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if !valid {
            return Err(TelegramError::BadToken);
        }
        Ok(BotToken(text.to_owned()))
    }

    /// The bot's id, the part before `:`: not a secret.
    pub fn bot_id(&self) -> &str {
        self.0.split(':').next().unwrap_or_default()
    }

    /// The whole token: a secret, for the request's path only.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BotToken({}:***)", self.bot_id())
    }
}

impl fmt::Display for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:***", self.bot_id())
    }
}

impl ChatId {
    pub fn parse(text: &str) -> Result<ChatId, TelegramError> {
        let text = text.trim();
        if let Some(name) = text.strip_prefix('@') {
            // Public usernames: 5 to 32 letters, digits and underscores.
            let valid = (5..=32).contains(&name.len())
                && name
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
            return if valid {
                Ok(ChatId::Channel(text.to_owned()))
            } else {
                Err(TelegramError::BadChat(text.to_owned()))
            };
        }
        match text.parse::<i64>() {
            Ok(number) if number != 0 => Ok(ChatId::Number(number)),
            _ => Err(TelegramError::BadChat(text.to_owned())),
        }
    }

    /// A group, a supergroup or a channel (negative ids, `@channel`): twenty messages a
    /// minute.
    pub fn is_group(&self) -> bool {
        match self {
            ChatId::Number(number) => *number < 0,
            ChatId::Channel(_) => true,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            ChatId::Number(number) => json!(number),
            ChatId::Channel(name) => json!(name),
        }
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatId::Number(number) => write!(f, "{number}"),
            ChatId::Channel(name) => f.write_str(name),
        }
    }
}

impl TelegramConfig {
    /// A bot posting to `chat_id` through the Bot API server at `api_url`.
    pub fn new(
        api_url: &str,
        bot_token: BotToken,
        chat_id: ChatId,
    ) -> Result<TelegramConfig, TelegramError> {
        let api = ServiceUrl::parse(api_url)
            .map_err(|error| TelegramError::BadApiUrl(error.describe("api_url")))?;
        let api_url = format!(
            "{}://{}{}",
            api.scheme,
            api.host,
            api.path.trim_end_matches('/')
        );
        Ok(TelegramConfig {
            api_url,
            api,
            bot_token,
            chat_id,
        })
    }

    /// A target as monitor-server stores it: `<api url>/bot<token>/<chat id>`, the URL of
    /// the bot's methods followed by the chat
    /// (`https://api.telegram.org/bot123456:AAE.../-1001234567890`).
    pub fn parse_target(target: &str) -> Result<TelegramConfig, TelegramError> {
        let target = target.trim();
        let (before, chat) = target.rsplit_once('/').ok_or(TelegramError::BadTarget)?;
        let (api_url, token) = before.rsplit_once("/bot").ok_or(TelegramError::BadTarget)?;
        let token = BotToken::parse(token)?;
        let chat = ChatId::parse(chat)?;
        TelegramConfig::new(api_url, token, chat)
    }

    /// The target monitor-server stores (a secret: it holds the token).
    pub fn target(&self) -> String {
        format!(
            "{}/bot{}/{}",
            self.api_url,
            self.bot_token.secret(),
            self.chat_id
        )
    }

    /// The target with the token's secret replaced by `***`.
    pub fn redacted(&self) -> String {
        format!("{}/bot{}/{}", self.api_url, self.bot_token, self.chat_id)
    }

    /// The Bot API server, without a trailing `/`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// Telegram's own server over https.
    pub fn is_telegram(&self) -> bool {
        self.api.is_https_on("api.telegram.org")
    }

    /// The server is reached over https, or on this machine.
    pub fn is_https_or_loopback(&self) -> bool {
        self.api.scheme == "https" || self.api.is_loopback()
    }

    fn send_message_url(&self) -> String {
        format!(
            "{}/bot{}/sendMessage",
            self.api_url,
            self.bot_token.secret()
        )
    }

    fn spacing(&self) -> Duration {
        if self.chat_id.is_group() {
            GROUP_SPACING
        } else {
            PRIVATE_CHAT_SPACING
        }
    }

    /// `text` with the token's secret replaced, whatever put it there.
    fn redact_in(&self, text: &str) -> String {
        text.replace(self.bot_token.secret(), &self.bot_token.to_string())
    }
}

impl fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TelegramConfig({})", self.redacted())
    }
}

/// One message: its MarkdownV2 text and how many alerts, from the start of the batch's
/// rest, it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramMessage {
    pub text: String,
    pub alerts: usize,
}

/// `alerts` about `device` as messages within Telegram's limit, oldest first.
pub fn render(device: &str, alerts: &[OutgoingAlert<'_>]) -> Vec<TelegramMessage> {
    let mut messages: Vec<TelegramMessage> = Vec::new();
    // The characters (after entity parsing) of the last message.
    let mut last_length = 0;
    for alert in alerts {
        let text = alert_text(device, alert);
        let title = cut_units(&plain(&text.title), TITLE_LIMIT);
        // Kept whole after the body (a cut link leads nowhere); one too long is left out.
        let link = alert
            .link
            .map(|link| format!("\nOpen: {}", plain(link)))
            .filter(|line| units(line) <= LINK_LIMIT)
            .unwrap_or_default();
        let room = MESSAGE_LIMIT - units(&title) - 1 - units(&link);
        let body = cut_units(&plain(&text.body), room);
        let length = units(&title) + 1 + units(&body) + units(&link);
        let block = format!("*{}*\n{}{}", escape(&title), escape(&body), escape(&link));
        match messages.last_mut() {
            Some(last) if last_length + 2 + length <= MESSAGE_LIMIT => {
                last.text.push_str("\n\n");
                last.text.push_str(&block);
                last.alerts += 1;
                last_length += 2 + length;
            }
            _ => {
                messages.push(TelegramMessage {
                    text: block,
                    alerts: 1,
                });
                last_length = length;
            }
        }
    }
    messages
}

/// `text` with every MarkdownV2 reserved character (and `\`) escaped by a `\`, for text
/// outside any entity.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + text.len() / 4);
    for character in text.chars() {
        if RESERVED.contains(&character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// Control characters other than line ends as spaces: a log line may hold any.
fn plain(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() && character != '\n' {
                ' '
            } else {
                character
            }
        })
        .collect()
}

/// Length as Telegram counts it (UTF-16 code units).
fn units(text: &str) -> usize {
    text.encode_utf16().count()
}

/// `text` cut to at most `limit` UTF-16 code units, the marker inside the limit.
fn cut_units(text: &str, limit: usize) -> String {
    if units(text) <= limit {
        return text.to_owned();
    }
    let mut cut = String::new();
    let mut used = 0;
    for character in text.chars() {
        if used + character.len_utf16() + 1 > limit {
            break;
        }
        used += character.len_utf16();
        cut.push(character);
    }
    if limit > 0 {
        cut.push(TRUNCATION_MARKER);
    }
    cut
}

/// A bot posting to one chat, as a [`Destination`].
pub struct TelegramDestination {
    http: reqwest::Client,
    config: TelegramConfig,
    requests: Requests,
    pace: Pace,
}

impl TelegramDestination {
    /// Posts with `http` (which must have a TLS provider).
    pub fn new(config: TelegramConfig, http: reqwest::Client) -> TelegramDestination {
        let pace = Pace::new(config.spacing());
        TelegramDestination {
            http,
            config,
            requests: Requests::new("Telegram"),
            pace,
        }
    }

    async fn post(&mut self, text: &str) -> Result<(), Failure> {
        let body = json!({
            "chat_id": self.config.chat_id.to_json(),
            "text": text,
            "parse_mode": "MarkdownV2",
            "link_preview_options": {"is_disabled": true},
        });
        let request = self
            .http
            .post(self.config.send_message_url())
            .header(CONTENT_TYPE, "application/json")
            .timeout(REQUEST_TIMEOUT)
            .body(body.to_string());
        self.pace.wait().await;
        let answer = self
            .requests
            .send_refined(request, retry_after_in_body, refine)
            .await;
        self.pace.sent();
        let answer = answer?;
        match serde_json::from_str::<Answer>(&answer) {
            Ok(Answer { ok: false, .. }) => Err(Failure::Rejected {
                message: format!(
                    "Telegram did not take the message: {}",
                    crate::http::reason(&answer)
                ),
            }),
            // `ok: true`, or an answer lost on the way after a 200.
            _ => Ok(()),
        }
    }

    /// The failure's message about this chat, without the token.
    fn about_chat(&self, failure: Failure) -> Failure {
        let chat = &self.config.chat_id;
        let redact = |message: String| self.config.redact_in(&format!("chat {chat}: {message}"));
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

impl fmt::Debug for TelegramDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TelegramDestination({})", self.config.redacted())
    }
}

impl Destination for TelegramDestination {
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
            for message in render(device, alerts) {
                if let Err(failure) = self.post(&message.text).await {
                    return self.about_chat(failure).verdict(delivered);
                }
                delivered += message.alerts;
            }
            Verdict::Delivered
        })
    }
}

/// Telegram's answer (<https://core.telegram.org/bots/api#making-requests>).
#[derive(Debug, Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Debug, Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

/// A 429's `parameters.retry_after`, in seconds.
fn retry_after_in_body(body: &str) -> Option<Duration> {
    let answer: Answer = serde_json::from_str(body).ok()?;
    answer
        .parameters?
        .retry_after
        .map(|seconds| Duration::from_secs(seconds.max(1)))
}

/// What Telegram's error means when its status alone does not say it: Telegram answers 400
/// both for a message it cannot parse and for a chat that is not there, and says which in
/// `description` only.
fn refine(status: StatusCode, body: &str) -> Option<Failure> {
    let answer: Option<Answer> = serde_json::from_str(body).ok();
    let description = answer
        .as_ref()
        .and_then(|answer| answer.description.clone())
        .map_or_else(
            || crate::http::reason(body),
            |text| crate::http::reason(&text),
        );
    let said = format!("Telegram answered {}: {description}", status.as_u16());
    let gone = |fix: &str| {
        Some(Failure::Gone {
            message: format!("{said}: {fix}"),
        })
    };
    let migrated = answer
        .as_ref()
        .and_then(|answer| answer.parameters.as_ref())
        .and_then(|parameters| parameters.migrate_to_chat_id);
    match status.as_u16() {
        400 if migrated.is_some() => gone(&format!(
            "the group became a supergroup; set chat_id to {}",
            migrated.unwrap_or_default()
        )),
        400 if description.to_lowercase().contains("chat not found") => gone(
            "the bot cannot see this chat; check chat_id, and add the bot to the group or have the user start it",
        ),
        401 => gone("the bot token is wrong or was revoked; set the token @BotFather gives"),
        403 => gone("the bot was blocked by the user or removed from the chat; add it back or change chat_id"),
        404 => gone("no bot answers at this address; check the bot token and api_url"),
        400..=499 if status.as_u16() != 429 && status.as_u16() != 408 => Some(Failure::Rejected {
            message: said,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_wire::{Alert, CheckId, Details, Level, LogLine, Subject, Subsystem, Timestamp};

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

    /// The text as Telegram shows it after parsing: escapes resolved, bold markers gone.
    /// Fails on an unescaped reserved character outside the bold title.
    fn shown(text: &str) -> String {
        let mut shown = String::new();
        let mut characters = text.chars();
        while let Some(character) = characters.next() {
            match character {
                '\\' => shown.push(characters.next().expect("an escape escapes something")),
                '*' => {}
                reserved if RESERVED.contains(&reserved) => {
                    panic!("unescaped {reserved:?} in {text:?}")
                }
                other => shown.push(other),
            }
        }
        shown
    }

    #[test]
    fn every_reserved_character_of_a_hostile_line_is_escaped() {
        let hostile = r"*bold* _it_ __u__ ~s~ ||spoiler|| `code` ```pre``` [link](http://x.y/?a=1&b=2) >quote #tag +1 -1 =eq {x} a.b! \ \* \\";
        let check = CheckId::new(Subsystem::Log, "app");
        let wire = alert(Level::Critical, hostile);
        let messages = render(
            "pi-1.kitchen",
            &[OutgoingAlert {
                seq: 1,
                check: Some(&check),
                alert: &wire,
                link: None,
            }],
        );
        assert_eq!(messages.len(), 1);
        let text = &messages[0].text;
        assert!(
            text.starts_with("*CRITICAL: log app on pi\\-1\\.kitchen*\n"),
            "{text}"
        );
        let shown = shown(text);
        assert!(shown.contains(&format!("> 3: {hostile}")), "{shown}");
    }

    #[test]
    fn a_long_alert_is_cut_before_escaping_within_the_limit() {
        let check = CheckId::new(Subsystem::Log, "app");
        // Each `.` doubles when escaped; emoji count two units each.
        let wire = alert(Level::Critical, &".😀".repeat(3000));
        let messages = render(
            "pi",
            &[OutgoingAlert {
                seq: 1,
                check: Some(&check),
                alert: &wire,
                link: None,
            }],
        );
        assert_eq!(messages.len(), 1);
        let shown = shown(&messages[0].text);
        assert!(units(&shown) <= MESSAGE_LIMIT, "{}", units(&shown));
        assert!(units(&shown) > MESSAGE_LIMIT - 10);
        assert!(shown.ends_with(TRUNCATION_MARKER));
    }

    #[test]
    fn a_link_is_a_last_line_kept_whole_within_the_limit() {
        let check = CheckId::new(Subsystem::Log, "app");
        let wire = alert(Level::Critical, &"x".repeat(5000));
        let link = "https://monitor.example/ui/devices/d-1";
        let messages = render(
            "pi",
            &[OutgoingAlert {
                seq: 1,
                check: Some(&check),
                alert: &wire,
                link: Some(link),
            }],
        );
        assert_eq!(messages.len(), 1);
        let shown = shown(&messages[0].text);
        assert!(units(&shown) <= MESSAGE_LIMIT, "{}", units(&shown));
        assert!(
            shown.ends_with(&format!("{TRUNCATION_MARKER}\nOpen: {link}")),
            "{shown}"
        );
    }

    #[test]
    fn alerts_share_a_message_while_they_fit() {
        let check = CheckId::new(Subsystem::Log, "app");
        let small = alert(Level::Ok, "fine");
        let big = alert(Level::Critical, &"x".repeat(5000));
        let outgoing = |alert| OutgoingAlert {
            seq: 1,
            check: Some(&check),
            alert,
            link: None,
        };
        let messages = render(
            "pi",
            &[
                outgoing(&small),
                outgoing(&small),
                outgoing(&big),
                outgoing(&small),
            ],
        );
        let counts: Vec<usize> = messages.iter().map(|message| message.alerts).collect();
        assert_eq!(counts, [2, 1, 1]);
        for message in &messages {
            assert!(units(&shown(&message.text)) <= MESSAGE_LIMIT);
        }
    }

    #[test]
    fn tokens_chats_and_targets_parse_and_never_show_the_secret() {
        let token = BotToken::parse("123456:AAE-secret_part").unwrap();
        assert_eq!(
            format!("{token:?} {token}"),
            "BotToken(123456:***) 123456:***"
        );
        assert_eq!(BotToken::parse("123456"), Err(TelegramError::BadToken));
        assert_eq!(BotToken::parse("abc:def"), Err(TelegramError::BadToken));
        assert_eq!(
            ChatId::parse("-1001234").unwrap(),
            ChatId::Number(-1_001_234)
        );
        assert!(ChatId::parse("@my_channel").unwrap().is_group());
        assert!(!ChatId::parse("42").unwrap().is_group());
        assert!(ChatId::parse("@ab").is_err());
        let config = TelegramConfig::parse_target(
            "https://api.telegram.org/bot123456:AAE-secret_part/-100777",
        )
        .unwrap();
        assert!(config.is_telegram());
        assert_eq!(
            config.redacted(),
            "https://api.telegram.org/bot123456:***/-100777"
        );
        assert_eq!(
            config.target(),
            "https://api.telegram.org/bot123456:AAE-secret_part/-100777"
        );
        assert!(!format!("{config:?}").contains("secret_part"));
        assert_eq!(
            config.send_message_url(),
            "https://api.telegram.org/bot123456:AAE-secret_part/sendMessage"
        );
        let local =
            TelegramConfig::parse_target("http://127.0.0.1:8081/bot1:x/@channel_a").unwrap();
        assert!(!local.is_telegram());
        assert!(local.is_https_or_loopback());
        assert!(TelegramConfig::parse_target("https://api.telegram.org/-100").is_err());
        let error = TelegramConfig::parse_target("https://api.telegram.org/bot1:bad token!/1")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("bad token"), "{error}");
    }

    #[test]
    fn errors_say_retry_refused_or_gone_and_what_to_fix() {
        let mut requests = Requests::new("Telegram");
        let headers = reqwest::header::HeaderMap::new();
        let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#;
        assert!(refine(StatusCode::TOO_MANY_REQUESTS, body).is_none());
        let failure = requests.failure(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            body,
            retry_after_in_body,
        );
        assert!(
            matches!(failure, Failure::Retry { after, .. } if after == Duration::from_secs(7)),
            "{failure:?}"
        );
        let gone =
            |status: u16, body: &str| match refine(StatusCode::from_u16(status).unwrap(), body) {
                Some(Failure::Gone { message }) => message,
                other => panic!("{status} {body}: {other:?}"),
            };
        let message = gone(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
        );
        assert!(
            message.contains("chat not found") && message.contains("check chat_id"),
            "{message}"
        );
        let message = gone(
            401,
            r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
        );
        assert!(message.contains("bot token"), "{message}");
        let message = gone(
            403,
            r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#,
        );
        assert!(
            message.contains("blocked by the user") && message.contains("add it back"),
            "{message}"
        );
        let message = gone(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1009}}"#,
        );
        assert!(message.contains("set chat_id to -1009"), "{message}");
        let refused = refine(
            StatusCode::BAD_REQUEST,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: can't parse entities: Character '.' is reserved"}"#,
        );
        assert!(
            matches!(refused, Some(Failure::Rejected { .. })),
            "{refused:?}"
        );
        assert!(refine(StatusCode::BAD_GATEWAY, "").is_none());
    }
}
