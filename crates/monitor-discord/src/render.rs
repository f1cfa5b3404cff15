//! Alerts → webhook message bodies, within every limit Discord enforces.
//!
//! All lengths are Unicode characters (`str::chars`), never bytes; every truncation cuts on
//! a character boundary and puts the marker `…` inside the limit.

use monitor_destination::OutgoingAlert;
use monitor_wire::config_push::ServiceType;
use monitor_wire::{Alert, Level, LogLine, Subsystem};
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::Deserialize;
use serde_json::{json, Value};

pub(crate) const TITLE_LIMIT: usize = 256;
pub(crate) const DESCRIPTION_LIMIT: usize = 4096;
pub(crate) const FIELD_NAME_LIMIT: usize = 256;
pub(crate) const FIELD_VALUE_LIMIT: usize = 1024;
pub(crate) const FIELD_COUNT_LIMIT: usize = 25;
pub(crate) const FOOTER_LIMIT: usize = 2048;
pub(crate) const USERNAME_LIMIT: usize = 80;
/// Embeds in one message.
pub(crate) const EMBEDS_PER_MESSAGE: usize = 10;
/// Characters over all embeds of one message (titles, descriptions, field names and
/// values, footers, author names).
pub(crate) const MESSAGE_EMBED_CHARACTERS: usize = 6000;

/// Marks where text was cut.
const TRUNCATION_MARKER: char = '…';
/// Marks the matching log line among its context.
const MATCHING_LINE_MARKER: &str = "➤ ";
const CONTEXT_LINE_MARKER: &str = "  ";
const FOOTER_TEXT: &str = "monitor";
/// The name used instead of a configured one Discord would refuse.
pub(crate) const FALLBACK_USERNAME: &str = "monitor";
/// Shown for a field whose value is empty: Discord rejects empty values.
const EMPTY_FIELD_VALUE: &str = "-";

const COLOR_CRITICAL: u32 = 0xFF0000;
const COLOR_OK: u32 = 0x2ECC71;
const COLOR_FLAPPING: u32 = 0xFFA500;

/// `"```\n"` and `"\n```"` around a code block.
const CODE_FENCE_CHARACTERS: usize = 8;

/// The messages for these alerts, oldest first: one embed per alert, as few messages as
/// the limits allow (≤ 10 embeds and ≤ 6000 embed characters each). Every alert is in
/// exactly one embed, in order.
///
/// An alert's check, when known, is its embed's "Check" field; an alert of no known check
/// (monitor-server's: the wire alert names none) shows what it says instead, its subject's
/// type and name, in a "Subject" field. Nothing is guessed.
///
/// `username` is replaced by `monitor` when Discord would refuse it (empty, or containing
/// "discord" or "clyde") and cut to 80 characters; [`crate::DiscordClient::new`] warns about
/// that once.
pub fn render_alerts(
    device_id: &str,
    alerts: &[OutgoingAlert<'_>],
    username: Option<&str>,
    avatar_url: Option<&str>,
) -> Vec<Value> {
    let username = username.map(|name| sanitize_username(name).0);
    let avatar_url = avatar_url.map(str::trim).filter(|url| !url.is_empty());

    let mut messages = Vec::new();
    let mut embeds: Vec<Value> = Vec::new();
    let mut characters = 0;
    for alert in alerts {
        let embed = Embed::for_alert(device_id, alert);
        let size = embed.characters();
        let full =
            embeds.len() == EMBEDS_PER_MESSAGE || characters + size > MESSAGE_EMBED_CHARACTERS;
        if full && !embeds.is_empty() {
            messages.push(message(
                std::mem::take(&mut embeds),
                username.as_deref(),
                avatar_url,
            ));
            characters = 0;
        }
        characters += size;
        embeds.push(embed.to_json());
    }
    if !embeds.is_empty() {
        messages.push(message(embeds, username.as_deref(), avatar_url));
    }
    messages
}

fn message(embeds: Vec<Value>, username: Option<&str>, avatar_url: Option<&str>) -> Value {
    // Log lines can say `@everyone`: never let a message ping anyone.
    let mut body = json!({
        "allowed_mentions": { "parse": [] },
        "embeds": embeds,
    });
    if let Some(username) = username {
        body["username"] = Value::from(username);
    }
    if let Some(avatar_url) = avatar_url {
        body["avatar_url"] = Value::from(avatar_url);
    }
    body
}

/// Why a configured user name was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UsernameProblem {
    Empty,
    Forbidden,
    TooLong,
}

impl UsernameProblem {
    pub(crate) fn explain(self) -> &'static str {
        match self {
            UsernameProblem::Empty => "it is empty",
            UsernameProblem::Forbidden => {
                "Discord refuses names containing \"discord\" or \"clyde\""
            }
            UsernameProblem::TooLong => "Discord allows at most 80 characters",
        }
    }
}

