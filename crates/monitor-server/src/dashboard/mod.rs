//! The fleet dashboard: server-rendered HTML under `/ui`, a little script for live updates.
//!
//! Users log in with the management API's accounts; the session is the same kind of token
//! as the API's, kept in an `HttpOnly`, `SameSite=Strict` cookie. Forms post back to the
//! server (no script needed); a post whose `Origin` is another site is refused. Pages:
//! devices (with a fleet chart, live badges), pending devices, a device (latest alert per
//! subject, paged history, pushed checks, its chart, mute), an alert (its log lines with
//! the matching one marked, export as `.log`), and notification settings.

mod chart;

use std::time::{Duration, SystemTime};

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use monitor_wire::config_push::ConfigCheck;
use monitor_wire::{Level, Timestamp};
use serde::Deserialize;

use crate::api::{open_session, validate_channel, AppState, GLOBAL_MUTE, SESSION_LIFETIME};
use crate::credentials::token_hash;
use crate::storage::{
    AlertQuery, ChannelKind, Device, DeviceDocument, DeviceStatus, StorageError, StoredAlert, User,
};

const SESSION_COOKIE: &str = "monitor_session";
const HISTORY_PER_PAGE: u64 = 20;
/// How often the devices page refreshes its table.
const LIVE_UPDATE_MILLIS: u64 = 2000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/devices") }))
        .route("/ui", get(|| async { Redirect::to("/ui/devices") }))
        .route("/ui/style.css", get(stylesheet))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/devices", get(devices_page))
        .route("/ui/devices/rows", get(device_rows))
        .route("/ui/pending", get(pending_page))
        .route("/ui/devices/{id}", get(device_page))
        .route("/ui/devices/{id}/status", post(set_status))
        .route("/ui/devices/{id}/mute", post(set_mute))
        .route("/ui/alerts/{id}", get(alert_page))
        .route("/ui/alerts/{id}/log", get(alert_log))
        .route("/ui/settings", get(settings_page))
        .route("/ui/settings/mute", post(set_global_mute))
        .route("/ui/settings/channels", post(add_channel))
        .route("/ui/settings/channels/{id}/remove", post(remove_channel))
}

/// A page's failure: to the login page, or an error page.
pub enum PageError {
    LogIn,
    Status(StatusCode, String),
}

impl From<StorageError> for PageError {
    fn from(error: StorageError) -> Self {
        tracing::error!("dashboard: {error}");
        PageError::Status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the database failed: the server's log has the details".into(),
        )
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

/// The logged-in user of a dashboard request; a post from another site is refused.
pub struct DashboardUser(pub User);

impl FromRequestParts<AppState> for DashboardUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        if parts.method != axum::http::Method::GET && !same_origin(&parts.headers) {
            return Err(PageError::Status(
                StatusCode::FORBIDDEN,
                "this form was sent from another site".into(),
            ));
        }
        let token = session_token(&parts.headers).ok_or(PageError::LogIn)?;
        let user = state
            .store
            .user_by_token_hash(&token_hash(&token), SystemTime::now())
            .await?
            .ok_or(PageError::LogIn)?;
        Ok(DashboardUser(user))
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
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return true; // not a browser: the session cookie alone decides
    };
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority == host)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/css"))],
        include_str!("style.css"),
    )
}

