//! [`ApiError`]: every failure answered as `{"error": "<what to do>"}`.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::fleet::FleetError;

/// An error answered as `{"error": "..."}`.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    NotFound(String),
    Conflict(String),
    /// 413: the request body is over `max_body_bytes`.
    TooLarge(String),
    TooManyRequests {
        retry_after: Duration,
    },
    Internal(String),
}

/// The one mapping of the fleet's refusals to the API's answers.
impl From<FleetError> for ApiError {
    fn from(error: FleetError) -> Self {
        match error {
            FleetError::NotFound { what, key } => {
                ApiError::NotFound(format!("no {} with the id `{key}`", what.as_str()))
            }
            FleetError::Invalid(message) => ApiError::BadRequest(message),
            FleetError::Conflict(message) => ApiError::Conflict(message),
            FleetError::Unauthorized(message) => ApiError::Unauthorized(message),
            FleetError::Storage(error) => ApiError::Internal(error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            ApiError::Unauthorized(message) => (StatusCode::UNAUTHORIZED, message),
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, message),
            ApiError::Conflict(message) => (StatusCode::CONFLICT, message),
            ApiError::TooLarge(message) => (StatusCode::PAYLOAD_TOO_LARGE, message),
            ApiError::TooManyRequests { retry_after } => {
                let seconds = retry_after.as_secs().max(1);
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(serde_json::json!({
                        "error": format!("too many requests: try again in {seconds} s")
                    })),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                return response;
            }
            ApiError::Internal(message) => {
                tracing::error!("internal error: {message}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error: the server's log has the details".to_owned(),
                )
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

pub(super) fn plain_text(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        text,
    )
        .into_response()
}

/// A response with the number of matching items in `X-Total-Count`.
pub(super) fn with_total(total: u64, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert("x-total-count", HeaderValue::from(total));
    response
}
