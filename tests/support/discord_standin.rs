//! A stand-in for Discord's webhook endpoint, for tests: a real HTTP server on `127.0.0.1:0`.
//!
//! Shared by several test targets through
//! `#[path = "../../../tests/support/discord_standin.rs"] mod discord_standin;`, so it uses
//! only `std`, `tokio`, `hyper`, `hyper-util`, `http-body-util`, `bytes` and `serde_json`.
//!
//! It serves `POST /api/v10/webhooks/{id}/{token}` the way Discord documents it:
//! - checks the body (`content`, `username`, `avatar_url`, `allowed_mentions`, `embeds` and
//!   each embed's limits, the 6000 characters over all embeds, non-empty field names and
//!   values, footers and author names, an embed's `url` a web address) and answers `400`
//!   with code `50035` and an `errors` object naming what is wrong, as Discord does;
//!   lengths are Unicode characters;
//! - enforces a rate limit per webhook (by default 5 requests in any 2 s), sends
//!   `X-RateLimit-Limit`/`-Remaining`/`-Reset-After`/`-Reset`/`-Bucket` on every answer of
//!   its own, and answers over the limit with `429`, `{"message", "retry_after", "global"}`
//!   and `Retry-After`;
//! - answers `200` with the message when `wait=true` (`204` otherwise) and records it;
//! - can be told to answer `404 Unknown Webhook` ([`DiscordStandIn::set_gone`]) or to answer
//!   the next requests in a scripted way ([`Scripted`]: 5xx, a 429, Cloudflare's HTML ban).
//!
//! The server runs on its own thread and runtime, so it works under any test runtime;
//! dropping the [`DiscordStandIn`] stops it.

#![allow(dead_code)] // each test target uses a different part of it

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};

const CONTENT_LIMIT: usize = 2000;
const USERNAME_LIMIT: usize = 80;
const EMBEDS_LIMIT: usize = 10;
const TITLE_LIMIT: usize = 256;
const DESCRIPTION_LIMIT: usize = 4096;
const FIELDS_LIMIT: usize = 25;
const FIELD_NAME_LIMIT: usize = 256;
const FIELD_VALUE_LIMIT: usize = 1024;
const FOOTER_TEXT_LIMIT: usize = 2048;
const AUTHOR_NAME_LIMIT: usize = 256;
const EMBED_TOTAL_LIMIT: usize = 6000;
const COLOR_MAX: u64 = 0xFF_FF_FF;

/// How the stand-in behaves from the start.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Requests a webhook may make in any `window`.
    pub limit: u32,
    pub window: Duration,
    /// Answer every request with `404 Unknown Webhook`.
    pub gone: bool,
}

impl Default for Behaviour {
    /// Discord's documented webhook limit: 5 requests per 2 s.
    fn default() -> Self {
        Behaviour {
            limit: 5,
            window: Duration::from_secs(2),
            gone: false,
        }
    }
}

/// How to answer one of the next requests, instead of the usual checks.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// Handle it as usual.
    Accept,
    /// This 5xx, with a plain-text body and no rate-limit headers (as from Cloudflare).
    ServerError(u16),
    /// A Discord 429 with rate-limit headers: `retry_after` in the body (float seconds) and
    /// `retry_after_header` in `Retry-After` (whole seconds).
    RateLimited {
        retry_after: f64,
        retry_after_header: u64,
        global: bool,
    },
    /// Cloudflare's ban: 429 with an HTML page and no rate-limit headers.
    HtmlBan,
    /// This status and JSON body, with the usual rate-limit headers.
    Json { status: u16, body: Value },
}

/// One request as the stand-in saw it, and what it answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub status: u16,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

