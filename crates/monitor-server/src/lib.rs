//! monitor-server: a self-hosted backend for the agents' alerts.
//!
//! It speaks Mender's devicemonitor device API (`POST /api/devices/v1/devicemonitor/alert`
//! and `…/config`), so `monitord` in `token` mode reports to it, and offers a management API
//! in Mender's shape (alert history and latest alerts per device, `alert_count`, admission,
//! mute) for people and dashboards.
//!
//! - [`storage::Store`]: everything kept, on SQLite (WAL, one server) or PostgreSQL (shared
//!   by replicas); versioned migrations.
//! - [`api`]: the axum router, authentication of devices (server-issued tokens) and users
//!   (sessions and API tokens), validation and limits.
//! - [`credentials`]: token and password hashing.
//! - [`settings`]: flags, environment and the YAML file.
//!
//! It does not run checks or talk to devices on its own: devices push, users pull.

pub mod api;
pub mod credentials;
pub mod device_auth;
pub mod jwt;
pub mod metrics;
pub mod settings;
pub mod storage;

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::api::{AppState, Limits};
use crate::settings::Database;
use crate::storage::Store;

/// Opens the database the settings name, creating the data directory for SQLite.
pub async fn open_store(database: &Database) -> anyhow::Result<Store> {
    match database {
        Database::Sqlite(path) => {
            if let Some(directory) = path.parent() {
                std::fs::create_dir_all(directory).with_context(|| {
                    format!("cannot create the data directory {}", directory.display())
                })?;
            }
            Store::open_sqlite(path)
                .await
                .with_context(|| format!("cannot open the database {}", path.display()))
        }
        Database::Url(url) => Store::open_url(url)
            .await
            .with_context(|| format!("cannot open the database {}", settings::redact_url(url))),
    }
}

/// Serves the API on `listener` until `shutdown`, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    limits: Limits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let state = AppState::new(store.clone(), limits)
        .await
        .context("cannot read the device-token key from the database")?;
    let router = api::router(state);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("the HTTP server failed")?;
    store.close().await;
    Ok(())
}

/// Binds the listening socket, saying which address to use instead if it is taken.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}: choose another with --listen"))
}
