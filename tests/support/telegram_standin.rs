//! A stand-in for Telegram's Bot API, for tests: a real HTTP server on `127.0.0.1:0`.
//!
//! Shared by several test targets through `#[path = ".../tests/support/telegram_standin.rs"]`,
//! next to `http_standin.rs` (the server it runs on), so it uses only `std`, `hyper`,
//! `http-body-util`, `bytes` and
//! `serde_json`.
//!
//! It serves `POST /bot{token}/sendMessage` with a JSON body the way Telegram documents it:
//! - <https://core.telegram.org/bots/api#making-requests>: answers are
//!   `{"ok":true,"result":Message}` or `{"ok":false,"error_code":N,"description":"..."}`;
//!   a token it does not know gets `401 Unauthorized`, a path that is no method `404 Not
//!   Found`;
//! - <https://core.telegram.org/bots/api#sendmessage>: `chat_id` (a number or
//!   `@channelusername`) must be a chat the bot is in (`400 Bad Request: chat not found`),
//!   one that blocked the bot answers `403 Forbidden: bot was blocked by the user`; `text`
//!   must not be empty and holds at most 4096 characters after entity parsing (`400 Bad
//!   Request: message is too long`), counted here in UTF-16 code units as Telegram counts
//!   entity offsets;
//! - <https://core.telegram.org/bots/api#markdownv2-style>: with `parse_mode: MarkdownV2`
//!   the text is parsed: `*bold*`, `_italic_`, `__underline__`, `~strike~`, `||spoiler||`,
//!   `` `code` ``, ```` ```pre``` ````, `[text](url)`, `>` quotes at a line's start, and `\`
//!   escaping any character; any other reserved character (`_*[]()~`>#+-=|{}.!`) unescaped
//!   is refused with `400 Bad Request: can't parse entities: Character 'X' is reserved and
//!   must be escaped with the preceding '\'`, and an entity left open with `can't parse
//!   entities: Can't find end of the entity starting at byte offset N`;
//! - <https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this>:
//!   at most one message a second to a chat, twenty a minute to a group (negative ids and
//!   `@channels`); over it, `429 Too Many Requests: retry after N` with
//!   `parameters.retry_after`.
//!
//! Dropping the [`TelegramStandIn`] stops its server.

#![allow(dead_code)] // each test target uses a different part of it

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{json, Value};

use crate::http_standin::{json_response, HttpServer, Incoming};

pub const MESSAGE_LIMIT: usize = 4096;
const RESERVED: &str = "_*[]()~`>#+-=|{}.!";

/// How to answer one of the next requests, before the usual checks.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// `429` with `parameters.retry_after: seconds`.
    RateLimited { seconds: u64 },
    /// This 5xx with Telegram's JSON error.
    ServerError(u16),
}

/// One request as the stand-in saw it, and what it answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub at: Instant,
    pub path: String,
    pub body: Bytes,
    pub status: u16,
    pub answer: Value,
}

/// A message the stand-in took: the chat, the text as sent and as shown after parsing.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub chat_id: String,
    pub text: String,
    pub shown: String,
    pub request: Value,
}

pub struct TelegramStandIn {
    server: HttpServer,
    state: Arc<Mutex<State>>,
}

struct State {
    token: String,
    chats: HashSet<String>,
    blocked: HashSet<String>,
    script: VecDeque<Scripted>,
    /// Per chat: when its accepted messages arrived, newest last.
    sent_at: HashMap<String, VecDeque<Instant>>,
    requests: Vec<RecordedRequest>,
    messages: Vec<SentMessage>,
    next_message_id: u64,
}

