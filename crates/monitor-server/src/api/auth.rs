//! Who a request comes from: a device (its token or JWT) or a user (a session or API
//! token), both as `Authorization: Bearer <token>`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::error::ApiError;
use super::state::AppState;
use crate::storage::{Device, User, UserToken};

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

/// The device a device-API request comes from: its token is known and it is accepted. Any
/// such request is word from the device: a silent one is back (see `fleet::silence`).
pub struct AuthenticatedDevice(pub Device);

impl FromRequestParts<AppState> for AuthenticatedDevice {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let device = state.fleet.reporting_device(bearer_token(parts)?).await?;
        state.rate_limiter.admit(&device.id)?;
        if let Some(back) = state
            .fleet
            .heard_from(&device, state.notify_interval)
            .await?
        {
            if back.notifications_queued {
                state.notifier_wake.notify_one();
            }
            // Its deadline counts again.
            state.silence_wake.notify_one();
        }
        Ok(AuthenticatedDevice(device))
    }
}

/// The user a management-API request comes from (a session or API token).
pub struct AuthenticatedUser(pub User);

impl FromRequestParts<AppState> for AuthenticatedUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = state.fleet.user_for_token(bearer_token(parts)?).await?;
        Ok(AuthenticatedUser(user))
    }
}

/// The user a management-API request comes from and the session or token it used (to
/// end it, or to bound what it makes).
pub struct AuthenticatedToken {
    pub user: User,
    pub token: UserToken,
}

impl FromRequestParts<AppState> for AuthenticatedToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (user, token) = state.fleet.user_and_token(bearer_token(parts)?).await?;
        Ok(AuthenticatedToken { user, token })
    }
}
