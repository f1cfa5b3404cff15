//! A stand-in for the Mender devicemonitor device API, on `127.0.0.1:0`, for tests.
//!
//! Shared by several test targets through
//! `#[path = "../../../tests/support/devicemonitor_standin.rs"] mod devicemonitor_standin;`,
//! so it uses only `std`, `tokio`, `hyper`, `hyper-util`, `http-body-util`, `bytes` and
//! `serde_json`. It serves, as Mender documents them:
//!
//! - `POST /api/devices/v1/devicemonitor/alert`: a JSON array of alerts, each with a non-empty
//!   `name`, `level` `OK` or `CRITICAL`, an RFC 3339 `timestamp` and `subject.name`,
//!   `subject.type`, `subject.status`; 204 when valid, 400 with the reason otherwise.
//! - `POST /api/devices/v1/devicemonitor/config`: a JSON array of checks
//!   (`{name, status, type}` and the object `type` names); 204 or 400.
//!
//! Both need `Authorization: Bearer <an accepted token>` (401 otherwise). Controls:
//! [`DeviceMonitorStandIn::set_down`] (503), [`DeviceMonitorStandIn::set_refusing`] (closes
//! connections without an answer), [`DeviceMonitorStandIn::fail_next`],
//! [`DeviceMonitorStandIn::rate_limit_next`] (429 + `Retry-After`),
//! [`DeviceMonitorStandIn::set_strict_details`] (400 for a `subject.details` key outside
//! Mender's public schema, as a schema-validating server answers),
//! [`DeviceMonitorStandIn::refuse_alerts_named`] (400 for a request holding an alert whose
//! name contains a marker) and [`DeviceMonitorStandIn::set_body_limit`] (413 for a bigger
//! body, as a proxy's `client_max_body_size` answers). It records every accepted
//! alert and config and every request. The server runs on a thread with its own runtime, so it
//! works from plain `#[test]`s, `#[tokio::test]`s (even with paused time) and across tests;
//! dropping it stops it.

#![allow(dead_code)] // each test target uses a different part of it

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

pub const ALERT_PATH: &str = "/api/devices/v1/devicemonitor/alert";
pub const CONFIG_PATH: &str = "/api/devices/v1/devicemonitor/config";
/// The token accepted until [`DeviceMonitorStandIn::set_accepted_tokens`] says otherwise.
pub const DEFAULT_TOKEN: &str = "device-token";

/// One request as the stand-in saw it, whatever it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The token of `Authorization: Bearer <token>`, if the header had that form.
    pub bearer: Option<String>,
    pub user_agent: Option<String>,
    /// The body as sent (lossy UTF-8), for snapshots of the exact JSON.
    pub body: String,
    /// What the stand-in answered.
    pub status: u16,
}

#[derive(Debug, Clone, Copy)]
struct PlannedFailure {
    status: u16,
    retry_after_secs: Option<u64>,
}

#[derive(Debug)]
struct State {
    accepted_tokens: Vec<String>,
    down: bool,
    refusing: bool,
    planned_failures: VecDeque<PlannedFailure>,
    alerts: Vec<Value>,
    configs: Vec<Value>,
    requests: Vec<RecordedRequest>,
    refused_connections: usize,
    strict_details: bool,
    refused_marker: Option<String>,
    body_limit: Option<usize>,
}

/// The keys of an alert's `subject.details` in Mender's public schema
/// (`mendersoftware/gui` `AlertDetails.ts`).
pub const MENDER_DETAILS_KEYS: [&str; 4] = [
    "description",
    "line_matching",
    "lines_before",
    "lines_after",
];

