//! A stand-in for Slack's incoming webhooks, for tests: a real HTTP server on `127.0.0.1:0`.
//!
//! Shared by several test targets through `#[path = ".../tests/support/slack_standin.rs"]`,
//! next to `http_standin.rs` (the server it runs on), so it uses only `std`, `hyper`,
//! `http-body-util`, `bytes` and
//! `serde_json`.
//!
//! It serves `POST /services/{team}/{bot}/{secret}` the way Slack documents it:
//! - <https://api.slack.com/messaging/webhooks>: a JSON body with `text`, `blocks` or
//!   `attachments` (else `400 no_text`; a body that is not JSON: `400 invalid_payload`),
//!   answered `200 ok` (plain text);
//! - <https://api.slack.com/reference/block-kit/blocks>: at most 50 blocks in a message,
//!   counting those of its attachments; a `header`'s text is `plain_text` of 1 to 150
//!   characters, a `section`'s text `plain_text` or `mrkdwn` of 1 to 3000, its `accessory`
//!   a button (<https://api.slack.com/reference/block-kit/block-elements#button>:
//!   `plain_text` of 1 to 75 characters, a `url` of at most 3000); anything else:
//!   `400 invalid_blocks`; attachment colours are `#RRGGBB` or `good`/`warning`/`danger`;
//! - <https://api.slack.com/apis/rate-limits>: incoming webhooks take one message a second
//!   per webhook: a message less than a second after the webhook's last accepted one gets
//!   `429 rate_limited` with `Retry-After` (seconds);
//! - <https://api.slack.com/messaging/webhooks#handling_errors>: a gone webhook answers
//!   `404 no_service` (or what [`SlackStandIn::set_gone`] says: `410 channel_is_archived`,
//!   `403 action_prohibited`), and [`Scripted`] answers come first when set.
//!
//! Dropping the [`SlackStandIn`] stops its server.

#![allow(dead_code)] // each test target uses a different part of it

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::Value;

use crate::http_standin::{HttpServer, Incoming};

pub const HEADER_LIMIT: usize = 150;
pub const SECTION_LIMIT: usize = 3000;
pub const BLOCKS_LIMIT: usize = 50;
pub const BUTTON_TEXT_LIMIT: usize = 75;
pub const BUTTON_URL_LIMIT: usize = 3000;
const ATTACHMENTS_LIMIT: usize = 100;
/// One message a second per webhook.
pub const MESSAGE_SPACING: Duration = Duration::from_secs(1);

/// How to answer one of the next requests, before the usual checks.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// `429 rate_limited` with `Retry-After: seconds`.
    RateLimited { seconds: u64 },
    /// This 5xx with Slack's `rollup_error`-style text body.
    ServerError(u16),
}

/// One request as the stand-in saw it, and what it answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub at: Instant,
    pub path: String,
    pub body: Bytes,
    pub status: u16,
    pub answer: String,
}

pub struct SlackStandIn {
    server: HttpServer,
    state: Arc<Mutex<State>>,
}

struct State {
    script: VecDeque<Scripted>,
    /// `(status, error)` every request gets while the webhook is gone.
    gone: Option<(u16, &'static str)>,
    /// Per webhook path: when its last message was accepted.
    last_accepted: HashMap<String, Instant>,
    requests: Vec<RecordedRequest>,
    messages: Vec<Value>,
}

impl SlackStandIn {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub fn start() -> SlackStandIn {
        let state = Arc::new(Mutex::new(State {
            script: VecDeque::new(),
            gone: None,
            last_accepted: HashMap::new(),
            requests: Vec::new(),
            messages: Vec::new(),
        }));
        let server_state = Arc::clone(&state);
        let server = HttpServer::start("slack-standin", move |request| {
            handle(&server_state, request)
        });
        SlackStandIn { server, state }
    }

    /// The webhook URL a user would paste: `http://127.0.0.1:PORT/services/{team}/{bot}/{secret}`.
    pub fn url(&self, team: &str, bot: &str, secret: &str) -> String {
        format!(
            "http://{}/services/{team}/{bot}/{secret}",
            self.server.address()
        )
    }

    /// Answer the next requests like this, in order.
    pub fn script(&self, responses: impl IntoIterator<Item = Scripted>) {
        self.lock().script.extend(responses);
    }

    /// Answer every request with this status and error (`(404, "no_service")`), or stop.
    pub fn set_gone(&self, gone: Option<(u16, &'static str)>) {
        self.lock().gone = gone;
    }

    /// Every accepted message, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.lock().messages.clone()
    }