pub struct DiscordStandIn {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct State {
    behaviour: Behaviour,
    script: VecDeque<Scripted>,
    /// Per webhook id: when its requests inside the current window arrived.
    windows: HashMap<String, VecDeque<Instant>>,
    requests: Vec<RecordedRequest>,
    messages: Vec<Value>,
    next_message_id: u64,
}

impl DiscordStandIn {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub fn start(behaviour: Behaviour) -> DiscordStandIn {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the Discord stand-in");
        listener
            .set_nonblocking(true)
            .expect("make the stand-in's socket non-blocking");
        let address = listener.local_addr().expect("stand-in address");
        let state = Arc::new(Mutex::new(State {
            behaviour,
            script: VecDeque::new(),
            windows: HashMap::new(),
            requests: Vec::new(),
            messages: Vec::new(),
            next_message_id: 1_300_000_000_000_000_000,
        }));
        let (shutdown, shutdown_received) = tokio::sync::oneshot::channel();
        let thread_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("discord-standin".into())
            .spawn(move || serve(listener, thread_state, shutdown_received))
            .expect("start the stand-in's thread");
        DiscordStandIn {
            address,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The webhook URL a user would paste: `http://127.0.0.1:PORT/api/webhooks/{id}/{token}`.
    pub fn url(&self, id: &str, token: &str) -> String {
        format!("http://{}/api/webhooks/{id}/{token}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Answer the next requests like this, in order, before the usual handling.
    pub fn script(&self, responses: impl IntoIterator<Item = Scripted>) {
        self.lock().script.extend(responses);
    }

    /// Answer every request with `404 Unknown Webhook` (code 10015), or stop doing so.
    pub fn set_gone(&self, gone: bool) {
        self.lock().behaviour.gone = gone;
    }

    /// Every accepted message body, in the order they arrived.
    pub fn messages(&self) -> Vec<Value> {
        self.lock().messages.clone()
    }

    /// Every embed of every accepted message, in order.
    pub fn embeds(&self) -> Vec<Value> {
        self.lock()
            .messages
            .iter()
            .flat_map(|message| message["embeds"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Every request, accepted or not.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// The status of every answer, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.lock()
            .requests
            .iter()
            .map(|request| request.status)
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for DiscordStandIn {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    listener: std::net::TcpListener,
    state: Arc<Mutex<State>>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the stand-in's runtime");
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::from_std(listener).expect("the stand-in's listener");
        loop {
            let stream = tokio::select! {
                _ = &mut shutdown => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let service = service_fn(move |request| handle(Arc::clone(&state), request));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn handle(
    state: Arc<Mutex<State>>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut recorded = RecordedRequest {
        at: Instant::now(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        status: 0,
    };
    let mut state = state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let answer = state.answer(&recorded);
    recorded.status = answer.status;
    state.requests.push(recorded);

    let mut response = Response::builder().status(answer.status);
    if let Some(content_type) = answer.content_type {
        response = response.header("content-type", content_type);
    }
    for (name, value) in answer.headers {
        response = response.header(name, value);
    }
    Ok(response
        .body(Full::new(Bytes::from(answer.body)))
        .expect("a valid response"))
}

struct Answer {
    status: u16,
    content_type: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(status: u16, body: Value, headers: Vec<(&'static str, String)>) -> Answer {
        Answer {
            status,
            content_type: Some("application/json"),
            headers,
            body: body.to_string().into_bytes(),
        }
    }
}

impl State {
    fn answer(&mut self, request: &RecordedRequest) -> Answer {
        let Some((webhook_id, _token)) = webhook_path(&request.path) else {
            return Answer::json(404, json!({"message": "404: Not Found", "code": 0}), vec![]);
        };
        if request.method != "POST" {
            return Answer::json(
                405,
                json!({"message": "405: Method Not Allowed", "code": 0}),
                vec![],
            );
        }
        let now = request.at;
        match self.script.pop_front() {
            None | Some(Scripted::Accept) => {}
            Some(Scripted::ServerError(status)) => {
                return Answer {
                    status,
                    content_type: Some("text/plain"),
                    headers: vec![],
                    body: b"upstream connect error or disconnect/reset before headers".to_vec(),
                };
            }
            Some(Scripted::HtmlBan) => {
                return Answer {
                    status: 429,
                    content_type: Some("text/html; charset=UTF-8"),
                    headers: vec![],
                    body: b"<!DOCTYPE html><html><head><title>Access denied | discord.com used Cloudflare to restrict access</title></head><body><h1>Error 1015</h1><p>You are being rate limited.</p></body></html>".to_vec(),
                };
            }
            Some(Scripted::RateLimited {
                retry_after,
                retry_after_header,
                global,
            }) => {
                let mut headers = self.rate_limit_headers(webhook_id, now);
                headers.push(("retry-after", retry_after_header.to_string()));
                headers.push((
                    "x-ratelimit-scope",
                    if global { "global" } else { "user" }.into(),
                ));
                if global {
                    headers.push(("x-ratelimit-global", "true".into()));
                }
                return Answer::json(
                    429,
                    json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": global}),
                    headers,
                );
            }
            Some(Scripted::Json { status, body }) => {
                let headers = self.rate_limit_headers(webhook_id, now);
                return Answer::json(status, body, headers);
            }
        }

        // The rate limit: a request over it is refused and does not count.
        let limit = self.behaviour.limit as usize;
        let window_length = self.behaviour.window;
        let window = self.windows.entry(webhook_id.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|&oldest| now.duration_since(oldest) >= window_length)
        {
            window.pop_front();
        }
        if window.len() >= limit {
            let mut headers = self.rate_limit_headers(webhook_id, now);
            let wait = self.reset_after(webhook_id, now);
            headers.push(("retry-after", wait.as_secs_f64().ceil().to_string()));
            headers.push(("x-ratelimit-scope", "user".into()));
            return Answer::json(
                429,
                json!({"message": "You are being rate limited.", "retry_after": seconds_text(wait).parse::<f64>().unwrap_or(0.0), "global": false}),
                headers,
            );
        }
        window.push_back(now);
        let headers = self.rate_limit_headers(webhook_id, now);

        if self.behaviour.gone {
            return Answer::json(
                404,
                json!({"message": "Unknown Webhook", "code": 10015}),
                headers,
            );
        }
        if request.header("authorization").is_some() {
            // Discord would try the header as a bot token.
            return Answer::json(
                401,
                json!({"message": "401: Unauthorized", "code": 0}),
                headers,
            );
        }
        let is_json = request
            .header("content-type")
            .is_some_and(|value| value.starts_with("application/json"));
        if !is_json {
            // Without the JSON content type Discord sees no fields at all.
            return Answer::json(
                400,
                json!({"message": "Cannot send an empty message", "code": 50006}),
                headers,
            );
        }
        let Ok(message) = serde_json::from_slice::<Value>(&request.body) else {
            return Answer::json(
                400,
                json!({"message": "The request body contains invalid JSON.", "code": 50109}),
                headers,
            );
        };
        let errors = validate(&message);
        if !errors.is_empty() {
            return Answer::json(
                400,
                json!({"message": "Invalid Form Body", "code": 50035, "errors": errors}),
                headers,
            );
        }
        let has_content = message["content"]
            .as_str()
            .is_some_and(|text| !text.is_empty());
        let has_embeds = message["embeds"]
            .as_array()
            .is_some_and(|embeds| !embeds.is_empty());
        if !has_content && !has_embeds {
            return Answer::json(
                400,
                json!({"message": "Cannot send an empty message", "code": 50006}),
                headers,
            );
        }

        self.next_message_id += 1;
        let saved = json!({
            "id": self.next_message_id.to_string(),
            "type": 0,
            "channel_id": "1100000000000000000",
            "webhook_id": webhook_id,
            "content": message["content"].as_str().unwrap_or_default(),
            "embeds": message["embeds"].clone(),
            "author": {
                "bot": true,
                "id": webhook_id,
                "username": message["username"].as_str().unwrap_or("Captain Hook"),
            },
        });
        self.messages.push(message);
        let wait = request.query.split('&').any(|pair| pair == "wait=true");
        if wait {
            Answer::json(200, saved, headers)
        } else {
            Answer {
                status: 204,
                content_type: None,
                headers,
                body: Vec::new(),
            }
        }
    }

    /// Until the oldest request of the window leaves it (a full window when it is empty).
    fn reset_after(&self, webhook_id: &str, now: Instant) -> Duration {
        let window_length = self.behaviour.window;
        self.windows
            .get(webhook_id)
            .and_then(|window| window.front())
            .map_or(window_length, |&oldest| {
                (oldest + window_length).saturating_duration_since(now)
            })
    }

    fn rate_limit_headers(&self, webhook_id: &str, now: Instant) -> Vec<(&'static str, String)> {
        let used = self.windows.get(webhook_id).map_or(0, VecDeque::len);
        let remaining = (self.behaviour.limit as usize).saturating_sub(used);
        let reset_after = self.reset_after(webhook_id, now);
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + reset_after;
        vec![
            ("x-ratelimit-limit", self.behaviour.limit.to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-reset-after", seconds_text(reset_after)),
            ("x-ratelimit-reset", seconds_text(reset)),
            ("x-ratelimit-bucket", format!("standin{webhook_id}")),
        ]
    }
}

/// Seconds with three decimals, rounded up, so that a client waiting that long is never early.
fn seconds_text(duration: Duration) -> String {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    format!("{}.{:03}", millis / 1000, millis % 1000)
}

/// `(id, token)` of `/api/v10/webhooks/{id}/{token}`.
fn webhook_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v10/webhooks/")?;
    let (id, token) = rest.split_once('/')?;
    let valid = !id.is_empty()
        && id.bytes().all(|byte| byte.is_ascii_digit())
        && !token.is_empty()
        && !token.contains('/');
    valid.then_some((id, token))
}

/// Discord's `errors` object for this body: empty when it is valid.
pub fn validate(message: &Value) -> Map<String, Value> {
    let mut errors = Map::new();
    let Some(body) = message.as_object() else {
        add_error(
            &mut errors,
            &[],
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        );
        return errors;
    };
    if let Some(content) = body.get("content") {
        match content.as_str() {
            Some(text) if length(text) > CONTENT_LIMIT => add_error(
                &mut errors,
                &["content"],
                "BASE_TYPE_MAX_LENGTH",
                &format!("Must be {CONTENT_LIMIT} or fewer in length."),
            ),
            Some(_) => {}
            None if content.is_null() => {}
            None => add_error(
                &mut errors,
                &["content"],
                "BASE_TYPE_STRING",
                "Must be a string.",
            ),
        }
    }
    if let Some(username) = body.get("username").filter(|value| !value.is_null()) {
        match username.as_str() {
            Some(name) if !(1..=USERNAME_LIMIT).contains(&length(name)) => add_error(
                &mut errors,
                &["username"],
                "BASE_TYPE_BAD_LENGTH",
                &format!("Must be between 1 and {USERNAME_LIMIT} in length."),
            ),
            Some(name) => {
                let lowercase = name.to_lowercase();
                for forbidden in ["discord", "clyde"] {
                    if lowercase.contains(forbidden) {
                        add_error(
                            &mut errors,
                            &["username"],
                            "USERNAME_INVALID_CONTAINS",
                            &format!("Username cannot contain \"{forbidden}\""),
                        );
                    }
                }
            }
            None => add_error(
                &mut errors,
                &["username"],
                "BASE_TYPE_STRING",
                "Must be a string.",
            ),
        }
    }
    if let Some(avatar_url) = body.get("avatar_url").filter(|value| !value.is_null()) {
        let well_formed = avatar_url.as_str().is_some_and(|url| {
            ["https://", "http://"].iter().any(|scheme| {
                url.strip_prefix(scheme)
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
            })
        });
        if !well_formed {
            add_error(
                &mut errors,
                &["avatar_url"],
                "URL_TYPE_INVALID_URL",
                "Not a well formed URL.",
            );
        }
    }
    if let Some(allowed_mentions) = body.get("allowed_mentions") {
        let parse_ok = match allowed_mentions.get("parse") {
            None => allowed_mentions.is_object(),
            Some(parse) => parse.as_array().is_some_and(|kinds| {
                kinds
                    .iter()
                    .all(|kind| matches!(kind.as_str(), Some("roles" | "users" | "everyone")))
            }),
        };
        if !parse_ok {
            add_error(
                &mut errors,
                &["allowed_mentions", "parse"],
                "ENUM_TYPE_COERCE",
                "Value must be one of {'roles', 'users', 'everyone'}.",
            );
        }
    }
    if let Some(embeds) = body.get("embeds").filter(|value| !value.is_null()) {
        match embeds.as_array() {
            None => add_error(
                &mut errors,
                &["embeds"],
                "BASE_TYPE_ARRAY",
                "Must be an array.",
            ),
            Some(embeds) => {
                if embeds.len() > EMBEDS_LIMIT {
                    add_error(
                        &mut errors,
                        &["embeds"],
                        "BASE_TYPE_MAX_LENGTH",
                        &format!("Must be {EMBEDS_LIMIT} or fewer in length."),
                    );
                }
                let mut total = 0;
                for (index, embed) in embeds.iter().enumerate() {
                    total += validate_embed(&mut errors, &index.to_string(), embed);
                }
                if total > EMBED_TOTAL_LIMIT {
                    add_error(
                        &mut errors,
                        &["embeds"],
                        "MAX_EMBED_SIZE_EXCEEDED",
                        &format!("Embed size exceeds maximum size of {EMBED_TOTAL_LIMIT}"),
                    );
                }
            }
        }
    }
    errors
}

/// Checks one embed; returns the characters it counts towards the 6000 of a message.
fn validate_embed(errors: &mut Map<String, Value>, index: &str, embed: &Value) -> usize {
    let Some(embed) = embed.as_object() else {
        add_error(
            errors,
            &["embeds", index],
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        );
        return 0;
    };
    let mut total = 0;
    let mut text = |errors: &mut Map<String, Value>,
                    path: &[&str],
                    value: Option<&Value>,
                    limit: usize,
                    required: bool| {
        let full_path: Vec<&str> = ["embeds", index]
            .iter()
            .copied()
            .chain(path.iter().copied())
            .collect();
        match value {
            None | Some(Value::Null) => {
                if required {
                    add_error(
                        errors,
                        &full_path,
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    );
                }
            }
            Some(Value::String(text)) => {
                let characters = length(text);
                total += characters;
                if required && text.trim().is_empty() {
                    add_error(
                        errors,
                        &full_path,
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    );
                } else if characters > limit {
                    add_error(
                        errors,
                        &full_path,
                        "BASE_TYPE_MAX_LENGTH",
                        &format!("Must be {limit} or fewer in length."),
                    );
                }
            }
            Some(_) => add_error(errors, &full_path, "BASE_TYPE_STRING", "Must be a string."),
        }
    };
    text(errors, &["title"], embed.get("title"), TITLE_LIMIT, false);
    // The title's link: a web address, else Discord's "Not a well formed URL.".
    if let Some(url) = embed.get("url").filter(|value| !value.is_null()) {
        let web = url.as_str().is_some_and(|url| {
            ["http://", "https://"]
                .iter()
                .any(|scheme| url.len() > scheme.len() && url.starts_with(scheme))
        });
        if !web {
            add_error(
                errors,
                &["embeds", index, "url"],
                "URL_TYPE_INVALID_URL",
                "Not a well formed URL.",
            );
        }
    }
    text(
        errors,
        &["description"],
        embed.get("description"),
        DESCRIPTION_LIMIT,
        false,
    );
    if let Some(footer) = embed.get("footer").filter(|value| !value.is_null()) {
        text(
            errors,
            &["footer", "text"],
            footer.get("text"),
            FOOTER_TEXT_LIMIT,
            true,
        );
    }
    if let Some(author) = embed.get("author").filter(|value| !value.is_null()) {
        text(
            errors,
            &["author", "name"],
            author.get("name"),
            AUTHOR_NAME_LIMIT,
            true,
        );
    }
    if let Some(fields) = embed.get("fields").filter(|value| !value.is_null()) {
        match fields.as_array() {
            None => add_error(
                errors,
                &["embeds", index, "fields"],
                "BASE_TYPE_ARRAY",
                "Must be an array.",
            ),
            Some(fields) => {
                if fields.len() > FIELDS_LIMIT {
                    add_error(
                        errors,
                        &["embeds", index, "fields"],
                        "BASE_TYPE_MAX_LENGTH",
                        &format!("Must be {FIELDS_LIMIT} or fewer in length."),
                    );
                }
                for (field_index, field) in fields.iter().enumerate() {
                    let field_index = field_index.to_string();
                    text(
                        errors,
                        &["fields", &field_index, "name"],
                        field.get("name"),
                        FIELD_NAME_LIMIT,
                        true,
                    );
                    text(
                        errors,
                        &["fields", &field_index, "value"],
                        field.get("value"),
                        FIELD_VALUE_LIMIT,
                        true,
                    );
                    if field
                        .get("inline")
                        .is_some_and(|inline| !inline.is_boolean() && !inline.is_null())
                    {
                        add_error(
                            errors,
                            &["embeds", index, "fields", &field_index, "inline"],
                            "BASE_TYPE_BOOLEAN",
                            "Must be either true or false.",
                        );
                    }
                }
            }
        }
    }
    if let Some(color) = embed.get("color").filter(|value| !value.is_null()) {
        if color.as_u64().is_none_or(|color| color > COLOR_MAX) {
            add_error(
                errors,
                &["embeds", index, "color"],
                "NUMBER_TYPE_MAX",
                &format!("int value should be less than or equal to {COLOR_MAX}."),
            );
        }
    }
    if let Some(timestamp) = embed.get("timestamp").filter(|value| !value.is_null()) {
        let text = timestamp.as_str().unwrap_or_default();
        if !is_iso8601(text) {
            add_error(
                errors,
                &["embeds", index, "timestamp"],
                "DATE_TYPE_PARSE",
                &format!("Could not parse {text}. Should be ISO8601."),
            );
        }
    }
    total
}

/// Adds `{code, message}` to `errors[path...]._errors`, as Discord nests them.
fn add_error(errors: &mut Map<String, Value>, path: &[&str], code: &str, message: &str) {
    let mut node = errors;
    for key in path {
        node = node
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("error nodes are objects");
    }
    node.entry("_errors")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .expect("_errors is an array")
        .push(json!({"code": code, "message": message}));
}

/// Discord counts characters, not bytes.
fn length(text: &str) -> usize {
    text.chars().count()
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn is_iso8601(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    let at = |index: usize, expected: u8| bytes.get(index) == Some(&expected);
    if !(digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && (at(10, b'T') || at(10, b' '))
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19))
    {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return false;
        }
        rest = &fraction[end..];
    }
    if rest == "Z" || rest.is_empty() {
        return true;
    }
    let offset = rest.as_bytes();
    offset.len() == 6
        && (offset[0] == b'+' || offset[0] == b'-')
        && offset[1..3].iter().all(u8::is_ascii_digit)
        && offset[3] == b':'
        && offset[4..6].iter().all(u8::is_ascii_digit)
}