impl TelegramStandIn {
    /// A Bot API server for the bot with `token`, which is a member of `chats`.
    pub fn start(token: &str, chats: &[&str]) -> TelegramStandIn {
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            chats: chats.iter().map(|chat| (*chat).to_owned()).collect(),
            blocked: HashSet::new(),
            script: VecDeque::new(),
            sent_at: HashMap::new(),
            requests: Vec::new(),
            messages: Vec::new(),
            next_message_id: 1,
        }));
        let server_state = Arc::clone(&state);
        let server = HttpServer::start("telegram-standin", move |request| {
            handle(&server_state, request)
        });
        TelegramStandIn { server, state }
    }

    /// The Bot API server's URL: `http://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.server.address())
    }

    /// Answer the next requests like this, in order.
    pub fn script(&self, responses: impl IntoIterator<Item = Scripted>) {
        self.lock().script.extend(responses);
    }

    /// The chat blocks the bot (or stops doing so).
    pub fn set_blocked(&self, chat: &str, blocked: bool) {
        let mut state = self.lock();
        if blocked {
            state.blocked.insert(chat.to_owned());
        } else {
            state.blocked.remove(chat);
        }
    }

    /// Every accepted message, in order.
    pub fn messages(&self) -> Vec<SentMessage> {
        self.lock().messages.clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub fn statuses(&self) -> Vec<u16> {
        self.lock()
            .requests
            .iter()
            .map(|request| request.status)
            .collect()
    }

    /// Waits until `count` requests were answered, at most `timeout`; panics, listing
    /// what came, after that.
    pub fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        assert!(
            self.server.wait_for_answers(count, timeout),
            "the Telegram stand-in got fewer than {count} requests in {timeout:?}: {:#?}",
            self.requests()
        );
        self.requests()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn handle(state: &Mutex<State>, request: Incoming) -> Response<Full<Bytes>> {
    let Incoming { at, path, body, .. } = request;
    let mut state = state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (status, answer) = state.answer(&path, &body, at);
    state.requests.push(RecordedRequest {
        at,
        path,
        body,
        status,
        answer: answer.clone(),
    });
    json_response(status, &answer, &[])
}

fn error(status: u16, description: &str) -> (u16, Value) {
    (
        status,
        json!({"ok": false, "error_code": status, "description": description}),
    )
}

impl State {
    fn answer(&mut self, path: &str, body: &[u8], at: Instant) -> (u16, Value) {
        let Some(rest) = path.strip_prefix("/bot") else {
            return error(404, "Not Found");
        };
        let Some((token, method)) = rest.split_once('/') else {
            return error(404, "Not Found");
        };
        if token != self.token {
            return error(401, "Unauthorized");
        }
        if method != "sendMessage" {
            return error(404, "Not Found: method not found");
        }
        match self.script.pop_front() {
            Some(Scripted::RateLimited { seconds }) => {
                return (
                    429,
                    json!({"ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {seconds}"), "parameters": {"retry_after": seconds}}),
                );
            }
            Some(Scripted::ServerError(status)) => return error(status, "Internal Server Error"),
            None => {}
        }
        let Ok(request) = serde_json::from_slice::<Value>(body) else {
            return error(400, "Bad Request: message text is empty");
        };
        let chat = match &request["chat_id"] {
            Value::Number(number) => number.to_string(),
            Value::String(text) => text.clone(),
            _ => return error(400, "Bad Request: chat_id is empty"),
        };
        if !self.chats.contains(&chat) {
            return error(400, "Bad Request: chat not found");
        }
        if self.blocked.contains(&chat) {
            return error(403, "Forbidden: bot was blocked by the user");
        }
        // One message a second to a chat; twenty a minute to a group.
        let group = chat.starts_with('-') || chat.starts_with('@');
        let times = self.sent_at.entry(chat.clone()).or_default();
        while times
            .front()
            .is_some_and(|first| at.duration_since(*first) >= Duration::from_secs(60))
        {
            times.pop_front();
        }
        let too_soon = times
            .back()
            .is_some_and(|last| at.duration_since(*last) < Duration::from_secs(1));
        if too_soon || (group && times.len() >= 20) {
            let wait = if too_soon {
                1
            } else {
                let first = *times.front().expect("twenty times");
                (Duration::from_secs(60) - at.duration_since(first))
                    .as_secs()
                    .max(1)
            };
            return (
                429,
                json!({"ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {wait}"), "parameters": {"retry_after": wait}}),
            );
        }
        let text = request["text"].as_str().unwrap_or_default().to_owned();
        let shown = if request["parse_mode"] == "MarkdownV2" {
            match parse_markdown_v2(&text) {
                Ok(shown) => shown,
                Err(problem) => {
                    return error(
                        400,
                        &format!("Bad Request: can't parse entities: {problem}"),
                    )
                }
            }
        } else {
            text.clone()
        };
        if shown.trim().is_empty() {
            return error(400, "Bad Request: message text is empty");
        }
        if shown.encode_utf16().count() > MESSAGE_LIMIT {
            return error(400, "Bad Request: message is too long");
        }
        times.push_back(at);
        let message_id = self.next_message_id;
        self.next_message_id += 1;
        self.messages.push(SentMessage {
            chat_id: chat.clone(),
            text,
            shown: shown.clone(),
            request,
        });
        (
            200,
            json!({"ok": true, "result": {"message_id": message_id, "date": 1_790_000_000, "chat": {"id": chat}, "text": shown}}),
        )
    }
}