    /// Every attachment of every accepted message, in order.
    pub fn attachments(&self) -> Vec<Value> {
        self.lock()
            .messages
            .iter()
            .flat_map(|message| {
                message["attachments"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
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
            "the Slack stand-in got fewer than {count} requests in {timeout:?}: {:#?}",
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
    let Incoming {
        at,
        method,
        path,
        body,
        ..
    } = request;
    let mut state = state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (status, answer, retry_after) = if method != "POST" {
        (405, "invalid_request".to_owned(), None)
    } else {
        state.answer(&path, &body, at)
    };
    state.requests.push(RecordedRequest {
        at,
        path,
        body,
        status,
        answer: answer.clone(),
    });
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "text/html");
    if let Some(seconds) = retry_after {
        response = response.header("retry-after", seconds.to_string());
    }
    response
        .body(Full::new(Bytes::from(answer)))
        .expect("a valid response")
}

impl State {
    /// `(status, body, Retry-After)`.
    fn answer(&mut self, path: &str, body: &[u8], at: Instant) -> (u16, String, Option<u64>) {
        let segments: Vec<&str> = path.split('/').collect();
        if !matches!(segments[..], ["", "services", team, bot, secret] if !team.is_empty() && !bot.is_empty() && !secret.is_empty())
        {
            return (404, "no_service".into(), None);
        }
        if let Some((status, error)) = self.gone {
            return (status, error.into(), None);
        }
        match self.script.pop_front() {
            Some(Scripted::RateLimited { seconds }) => {
                return (429, "rate_limited".into(), Some(seconds));
            }
            Some(Scripted::ServerError(status)) => return (status, "rollup_error".into(), None),
            None => {}
        }
        if let Some(last) = self.last_accepted.get(path) {
            let since = at.duration_since(*last);
            if since < MESSAGE_SPACING {
                return (429, "rate_limited".into(), Some(1));
            }
        }
        let Ok(message) = serde_json::from_slice::<Value>(body) else {
            return (400, "invalid_payload".into(), None);
        };
        if let Err(error) = validate(&message) {
            return (400, error.into(), None);
        }
        self.last_accepted.insert(path.to_owned(), at);
        self.messages.push(message);
        (200, "ok".into(), None)
    }
}

/// Slack's error for this message, if it has one.
pub fn validate(message: &Value) -> Result<(), &'static str> {
    let Some(message) = message.as_object() else {
        return Err("invalid_payload");
    };
    let text = message
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let attachments = match message.get("attachments") {
        None => &Vec::new(),
        Some(Value::Array(attachments)) => attachments,
        Some(_) => return Err("invalid_attachments"),
    };
    if attachments.len() > ATTACHMENTS_LIMIT {
        return Err("too_many_attachments");
    }
    let mut blocks: Vec<&Value> = Vec::new();
    match message.get("blocks") {
        None => {}
        Some(Value::Array(top)) => blocks.extend(top),
        Some(_) => return Err("invalid_blocks_format"),
    }
    for attachment in attachments {
        if let Some(color) = attachment.get("color") {
            let color = color.as_str().unwrap_or_default();
            let hex = color.strip_prefix('#').is_some_and(|digits| {
                digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if !hex && !matches!(color, "good" | "warning" | "danger") {
                return Err("invalid_attachments");
            }
        }
        match attachment.get("blocks") {
            None => {}
            Some(Value::Array(inner)) => blocks.extend(inner),
            Some(_) => return Err("invalid_blocks_format"),
        }
    }
    if text.trim().is_empty() && blocks.is_empty() && attachments.is_empty() {
        return Err("no_text");
    }
    if blocks.len() > BLOCKS_LIMIT {
        return Err("invalid_blocks");
    }
    for block in blocks {
        let kind = block["type"].as_str().unwrap_or_default();
        let text_type = block["text"]["type"].as_str().unwrap_or_default();
        let text = block["text"]["text"].as_str().unwrap_or_default();
        let length = text.chars().count();
        let valid = match kind {
            "header" => text_type == "plain_text" && (1..=HEADER_LIMIT).contains(&length),
            "section" => {
                matches!(text_type, "plain_text" | "mrkdwn")
                    && (1..=SECTION_LIMIT).contains(&length)
                    && block.get("accessory").is_none_or(valid_link_button)
            }
            "divider" => true,
            _ => false,
        };
        if !valid {
            return Err("invalid_blocks");
        }
    }
    Ok(())
}

/// A button that opens a link: `plain_text` of 1 to 75 characters, a `url` of at most 3000.
fn valid_link_button(button: &Value) -> bool {
    let text = button["text"]["text"].as_str().unwrap_or_default();
    let url = button["url"].as_str().unwrap_or_default();
    button["type"] == "button"
        && button["text"]["type"] == "plain_text"
        && (1..=BUTTON_TEXT_LIMIT).contains(&text.chars().count())
        && (1..=BUTTON_URL_LIMIT).contains(&url.chars().count())
}

/// mrkdwn text as Slack shows it: its three entities decoded.
pub fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
