//! A stand-in for a generic webhook receiver, for tests: a real HTTP server on `127.0.0.1:0`.
//!
//! Shared by several test targets through `#[path = ".../tests/support/webhook_standin.rs"]`,
//! so it uses only `std`, `tokio`, `hyper`, `hyper-util`, `http-body-util`, `bytes`,
//! `serde_json` and `ring`.
//!
//! It takes any `POST`, records it with its headers, and answers `200 {"ok":true}` — or, for
//! the next requests, what the test scripted ([`Scripted`]: a 429 with `Retry-After`, a
//! 5xx, a 4xx with a JSON body), or a fixed status for every request
//! ([`WebhookStandIn::set_status`], a 404 for a removed receiver). With a secret it checks
//! each request's signature the way the README tells receivers to: the HMAC-SHA256 of
//! `<X-Monitor-Timestamp>.<body>` with the shared secret, hex, after `sha256=` in
//! `X-Monitor-Signature`.
//!
//! The server runs on its own thread and runtime, so it works under any test runtime;
//! dropping it stops it.

#![allow(dead_code)] // each test target uses a different part of it

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

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
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub struct WebhookStandIn {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
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
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the webhook stand-in");
        listener
            .set_nonblocking(true)
            .expect("make the stand-in's socket non-blocking");
        let address = listener.local_addr().expect("stand-in address");
        let state = Arc::new(Mutex::new(State {
            secret: secret.map(|secret| secret.as_bytes().to_vec()),
            script: VecDeque::new(),
            status: None,
            requests: Vec::new(),
        }));
        let (shutdown, shutdown_received) = tokio::sync::oneshot::channel();
        let thread_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("webhook-standin".into())
            .spawn(move || serve(listener, thread_state, shutdown_received))
            .expect("start the stand-in's thread");
        WebhookStandIn {
            address,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
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

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for WebhookStandIn {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(seconds) = retry_after {
        response = response.header("retry-after", seconds.to_string());
    }
    Ok(response
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response"))
}
