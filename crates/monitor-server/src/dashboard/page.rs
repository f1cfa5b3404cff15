//! What every page shares: the layout, the error page, and small pieces (badges, times).

use std::time::{Duration, SystemTime};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};
use monitor_wire::Level;
use serde::Deserialize;

use crate::fleet::{DeviceHealth, FleetError, NEVER_SEEN};
use crate::storage::{Device, User};

/// A page's failure: to the login page, or an error page.
pub enum PageError {
    LogIn,
    Status(StatusCode, String),
}

/// The one mapping of the fleet's refusals to the dashboard's pages.
impl From<FleetError> for PageError {
    fn from(error: FleetError) -> Self {
        let status = |status, message| PageError::Status(status, message);
        match error {
            FleetError::NotFound { what, key } => status(
                StatusCode::NOT_FOUND,
                format!("no {} with the id {key}", what.as_str()),
            ),
            FleetError::Invalid(message) => status(StatusCode::BAD_REQUEST, message),
            FleetError::Conflict(message) => status(StatusCode::CONFLICT, message),
            FleetError::Unauthorized(_) => PageError::LogIn,
            FleetError::Storage(error) => {
                tracing::error!("dashboard: {error}");
                status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the database failed: the server's log has the details".into(),
                )
            }
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::LogIn => Redirect::to("/ui/login").into_response(),
            PageError::Status(status, message) => (
                status,
                Html(
                    page("Error", None, html! { h1 { "Error" } p.error { (message) } p { a href="/ui/devices" { "Back to the devices" } } })
                        .into_string(),
                ),
            )
                .into_response(),
        }
    }
}

pub(super) async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/css"))],
        include_str!("style.css"),
    )
}

pub(super) async fn live_update_script() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript"),
        )],
        include_str!("live.js"),
    )
}

pub(super) fn page(title: &str, user: Option<&User>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · monitor-server" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                @if let Some(user) = user {
                    nav {
                        a.brand href="/ui/devices" { "monitor" }
                        a href="/ui/devices" { "Devices" }
                        a href="/ui/pending" { "Pending" }
                        a href="/ui/settings" { "Settings" }
                        form.logout method="post" action="/ui/logout" {
                            span.user { (user.email) }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub(super) fn render(title: &str, user: &User, body: Markup) -> Response {
    Html(page(title, Some(user), body).into_string()).into_response()
}

/// "3 min ago", "2 h ago", "5 d ago", or "never".
pub(super) fn ago(time: Option<SystemTime>, now: SystemTime) -> String {
    let Some(time) = time else {
        return NEVER_SEEN.into();
    };
    let seconds = now.duration_since(time).unwrap_or(Duration::ZERO).as_secs();
    match seconds {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

pub(super) fn badge(device: &Device) -> Markup {
    if let Some(since) = device.silent_since {
        // Its other subjects' latest alerts are as old as its silence: the silence says more.
        let open_alerts = DeviceHealth::of(device).open_alerts();
        return html! {
            span.badge.critical.silent data-alert-count=(open_alerts) {
                "● silent since " (humantime::format_rfc3339_seconds(since))
            }
        };
    }
    match DeviceHealth::of(device) {
        DeviceHealth::Critical { open_alerts } => html! {
            span.badge.critical data-alert-count=(open_alerts) { "● " (open_alerts) " open" }
        },
        DeviceHealth::Ok => html! { span.badge.ok data-alert-count="0" { "● OK" } },
    }
}

pub(super) fn level_icon(level: Level) -> Markup {
    match level {
        Level::Critical => html! { span.level.critical title="CRITICAL" { "● CRITICAL" } },
        Level::Ok => html! { span.level.ok title="OK" { "● OK" } },
    }
}

/// A mute button's form: `muted` is `"true"` to mute.
#[derive(Deserialize)]
pub(super) struct MuteForm {
    muted: String,
}

impl MuteForm {
    pub(super) fn muted(&self) -> bool {
        self.muted == "true"
    }
}
