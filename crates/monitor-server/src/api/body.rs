//! Every request's body is read before the request is routed.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Reads a request's whole body (within the body limit, `max_body_bytes`) before it is
/// routed. hyper keeps a connection open for the next request only if the body was read by
/// the time the response went out: when a route answers without reading it (a 401 from the
/// token check, a route that ignores its body) and the body arrives a moment later, hyper
/// closes the connection without saying so, and a client that reuses it (Go's, in
/// mender-client) fails its next request with a broken pipe.
pub async fn read_whole_body(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(error) if is_over_limit(&error) => ApiError::TooLarge(format!(
            "the request body is over the server's limit of {limit} bytes (max_body_bytes): send less at a time"
        ))
        .into_response(),
        Err(error) => {
            ApiError::BadRequest(format!("cannot read the request body: {error}")).into_response()
        }
    }
}

fn is_over_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}
