//! The devices pages: the fleet (with live rows and a chart), the pending devices, and
//! one device; its status and mute buttons.

use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup, PreEscaped};
use monitor_wire::config_push::ConfigCheck;
use serde::Deserialize;

use super::chart;
use super::page::{ago, badge, level_icon, render, MuteForm, PageError};
use super::session::DashboardUser;
use crate::api::AppState;
use crate::fleet::{parse_status, DeviceHealth, FleetError};
use crate::storage::{AlertQuery, Device, DeviceStatus, StoredAlert};

const HISTORY_PER_PAGE: u64 = 20;
/// How often the devices page refreshes its table.
const LIVE_UPDATE_MILLIS: u64 = 2000;

#[derive(Deserialize)]
pub(super) struct DevicesQuery {
    #[serde(default)]
    open: Option<u8>,
}

fn rows(devices: &[Device], now: SystemTime) -> Markup {
    html! {
        @for device in devices {
            tr class={ "device " (DeviceHealth::of(device).as_str()) } data-name=(device.name) {
                td { a href={ "/ui/devices/" (device.id) } { (device.name) } }
                td { (badge(device)) }
                td.seen { (ago(device.last_seen_at, now)) }
                td.muted { @if device.muted { "muted" } }
            }
        }
        @if devices.is_empty() { tr { td colspan="4" { "No devices." } } }
    }
}

pub(super) async fn accepted_devices(
    state: &AppState,
    open: bool,
) -> Result<Vec<Device>, FleetError> {
    state
        .fleet
        .devices(Some(DeviceStatus::Accepted), open)
        .await
}

pub(super) async fn devices_page(
    State(state): State<AppState>,
    DashboardUser(user): DashboardUser,
    Query(query): Query<DevicesQuery>,
) -> Result<Response, PageError> {
    let open = query.open.is_some();
    let devices = accepted_devices(&state, open).await?;
    let now = SystemTime::now();
    let counts = state.fleet.alerts_per_day(None, now).await?;
    let pending = state
        .fleet
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
                tbody id="device-rows" data-source=(rows_url) data-refresh-millis=(LIVE_UPDATE_MILLIS) { (rows(&devices, now)) }
            }
        }
        h2 { "Alerts per hour, whole fleet (UTC)" }
        (PreEscaped(chart::alerts_per_hour(&counts, now)))
        script src="/ui/live.js" defer {}
    };
    Ok(render("Devices", &user, body))
}

/// The devices table's rows alone, for the page's live update.
pub(super) async fn device_rows(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Query(query): Query<DevicesQuery>,
) -> Result<Response, PageError> {
    let devices = accepted_devices(&state, query.open.is_some()).await?;
    Ok(Html(rows(&devices, SystemTime::now()).into_string()).into_response())
}

pub(super) async fn pending_page(
    State(state): State<AppState>,
    DashboardUser(user): DashboardUser,
) -> Result<Response, PageError> {
    let pending = state
        .fleet
        .devices(Some(DeviceStatus::Pending), false)
        .await?;
    let rejected = state
        .fleet
        .devices(Some(DeviceStatus::Rejected), false)
        .await?;
    let now = SystemTime::now();
    let body = html! {
        h1 { "Pending devices" }
        @if pending.is_empty() { p { "No device is waiting." } }
        @else {
            p.hint { "Accept a device only when its key SHA-256 is the one read on the device: "
                code { "openssl pkey -in /var/lib/mender/mender-agent.pem -pubout -outform DER | sha256sum" }
                ". Two devices may claim one MAC address; the key tells them apart." }
            div.table-wrap { table id="pending" {
                thead { tr { th { "Device" } th { "Identity" } th { "Key SHA-256" } th { "Asked" } th {} } }
                tbody { @for device in &pending {
                    tr data-name=(device.name) data-id=(device.id) {
                        td { (device.name) br; small { "id " code { (device.id) } } }
                        td { code { (device.identity.as_deref().unwrap_or("-")) } }
                        td.fingerprint { code { (device.key_fingerprint.as_deref().unwrap_or("-")) } }
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
pub(super) struct StatusForm {
    status: String,
}

pub(super) async fn set_status(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Path(id): Path<String>,
    Form(form): Form<StatusForm>,
) -> Result<Response, PageError> {
    let status = parse_status(&form.status)?;
    let device = state.fleet.device(&id).await?;
    state.fleet.set_device_status(&device, status).await?;
    Ok(Redirect::to(if status == DeviceStatus::Accepted {
        "/ui/devices"
    } else {
        "/ui/pending"
    })
    .into_response())
}

pub(super) async fn set_mute(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Path(id): Path<String>,
    Form(form): Form<MuteForm>,
) -> Result<Response, PageError> {
    let device = state.fleet.device(&id).await?;
    state.fleet.set_device_muted(&device, form.muted()).await?;
    Ok(Redirect::to(&format!("/ui/devices/{}", device.id)).into_response())
}

#[derive(Deserialize)]
pub(super) struct HistoryQuery {
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

pub(super) async fn device_page(
    State(state): State<AppState>,
    DashboardUser(user): DashboardUser,
    Path(id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, PageError> {
    let device = state.fleet.device(&id).await?;
    let now = SystemTime::now();
    let latest = state.fleet.latest_alerts(&device).await?;
    let page_number = query.page.unwrap_or(1).max(1);
    let (history, total) = state
        .fleet
        .alerts(
            &device,
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
    let checks = state.fleet.checks(&device).await?;
    let counts = state.fleet.alerts_per_day(Some(&device), now).await?;
    let inventory = state.fleet.inventory(&device).await?;
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
                        td { (check.kind.as_str()) }
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
    } else if let Some(sampled) = &check.sampled {
        format!("{}, {}", sampled.source, sampled.sampling)
    } else {
        String::new()
    }
}
