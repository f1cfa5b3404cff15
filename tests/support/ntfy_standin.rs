//! A stand-in for an ntfy server's publish API, for tests: a real HTTP server on
//! `127.0.0.1:0`.
//!
//! Shared by several test targets through `#[path = ".../tests/support/ntfy_standin.rs"]`,
//! next to `http_standin.rs` (the server it runs on), so it uses only `std`, `hyper`,
//! `http-body-util`, `bytes` and `serde_json`.
//!
//! It follows <https://docs.ntfy.sh/publish/>:
//! - `POST`/`PUT /<topic>`: the body is the message; `Title` (`X-Title`, `t`), `Priority`
//!   (`X-Priority`, `prio`, `p`: 1–5 or min, low, default, high, max/urgent), `Tags`
//!   (`X-Tags`, `tag`, `ta`: comma-separated) and `Click` (`X-Click`) headers, RFC 2047
//!   encoded-words (`=?UTF-8?B?…?=`) decoded as ntfy does; a bad priority is
//!   `400 {"code":40007,"http":400,"error":"invalid priority"}`;
//! - answers `200` with the message as JSON: `{"id","time","expires","event":"message",
//!   "topic","message","title","priority","tags","click"}`;
//! - limits (<https://docs.ntfy.sh/publish/#limitations>): a message over 4096 bytes
//!   (`message-size-limit`) is refused with `413` (this stand-in has no attachment cache to
//!   turn it into an attachment); requests per visitor are a bucket of
//!   `visitor-request-limit-burst` (60) refilled one per `visitor-request-limit-replenish`
//!   (5 s) (<https://docs.ntfy.sh/config/#rate-limiting>); over it,
//!   `429 {"code":42901,"http":429,"error":"limit reached: too many requests",
//!   "link":"https://ntfy.sh/docs/publish/#limitations"}`, without `Retry-After`;
//! - access control (<https://docs.ntfy.sh/publish/#authentication>): a protected topic
//!   takes `Authorization: Bearer <token>` or `Basic`; wrong credentials are
//!   `401 {"code":40101,…,"error":"unauthorized"}`, none are
//!   `403 {"code":40301,…,"error":"forbidden"}`;
//! - an unknown or removed topic can be simulated with [`NtfyStandIn::set_status`].
//!
//! Dropping it stops the server.

#![allow(dead_code)] // each test target uses a different part of it

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{json, Map, Value};

use crate::http_standin::{self, json_response, HttpServer, Incoming};

/// ntfy's default `message-size-limit`.
pub const MESSAGE_SIZE_LIMIT: usize = 4096;

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// `visitor-request-limit-burst`.
    pub burst: u32,
    /// `visitor-request-limit-replenish`.
    pub replenish: Duration,
    /// A protected topic: this access token, or this user and password.
    pub token: Option<String>,
    pub basic: Option<(String, String)>,
}

impl Default for Behaviour {
    /// ntfy's defaults, and open topics.
    fn default() -> Self {
        Behaviour {
            burst: 60,
            replenish: Duration::from_secs(5),
            token: None,
            basic: None,
        }
    }
}

/// How to answer one of the next requests, before the usual handling.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// ntfy's 429 (as when the visitor's bucket is empty).
    RateLimited,
    /// This status and error, in ntfy's error shape.
    Error {
        status: u16,
        code: u32,
        error: String,
    },
}

/// One request and what the stand-in answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub status: u16,
    pub answer: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        http_standin::header(&self.headers, name)
    }
}

pub struct NtfyStandIn {
    server: HttpServer,
    state: Arc<Mutex<State>>,
}

struct State {
    behaviour: Behaviour,
    script: VecDeque<Scripted>,
    status: Option<u16>,
    tokens: f64,
    refilled: Instant,
    requests: Vec<RecordedRequest>,
    next_id: u64,
}

impl NtfyStandIn {
    pub fn start(behaviour: Behaviour) -> NtfyStandIn {
        let state = Arc::new(Mutex::new(State {
            tokens: f64::from(behaviour.burst),
            behaviour,
            script: VecDeque::new(),
            status: None,
            refilled: Instant::now(),
            requests: Vec::new(),
            next_id: 1,
        }));
        let server_state = Arc::clone(&state);
        let server = HttpServer::start("ntfy-standin", move |request| {
            handle(&server_state, request)
        });
        NtfyStandIn { server, state }
    }

    /// `http://127.0.0.1:PORT/<topic>`.
    pub fn topic_url(&self, topic: &str) -> String {
        format!("http://{}/{topic}", self.server.address())
    }

    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    pub fn script(&self, responses: impl IntoIterator<Item = Scripted>) {
        self.lock().script.extend(responses);
    }

    /// Answer every publish with this status in ntfy's error shape (`None`: publish again).
    pub fn set_status(&self, status: Option<u16>) {
        self.lock().status = status;
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The messages published, as ntfy answered them, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.lock()
            .requests
            .iter()
            .filter(|request| request.status == 200)
            .map(|request| request.answer.clone())
            .collect()
    }

