//! The HTTP API: the device API Mender's agents speak (with admission), the management
//! API, `/healthz` and `/metrics`. Each part gives its routes; `lib.rs` composes them.
//!
//! Handlers parse, call [`Fleet`](crate::fleet::Fleet) and render. Every handler is
//! stateless between requests but for the per-device rate limiter (a per-replica guard
//! against a device posting in a loop; losing it on restart loses nothing) and the
//! [`Metrics`](crate::metrics::Metrics) counters. Errors answer `{"error": "<what to do>"}`
//! as Mender's services do.

mod accounts;
mod admission;
mod auth;
mod body;
mod catch_panic;
mod device;
mod error;
mod health;
mod inventory;
mod login_guard;
mod management;
mod nul;
mod rate_limit;
mod state;

pub use auth::{AuthenticatedDevice, AuthenticatedToken, AuthenticatedUser};
pub use body::read_whole_body;
pub use catch_panic::{catch_panic, panic_test_routes, warn_if_built_to_abort};
pub use error::ApiError;
pub use login_guard::{ClientAddress, LoginAttempt, LoginGuard, LoginRefusal};
pub use nul::replace_nul_characters;
pub use state::AppState;

use axum::Router;

/// The device API: admission, alerts, checks, and what a Mender client also calls.
pub fn device_routes() -> Router<AppState> {
    admission::routes().merge(device::routes())
}

/// The management API: log in and out, users, tokens, enrollment tokens, devices and their alerts, channels, mute, and
/// Mender's inventory API (read only).
pub fn management_routes() -> Router<AppState> {
    management::routes()
        .merge(accounts::routes())
        .merge(inventory::routes())
}

/// `/healthz` and `/metrics`.
pub fn health_routes() -> Router<AppState> {
    health::routes()
}
