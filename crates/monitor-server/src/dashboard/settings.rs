//! Settings: the global mute and the channels; sessions and API tokens, users and
//! enrollment tokens, each listed with a button that revokes it.

use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::page::{render, MuteForm, PageError};
use super::session::{current_session, DashboardUser};
use crate::api::AppState;
use crate::fleet::FleetError;
use crate::notify::{ChannelFilter, ChannelKind};

fn shown_time(at: Option<SystemTime>) -> String {
    at.map_or_else(
        || "never".to_owned(),
        |at| humantime::format_rfc3339_seconds(at).to_string(),
    )
}

pub(super) async fn settings_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    DashboardUser(user): DashboardUser,
) -> Result<Response, PageError> {
    let muted = state.fleet.global_mute().await?;
    let channels = state.fleet.channels().await?;
    let this_session = match current_session(&headers) {
        Some(token) => state
            .fleet
            .user_and_token(&token)
            .await
            .ok()
            .map(|(_, token)| token.id),
        None => None,
    };
    let tokens = state.fleet.user_tokens(Some(&user)).await?;
    let users = state.fleet.users().await?;
    let enrollment_tokens = state.fleet.enrollment_tokens().await?;
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
                        td.filter { (channel.filter) }
                        td { form.inline method="post" action={ "/ui/settings/channels/" (channel.id) "/remove" } {
                            button type="submit" { "Remove" }
                        } }
                    }
                } }
            } }
        }
        @for kind in ChannelKind::ALL {
            @let form = kind.form();
            h2 { (form.heading) }
            form.stacked method="post" action="/ui/settings/channels" {
                input type="hidden" name="kind" value=(kind.as_str());
                label { (form.target_label) input type=(form.target_input) name="target" required autocomplete=[(form.target_input == "password").then_some("off")]; }
                label { "Name" input type="text" name="name" placeholder=(form.name_placeholder); }
                label { "Least level" select name="min_level" {
                    option value="OK" selected { "OK: every alert" }
                    option value="CRITICAL" { "CRITICAL only (no resolved)" }
                } }
                label { "Only these checks (comma-separated, empty for all)" input type="text" name="checks" placeholder="systemd nginx, log app"; }
                label { "Only these devices (comma-separated, * and ? as wildcards, empty for all)" input type="text" name="devices" placeholder="pi-*"; }
                button type="submit" { "Add" }
            }
        }
        h1 { "Access" }
        h2 { "Your sessions and API tokens" }
        div.table-wrap { table id="tokens" {
            thead { tr { th { "Name" } th { "Kind" } th { "Created" } th { "Expires" } th {} } }
            tbody { @for token in &tokens {
                tr data-id=(token.id) {
                    td { (token.name) @if this_session.as_deref() == Some(token.id.as_str()) { " (this session)" } }
                    td { (token.kind.as_str()) }
                    td { (shown_time(Some(token.created_at))) }
                    td { (shown_time(token.expires_at)) }
                    td { form.inline method="post" action={ "/ui/settings/tokens/" (token.id) "/remove" } {
                        button type="submit" { "Revoke" }
                    } }
                }
            } }
        } }
        h2 { "Users" }
        div.table-wrap { table id="users" {
            tbody { @for listed in &users {
                tr data-id=(listed.id) {
                    td { (listed.email) @if listed.id == user.id { " (you)" } }
                    td { form.inline method="post" action={ "/ui/settings/users/" (listed.id) "/remove" } {
                        button type="submit" { "Remove" }
                    } }
                }
            } }
        } }
        h2 { "Enrollment tokens" }
        @if enrollment_tokens.is_empty() { p { "No enrollment token: new devices wait for a user to accept them." } }
        @else {
            div.table-wrap { table id="enrollment-tokens" {
                thead { tr { th { "Name" } th { "Created" } th { "Expires" } th {} } }
                tbody { @for token in &enrollment_tokens {
                    tr data-id=(token.id) {
                        td { (token.name) }
                        td { (shown_time(Some(token.created_at))) }
                        td { (shown_time(token.expires_at)) }
                        td { form.inline method="post" action={ "/ui/settings/enrollment_tokens/" (token.id) "/remove" } {
                            button type="submit" { "Remove" }
                        } }
                    }
                } }
            } }
        }
    };
    Ok(render("Settings", &user, body))
}

pub(super) async fn set_global_mute(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Form(form): Form<MuteForm>,
) -> Result<Response, PageError> {
    state.fleet.set_global_mute(form.muted()).await?;
    Ok(Redirect::to("/ui/settings").into_response())
}

#[derive(Deserialize)]
pub(super) struct ChannelFields {
    kind: String,
    target: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    min_level: String,
    /// Comma-separated.
    #[serde(default)]
    checks: String,
    /// Comma-separated.
    #[serde(default)]
    devices: String,
}

/// Adds a channel; without a name, the kind's default (an address is its own name).
pub(super) async fn add_channel(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Form(form): Form<ChannelFields>,
) -> Result<Response, PageError> {
    let name = match form.name.trim() {
        "" => form.kind.parse::<ChannelKind>().map_or_else(
            |_| String::new(),
            |kind| kind.default_name(form.target.trim()),
        ),
        name => name.to_owned(),
    };
    let filter = ChannelFilter::from_text(Some(&form.min_level), &form.checks, &form.devices)
        .map_err(FleetError::Invalid)?;
    state
        .fleet
        .add_channel(&form.kind, &name, &form.target, &filter)
        .await?;
    Ok(Redirect::to("/ui/settings").into_response())
}

pub(super) async fn remove_channel(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    state.fleet.remove_channel(&id).await?;
    // The notifier lets go of what it kept for the channel (an MQTT connection) now.
    state.notifier_wake.notify_one();
    Ok(Redirect::to("/ui/settings").into_response())
}

/// Revokes one of the user's own sessions or tokens (this one too: then the next page is
/// the login).
pub(super) async fn remove_token(
    State(state): State<AppState>,
    DashboardUser(user): DashboardUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    state.fleet.remove_user_token(&id, Some(&user)).await?;
    Ok(Redirect::to("/ui/settings").into_response())
}

/// Removes a user with their sessions and tokens.
pub(super) async fn remove_user(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let user = state.fleet.user_by_id(&id).await?;
    state.fleet.remove_user(&user).await?;
    Ok(Redirect::to("/ui/settings").into_response())
}

pub(super) async fn remove_enrollment_token(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    state.fleet.remove_enrollment_token(&id).await?;
    Ok(Redirect::to("/ui/settings").into_response())
}