struct Shared {
    state: Mutex<State>,
    /// How many alerts were accepted so far; waiters watch it.
    alert_count: tokio::sync::watch::Sender<usize>,
    config_count: tokio::sync::watch::Sender<usize>,
    request_count: tokio::sync::watch::Sender<usize>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct DeviceMonitorStandIn {
    address: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DeviceMonitorStandIn {
    /// Starts serving on `127.0.0.1:<a free port>`, accepting [`DEFAULT_TOKEN`].
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind the devicemonitor stand-in to 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("make the stand-in's listener non-blocking");
        let address = listener.local_addr().expect("the stand-in's address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                accepted_tokens: vec![DEFAULT_TOKEN.to_owned()],
                down: false,
                refusing: false,
                planned_failures: VecDeque::new(),
                alerts: Vec::new(),
                configs: Vec::new(),
                requests: Vec::new(),
                refused_connections: 0,
                strict_details: false,
                refused_marker: None,
                body_limit: None,
            }),
            alert_count: tokio::sync::watch::Sender::new(0),
            config_count: tokio::sync::watch::Sender::new(0),
            request_count: tokio::sync::watch::Sender::new(0),
        });
        let (shutdown, shutdown_received) = tokio::sync::oneshot::channel();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("devicemonitor-standin-{}", address.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build the devicemonitor stand-in's runtime");
                runtime.block_on(serve(listener, serving, shutdown_received));
            })
            .expect("spawn the devicemonitor stand-in's thread");
        DeviceMonitorStandIn {
            address,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Only these tokens are accepted from now on (others get 401).
    pub fn set_accepted_tokens(&self, tokens: &[&str]) {
        self.shared.state().accepted_tokens =
            tokens.iter().map(|token| (*token).to_owned()).collect();
    }

    /// While down, every request gets 503.
    pub fn set_down(&self, down: bool) {
        self.shared.state().down = down;
    }

    /// While refusing, connections are closed without an answer: new ones as soon as they are
    /// accepted, kept-alive ones when their next request arrives.
    pub fn set_refusing(&self, refusing: bool) {
        self.shared.state().refusing = refusing;
    }

    /// The next `count` requests get `status` (before the token is checked).
    pub fn fail_next(&self, count: usize, status: u16) {
        let mut state = self.shared.state();
        for _ in 0..count {
            state.planned_failures.push_back(PlannedFailure {
                status,
                retry_after_secs: None,
            });
        }
    }

    /// The next `count` requests get 429 with `Retry-After: <retry_after_secs>`.
    pub fn rate_limit_next(&self, count: usize, retry_after_secs: u64) {
        let mut state = self.shared.state();
        for _ in 0..count {
            state.planned_failures.push_back(PlannedFailure {
                status: 429,
                retry_after_secs: Some(retry_after_secs),
            });
        }
    }

    /// While strict, a request holding an alert whose `subject.details` has a key outside
    /// [`MENDER_DETAILS_KEYS`] gets 400 naming the item and the key.
    pub fn set_strict_details(&self, strict: bool) {
        self.shared.state().strict_details = strict;
    }

    /// From now on a request holding an alert whose name contains `marker` gets 400 naming
    /// the item (`None`: no more).
    pub fn refuse_alerts_named(&self, marker: Option<&str>) {
        self.shared.state().refused_marker = marker.map(str::to_owned);
    }

    /// From now on a request whose body is longer than `bytes` gets 413 (`None`: no limit).
    pub fn set_body_limit(&self, bytes: Option<usize>) {
        self.shared.state().body_limit = bytes;
    }

    /// Every accepted alert, in arrival order.
    pub fn alerts(&self) -> Vec<Value> {
        self.shared.state().alerts.clone()
    }

    /// Every accepted config push (each a JSON array of checks), in arrival order.
    pub fn configs(&self) -> Vec<Value> {
        self.shared.state().configs.clone()
    }

    /// Every request, whatever it was answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// How many connections were closed unanswered by [`Self::set_refusing`].
    pub fn refused_connections(&self) -> usize {
        self.shared.state().refused_connections
    }

    /// Waits until at least `count` alerts were accepted and returns all of them; panics,
    /// listing what did arrive, if that takes longer than `timeout`.
    pub async fn wait_for_alerts(&self, count: usize, timeout: Duration) -> Vec<Value> {
        let mut accepted = self.shared.alert_count.subscribe();
        if tokio::time::timeout(timeout, accepted.wait_for(|accepted| *accepted >= count))
            .await
            .is_err()
        {
            panic!(
                "the devicemonitor stand-in got {} of {count} alerts within {timeout:?}; requests: {:#?}",
                self.alerts().len(),
                self.requests()
            );
        }
        self.alerts()
    }

    /// Waits until at least `count` configs were accepted; panics after `timeout`.
    pub async fn wait_for_configs(&self, count: usize, timeout: Duration) -> Vec<Value> {
        let mut accepted = self.shared.config_count.subscribe();
        if tokio::time::timeout(timeout, accepted.wait_for(|accepted| *accepted >= count))
            .await
            .is_err()
        {
            panic!(
                "the devicemonitor stand-in got {} of {count} configs within {timeout:?}; requests: {:#?}",
                self.configs().len(),
                self.requests()
            );
        }
        self.configs()
    }

    /// Waits until at least `count` requests arrived (whatever they were answered); panics
    /// after `timeout`.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let mut seen = self.shared.request_count.subscribe();
        if tokio::time::timeout(timeout, seen.wait_for(|seen| *seen >= count))
            .await
            .is_err()
        {
            panic!(
                "the devicemonitor stand-in got {} of {count} requests within {timeout:?}: {:#?}",
                self.requests().len(),
                self.requests()
            );
        }
        self.requests()
    }
}

