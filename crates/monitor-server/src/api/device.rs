//! The device API: `POST /api/devices/v1/devicemonitor/alert` and `…/config`, as Mender's,
//! what a Mender client also calls, answered so that it runs cleanly, and this server's own
//! `POST /api/devices/v1/monitor/heartbeat` (outside Mender's API, which has none).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;
use monitor_wire::config_push::ConfigCheck;
use monitor_wire::Alert;

use super::auth::AuthenticatedDevice;
use super::error::ApiError;
use super::state::AppState;
use crate::fleet::{FleetError, InventoryAttribute};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/devices/v1/inventory/device/attributes",
            put(put_inventory).patch(put_inventory),
        )
        .route(
            "/api/devices/v1/deployments/device/deployments/next",
            get(next_deployment).post(next_deployment),
        )
        .route(
            "/api/devices/v2/deployments/device/deployments/next",
            post(next_deployment),
        )
        .route("/api/devices/v1/devicemonitor/alert", post(post_alerts))
        .route("/api/devices/v1/devicemonitor/config", post(post_config))
        .route("/api/devices/v1/monitor/heartbeat", post(post_heartbeat))
}

/// What `monitord` in `auth: token` mode posts every `heartbeat_interval`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Heartbeat {
    /// The next heartbeat comes within this many seconds; 0: none will come.
    interval_seconds: u64,
}

/// `POST /api/devices/v1/monitor/heartbeat` with `{"interval_seconds": 60}`: the device is
/// alive (as any device request says) and announces its interval; 0 stops the watch.
async fn post_heartbeat(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let heartbeat: Heartbeat = serde_json::from_slice(&body).map_err(|error| {
        ApiError::BadRequest(format!(
            "the body must be {{\"interval_seconds\": <seconds>}} (0: no more heartbeats): {error}"
        ))
    })?;
    if state
        .fleet
        .record_heartbeat(&device, heartbeat.interval_seconds)
        .await?
    {
        state.silence_wake.notify_one();
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn post_alerts(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let started = Instant::now();
    let alerts: Vec<Alert> = serde_json::from_slice(&body).map_err(|error| {
        state.metrics.alert_requests_rejected.inc();
        ApiError::BadRequest(format!(
            "the body must be a JSON array of alerts ({{name, level, timestamp, subject}}): {error}"
        ))
    })?;
    let recorded = state
        .fleet
        .record_alerts(
            &device,
            &alerts,
            state.limits.max_alerts_per_request,
            state.notify_interval,
        )
        .await
        .inspect_err(|error| {
            if matches!(error, FleetError::Invalid(_)) {
                state.metrics.alert_requests_rejected.inc();
            }
        })?;
    if recorded.notifications_queued {
        state.notifier_wake.notify_one();
    }
    let stored = recorded.stored;
    state.metrics.alerts_received.add(alerts.len() as u64);
    state.metrics.alerts_stored.add(stored.len() as u64);
    state
        .metrics
        .alert_request_seconds
        .observe(started.elapsed());
    tracing::debug!(
        device = %device.name,
        received = alerts.len(),
        new = stored.len(),
        "alerts"
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn post_config(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let checks: Vec<ConfigCheck> = serde_json::from_slice(&body).map_err(|error| {
        ApiError::BadRequest(format!(
            "the body must be a JSON array of checks ({{name, status, type, log|service|dbus}}): {error}"
        ))
    })?;
    state.fleet.record_checks(&device, &checks).await?;
    state.metrics.configs_received.inc();
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT`/`PATCH /api/devices/v1/inventory/device/attributes`: what a Mender client reports
/// about itself (device type, artifact name, …); kept and shown, nothing more.
async fn put_inventory(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let attributes: Vec<InventoryAttribute> = serde_json::from_slice(&body).map_err(|error| {
        ApiError::BadRequest(format!(
            "the body must be a JSON array of {{\"name\", \"value\"}}: {error}"
        ))
    })?;
    state.fleet.record_inventory(&device, &attributes).await?;
    Ok(StatusCode::OK)
}

/// `GET`/`POST /api/devices/v1/deployments/device/deployments/next`: this server deploys
/// nothing, so there is never an update (204), as Mender answers when none is pending.
async fn next_deployment(AuthenticatedDevice(_device): AuthenticatedDevice) -> StatusCode {
    StatusCode::NO_CONTENT
}
