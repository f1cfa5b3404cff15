//! `POST /api/devices/v1/authentication/auth_requests`: a device asks to join, as Mender
//! devices do, and gets a device JWT once it is accepted.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use super::error::{plain_text, ApiError};
use super::state::AppState;
use crate::device_auth::AuthRequest;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/devices/v1/authentication/auth_requests",
        post(auth_request),
    )
}

async fn auth_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: AuthRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::BadRequest(format!(
            "the body must be {{\"id_data\", \"pubkey\", \"tenant_token\"}}: {error}"
        ))
    })?;
    let signature = headers
        .get("x-men-signature")
        .and_then(|value| value.to_str().ok());
    let token = state.fleet.admit(&request, &body, signature).await?;
    Ok(plain_text(token))
}
