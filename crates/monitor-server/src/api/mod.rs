//! The HTTP API: the device API Mender's agents speak, the management API, `/healthz` and
//! `/metrics`.
//!
//! Every handler is stateless between requests but for [`RateLimiter`] (a per-replica
//! guard against a device posting in a loop; losing it on restart loses nothing) and the
//! [`Metrics`] counters. Errors answer `{"error": "<what to do>"}` as Mender's services do.

mod admission;
mod device;
mod management;

pub(crate) use management::{open_session, SESSION_LIFETIME};
pub use management::{validate_channel, GLOBAL_MUTE};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use tokio::sync::Notify;

use crate::credentials::token_hash;
use crate::jwt::JwtKeys;
use crate::metrics::Metrics;
use crate::storage::{Device, DeviceStatus, StorageError, Store, User};

/// Limits that protect the server from one device or one request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest request body, in bytes (larger ones get 413).
    pub max_body_bytes: usize,
    /// The most alerts one request may carry.
    pub max_alerts_per_request: usize,
    /// Requests a device may make per minute, on average, before getting 429.
    pub device_requests_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_alerts_per_request: 500,
            device_requests_per_minute: 600,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    /// Signs and checks device JWTs (the key is shared through the database).
    pub jwt: Arc<JwtKeys>,
    /// State changes of one device go out at most once per interval and channel.
    pub notify_interval: Duration,
    /// Wakes this replica's notifier when alerts were queued for notification.
    pub notifier_wake: Arc<Notify>,
    rate_limiter: Arc<RateLimiter>,
}

impl AppState {
    /// The state for a server on `store`; reads (or makes) the JWT key every replica shares.
    pub async fn new(
        store: Store,
        limits: Limits,
        notify_interval: Duration,
        notifier_wake: Arc<Notify>,
    ) -> Result<Self, StorageError> {
        let secret = store.shared_secret(DEVICE_JWT_SECRET).await?;
        let rate_limiter = Arc::new(RateLimiter::new(limits.device_requests_per_minute));
        Ok(AppState {
            store,
            metrics: Arc::new(Metrics::default()),
            limits: Arc::new(limits),
            jwt: Arc::new(JwtKeys::new(&secret)),
            notify_interval,
            notifier_wake,
            rate_limiter,
        })
    }
}

/// The `settings` key of the device-JWT signing key.
const DEVICE_JWT_SECRET: &str = "device_jwt.hs256_key";

/// The whole API.
pub fn router(state: AppState) -> Router {
    let devices = "/api/management/v1/devicemonitor/devices";
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/api/devices/v1/authentication/auth_requests",
            post(admission::auth_request),
        )
        // What a Mender client also calls, answered so that it runs cleanly.
        .route(
            "/api/devices/v1/inventory/device/attributes",
            put(device::put_inventory).patch(device::put_inventory),
        )
        .route(
            "/api/devices/v1/deployments/device/deployments/next",
            get(device::next_deployment).post(device::next_deployment),
        )
        .route(
            "/api/devices/v2/deployments/device/deployments/next",
            post(device::next_deployment),
        )
        .route(
            "/api/devices/v1/devicemonitor/alert",
            post(device::post_alerts),
        )
        .route(
            "/api/devices/v1/devicemonitor/config",
            post(device::post_config),
        )
        .route(
            "/api/management/v1/useradm/auth/login",
            post(management::login),
        )
        .route(
            "/api/management/v1/useradm/settings/tokens",
            post(management::add_token),
        )
        .route(devices, get(management::list_devices))
        .route(&format!("{devices}/{{id}}"), get(management::get_device))
        .route(
            &format!("{devices}/{{id}}/alerts"),
            get(management::device_alerts),
        )
        .route(
            &format!("{devices}/{{id}}/alerts/latest"),
            get(management::latest_alerts),
        )
        .route(
            &format!("{devices}/{{id}}/config"),
            get(management::device_config),
        )
        .route(
            &format!("{devices}/{{id}}/status"),
            put(management::set_device_status),
        )
        .route(
            &format!("{devices}/{{id}}/mute"),
            put(management::set_device_mute),
        )
        .route(
            "/api/management/v1/devicemonitor/settings/channels",
            get(management::list_channels).post(management::add_channel),
        )
        .route(
            "/api/management/v1/devicemonitor/settings/channels/{id}",
            delete(management::remove_channel),
        )
        .route(
            "/api/management/v1/devicemonitor/settings/mute",
            put(management::set_global_mute),
        )
        .merge(crate::dashboard::routes())
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.schema_version().await {
        Ok(version) => (StatusCode::OK, format!("ok (schema {version})\n")).into_response(),
        Err(error) => {
            tracing::warn!("health check: {error}");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let devices = state.store.devices(None, false).await;
    let mut text = state.metrics.render();
    if let Ok(devices) = devices {
        text.push_str(&crate::metrics::render_devices(&devices));
    }
    if let Ok(counts) = state.store.notification_counts().await {
        text.push_str(&crate::metrics::render_notifications(counts));
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

/// An error answered as `{"error": "..."}`.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    NotFound(String),
    Conflict(String),
    TooManyRequests { retry_after: Duration },
    Internal(String),
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Conflict(message) => ApiError::Conflict(message),
            other => ApiError::Internal(other.to_string()),
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

fn plain_text(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        text,
    )
        .into_response()
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized("missing `Authorization: Bearer <token>`".into()))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header is not `Bearer <token>`".into())
        })
}

