//! What the HTTP stand-ins of the notification services share (webhook, ntfy, Slack,
//! Telegram): a real HTTP/1 server on `127.0.0.1:0`, on its own thread and runtime so it
//! works under any test runtime, that reads each request whole and hands it to the
//! stand-in's handler, which says what the service would answer. It counts the requests it
//! answered, so a test can wait for the n-th with a deadline instead of polling. Dropping
//! the [`HttpServer`] stops it.
//!
//! Included next to the stand-ins through `#[path]` in each test target; it uses only
//! `std`, `tokio`, `hyper`, `hyper-util`, `http-body-util`, `bytes` and `serde_json`.

#![allow(dead_code)] // each test target uses a different part of it

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// One request as it arrived, its body read whole.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The value of header `name` (any case) in `headers`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// A JSON answer with `status` and extra `headers`.
pub fn json_response(
    status: u16,
    body: &Value,
    headers: &[(&str, String)],
) -> Response<Full<Bytes>> {
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (name, value) in headers {
        response = response.header(*name, value);
    }
    response
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

/// What a stand-in answers a request with.
pub type Handler = dyn Fn(Incoming) -> Response<Full<Bytes>> + Send + Sync;

/// A running stand-in server.
pub struct HttpServer {
    address: SocketAddr,
    answered: Arc<(Mutex<usize>, Condvar)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `127.0.0.1:0` and serves every request with `handler` on a thread named `name`.
    pub fn start(
        name: &str,
        handler: impl Fn(Incoming) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> HttpServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the stand-in");
        listener
            .set_nonblocking(true)
            .expect("make the stand-in's socket non-blocking");
        let address = listener.local_addr().expect("stand-in address");
        let answered = Arc::new((Mutex::new(0), Condvar::new()));
        let (shutdown, shutdown_received) = tokio::sync::oneshot::channel();
        let handler: Arc<Handler> = Arc::new(handler);
        let counter = Arc::clone(&answered);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || serve(listener, handler, counter, shutdown_received))
            .expect("start the stand-in's thread");
        HttpServer {
            address,
            answered,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Blocks until at least `count` requests were answered, for at most `timeout`; says
    /// whether they were.
    pub fn wait_for_answers(&self, count: usize, timeout: Duration) -> bool {
        let (answered, changed) = &*self.answered;
        let guard = answered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (guard, _) = changed
            .wait_timeout_while(guard, timeout, |answered| *answered < count)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard >= count
    }
}

impl Drop for HttpServer {
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
    handler: Arc<Handler>,
    answered: Arc<(Mutex<usize>, Condvar)>,
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
            let handler = Arc::clone(&handler);
            let answered = Arc::clone(&answered);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    handle(Arc::clone(&handler), Arc::clone(&answered), request)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn handle(
    handler: Arc<Handler>,
    answered: Arc<(Mutex<usize>, Condvar)>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let incoming = Incoming {
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
    };
    let response = handler(incoming);
    let (count, changed) = &*answered;
    *count
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
    changed.notify_all();
    Ok(response)
}
