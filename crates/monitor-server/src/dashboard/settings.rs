//! Notification settings: the global mute and the channels.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::page::{render, MuteForm, PageError};
use super::session::DashboardUser;
use crate::api::AppState;
use crate::notify::ChannelKind;

pub(super) async fn settings_page(
    State(state): State<AppState>,
    DashboardUser(user): DashboardUser,
) -> Result<Response, PageError> {
    let muted = state.fleet.global_mute().await?;
    let channels = state.fleet.channels().await?;
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
        @for kind in ChannelKind::ALL {
            @let form = kind.form();
            h2 { (form.heading) }
            form.stacked method="post" action="/ui/settings/channels" {
                input type="hidden" name="kind" value=(kind.as_str());
                label { (form.target_label) input type=(form.target_input) name="target" required autocomplete=[(form.target_input == "password").then_some("off")]; }
                label { "Name" input type="text" name="name" placeholder=(form.name_placeholder); }
                button type="submit" { "Add" }
            }
        }
    };
    Ok(render("Notifications", &user, body))
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
    state
        .fleet
        .add_channel(&form.kind, &name, &form.target)
        .await?;
    Ok(Redirect::to("/ui/settings").into_response())
}

pub(super) async fn remove_channel(
    State(state): State<AppState>,
    DashboardUser(_user): DashboardUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    state.fleet.remove_channel(&id).await?;
    Ok(Redirect::to("/ui/settings").into_response())
}