/// The device a device-API request comes from: its token is known and it is accepted.
pub struct AuthenticatedDevice(pub Device);

impl FromRequestParts<AppState> for AuthenticatedDevice {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let device = if token.matches('.').count() == 2 {
            // A device JWT from auth_requests.
            let device_id = state
                .jwt
                .verify(token, SystemTime::now())
                .map_err(|error| ApiError::Unauthorized(error.to_string()))?;
            state.store.device(&device_id).await?
        } else {
            state.store.device_by_token_hash(&token_hash(token)).await?
        }
        .ok_or_else(|| ApiError::Unauthorized("unknown device token".into()))?;
        if device.status != DeviceStatus::Accepted {
            return Err(ApiError::Unauthorized(format!(
                "the device is {}",
                device.status.as_str()
            )));
        }
        state.rate_limiter.admit(&device.id)?;
        Ok(AuthenticatedDevice(device))
    }
}

/// The user a management-API request comes from (a session or API token).
pub struct AuthenticatedUser(pub User);

impl FromRequestParts<AppState> for AuthenticatedUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let user = state
            .store
            .user_by_token_hash(&token_hash(token), SystemTime::now())
            .await?
            .ok_or_else(|| {
                ApiError::Unauthorized("unknown or expired token: log in again".into())
            })?;
        Ok(AuthenticatedUser(user))
    }
}

/// A token bucket per device: `per_minute` requests a minute on average, bursts up to the
/// same number. Per replica: it guards against a runaway device, not for billing.
struct RateLimiter {
    per_second: f64,
    capacity: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    fn new(per_minute: u32) -> Self {
        let capacity = f64::from(per_minute.max(1));
        RateLimiter {
            per_second: capacity / 60.0,
            capacity,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn admit(&self, device_id: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Forget full buckets now and then, so the map holds only devices that are busy.
        if buckets.len() > 10_000 {
            let (per_second, capacity) = (self.per_second, self.capacity);
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_second
                    < capacity
            });
        }
        let bucket = buckets.entry(device_id.to_owned()).or_insert(Bucket {
            tokens: self.capacity,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(ApiError::TooManyRequests {
                retry_after: Duration::from_secs_f64(wait.ceil()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limiter_allows_a_burst_then_says_when_to_come_back() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            limiter.admit("a").unwrap();
        }
        match limiter.admit("a") {
            Err(ApiError::TooManyRequests { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(20))
            }
            other => panic!("{other:?}"),
        }
        limiter.admit("b").expect("other devices are not affected");
    }
}