/// The name Discord will accept for `name`, and what was wrong with it.
pub(crate) fn sanitize_username(name: &str) -> (String, Option<UsernameProblem>) {
    let name = name.trim();
    if name.is_empty() {
        return (FALLBACK_USERNAME.to_owned(), Some(UsernameProblem::Empty));
    }
    let lowercase = name.to_lowercase();
    if lowercase.contains("discord") || lowercase.contains("clyde") {
        return (
            FALLBACK_USERNAME.to_owned(),
            Some(UsernameProblem::Forbidden),
        );
    }
    if name.chars().count() > USERNAME_LIMIT {
        return (
            keep_beginning(name, USERNAME_LIMIT),
            Some(UsernameProblem::TooLong),
        );
    }
    (name.to_owned(), None)
}

struct Embed {
    title: String,
    description: Option<String>,
    color: u32,
    fields: Vec<Field>,
    timestamp: String,
    footer: String,
    /// The alert's link: Discord makes the title a link to it.
    url: Option<String>,
}

struct Field {
    name: String,
    value: String,
    inline: bool,
}

impl Field {
    fn new(name: &str, value: &str, inline: bool) -> Field {
        let value = if value.trim().is_empty() {
            EMPTY_FIELD_VALUE
        } else {
            value
        };
        Field {
            name: keep_beginning(name, FIELD_NAME_LIMIT),
            value: keep_beginning(value, FIELD_VALUE_LIMIT),
            inline,
        }
    }
}

impl Embed {
    fn for_alert(device_id: &str, outgoing: &OutgoingAlert<'_>) -> Embed {
        let alert = outgoing.alert;
        let (origin_label, origin) = match outgoing.check {
            Some(check) => ("Check", check.to_string()),
            None => (
                "Subject",
                format!("{} {}", alert.subject.kind, alert.subject.name),
            ),
        };
        let title = if alert.name.trim().is_empty() {
            origin.clone()
        } else {
            alert.name.clone()
        };
        let mut fields = vec![
            Field::new("Device", device_id, true),
            Field::new(origin_label, &origin, true),
            Field::new("Status", &alert.subject.status, true),
        ];
        if let Some(reason) = alert.subject.details.fields.get("reason") {
            let reason = match reason {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            fields.push(Field::new("Reason", &reason, false));
        }
        fields.truncate(FIELD_COUNT_LIMIT);

        let mut embed = Embed {
            title: keep_beginning(&title, TITLE_LIMIT),
            description: None,
            color: color(alert),
            fields,
            timestamp: alert.timestamp.to_string(),
            footer: keep_beginning(FOOTER_TEXT, FOOTER_LIMIT),
            // Only a web address: Discord refuses an embed whose url is not http(s).
            url: outgoing
                .link
                .filter(|link| link.starts_with("https://") || link.starts_with("http://"))
                .map(str::to_owned),
        };
        // The description is the only part that can be long; it gets what the rest leaves
        // of the message limit, so that one embed alone always fits in a message.
        let budget = DESCRIPTION_LIMIT.min(MESSAGE_EMBED_CHARACTERS - embed.characters());
        embed.description = description(outgoing, budget);
        embed
    }

    /// Characters Discord counts towards the 6000 of a message.
    fn characters(&self) -> usize {
        let fields: usize = self
            .fields
            .iter()
            .map(|field| field.name.chars().count() + field.value.chars().count())
            .sum();
        self.title.chars().count()
            + self
                .description
                .as_deref()
                .map_or(0, |text| text.chars().count())
            + fields
            + self.footer.chars().count()
    }

    fn to_json(&self) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(
                |field| json!({ "name": field.name, "value": field.value, "inline": field.inline }),
            )
            .collect();
        let mut embed = json!({
            "title": self.title,
            "color": self.color,
            "fields": fields,
            "timestamp": self.timestamp,
            "footer": { "text": self.footer },
        });
        if let Some(description) = &self.description {
            embed["description"] = Value::from(description.as_str());
        }
        if let Some(url) = &self.url {
            embed["url"] = Value::from(url.as_str());
        }
        embed
    }
}

fn color(alert: &Alert) -> u32 {
    match alert.level {
        Level::Ok => COLOR_OK,
        Level::Critical if is_flapping(alert) => COLOR_FLAPPING,
        Level::Critical => COLOR_CRITICAL,
    }
}

fn is_flapping(alert: &Alert) -> bool {
    alert.subject.status.eq_ignore_ascii_case("flapping")
        || alert.name.ends_with("going up and down")
}

/// The embed description, at most `limit` characters, or `None` when there are no details.
///
/// - A log alert (one with a matching line): `details.description`, then the matching line
///   among its context in a code block.
/// - A service: `details.description` (a `systemctl status`-like block) in a code block.
/// - Anything else: `details.description` as text.
fn description(outgoing: &OutgoingAlert<'_>, limit: usize) -> Option<String> {
    let details = &outgoing.alert.subject.details;
    let intro = details
        .description
        .as_deref()
        .filter(|text| !text.trim().is_empty());
    let (intro, code) = if let Some(matching) = &details.line_matching {
        (
            intro,
            Some(log_context(
                &details.lines_before,
                matching,
                &details.lines_after,
            )),
        )
    } else if is_service(outgoing) {
        (None, intro.map(str::to_owned))
    } else {
        (intro, None)
    };
    compose_description(intro, code.as_deref(), limit)
}