/// The text MarkdownV2 shows, or Telegram's reason for refusing it.
pub fn parse_markdown_v2(text: &str) -> Result<String, String> {
    let mut shown = String::new();
    // Open entities: their marker and the byte offset they start at.
    let mut open: Vec<(&'static str, usize)> = Vec::new();
    let bytes = text.as_bytes();
    let mut index = 0;
    let at_line_start = |index: usize| index == 0 || bytes[index - 1] == b'\n';
    let reserved = |character: char| {
        Err(format!(
            "Character '{character}' is reserved and must be escaped with the preceding '\\'"
        ))
    };
    while index < text.len() {
        let rest = &text[index..];
        let character = rest.chars().next().expect("not at the end");
        let in_code = matches!(open.last(), Some(("`", _) | ("```", _)));
        if character == '\\' {
            let Some(escaped) = rest[1..].chars().next() else {
                return reserved('\\');
            };
            if !(1..=126).contains(&(escaped as u32)) && !in_code {
                return reserved('\\');
            }
            shown.push(escaped);
            index += 1 + escaped.len_utf8();
            continue;
        }
        if in_code {
            let marker = open.last().expect("in code").0;
            if rest.starts_with(marker) {
                open.pop();
                index += marker.len();
            } else if character == '`' {
                return reserved('`');
            } else {
                shown.push(character);
                index += character.len_utf8();
            }
            continue;
        }
        let marker: Option<&'static str> = if rest.starts_with("```") {
            Some("```")
        } else if rest.starts_with("__") {
            Some("__")
        } else if rest.starts_with("||") {
            Some("||")
        } else {
            match character {
                '*' => Some("*"),
                '_' => Some("_"),
                '~' => Some("~"),
                '`' => Some("`"),
                _ => None,
            }
        };
        if let Some(marker) = marker {
            match open
                .iter()
                .rposition(|(open_marker, _)| *open_marker == marker)
            {
                Some(position) if position == open.len() - 1 => {
                    open.pop();
                }
                Some(_) => return reserved(character),
                None => open.push((marker, index)),
            }
            index += marker.len();
            continue;
        }
        match character {
            '[' => {
                open.push(("[", index));
                index += 1;
            }
            ']' => {
                if !matches!(open.last(), Some(("[", _))) {
                    return reserved(']');
                }
                open.pop();
                let after = &text[index + 1..];
                let Some(url) = after.strip_prefix('(') else {
                    return reserved(']');
                };
                let Some(end) = url.find(')') else {
                    return Err(format!(
                        "Can't find end of a url at byte offset {}",
                        index + 2
                    ));
                };
                index += 2 + end + 1;
            }
            '>' if at_line_start(index) => index += 1,
            other if RESERVED.contains(other) => return reserved(other),
            other => {
                shown.push(other);
                index += other.len_utf8();
            }
        }
    }
    if let Some((_, start)) = open.first() {
        return Err(format!(
            "Can't find end of the entity starting at byte offset {start}"
        ));
    }
    Ok(shown)
}
