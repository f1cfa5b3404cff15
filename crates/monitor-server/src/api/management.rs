//! The management API: log in, devices with their open alerts, alert history, the
//! latest alert per subject, the checks a device pushed, admission, channels and mute (all
//! of it, per device, and per kind of channel as Mender's email switch).

use std::time::SystemTime;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use monitor_wire::management::{ManagedDevice, StoredAlert as WireAlert};
use monitor_wire::{Level, Timestamp};
use serde::Deserialize;

use super::auth::AuthenticatedUser;
use super::error::{plain_text, with_total, ApiError};
use super::login_guard::ClientAddress;
use super::state::AppState;
use crate::fleet::{parse_status, DeviceHealth};
use crate::notify::ChannelFilter;
use crate::storage::{AlertQuery, Channel, Device, LatestQuery, SilentAfter, StoredAlert};

pub(super) fn routes() -> Router<AppState> {
    let devices = "/api/management/v1/devicemonitor/devices";
    let settings = "/api/management/v1/devicemonitor/settings";
    Router::new()
        .route("/api/management/v1/useradm/auth/login", post(login))
        .route(devices, get(list_devices))
        .route(&format!("{devices}/{{id}}"), get(get_device))
        .route(&format!("{devices}/{{id}}/alerts"), get(device_alerts))
        .route(
            &format!("{devices}/{{id}}/alerts/latest"),
            get(latest_alerts),
        )
        .route(&format!("{devices}/{{id}}/config"), get(device_config))
        .route(&format!("{devices}/{{id}}/status"), put(set_device_status))
        .route(&format!("{devices}/{{id}}/mute"), put(set_device_mute))
        .route(
            &format!("{devices}/{{id}}/silent_after"),
            put(set_device_silent_after),
        )
        .route(
            &format!("{settings}/channels"),
            get(list_channels).post(add_channel),
        )
        .route(
            &format!("{settings}/channels/{{id}}"),
            delete(remove_channel),
        )
        .route(
            &format!("{settings}/channels/{{id}}/filter"),
            put(set_channel_filter),
        )
        .route(&format!("{settings}/mute"), put(set_global_mute))
        .route(
            &format!("{settings}/global/channel/alerts/{{channel}}/status"),
            get(channel_kind_status).put(set_channel_kind_status),
        )
}

/// A JSON body, or 400 with serde's reason.
pub(super) fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|error| ApiError::BadRequest(error.body_text()))
}

/// A query string, or 400 with serde's reason.
fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(value)| value)
        .map_err(|error| ApiError::BadRequest(error.body_text()))
}

