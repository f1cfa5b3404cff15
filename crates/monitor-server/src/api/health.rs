//! `/healthz` (the database answers) and `/metrics` (Prometheus' text format).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::state::AppState;
use crate::metrics::{render_devices, render_notifications};

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

async fn metrics(State(state): State<AppState>) -> Response {
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
