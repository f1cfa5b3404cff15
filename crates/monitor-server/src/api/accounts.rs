//! Accounts in the management API: logging out, users, their API tokens, and enrollment
//! tokens. Everything made here can be listed and removed here.
//!
//! - `POST /api/management/v1/useradm/auth/logout`: ends the session (or token) used.
//! - `GET|POST /api/management/v1/useradm/settings/tokens`, `DELETE …/tokens/{id}`: the
//!   user's own sessions and API tokens (a new one never outlives the one that made it).
//! - `GET|POST /api/management/v1/useradm/users`, `PUT|DELETE …/users/{id}`: users (`PUT`
//!   sets the password and ends their sessions; `DELETE` removes their tokens too).
//! - `GET|POST /api/management/v1/devicemonitor/settings/enrollment_tokens`,
//!   `DELETE …/{id}`.

use std::time::{Duration, SystemTime};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{AuthenticatedToken, AuthenticatedUser};
use super::error::{plain_text, ApiError};
use super::management::body;
use super::state::AppState;
use crate::fleet::TokenMaker;
use crate::storage::{EnrollmentToken, User, UserToken};

pub(super) fn routes() -> Router<AppState> {
    let tokens = "/api/management/v1/useradm/settings/tokens";
    let users = "/api/management/v1/useradm/users";
    let enrollment = "/api/management/v1/devicemonitor/settings/enrollment_tokens";
    Router::new()
        .route("/api/management/v1/useradm/auth/logout", post(log_out))
        .route(tokens, get(list_tokens).post(add_token))
        .route(&format!("{tokens}/{{id}}"), delete(remove_token))
        .route(users, get(list_users).post(add_user))
        .route(
            &format!("{users}/{{id}}"),
            put(set_password).delete(remove_user),
        )
        .route(
            enrollment,
            get(list_enrollment_tokens).post(add_enrollment_token),
        )
        .route(
            &format!("{enrollment}/{{id}}"),
            delete(remove_enrollment_token),
        )
}

fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

fn shown_token(token: &UserToken) -> Value {
    json!({
        "id": token.id,
        "name": token.name,
        "kind": token.kind.as_str(),
        "created_at": time(token.created_at),
        "expires_at": token.expires_at.map(time),
    })
}

fn shown_user(user: &User) -> Value {
    json!({ "id": user.id, "email": user.email })
}

fn shown_enrollment_token(token: &EnrollmentToken) -> Value {
    json!({
        "id": token.id,
        "name": token.name,
        "created_at": time(token.created_at),
        "expires_at": token.expires_at.map(time),
    })
}

/// `POST …/auth/logout`: the session or token of this request stops working, everywhere.
async fn log_out(
    State(state): State<AppState>,
    AuthenticatedToken { token, .. }: AuthenticatedToken,
) -> Result<StatusCode, ApiError> {
    state.fleet.remove_user_token(&token.id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    /// Seconds until the token expires (1 to ten years); none: as long as the session or
    /// token that makes it.
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `POST …/settings/tokens`: a personal API token, shown once.
async fn add_token(
    State(state): State<AppState>,
    AuthenticatedToken { user, token }: AuthenticatedToken,
    request: Result<Json<NewToken>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = body(request)?;
    let lifetime = request.expires_in.map(Duration::from_secs);
    let made = state
        .fleet
        .add_api_token(&user, &request.name, lifetime, TokenMaker::Token(&token))
        .await?;
    Ok(plain_text(made))
}

/// `GET …/settings/tokens`: the user's own sessions and tokens (never their secrets).
async fn list_tokens(
    State(state): State<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
) -> Result<Json<Vec<Value>>, ApiError> {
    let tokens = state.fleet.user_tokens(Some(&user)).await?;
    Ok(Json(tokens.iter().map(shown_token).collect()))
}

/// `DELETE …/settings/tokens/{id}`: one of the user's own.
async fn remove_token(
    State(state): State<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.fleet.remove_user_token(&id, Some(&user)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_users(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
) -> Result<Json<Vec<Value>>, ApiError> {
    let users = state.fleet.users().await?;
    Ok(Json(users.iter().map(shown_user).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    password: String,
}

async fn add_user(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    request: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request = body(request)?;
    let user = state
        .fleet
        .add_user(&request.email, &request.password)
        .await?;
    Ok((StatusCode::CREATED, Json(shown_user(&user))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

async fn set_password(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
    request: Result<Json<NewPassword>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let request = body(request)?;
    let user = state.fleet.user_by_id(&id).await?;
    state.fleet.set_password(&user, &request.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_user(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = state.fleet.user_by_id(&id).await?;
    state.fleet.remove_user(&user).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_enrollment_tokens(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
) -> Result<Json<Vec<Value>>, ApiError> {
    let tokens = state.fleet.enrollment_tokens().await?;
    Ok(Json(tokens.iter().map(shown_enrollment_token).collect()))
}

/// `POST …/enrollment_tokens` with `{"name", "expires_in"}`: the token as plain text, once.
async fn add_enrollment_token(
    State(state): State<AppState>,
    AuthenticatedToken { token, .. }: AuthenticatedToken,
    request: Result<Json<NewToken>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = body(request)?;
    let lifetime = request.expires_in.map(Duration::from_secs);
    let made = state
        .fleet
        .add_enrollment_token(&request.name, lifetime, TokenMaker::Token(&token))
        .await?;
    Ok(plain_text(made))
}

async fn remove_enrollment_token(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.fleet.remove_enrollment_token(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