/// `POST /api/management/v1/useradm/auth/login` with HTTP Basic credentials: a session token
/// as plain text, as Mender's useradm answers; 429 or 503 with `Retry-After` when the
/// [`LoginGuard`](super::LoginGuard) says to wait.
async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (email, password) = basic_credentials(&headers).ok_or_else(|| {
        ApiError::Unauthorized("log in with HTTP Basic authentication (email and password)".into())
    })?;
    let attempt = match state.login_guard.begin(address, &email).await {
        Ok(attempt) => attempt,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    let fleet = state.fleet.clone();
    let token = attempt
        .check(async move { fleet.log_in(&email, password, "session").await })
        .await?;
    Ok(plain_text(token))
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (email, password) = decoded.split_once(':')?;
    Some((email.to_owned(), password.to_owned()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceListQuery {
    #[serde(default)]
    status: Option<String>,
    /// Only devices with a subject CRITICAL now.
    #[serde(default)]
    has_alerts: Option<bool>,
}

/// `GET /api/management/v1/devicemonitor/devices`: every device with `alert_count`.
async fn list_devices(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    request: Result<Query<DeviceListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let request = query(request)?;
    let status = request.status.as_deref().map(parse_status).transpose()?;
    let devices = state
        .fleet
        .devices(status, request.has_alerts.unwrap_or(false))
        .await?;
    let total = devices.len();
    let devices: Vec<ManagedDevice> = devices.into_iter().map(managed_device).collect();
    Ok(with_total(total as u64, Json(devices)))
}

/// `GET /api/management/v1/devicemonitor/devices/{id}`.
async fn get_device(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Json<ManagedDevice>, ApiError> {
    Ok(Json(managed_device(state.fleet.device(&id).await?)))
}

fn managed_device(device: Device) -> ManagedDevice {
    let health = DeviceHealth::of(&device);
    ManagedDevice {
        id: device.id,
        name: device.name,
        status: device.status.as_str().to_owned(),
        alert_count: health.open_alerts(),
        alerts: health.is_critical(),
        muted: device.muted,
        created_at: Timestamp(device.created_at),
        last_seen_at: device.last_seen_at.map(Timestamp),
        identity_data: device.identity,
        key_sha256: device.key_fingerprint,
        heartbeat_interval_seconds: device.heartbeat_interval.map(|interval| interval.as_secs()),
        silent_after: device.silent_after.as_number(),
        silent_since: device.silent_since.map(Timestamp),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    #[serde(default)]
    page: Option<u64>,
    #[serde(default)]
    per_page: Option<u64>,
    #[serde(default)]
    issued_after: Option<String>,
    #[serde(default)]
    issued_before: Option<String>,
    #[serde(default)]
    sort_ascending: Option<bool>,
}

/// The most alerts one page holds.
const MAX_PER_PAGE: u64 = 500;

/// `per_page`: 20 unless given, 1 to [`MAX_PER_PAGE`].
fn per_page(given: Option<u64>) -> Result<u64, ApiError> {
    let per_page = given.unwrap_or(20);
    if per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(ApiError::BadRequest(format!(
            "per_page: give 1 to {MAX_PER_PAGE}"
        )));
    }
    Ok(per_page)
}

/// `page`: 1 unless given; pages count from 1.
fn page_number(given: Option<u64>) -> Result<u64, ApiError> {
    match given.unwrap_or(1) {
        0 => Err(ApiError::BadRequest("page: pages count from 1".into())),
        page => Ok(page),
    }
}

/// `GET …/devices/{id}/alerts`: the history, newest first unless `sort_ascending`, paged,
/// with the number of matching alerts in `X-Total-Count`.
async fn device_alerts(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
    request: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let request = query(request)?;
    let alert_query = AlertQuery {
        page: page_number(request.page)?,
        per_page: per_page(request.per_page)?,
        issued_after: parse_time("issued_after", request.issued_after.as_deref())?,
        issued_before: parse_time("issued_before", request.issued_before.as_deref())?,
        ascending: request.sort_ascending.unwrap_or(false),
    };
    let device = state.fleet.device(&id).await?;
    let (alerts, total) = state.fleet.alerts(&device, &alert_query).await?;
    let alerts: Vec<WireAlert> = alerts.into_iter().map(wire_alert).collect();
    Ok(with_total(total, Json(alerts)))
}

fn parse_time(field: &str, text: Option<&str>) -> Result<Option<SystemTime>, ApiError> {
    text.map(|text| {
        humantime::parse_rfc3339_weak(text).map_err(|error| {
            ApiError::BadRequest(format!(
                "{field}: `{text}` is not an RFC 3339 time such as 2026-11-21T12:00:00Z ({error})"
            ))
        })
    })
    .transpose()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatestAlertsQuery {
    #[serde(default)]
    page: Option<u64>,
    #[serde(default)]
    per_page: Option<u64>,
    #[serde(default)]
    level_from: Option<String>,
}

/// `level_from` as Mender's API takes it: a severity, the least one shown.
fn parse_level_from(text: &str) -> Result<Level, ApiError> {
    match text {
        "OK" => Ok(Level::Ok),
        // Severities between OK and CRITICAL: this server stores none, so "at least
        // WARNING" is CRITICAL.
        "WARNING" | "CRITICAL" => Ok(Level::Critical),
        other => Err(ApiError::BadRequest(format!(
            "level_from: `{other}` is not a level: use OK, WARNING or CRITICAL"
        ))),
    }
}

/// `GET …/devices/{id}/alerts/latest`: the latest alert of each subject at `level_from` or
/// above (default OK: all), oldest first as Mender answers, paged (`page` from 1,
/// `per_page` 1 to 500, default 20), with the number of subjects in `X-Total-Count`.
async fn latest_alerts(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
    request: Result<Query<LatestAlertsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let request = query(request)?;
    let latest_query = LatestQuery {
        page: page_number(request.page)?,
        per_page: per_page(request.per_page)?,
        level_from: request
            .level_from
            .as_deref()
            .map(parse_level_from)
            .transpose()?
            .unwrap_or(Level::Ok),
    };
    let device = state.fleet.device(&id).await?;
    let (alerts, total) = state
        .fleet
        .latest_alerts_page(&device, &latest_query)
        .await?;
    let alerts: Vec<WireAlert> = alerts.into_iter().map(wire_alert).collect();
    Ok(with_total(total, Json(alerts)))
}

fn wire_alert(stored: StoredAlert) -> WireAlert {
    WireAlert {
        id: stored.id.to_string(),
        device_id: stored.device_id,
        alert: stored.alert,
        received_at: Timestamp(stored.received_at),
    }
}

/// `GET …/devices/{id}/config`: the checks the device pushed last (`[]` before its first push).
async fn device_config(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let device = state.fleet.device(&id).await?;
    let config = state.fleet.checks_json(&device).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        config,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: String,
}

/// `PUT …/devices/{id}/status` with `{"status": "accepted" | "rejected" | "decommissioned"}`.
async fn set_device_status(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
    request: Result<Json<StatusChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let status = parse_status(&body(request)?.status)?;
    let device = state.fleet.device(&id).await?;
    state.fleet.set_device_status(&device, status).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteChange {
    muted: bool,
}

/// `PUT …/devices/{id}/mute` with `{"muted": true | false}`.
async fn set_device_mute(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
    request: Result<Json<MuteChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let change = body(request)?;
    let device = state.fleet.device(&id).await?;
    state.fleet.set_device_muted(&device, change.muted).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilentAfterChange {
    /// Missed heartbeats; 0 never; `null` the server's `--silent-after`.
    silent_after: Option<u32>,
}

/// `PUT …/devices/{id}/silent_after` with `{"silent_after": 5}` (missed heartbeats), `0`
/// (never silent) or `null` (the server's `--silent-after`).
async fn set_device_silent_after(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
    request: Result<Json<SilentAfterChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let change = body(request)?;
    let device = state.fleet.device(&id).await?;
    state
        .fleet
        .set_device_silent_after(&device, SilentAfter::from_number(change.silent_after))
        .await?;
    // The device's deadline may be earlier now.
    state.silence_wake.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/management/v1/devicemonitor/settings/mute` with `{"muted": true | false}`:
/// every device's notifications.
async fn set_global_mute(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    request: Result<Json<MuteChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    state.fleet.set_global_mute(body(request)?.muted).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelKindStatus {
    enabled: bool,
}

/// `GET …/settings/global/channel/alerts/{channel}/status`: `{"enabled": bool}`.
async fn channel_kind_status(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(channel): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let enabled = state.fleet.channel_kind_enabled(&channel).await?;
    Ok(Json(serde_json::json!({ "enabled": enabled })))
}

/// `PUT …/settings/global/channel/alerts/{channel}/status` with `{"enabled": bool}`, as
/// Mender's UI turns email alerts off and on: `enabled: false` mutes every channel of that
/// kind (`email` or `discord`) for every device; the other kind still notifies.
async fn set_channel_kind_status(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(channel): Path<String>,
    request: Result<Json<ChannelKindStatus>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let enabled = body(request)?.enabled;
    state
        .fleet
        .set_channel_kind_enabled(&channel, enabled)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A channel as the API shows it: a Discord webhook URL is a secret and shown redacted.
fn shown_channel(channel: &Channel) -> serde_json::Value {
    serde_json::json!({
        "id": channel.id,
        "kind": channel.kind.as_str(),
        "name": channel.name,
        "target": channel.shown_target(),
        "min_level": channel.filter.min_level().as_str(),
        "checks": channel.filter.checks(),
        "devices": channel.filter.devices(),
    })
}

/// `GET /api/management/v1/devicemonitor/settings/channels`.
async fn list_channels(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let channels = state.fleet.channels().await?;
    Ok(Json(channels.iter().map(shown_channel).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewChannel {
    kind: String,
    name: String,
    /// An email address, or a Discord webhook URL.
    target: String,
    /// `OK` (default: every alert) or `CRITICAL` (CRITICALs only).
    #[serde(default)]
    min_level: Option<String>,
    /// Only these subjects: `<subject type>` or `<subject type> <subject name>`; default all.
    #[serde(default)]
    checks: Vec<String>,
    /// Only these devices: names, `*` and `?` as wildcards; default all.
    #[serde(default)]
    devices: Vec<String>,
}

/// `POST …/settings/channels` with `{"kind": "email" | "discord" | "webhook" | "ntfy" | "slack" | "telegram" | "mqtt", "name", "target"}`
/// and optionally its filter, `"min_level"`, `"checks"` and `"devices"` (see
/// [`ChannelFilter`]).
async fn add_channel(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    request: Result<Json<NewChannel>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let request = body(request)?;
    let filter = ChannelFilter::new(
        request.min_level.as_deref(),
        &request.checks,
        &request.devices,
    )
    .map_err(ApiError::BadRequest)?;
    let channel = state
        .fleet
        .add_channel(&request.kind, &request.name, &request.target, &filter)
        .await?;
    Ok((StatusCode::CREATED, Json(shown_channel(&channel))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelFilterFields {
    #[serde(default)]
    min_level: Option<String>,
    #[serde(default)]
    checks: Vec<String>,
    #[serde(default)]
    devices: Vec<String>,
}

/// `PUT …/settings/channels/{id}/filter` with `{"min_level", "checks", "devices"}` (each
/// optional, left out: every alert); answers the channel as listed.
async fn set_channel_filter(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
    request: Result<Json<ChannelFilterFields>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let request = body(request)?;
    let filter = ChannelFilter::new(
        request.min_level.as_deref(),
        &request.checks,
        &request.devices,
    )
    .map_err(ApiError::BadRequest)?;
    let channel = state.fleet.set_channel_filter(&id, &filter).await?;
    Ok(Json(shown_channel(&channel)))
}

/// `DELETE …/settings/channels/{id}`.
async fn remove_channel(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.fleet.remove_channel(&id).await?;
    // The notifier lets go of what it kept for the channel (an MQTT connection) now.
    state.notifier_wake.notify_one();
    Ok(StatusCode::NO_CONTENT)
}