impl Drop for DeviceMonitorStandIn {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("register the stand-in's listener");
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        if shared.state().refusing {
            shared.state().refused_connections += 1;
            drop(stream);
            continue;
        }
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { handle(request, &shared).await }
            });
            // Errors here are the client's business (or a refused connection's).
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Closes the connection without an answer (hyper drops it when the service fails).
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refusing connections")
    }
}

impl std::error::Error for Refused {}

async fn handle(
    request: Request<Incoming>,
    shared: &Shared,
) -> Result<Response<Full<Bytes>>, Refused> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let bearer =
        header("authorization").and_then(|value| value.strip_prefix("Bearer ").map(str::to_owned));
    let user_agent = header("user-agent");
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if shared.state().refusing {
        shared.state().refused_connections += 1;
        return Err(Refused);
    }
    let answer = answer(shared, &method, &path, bearer.as_deref(), &body);
    {
        let mut state = shared.state();
        state.requests.push(RecordedRequest {
            method: method.to_string(),
            path,
            bearer,
            user_agent,
            body: String::from_utf8_lossy(&body).into_owned(),
            status: answer.status().as_u16(),
        });
        let (alerts, configs, requests) = (
            state.alerts.len(),
            state.configs.len(),
            state.requests.len(),
        );
        drop(state);
        shared.alert_count.send_replace(alerts);
        shared.config_count.send_replace(configs);
        shared.request_count.send_replace(requests);
    }
    Ok(answer)
}

fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let mut state = shared.state();
    if path != ALERT_PATH && path != CONFIG_PATH {
        return reply(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"));
    }
    if method != Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "use POST".to_owned());
    }
    if state.down {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "backend down".to_owned());
    }
    if let Some(failure) = state.planned_failures.pop_front() {
        let status = StatusCode::from_u16(failure.status).expect("a valid planned status");
        let mut response = reply(status, format!("planned failure {}", failure.status));
        if let Some(seconds) = failure.retry_after_secs {
            response.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from(seconds),
            );
        }
        return response;
    }
    match bearer {
        Some(token)
            if state
                .accepted_tokens
                .iter()
                .any(|accepted| accepted == token) => {}
        Some(_) => return reply(StatusCode::UNAUTHORIZED, "invalid token".to_owned()),
        None => {
            return reply(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer".to_owned(),
            )
        }
    }
    if let Some(limit) = state.body_limit.filter(|limit| body.len() > *limit) {
        return reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body of {} bytes is over the {limit}-byte limit",
                body.len()
            ),
        );
    }
    let json: Value = match serde_json::from_slice(body) {
        Ok(json) => json,
        Err(error) => {
            return reply(
                StatusCode::BAD_REQUEST,
                format!("body is not JSON: {error}"),
            )
        }
    };
    let Value::Array(items) = json else {
        return reply(
            StatusCode::BAD_REQUEST,
            "body must be a JSON array".to_owned(),
        );
    };
    let validate = if path == ALERT_PATH {
        validate_alert
    } else {
        validate_check
    };
    for (index, item) in items.iter().enumerate() {
        if let Err(reason) = validate(item) {
            return reply(StatusCode::BAD_REQUEST, format!("item {index}: {reason}"));
        }
        if path != ALERT_PATH {
            continue;
        }
        if let Some(marker) = &state.refused_marker {
            let name = item["name"].as_str().unwrap_or_default();
            if name.contains(marker.as_str()) {
                return reply(
                    StatusCode::BAD_REQUEST,
                    format!("item {index}: name {name:?} is not accepted"),
                );
            }
        }
        if state.strict_details {
            let details = item["subject"]["details"].as_object();
            if let Some(key) = details
                .into_iter()
                .flatten()
                .map(|(key, _)| key)
                .find(|key| !MENDER_DETAILS_KEYS.contains(&key.as_str()))
            {
                return reply(
                    StatusCode::BAD_REQUEST,
                    format!("item {index}: subject.details.{key} is not allowed"),
                );
            }
        }
    }
    if path == ALERT_PATH {
        state.alerts.extend(items);
    } else {
        state.configs.push(Value::Array(items));
    }
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Full::new(Bytes::new()))
        .expect("a valid 204")
}

