//! A panic in one request costs that request only: [`catch_panic`] answers it 500.
//!
//! This works only when the binary unwinds. The workspace's `release` profile aborts on
//! panic (the agents are smaller that way) and Cargo cannot set `panic` per package, so the
//! server is built with its own profile, `release-server` (`panic = "unwind"`);
//! [`warn_if_built_to_abort`] says so at start when it was not.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::state::AppState;

/// Runs the rest of the stack and answers 500 `{"error": ...}` if it panics; the panic's
/// message is already in the log (the panic hook wrote it), this adds the request's route.
pub async fn catch_panic(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match (CatchUnwind {
        inner: Box::pin(next.run(request)),
    })
    .await
    {
        Ok(response) => response,
        Err(()) => {
            tracing::error!(
                "a request to {method} {} panicked: it was answered 500 and the server goes on",
                path.escape_debug()
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({
                    "error": "internal error: the request failed on a bug in the server, whose log has the details"
                })),
            )
                .into_response()
        }
    }
}

/// A future that turns a panic while it is polled into `Err(())`.
struct CatchUnwind<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        // Unwind safety: a panicking future is dropped right after and never polled again,
        // and what it shares (the store, the counters) is behind locks that tolerate poison.
        let inner = self.inner.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(move || inner.poll(context))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

/// Says at start when this binary aborts on panic, so one bad request would stop it.
pub fn warn_if_built_to_abort() {
    if cfg!(panic = "abort") {
        tracing::warn!(
            "this monitor-server was built with panic = \"abort\": a bug hit by one request stops the whole server; \
             build it with `cargo build --profile release-server -p monitor-server`"
        );
    }
}

/// `GET /__test/panic` panics, in debug builds only: the tests' way to show that a panic
/// costs one request. A release build has no such route, whatever its settings.
pub fn panic_test_routes() -> axum::Router<AppState> {
    let routes = axum::Router::new();
    #[cfg(debug_assertions)]
    let routes = routes.route(
        "/__test/panic",
        axum::routing::get(|| async {
            if true {
                panic!("the test route panics on purpose");
            }
        }),
    );
    routes
}
