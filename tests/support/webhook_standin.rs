//! A stand-in for a generic webhook receiver, for tests: a real HTTP server on `127.0.0.1:0`.
//!
//! Shared by several test targets through `#[path = ".../tests/support/webhook_standin.rs"]`,
//! next to `http_standin.rs` (the server it runs on), so it uses only `std`, `hyper`,
//! `http-body-util`, `bytes`, `serde_json` and `ring`.
//!
//! It takes any `POST`, records it with its headers, and answers `200 {"ok":true}` — or, for
//! the next requests, what the test scripted ([`Scripted`]: a 429 with `Retry-After`, a
//! 5xx, a 4xx with a JSON body), or a fixed status for every request
//! ([`WebhookStandIn::set_status`], a 404 for a removed receiver). With a secret it checks
//! each request's signature the way the README tells receivers to: the HMAC-SHA256 of
//! `<X-Monitor-Timestamp>.<body>` with the shared secret, hex, after `sha256=` in
//! `X-Monitor-Signature`.
//!
//! Dropping it stops the server.

#![allow(dead_code)] // each test target uses a different part of it

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{json, Value};

use crate::http_standin::{self, json_response, HttpServer, Incoming};

/// How to answer one of the next requests.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// 429 with `Retry-After: <seconds>`.
    RateLimited { retry_after: u64 },
    /// This status and JSON body.
    Json { status: u16, body: Value },
}

/// One request as the stand-in saw it, and what it answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub status: u16,
    /// With a secret: whether the signature was right; `None` without one.
    pub signature_valid: Option<bool>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        http_standin::header(&self.headers, name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub struct WebhookStandIn {
    server: HttpServer,
    state: Arc<Mutex<State>>,
}

struct State {
    secret: Option<Vec<u8>>,
    script: VecDeque<Scripted>,
    status: Option<u16>,
    requests: Vec<RecordedRequest>,
}

impl WebhookStandIn {
    /// Binds `127.0.0.1:0`; with `secret`, checks signatures.
    pub fn start(secret: Option<&str>) -> WebhookStandIn {
        let state = Arc::new(Mutex::new(State {
            secret: secret.map(|secret| secret.as_bytes().to_vec()),
            script: VecDeque::new(),
            status: None,
            requests: Vec::new(),
        }));
        let server_state = Arc::clone(&state);
        let server = HttpServer::start("webhook-standin", move |request| {
            handle(&server_state, request)
        });
        WebhookStandIn { server, state }
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.address())
    }

    /// Answer the next requests like this, in order.
    pub fn script(&self, responses: impl IntoIterator<Item = Scripted>) {
        self.lock().script.extend(responses);
    }

    /// Answer every request with this status and a JSON error (`None`: accept again).
    pub fn set_status(&self, status: Option<u16>) {
        self.lock().status = status;
    }

    /// Every request, answered how it was.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The bodies of the requests answered 2xx, in order.
    pub fn accepted(&self) -> Vec<Value> {
        self.lock()
            .requests
            .iter()
            .filter(|request| (200..300).contains(&request.status))
            .map(RecordedRequest::json)
            .collect()
    }

    /// Waits until `count` requests were answered, at most `timeout`; panics, listing
    /// what came, after that.
    pub fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        assert!(
            self.server.wait_for_answers(count, timeout),
            "the webhook stand-in got fewer than {count} requests in {timeout:?}: {:#?}",
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

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `<timestamp>.<body>`.
pub fn signature_is_valid(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(hex.get(index..index + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut signed = timestamp.as_bytes().to_vec();
    signed.push(b'.');
    signed.extend_from_slice(body);
    ring::hmac::verify(&key, &signed, &tag).is_ok()
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
        signature_valid: None,
    };
    let mut state = state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(secret) = &state.secret {
        recorded.signature_valid = Some(signature_is_valid(
            secret,
            recorded.header("x-monitor-timestamp").unwrap_or_default(),
            &recorded.body,
            recorded.header("x-monitor-signature").unwrap_or_default(),
        ));
    }
    let (status, body, retry_after) = if recorded.method != "POST" {
        (405, json!({"error": "method not allowed"}), None)
    } else if let Some(status) = state.status {
        (status, json!({"error": "no such hook"}), None)
    } else if let Some(scripted) = state.script.pop_front() {
        match scripted {
            Scripted::RateLimited { retry_after } => (
                429,
                json!({"error": "too many requests"}),
                Some(retry_after),
            ),
            Scripted::Json { status, body } => (status, body, None),
        }
    } else if recorded.signature_valid == Some(false) {
        (401, json!({"error": "bad signature"}), None)
    } else if serde_json::from_slice::<Value>(&recorded.body).is_err() {
        (400, json!({"error": "the body is not JSON"}), None)
    } else {
        (200, json!({"ok": true}), None)
    };
    recorded.status = status;
    state.requests.push(recorded);
    let headers: Vec<(&str, String)> = retry_after
        .map(|seconds| ("retry-after", seconds.to_string()))
        .into_iter()
        .collect();
    json_response(status, &body, &headers)
}