fn reply(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(
            serde_json::json!({ "error": text }).to_string(),
        )))
        .expect("a valid answer")
}

fn non_empty_string<'v>(object: &'v Value, field: &str) -> Result<&'v str, String> {
    match object.get(field) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        Some(Value::String(_)) => Err(format!("{field} must not be empty")),
        Some(_) => Err(format!("{field} must be a string")),
        None => Err(format!("{field} is required")),
    }
}

fn validate_alert(alert: &Value) -> Result<(), String> {
    if !alert.is_object() {
        return Err("an alert must be an object".to_owned());
    }
    non_empty_string(alert, "name")?;
    match non_empty_string(alert, "level")? {
        "OK" | "CRITICAL" => {}
        other => return Err(format!("level must be OK or CRITICAL, not {other}")),
    }
    let timestamp = non_empty_string(alert, "timestamp")?;
    if !is_rfc3339(timestamp) {
        return Err(format!("timestamp {timestamp} is not RFC 3339"));
    }
    let subject = alert.get("subject").ok_or("subject is required")?;
    if !subject.is_object() {
        return Err("subject must be an object".to_owned());
    }
    for field in ["name", "type", "status"] {
        non_empty_string(subject, field).map_err(|reason| format!("subject.{reason}"))?;
    }
    match subject.get("details") {
        None | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err("subject.details must be an object".to_owned()),
    }
}

fn validate_check(check: &Value) -> Result<(), String> {
    if !check.is_object() {
        return Err("a check must be an object".to_owned());
    }
    non_empty_string(check, "name")?;
    match non_empty_string(check, "status")? {
        "enabled" | "disabled" => {}
        other => return Err(format!("status must be enabled or disabled, not {other}")),
    }
    let kind = non_empty_string(check, "type")?;
    // A D-Bus check's pattern and match rule may be empty (every signal; the whole bus),
    // as in Mender's own check files and its docs' `create dbus ... u-power "" ...`.
    let (required, may_be_empty): (&[&str], &[&str]) = match kind {
        "log" => (&["pattern", "path"], &[]),
        "service" => (&["name", "type"], &[]),
        "dbus" => (&["name"], &["pattern", "watch"]),
        other => return Err(format!("type must be log, service or dbus, not {other}")),
    };
    let settings = check
        .get(kind)
        .ok_or_else(|| format!("{kind} is required for type {kind}"))?;
    for field in required {
        non_empty_string(settings, field).map_err(|reason| format!("{kind}.{reason}"))?;
    }
    for field in may_be_empty {
        if !settings.get(*field).is_some_and(Value::is_string) {
            return Err(format!("{kind}.{field} must be a string"));
        }
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`.
fn is_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    let at = |index: usize, expected: &[u8]| {
        bytes.get(index).is_some_and(|byte| expected.contains(byte))
    };
    if !(digits(0..4)
        && at(4, b"-")
        && digits(5..7)
        && at(7, b"-")
        && digits(8..10)
        && at(10, b"Tt")
        && digits(11..13)
        && at(13, b":")
        && digits(14..16)
        && at(16, b":")
        && digits(17..19))
    {
        return false;
    }
    let mut rest = &bytes[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let count = fraction
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        if count == 0 {
            return false;
        }
        rest = &fraction[count..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|byte| byte.is_ascii_digit())
        }
        _ => false,
    }
}
