//! `/healthz` (the database answers) and `/metrics` (Prometheus' text format, for a user's
//! API token or the metrics token unless `--metrics-public`: it names every device).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;

use super::error::ApiError;
use super::state::AppState;
use crate::metrics::{render_devices, render_notifications};
use crate::settings::MetricsAccess;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.fleet.schema_version().await {
        Ok(version) => (StatusCode::OK, format!("ok (schema {version})\n")).into_response(),
        Err(error) => {
            tracing::warn!("health check: {error}");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// Whether the request may read `/metrics`.
async fn may_read_metrics(
    state: &AppState,
    access: &MetricsAccess,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let MetricsAccess::BearerToken(metrics_token) = access else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty());
    let refused = || {
        ApiError::Unauthorized(
            "/metrics needs `Authorization: Bearer <token>`: an API token \
             (`monitor-server token add`) or the server's --metrics-token-file"
                .into(),
        )
    };
    let Some(presented) = presented else {
        return Err(refused());
    };
    if let Some(expected) = metrics_token {
        // Compared as digests, so the time taken says nothing about the token.
        let digest = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        if digest(presented).as_ref() == digest(expected).as_ref() {
            return Ok(());
        }
    }
    match state.fleet.user_for_token(presented).await {
        Ok(_) => Ok(()),
        Err(_) => Err(refused()),
    }
}

async fn metrics(
    State(state): State<AppState>,
    Extension(access): Extension<MetricsAccess>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = may_read_metrics(&state, &access, &headers).await {
        return refusal.into_response();
    }
    let devices = state.fleet.devices(None, false).await;
    let mut text = state.metrics.render();
    if let Ok(devices) = devices {
        text.push_str(&render_devices(&devices));
    }
    if let Ok(counts) = state.fleet.notification_counts().await {
        text.push_str(&render_notifications(counts));
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}