    /// Waits until `count` requests were answered, at most `timeout`; panics, listing
    /// what came, after that.
    pub fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        assert!(
            self.server.wait_for_answers(count, timeout),
            "the ntfy stand-in got fewer than {count} requests in {timeout:?}: {:#?}",
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

/// ntfy's error body.
fn error(status: u16, code: u32, message: &str, link: Option<&str>) -> (u16, Value) {
    let mut body = json!({"code": code, "http": status, "error": message});
    if let Some(link) = link {
        body["link"] = json!(link);
    }
    (status, body)
}

fn rate_limited() -> (u16, Value) {
    error(
        429,
        42901,
        "limit reached: too many requests",
        Some("https://ntfy.sh/docs/publish/#limitations"),
    )
}

fn handle(state: &Mutex<State>, request: Incoming) -> Response<Full<Bytes>> {
    let Incoming {
        at,
        method,
        path,
        headers,
        body,
    } = request;
    let mut recorded = RecordedRequest {
        at,
        method,
        path,
        headers,
        body,
        status: 0,
        answer: Value::Null,
    };
    let mut state = state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (status, answer) = state.answer(&recorded);
    recorded.status = status;
    recorded.answer = answer.clone();
    state.requests.push(recorded);
    json_response(status, &answer, &[])
}

impl State {
    fn answer(&mut self, request: &RecordedRequest) -> (u16, Value) {
        if !matches!(request.method.as_str(), "POST" | "PUT") {
            return error(405, 40501, "method not allowed", None);
        }
        let topic = request.path.trim_matches('/').to_owned();
        if topic.is_empty() || topic.contains('/') {
            return error(404, 40401, "page not found", None);
        }
        if let Some(status) = self.status {
            return match status {
                401 => error(401, 40101, "unauthorized", None),
                403 => error(403, 40301, "forbidden", None),
                _ => error(status, u32::from(status) * 100 + 1, "scripted", None),
            };
        }
        if let Some(scripted) = self.script.pop_front() {
            return match scripted {
                Scripted::RateLimited => rate_limited(),
                Scripted::Error {
                    status,
                    code,
                    error: message,
                } => error(status, code, &message, None),
            };
        }
        // The visitor's request bucket.
        let elapsed = self.refilled.elapsed().as_secs_f64();
        self.refilled = Instant::now();
        self.tokens = (self.tokens + elapsed / self.behaviour.replenish.as_secs_f64())
            .min(f64::from(self.behaviour.burst));
        if self.tokens < 1.0 {
            return rate_limited();
        }
        self.tokens -= 1.0;
        if let Some(refusal) = self.access(request) {
            return refusal;
        }
        let header = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| request.header(name))
                .map(decode_rfc2047)
        };
        let priority = match header(&["x-priority", "priority", "prio", "p"]) {
            None => None,
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "1" | "min" => Some(1),
                "2" | "low" => Some(2),
                "3" | "default" => Some(3),
                "4" | "high" => Some(4),
                "5" | "max" | "urgent" => Some(5),
                _ => {
                    return error(
                        400,
                        40007,
                        "invalid priority",
                        Some("https://ntfy.sh/docs/publish/#message-priority"),
                    )
                }
            },
        };
        if request.body.len() > MESSAGE_SIZE_LIMIT {
            return error(
                413,
                41301,
                "message too large, and attachments are not enabled on this server",
                Some("https://ntfy.sh/docs/publish/#limitations"),
            );
        }
        let Ok(message) = std::str::from_utf8(&request.body) else {
            return error(400, 40001, "the message is not UTF-8 text", None);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut answer = Map::new();
        answer.insert("id".into(), json!(format!("standin{:05}", self.next_id)));
        self.next_id += 1;
        answer.insert("time".into(), json!(now));
        answer.insert("expires".into(), json!(now + 12 * 3600));
        answer.insert("event".into(), json!("message"));
        answer.insert("topic".into(), json!(topic));
        answer.insert("message".into(), json!(message));
        if let Some(title) = header(&["x-title", "title", "t"]) {
            answer.insert("title".into(), json!(title));
        }
        if let Some(priority) = priority {
            answer.insert("priority".into(), json!(priority));
        }
        if let Some(tags) = header(&["x-tags", "tags", "tag", "ta"]) {
            let tags: Vec<&str> = tags.split(',').map(str::trim).collect();
            answer.insert("tags".into(), json!(tags));
        }
        if let Some(click) = header(&["x-click", "click"]) {
            answer.insert("click".into(), json!(click));
        }
        (200, Value::Object(answer))
    }

    /// A refusal when the topic is protected and the request's credentials do not fit.
    fn access(&self, request: &RecordedRequest) -> Option<(u16, Value)> {
        if self.behaviour.token.is_none() && self.behaviour.basic.is_none() {
            return None;
        }
        let link = Some("https://ntfy.sh/docs/publish/#authentication");
        let Some(authorization) = request.header("authorization") else {
            return Some(error(403, 40301, "forbidden", link));
        };
        let fits = match authorization.split_once(' ') {
            Some(("Bearer", token)) => self.behaviour.token.as_deref() == Some(token),
            Some(("Basic", encoded)) => {
                self.behaviour.basic.as_ref().is_some_and(|(user, pass)| {
                    decode_base64(encoded).as_deref() == Some(format!("{user}:{pass}").as_bytes())
                })
            }
            _ => false,
        };
        (!fits).then(|| error(401, 40101, "unauthorized", link))
    }
}

/// `=?UTF-8?B?…?=` decoded; anything else as it is.
fn decode_rfc2047(value: &str) -> String {
    let lower = value.to_ascii_lowercase();
    if lower.starts_with("=?utf-8?b?") && value.ends_with("?=") {
        if let Some(bytes) = decode_base64(&value[10..value.len() - 2]) {
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    value.to_owned()
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|known| *known == byte)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}
