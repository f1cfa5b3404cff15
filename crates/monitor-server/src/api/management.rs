//! The management API: log in, tokens, devices with their open alerts, alert history, the
//! checks a device pushed, admission and mute.

use std::time::{Duration, SystemTime};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use monitor_wire::management::{ManagedDevice, StoredAlert as WireAlert};
use monitor_wire::Timestamp;
use serde::Deserialize;

use super::{plain_text, ApiError, AppState, AuthenticatedUser};
use crate::credentials::{new_token, token_hash, verify_password, TokenKind};
use crate::storage::{
    AlertQuery, Channel, ChannelKind, Device, DeviceDocument, DeviceStatus, StorageError, Store,
    StoredAlert,
};

/// How long a login lasts.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// The global mute setting's key.
pub const GLOBAL_MUTE: &str = "notifications.muted";

/// `POST /api/management/v1/useradm/auth/login` with HTTP Basic credentials: a session token
/// as plain text, as Mender's useradm answers.
pub(super) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let refused = || ApiError::Unauthorized("wrong email or password".into());
    let (email, password) = basic_credentials(&headers).ok_or_else(|| {
        ApiError::Unauthorized("log in with HTTP Basic authentication (email and password)".into())
    })?;
    let token = open_session(&state.store, &email, password, "session")
        .await?
        .ok_or_else(refused)?;
    Ok(plain_text(token))
}

