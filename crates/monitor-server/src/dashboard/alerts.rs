//! One alert: its facts and log lines, and the same as a `.log` file.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use maud::html;
use monitor_wire::Timestamp;

use super::page::{level_icon, render, PageError};
use super::session::DashboardUser;
use crate::api::AppState;

pub(super) async fn alert_page(
    State(state): State<AppState>,
    DashboardUser(user): DashboardUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (stored, device) = state.fleet.alert(&id).await?;
    let (alert, details) = (&stored.alert, &stored.alert.subject.details);
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
pub(super) async fn alert_log(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (stored, device) = state.fleet.alert(&id).await?;
    let (alert, details) = (&stored.alert, &stored.alert.subject.details);
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
