//! Logging in and out, and who a dashboard request comes from.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::page::{page, PageError};
use crate::api::{AppState, ClientAddress};
use crate::fleet::{FleetError, SESSION_LIFETIME};
use crate::storage::User;

const SESSION_COOKIE: &str = "monitor_session";

/// The logged-in user of a dashboard request; a post from another site is refused.
pub struct DashboardUser(pub User);

impl FromRequestParts<AppState> for DashboardUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        if parts.method != axum::http::Method::GET {
            refuse_other_sites(&parts.headers)?;
        }
        let token = session_token(&parts.headers).ok_or(PageError::LogIn)?;
        Ok(DashboardUser(state.fleet.user_for_token(&token).await?))
    }
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// A form post must come from this server's own pages: its `Origin` (sent by browsers on
/// every post) names the host it was sent to.
fn refuse_other_sites(headers: &HeaderMap) -> Result<(), PageError> {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return Ok(()); // not a browser: the session cookie alone decides
    };
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority == host)
    {
        Ok(())
    } else {
        Err(PageError::Status(
            StatusCode::FORBIDDEN,
            "this form was sent from another site".into(),
        ))
    }
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    #[serde(default)]
    failed: Option<u8>,
}

pub(super) async fn login_page(Query(query): Query<LoginQuery>) -> Response {
    let body = html! {
        h1 { "Log in" }
        @if query.failed.is_some() { p.error id="login-error" { "Wrong email or password." } }
        form.login method="post" action="/ui/login" {
            label { "Email" input type="email" name="email" required autocomplete="username"; }
            label { "Password" input type="password" name="password" required autocomplete="current-password"; }
            button type="submit" { "Log in" }
        }
    };
    Html(page("Log in", None, body).into_string()).into_response()
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    email: String,
    password: String,
}

/// Logs in, through the same [`LoginGuard`](crate::api::LoginGuard) as the API: when it
/// says to wait, an error page with the status and `Retry-After`.
pub(super) async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    refuse_other_sites(&headers)?;
    let attempt = match state.login_guard.begin(address, &form.email).await {
        Ok(attempt) => attempt,
        Err(refusal) => {
            let page = PageError::Status(refusal.status(), refusal.message()).into_response();
            return Ok(refusal.with_retry_after(page));
        }
    };
    let fleet = state.fleet.clone();
    let checked = attempt
        .check(async move { fleet.log_in(&form.email, form.password, "dashboard").await })
        .await;
    let token = match checked {
        Ok(token) => token,
        Err(FleetError::Unauthorized(_)) => {
            return Ok(Redirect::to("/ui/login?failed=1").into_response());
        }
        Err(error) => return Err(error.into()),
    };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_LIFETIME.as_secs()
    );
    let mut response = Redirect::to("/ui/devices").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("a token is a valid header value"),
    );
    Ok(response)
}

/// Ends the session in the database (the old cookie no longer works anywhere), then
/// forgets the cookie.
pub(super) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    refuse_other_sites(&headers)?;
    if let Some(token) = session_token(&headers) {
        state.fleet.log_out(&token).await?;
    }
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("monitor_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

/// The session token of a dashboard request, if it has one (to mark it in lists).
pub(super) fn current_session(headers: &HeaderMap) -> Option<String> {
    session_token(headers)
}