/// Checks an email and password and, when they match, makes a session token (named
/// `label`, lasting [`SESSION_LIFETIME`]); `None` when they do not. Shared by the API's
/// login and the dashboard's.
pub(crate) async fn open_session(
    store: &Store,
    email: &str,
    password: String,
    label: &str,
) -> Result<Option<String>, StorageError> {
    let Some(user) = store.user_by_email(email.trim()).await? else {
        return Ok(None);
    };
    // Argon2 is slow on purpose; keep it off the async workers.
    let stored = user.password_hash.clone();
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .unwrap_or(false);
    if !matches {
        return Ok(None);
    }
    // Logins are rare: a good moment to forget sessions that ran out.
    store.remove_expired_tokens(SystemTime::now()).await?;
    let token = new_token(TokenKind::User);
    store
        .add_api_token(
            &user.id,
            label,
            &token_hash(&token),
            Some(SystemTime::now() + SESSION_LIFETIME),
        )
        .await?;
    Ok(Some(token))
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
pub(super) struct NewToken {
    name: String,
    /// Seconds until the token expires; none: it does not expire.
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `POST /api/management/v1/useradm/settings/tokens`: a personal API token, shown once.
pub(super) async fn add_token(
    State(state): State<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|error| ApiError::BadRequest(error.body_text()))?;
    if request.name.trim().is_empty() {
        return Err(ApiError::BadRequest("name: give the token a name".into()));
    }
    let token = new_token(TokenKind::User);
    let expires_at = request
        .expires_in
        .map(|seconds| SystemTime::now() + Duration::from_secs(seconds));
    state
        .store
        .add_api_token(&user.id, &request.name, &token_hash(&token), expires_at)
        .await?;
    Ok(plain_text(token))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceListQuery {
    #[serde(default)]
    status: Option<String>,
    /// Only devices with a subject CRITICAL now.
    #[serde(default)]
    has_alerts: Option<bool>,
}

/// `GET /api/management/v1/devicemonitor/devices`: every device with `alert_count`.
pub(super) async fn list_devices(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    query: Result<Query<DeviceListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|error| ApiError::BadRequest(error.body_text()))?;
    let status = query
        .status
        .map(|status| status.parse::<DeviceStatus>())
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let devices = state
        .store
        .devices(status, query.has_alerts.unwrap_or(false))
        .await?;
    let total = devices.len();
    let devices: Vec<ManagedDevice> = devices.into_iter().map(managed_device).collect();
    Ok(with_total(total as u64, Json(devices)))
}

/// `GET /api/management/v1/devicemonitor/devices/{id}`.
pub(super) async fn get_device(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Json<ManagedDevice>, ApiError> {
    Ok(Json(managed_device(known_device(&state, &id).await?)))
}

async fn known_device(state: &AppState, id: &str) -> Result<Device, ApiError> {
    state
        .store
        .device(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device with the id `{id}`")))
}

fn managed_device(device: Device) -> ManagedDevice {
    ManagedDevice {
        id: device.id,
        name: device.name,
        status: device.status.as_str().to_owned(),
        alert_count: device.alert_count,
        alerts: device.alert_count > 0,
        muted: device.muted,
        created_at: Timestamp(device.created_at),
        last_seen_at: device.last_seen_at.map(Timestamp),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertsQuery {
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

/// `GET …/devices/{id}/alerts`: the history, newest first unless `sort_ascending`, paged,
/// with the number of matching alerts in `X-Total-Count`.
pub(super) async fn device_alerts(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
    query: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|error| ApiError::BadRequest(error.body_text()))?;
    let per_page = query.per_page.unwrap_or(20);
    if per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(ApiError::BadRequest(format!(
            "per_page: give 1 to {MAX_PER_PAGE}"
        )));
    }
    let page = query.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::BadRequest("page: pages count from 1".into()));
    }
    let query = AlertQuery {
        page,
        per_page,
        issued_after: parse_time("issued_after", query.issued_after.as_deref())?,
        issued_before: parse_time("issued_before", query.issued_before.as_deref())?,
        ascending: query.sort_ascending.unwrap_or(false),
    };
    let device = known_device(&state, &id).await?;
    let (alerts, total) = state.store.alerts(&device.id, &query).await?;
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

/// `GET …/devices/{id}/alerts/latest`: the latest alert of each subject.
pub(super) async fn latest_alerts(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<WireAlert>>, ApiError> {
    let device = known_device(&state, &id).await?;
    let alerts = state.store.latest_alerts(&device.id).await?;
    Ok(Json(alerts.into_iter().map(wire_alert).collect()))
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
pub(super) async fn device_config(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let device = known_device(&state, &id).await?;
    let config = state
        .store
        .device_document(&device.id, DeviceDocument::Config)
        .await?
        .unwrap_or_else(|| "[]".to_owned());
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
pub(super) struct StatusChange {
    status: String,
}

/// `PUT …/devices/{id}/status` with `{"status": "accepted" | "rejected" | "decommissioned"}`.
pub(super) async fn set_device_status(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
    body: Result<Json<StatusChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(change) = body.map_err(|error| ApiError::BadRequest(error.body_text()))?;
    let status: DeviceStatus = change.status.parse().map_err(ApiError::BadRequest)?;
    if status == DeviceStatus::Pending {
        return Err(ApiError::BadRequest(
            "status: a device can be accepted, rejected or decommissioned".into(),
        ));
    }
    let device = known_device(&state, &id).await?;
    if device.status == DeviceStatus::Decommissioned {
        return Err(ApiError::Conflict(
            "the device is decommissioned: add it again as a new device".into(),
        ));
    }
    state.store.set_device_status(&device.id, status).await?;
    tracing::info!(device = %device.name, status = status.as_str(), "device status");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MuteChange {
    muted: bool,
}

/// `PUT …/devices/{id}/mute` with `{"muted": true | false}`.
pub(super) async fn set_device_mute(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
    body: Result<Json<MuteChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(change) = body.map_err(|error| ApiError::BadRequest(error.body_text()))?;
    let device = known_device(&state, &id).await?;
    state
        .store
        .set_device_muted(&device.id, change.muted)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/management/v1/devicemonitor/settings/mute` with `{"muted": true | false}`:
/// every device's notifications.
pub(super) async fn set_global_mute(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    body: Result<Json<MuteChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(change) = body.map_err(|error| ApiError::BadRequest(error.body_text()))?;
    state
        .store
        .set_setting(GLOBAL_MUTE, if change.muted { "true" } else { "false" })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn with_total(total: u64, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert("x-total-count", HeaderValue::from(total));
    response
}

/// A channel as the API shows it: a Discord webhook URL is a secret and shown redacted.
fn shown_channel(channel: &Channel) -> serde_json::Value {
    serde_json::json!({
        "id": channel.id,
        "kind": channel.kind.as_str(),
        "name": channel.name,
        "target": channel.shown_target(),
    })
}

/// `GET /api/management/v1/devicemonitor/settings/channels`.
pub(super) async fn list_channels(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let channels = state.store.channels().await?;
    Ok(Json(channels.iter().map(shown_channel).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewChannel {
    kind: String,
    name: String,
    /// An email address, or a Discord webhook URL.
    target: String,
}

/// Checks a channel's target: an email address lettre can send to, or a webhook URL.
pub fn validate_channel(kind: ChannelKind, target: &str) -> Result<(), String> {
    match kind {
        ChannelKind::Email => target
            .parse::<lettre::Address>()
            .map(|_| ())
            .map_err(|error| format!("target: `{target}` is not an email address ({error})")),
        ChannelKind::Discord => monitor_discord::WebhookUrl::parse(target)
            .map(|_| ())
            .map_err(|error| format!("target: {error}")),
    }
}

/// `POST …/settings/channels` with `{"kind": "email" | "discord", "name", "target"}`.
pub(super) async fn add_channel(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    body: Result<Json<NewChannel>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(request) = body.map_err(|error| ApiError::BadRequest(error.body_text()))?;
    let kind: ChannelKind = request.kind.parse().map_err(ApiError::BadRequest)?;
    validate_channel(kind, request.target.trim()).map_err(ApiError::BadRequest)?;
    if request.name.trim().is_empty() {
        return Err(ApiError::BadRequest("name: give the channel a name".into()));
    }
    let channel = state
        .store
        .add_channel(kind, request.name.trim(), request.target.trim())
        .await?;
    Ok((StatusCode::CREATED, Json(shown_channel(&channel))))
}

/// `DELETE …/settings/channels/{id}`.
pub(super) async fn remove_channel(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.remove_channel(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no channel with the id `{id}`")))
    }
}