fn page(title: &str, user: Option<&User>, body: Markup) -> Markup {
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

fn render(title: &str, user: &User, body: Markup) -> Response {
    Html(page(title, Some(user), body).into_string()).into_response()
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    failed: Option<u8>,
}

async fn login_page(Query(query): Query<LoginQuery>) -> Response {
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
struct LoginForm {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    if !same_origin(&headers) {
        return Err(PageError::Status(
            StatusCode::FORBIDDEN,
            "this form was sent from another site".into(),
        ));
    }
    let Some(token) = open_session(&state.store, &form.email, form.password, "dashboard").await?
    else {
        return Ok(Redirect::to("/ui/login?failed=1").into_response());
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

async fn logout() -> Response {
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("monitor_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// "3 min ago", "2 h ago", "5 d ago", or "never".
fn ago(time: Option<SystemTime>, now: SystemTime) -> String {
    let Some(time) = time else {
        return "never".into();
    };
    let seconds = now.duration_since(time).unwrap_or(Duration::ZERO).as_secs();
    match seconds {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

fn badge(device: &Device) -> Markup {
    html! {
        @if device.alert_count > 0 {
            span.badge.critical data-alert-count=(device.alert_count) { "● " (device.alert_count) " open" }
        } @else {
            span.badge.ok data-alert-count="0" { "● OK" }
        }
    }
}

fn level_icon(level: Level) -> Markup {
    match level {
        Level::Critical => html! { span.level.critical title="CRITICAL" { "● CRITICAL" } },
        Level::Ok => html! { span.level.ok title="OK" { "● OK" } },
    }
}

#[derive(Deserialize)]
struct DevicesQuery {
    #[serde(default)]
    open: Option<u8>,
}

fn rows(devices: &[Device], now: SystemTime) -> Markup {
    html! {
        @for device in devices {
            tr class={ "device " (if device.alert_count > 0 { "critical" } else { "ok" }) } data-name=(device.name) {
                td { a href={ "/ui/devices/" (device.id) } { (device.name) } }
                td { (badge(device)) }
                td.seen { (ago(device.last_seen_at, now)) }
                td.muted { @if device.muted { "muted" } }
            }
        }
        @if devices.is_empty() { tr { td colspan="4" { "No devices." } } }
    }
}

async fn accepted_devices(state: &AppState, open: bool) -> Result<Vec<Device>, StorageError> {
    state
        .store
        .devices(Some(DeviceStatus::Accepted), open)
        .await
}

async fn devices_page(
    State(state): State<AppState>,
    DashboardUser(user): DashboardUser,
    Query(query): Query<DevicesQuery>,
) -> Result<Response, PageError> {
    let open = query.open.is_some();
    let devices = accepted_devices(&state, open).await?;
    let now = SystemTime::now();
    let counts = state
        .store
        .alerts_per_hour(None, now - Duration::from_secs(24 * 3600))
        .await?;
    let pending = state
        .store
        .devices(Some(DeviceStatus::Pending), false)
        .await?
        .len();
    let rows_url = if open {
        "/ui/devices/rows?open=1"
    } else {
        "/ui/devices/rows"
    };
    let body = html! {
        h1 { "Devices" }
        @if pending > 0 { p.notice { a href="/ui/pending" { (pending) " device(s) waiting to be accepted" } } }
        p.filters {
            a class=(if open { "" } else { "active" }) href="/ui/devices" { "All" }
            " · "
            a id="filter-open" class=(if open { "active" } else { "" }) href="/ui/devices?open=1" { "With open alerts" }
        }
        div.table-wrap {
            table id="devices" {
                thead { tr { th { "Device" } th { "Alerts" } th { "Last seen" } th {} } }
                tbody id="device-rows" data-source=(rows_url) { (rows(&devices, now)) }
            }
        }
        h2 { "Alerts per hour, whole fleet (UTC)" }
        (PreEscaped(chart::alerts_per_hour(&counts, now)))
        script { (PreEscaped(format!(
            "setInterval(async()=>{{const b=document.getElementById('device-rows');\
             try{{const r=await fetch(b.dataset.source,{{credentials:'same-origin'}});\
             if(r.ok){{b.innerHTML=await r.text();}}}}catch(e){{}}}},{LIVE_UPDATE_MILLIS});"
        ))) }
    };
    Ok(render("Devices", &user, body))
}

/// The devices table's rows alone, for the page's live update.
async fn device_rows(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Query(query): Query<DevicesQuery>,
) -> Result<Response, PageError> {
    let devices = accepted_devices(&state, query.open.is_some()).await?;
    Ok(Html(rows(&devices, SystemTime::now()).into_string()).into_response())
}

async fn pending_page(
    State(state): State<AppState>,
    DashboardUser(user): DashboardUser,
) -> Result<Response, PageError> {
    let pending = state
        .store
        .devices(Some(DeviceStatus::Pending), false)
        .await?;
    let rejected = state
        .store
        .devices(Some(DeviceStatus::Rejected), false)
        .await?;
    let now = SystemTime::now();
    let body = html! {
        h1 { "Pending devices" }
        @if pending.is_empty() { p { "No device is waiting." } }
        @else {
            div.table-wrap { table id="pending" {
                thead { tr { th { "Device" } th { "Asked" } th {} } }
                tbody { @for device in &pending {
                    tr data-name=(device.name) {
                        td { (device.name) }
                        td { (ago(Some(device.created_at), now)) }
                        td.actions {
                            (status_button(&device.id, "accepted", "Accept", "accept"))
                            (status_button(&device.id, "rejected", "Reject", "reject"))
                        }
                    }
                } }
            } }
        }
        @if !rejected.is_empty() {
            h2 { "Rejected" }
            ul { @for device in &rejected {
                li { (device.name) " " (status_button(&device.id, "accepted", "Accept", "accept")) }
            } }
        }
    };
    Ok(render("Pending devices", &user, body))
}

fn status_button(id: &str, status: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/ui/devices/" (id) "/status" } {
            input type="hidden" name="status" value=(status);
            button class=(class) type="submit" { (label) }
        }
    }
}

#[derive(Deserialize)]
struct StatusForm {
    status: String,
}

async fn set_status(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Path(id): Path<String>,
    Form(form): Form<StatusForm>,
) -> Result<Response, PageError> {
    let status: DeviceStatus = form
        .status
        .parse()
        .map_err(|error| PageError::Status(StatusCode::BAD_REQUEST, error))?;
    let device = known_device(&state, &id).await?;
    if device.status == DeviceStatus::Decommissioned || status == DeviceStatus::Pending {
        return Err(PageError::Status(
            StatusCode::CONFLICT,
            format!("{} cannot become {}", device.name, status.as_str()),
        ));
    }
    state.store.set_device_status(&device.id, status).await?;
    tracing::info!(device = %device.name, status = status.as_str(), "device status (dashboard)");
    Ok(Redirect::to(if status == DeviceStatus::Accepted {
        "/ui/devices"
    } else {
        "/ui/pending"
    })
    .into_response())
}

#[derive(Deserialize)]
struct MuteForm {
    muted: String,
}

async fn set_mute(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Path(id): Path<String>,
    Form(form): Form<MuteForm>,
) -> Result<Response, PageError> {
    let device = known_device(&state, &id).await?;
    state
        .store
        .set_device_muted(&device.id, form.muted == "true")
        .await?;
    Ok(Redirect::to(&format!("/ui/devices/{}", device.id)).into_response())
}

async fn known_device(state: &AppState, id: &str) -> Result<Device, PageError> {
    state.store.device(id).await?.ok_or_else(|| {
        PageError::Status(StatusCode::NOT_FOUND, format!("no device with the id {id}"))
    })
}

#[derive(Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    page: Option<u64>,
}

fn alert_row(alert: &StoredAlert) -> Markup {
    html! {
        tr.alert data-level=(alert.alert.level) {
            td { (level_icon(alert.alert.level)) }
            td { a href={ "/ui/alerts/" (alert.id) } { (alert.alert.name) } }
            td { (alert.alert.subject.kind) " " (alert.alert.subject.name) }
            td.time { (humantime::format_rfc3339_seconds(alert.alert.timestamp.0)) }
        }
    }
}

async fn device_page(
    State(state): State<AppState>,
    DashboardUser(user): DashboardUser,
    Path(id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, PageError> {
    let device = known_device(&state, &id).await?;
    let now = SystemTime::now();
    let latest = state.store.latest_alerts(&device.id).await?;
    let page_number = query.page.unwrap_or(1).max(1);
    let (history, total) = state
        .store
        .alerts(
            &device.id,
            &AlertQuery {
                page: page_number,
                per_page: HISTORY_PER_PAGE,
                issued_after: None,
                issued_before: None,
                ascending: false,
            },
        )
        .await?;
    let pages = total.div_ceil(HISTORY_PER_PAGE).max(1);
    let checks: Vec<ConfigCheck> = state
        .store
        .device_document(&device.id, DeviceDocument::Config)
        .await?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    let counts = state
        .store
        .alerts_per_hour(Some(&device.id), now - Duration::from_secs(24 * 3600))
        .await?;
    let inventory: Vec<(String, String)> = state
        .store
        .device_document(&device.id, DeviceDocument::Inventory)
        .await?
        .and_then(|json| serde_json::from_str::<Vec<serde_json::Value>>(&json).ok())
        .unwrap_or_default()
        .iter()
        .map(|attribute| {
            let value = &attribute["value"];
            (
                attribute["name"].as_str().unwrap_or_default().to_owned(),
                value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned),
            )
        })
        .collect();
    let body = html! {
        h1 { (device.name) " " (badge(&device)) }
        p.meta {
            "Status " strong { (device.status.as_str()) } " · last seen " (ago(device.last_seen_at, now))
            " · id " code { (device.id) }
        }
        form.inline method="post" action={ "/ui/devices/" (device.id) "/mute" } {
            input type="hidden" name="muted" value=(if device.muted { "false" } else { "true" });
            button type="submit" { @if device.muted { "Unmute notifications" } @else { "Mute notifications" } }
        }
        h2 { "Latest alert per subject" }
        @if latest.is_empty() { p { "No alert yet." } }
        @else { div.table-wrap { table id="latest" { tbody { @for alert in &latest { (alert_row(alert)) } } } } }
        h2 { "History" }
        div.table-wrap { table id="history" { tbody { @for alert in &history { (alert_row(alert)) } } } }
        p.pager {
            @if page_number > 1 { a href={ "?page=" (page_number - 1) } { "← newer" } " " }
            "page " (page_number) " of " (pages) " (" (total) " alerts)"
            @if page_number < pages { " " a href={ "?page=" (page_number + 1) } { "older →" } }
        }
        h2 { "Alerts per hour (UTC)" }
        (PreEscaped(chart::alerts_per_hour(&counts, now)))
        @if !inventory.is_empty() {
            h2 { "Inventory" }
            div.table-wrap { table id="inventory" { tbody { @for (name, value) in &inventory {
                tr { th { (name) } td { (value) } }
            } } } }
        }
        h2 { "Checks" }
        @if checks.is_empty() { p { "The device has not pushed its checks yet." } }
        @else {
            div.table-wrap { table id="checks" {
                thead { tr { th { "Check" } th { "Type" } th { "Status" } th { "Watches" } } }
                tbody { @for check in &checks {
                    tr {
                        td { (check.name) }
                        td { (format!("{:?}", check.kind).to_lowercase()) }
                        td { (format!("{:?}", check.status).to_lowercase()) }
                        td { (check_summary(check)) }
                    }
                } }
            } }
        }
    };
    Ok(render(&device.name, &user, body))
}

fn check_summary(check: &ConfigCheck) -> String {
    if let Some(log) = &check.log {
        format!("/{}/ in {}", log.pattern, log.path)
    } else if let Some(service) = &check.service {
        format!("{} ({:?})", service.name, service.kind).to_lowercase()
    } else if let Some(dbus) = &check.dbus {
        format!("{} /{}/", dbus.watch, dbus.pattern)
    } else {
        String::new()
    }
}

async fn stored_alert(state: &AppState, id: &str) -> Result<StoredAlert, PageError> {
    let not_found = || PageError::Status(StatusCode::NOT_FOUND, format!("no alert {id}"));
    let number: i64 = id.parse().map_err(|_| not_found())?;
    state.store.alert(number).await?.ok_or_else(not_found)
}

async fn alert_page(
    State(state): State<AppState>,
    DashboardUser(user): DashboardUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let stored = stored_alert(&state, &id).await?;
    let device = known_device(&state, &stored.device_id).await?;
    let alert = &stored.alert;
    let details = &alert.subject.details;
    let body = html! {
        h1 { (level_icon(alert.level)) " " (alert.name) }
        table.facts {
            tr { th { "Device" } td { a href={ "/ui/devices/" (device.id) } { (device.name) } } }
            tr { th { "Subject" } td { (alert.subject.kind) " " (alert.subject.name) } }
            tr { th { "Status" } td { (alert.subject.status) } }
            tr { th { "Time (device)" } td { (alert.timestamp) } }
            tr { th { "Received" } td { (Timestamp(stored.received_at)) } }
            @if let Some(description) = &details.description { tr { th { "Description" } td { (description) } } }
            @for (name, value) in &details.fields {
                tr { th { (name) } td { (value.as_str().map_or_else(|| value.to_string(), str::to_owned)) } }
            }
        }
        @if details.line_matching.is_some() || !details.lines_before.is_empty() {
            h2 { "Log" }
            pre id="log" {
                @for line in &details.lines_before { span.line { (format!("{:>6}  ", line.line_number)) (line.data) } "\n" }
                @if let Some(line) = &details.line_matching { mark.line.matching { (format!("{:>6}  ", line.line_number)) (line.data) } "\n" }
                @for line in &details.lines_after { span.line { (format!("{:>6}  ", line.line_number)) (line.data) } "\n" }
            }
        }
        p { a id="export" href={ "/ui/alerts/" (stored.id) "/log" } download={ "alert-" (stored.id) ".log" } { "Export as .log" } }
    };
    Ok(render(&alert.name, &user, body))
}

/// The alert as a text file: a header, then the log lines, the matching one marked `>`.
async fn alert_log(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let stored = stored_alert(&state, &id).await?;
    let device = known_device(&state, &stored.device_id).await?;
    let alert = &stored.alert;
    let details = &alert.subject.details;
    let mut text = format!(
        "# {} {}\n# device {} ({})\n# subject {} {} ({})\n# time {}\n",
        alert.level,
        alert.name,
        device.name,
        device.id,
        alert.subject.kind,
        alert.subject.name,
        alert.subject.status,
        alert.timestamp
    );
    if let Some(description) = &details.description {
        text.push_str(&format!("# {description}\n"));
    }
    let lines = details
        .lines_before
        .iter()
        .map(|line| (' ', line))
        .chain(details.line_matching.iter().map(|line| ('>', line)))
        .chain(details.lines_after.iter().map(|line| (' ', line)));
    for (marker, line) in lines {
        text.push_str(&format!("{marker}{:>6}  {}\n", line.line_number, line.data));
    }
    let disposition = format!("attachment; filename=\"alert-{}.log\"", stored.id);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).expect("a valid header"),
            ),
        ],
        text,
    )
        .into_response())
}

async fn settings_page(
    State(state): State<AppState>,
    DashboardUser(user): DashboardUser,
) -> Result<Response, PageError> {
    let muted = state.store.setting(GLOBAL_MUTE).await?.as_deref() == Some("true");
    let channels = state.store.channels().await?;
    let body = html! {
        h1 { "Notifications" }
        form.inline method="post" action="/ui/settings/mute" {
            @if muted { p.notice { "All notifications are muted." } }
            input type="hidden" name="muted" value=(if muted { "false" } else { "true" });
            button id="global-mute" type="submit" { @if muted { "Unmute all notifications" } @else { "Mute all notifications" } }
        }
        h2 { "Channels" }
        @if channels.is_empty() { p { "No channel: nothing is sent." } }
        @else {
            div.table-wrap { table id="channels" {
                tbody { @for channel in &channels {
                    tr {
                        td { (channel.kind.as_str()) }
                        td { (channel.name) }
                        td { (channel.shown_target()) }
                        td { form.inline method="post" action={ "/ui/settings/channels/" (channel.id) "/remove" } {
                            button type="submit" { "Remove" }
                        } }
                    }
                } }
            } }
        }
        h2 { "Add an email recipient" }
        form.stacked method="post" action="/ui/settings/channels" {
            input type="hidden" name="kind" value="email";
            label { "Address" input type="email" name="target" required; }
            label { "Name" input type="text" name="name" placeholder="ops"; }
            button type="submit" { "Add" }
        }
        h2 { "Add a Discord webhook" }
        form.stacked method="post" action="/ui/settings/channels" {
            input type="hidden" name="kind" value="discord";
            label { "Webhook URL" input type="password" name="target" required autocomplete="off"; }
            label { "Name" input type="text" name="name" placeholder="#alerts"; }
            button type="submit" { "Add" }
        }
    };
    Ok(render("Notifications", &user, body))
}

async fn set_global_mute(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Form(form): Form<MuteForm>,
) -> Result<Response, PageError> {
    let value = if form.muted == "true" {
        "true"
    } else {
        "false"
    };
    state.store.set_setting(GLOBAL_MUTE, value).await?;
    Ok(Redirect::to("/ui/settings").into_response())
}

#[derive(Deserialize)]
struct ChannelForm {
    kind: String,
    target: String,
    #[serde(default)]
    name: String,
}

async fn add_channel(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Form(form): Form<ChannelForm>,
) -> Result<Response, PageError> {
    let bad = |message: String| PageError::Status(StatusCode::BAD_REQUEST, message);
    let kind: ChannelKind = form.kind.parse().map_err(bad)?;
    let target = form.target.trim();
    validate_channel(kind, target).map_err(bad)?;
    let name = if form.name.trim().is_empty() {
        match kind {
            ChannelKind::Email => target.to_owned(),
            ChannelKind::Discord => "discord".to_owned(),
        }
    } else {
        form.name.trim().to_owned()
    };
    match state.store.add_channel(kind, &name, target).await {
        Ok(_) => Ok(Redirect::to("/ui/settings").into_response()),
        Err(StorageError::Conflict(message)) => {
            Err(PageError::Status(StatusCode::CONFLICT, message))
        }
        Err(error) => Err(error.into()),
    }
}

async fn remove_channel(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    state.store.remove_channel(&id).await?;
    Ok(Redirect::to("/ui/settings").into_response())
}