/// A service's alert: its check says so; an alert of no known check says so by its subject
/// type, a service type (`systemd`, `sysV`, `docker`, in any case) as
/// [`monitor_wire::config_push::ServiceType`] names them.
fn is_service(outgoing: &OutgoingAlert<'_>) -> bool {
    match outgoing.check {
        Some(check) => check.subsystem == Subsystem::Service,
        None => {
            let kind = outgoing.alert.subject.kind.to_ascii_lowercase();
            ServiceType::deserialize(StrDeserializer::<ValueError>::new(&kind)).is_ok()
        }
    }
}

fn log_context(before: &[LogLine], matching: &LogLine, after: &[LogLine]) -> String {
    let mut lines = Vec::with_capacity(before.len() + 1 + after.len());
    lines.extend(
        before
            .iter()
            .map(|line| format!("{CONTEXT_LINE_MARKER}{}", line.data)),
    );
    lines.push(format!("{MATCHING_LINE_MARKER}{}", matching.data));
    lines.extend(
        after
            .iter()
            .map(|line| format!("{CONTEXT_LINE_MARKER}{}", line.data)),
    );
    lines.join("\n")
}

/// `intro`, a newline, then `code` fenced, in at most `limit` characters. When it does not
/// fit, the code keeps its end (the cause is usually last) and the intro its beginning,
/// taking at most a quarter of the room.
fn compose_description(intro: Option<&str>, code: Option<&str>, limit: usize) -> Option<String> {
    let intro = intro.map(str::trim_end);
    let code = code.map(escape_code_block);
    match (intro, code) {
        (None, None) => None,
        (Some(intro), None) => Some(keep_end(intro, limit)),
        (None, Some(code)) => Some(fence(&keep_end(
            &code,
            limit.saturating_sub(CODE_FENCE_CHARACTERS),
        ))),
        (Some(intro), Some(code)) => {
            let intro_length = intro.chars().count();
            let code_length = code.chars().count();
            if intro_length + 1 + code_length + CODE_FENCE_CHARACTERS <= limit {
                return Some(format!("{intro}\n{}", fence(&code)));
            }
            let intro = keep_beginning(intro, intro_length.min(limit / 4));
            let code_budget =
                limit.saturating_sub(intro.chars().count() + 1 + CODE_FENCE_CHARACTERS);
            Some(format!("{intro}\n{}", fence(&keep_end(&code, code_budget))))
        }
    }
}

fn fence(code: &str) -> String {
    format!("```\n{code}\n```")
}

/// Breaks every run of backticks with zero-width spaces, so that a log line cannot close
/// the code block it is shown in.
fn escape_code_block(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    let mut previous = None;
    for character in text.chars() {
        if character == '`' && previous == Some('`') {
            escaped.push('\u{200B}');
        }
        escaped.push(character);
        previous = Some(character);
    }
    escaped
}

/// At most `limit` characters of `text`, its beginning kept, `…` last when cut.
pub(crate) fn keep_beginning(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    if limit == 0 {
        return String::new();
    }
    let mut kept: String = text.chars().take(limit - 1).collect();
    kept.push(TRUNCATION_MARKER);
    kept
}

/// At most `limit` characters of `text`, its end kept, `…` first when cut.
pub(crate) fn keep_end(text: &str, limit: usize) -> String {
    let length = text.chars().count();
    if length <= limit {
        return text.to_owned();
    }
    if limit == 0 {
        return String::new();
    }
    let mut kept = String::from(TRUNCATION_MARKER);
    kept.extend(text.chars().skip(length - (limit - 1)));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_and_keeps_the_marker_inside_the_limit() {
        assert_eq!(keep_beginning("ééééé", 5), "ééééé");
        assert_eq!(keep_beginning("ééééé", 4), "ééé…");
        assert_eq!(keep_end("a🦀b🦀c", 3), "…🦀c");
        assert_eq!(keep_end("abc", 0), "");
    }

    #[test]
    fn backticks_cannot_close_the_code_block() {
        let escaped = escape_code_block("a ```` b");
        assert!(!escaped.contains("``"));
        assert_eq!(escaped.replace('\u{200B}', ""), "a ```` b");
    }

    #[test]
    fn usernames_discord_refuses_are_replaced() {
        assert_eq!(sanitize_username("systemd"), ("systemd".to_owned(), None));
        assert_eq!(
            sanitize_username("My DiScOrD bot").1,
            Some(UsernameProblem::Forbidden)
        );
        assert_eq!(sanitize_username("clyde").0, "monitor");
        assert_eq!(sanitize_username("  ").1, Some(UsernameProblem::Empty));
        let long = "é".repeat(81);
        let (name, problem) = sanitize_username(&long);
        assert_eq!(name.chars().count(), 80);
        assert_eq!(problem, Some(UsernameProblem::TooLong));
    }
}
