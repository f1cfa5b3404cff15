//! The fleet dashboard: server-rendered HTML under `/ui`, a little script for live updates.
//!
//! Users log in with the management API's accounts; the session is the same kind of token
//! as the API's, kept in an `HttpOnly`, `SameSite=Strict` cookie. Forms post back to the
//! server (no script needed); a post whose `Origin` is another site is refused. Pages:
//! devices (with a fleet chart, live badges), pending devices, a device (latest alert per
//! subject, paged history, pushed checks, its chart, mute), an alert (its log lines with
//! the matching one marked, export as `.log`), and settings (notifications; sessions,
//! tokens, users and enrollment tokens, each revocable). Logging out ends the session in
//! the database.
//!
//! Like the API, the pages parse, call [`Fleet`](crate::fleet::Fleet) and render; a
//! refusal becomes a [`PageError`] in one place (`page.rs`).

mod alerts;
mod chart;
mod devices;
mod page;
mod session;
mod settings;

pub use page::PageError;
pub use session::DashboardUser;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;

use crate::api::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/devices") }))
        .route("/ui", get(|| async { Redirect::to("/ui/devices") }))
        .route("/ui/style.css", get(page::stylesheet))
        .route("/ui/live.js", get(page::live_update_script))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/devices", get(devices::devices_page))
        .route("/ui/devices/rows", get(devices::device_rows))
        .route("/ui/pending", get(devices::pending_page))
        .route("/ui/devices/{id}", get(devices::device_page))
        .route("/ui/devices/{id}/status", post(devices::set_status))
        .route("/ui/devices/{id}/mute", post(devices::set_mute))
        .route("/ui/alerts/{id}", get(alerts::alert_page))
        .route("/ui/alerts/{id}/log", get(alerts::alert_log))
        .route("/ui/settings", get(settings::settings_page))
        .route("/ui/settings/mute", post(settings::set_global_mute))
        .route("/ui/settings/channels", post(settings::add_channel))
        .route(
            "/ui/settings/channels/{id}/remove",
            post(settings::remove_channel),
        )
        .route(
            "/ui/settings/tokens/{id}/remove",
            post(settings::remove_token),
        )
        .route(
            "/ui/settings/users/{id}/remove",
            post(settings::remove_user),
        )
        .route(
            "/ui/settings/enrollment_tokens/{id}/remove",
            post(settings::remove_enrollment_token),
        )
}
