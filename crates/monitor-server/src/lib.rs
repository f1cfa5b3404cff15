//! monitor-server: a self-hosted backend for the agents' alerts.
//!
//! It speaks Mender's devicemonitor device API (`POST /api/devices/v1/devicemonitor/alert`
//! and `…/config`), so `monitord` in `token` mode reports to it, and offers a management API
//! in Mender's shape (alert history and latest alerts per device, `alert_count`, admission,
//! mute) for people and dashboards.
//!
//! - [`storage::Store`]: everything kept, on SQLite (WAL, one server) or PostgreSQL (shared
//!   by replicas); versioned migrations.
//! - [`fleet::Fleet`]: every rule once (who may report and log in, device status and what a
//!   device shows, mute, channels, users and tokens), with one error type, [`fleet::FleetError`].
//! - [`api`], [`dashboard`]: the HTTP surfaces, composed into one router by [`router`]:
//!   they parse, call the fleet and render.
//! - [`notify`]: the notifier that sends the outbox, one module per channel kind.
//! - [`silence`]: the task that raises "Device <name> silent" when heartbeats stop.
//! - [`credentials`]: token and password hashing.
//! - [`settings`]: flags, environment and the YAML file.
//!
//! It does not run checks or talk to devices on its own: devices push, users pull.

pub mod api;
pub mod credentials;
pub mod dashboard;
pub mod device_auth;
pub mod device_key;
pub mod fleet;
pub mod jwt;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod settings;
pub mod silence;
pub mod storage;

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::api::AppState;
use crate::notify::notifier::Notifier;
use crate::notify::TargetPolicy;
use crate::settings::{Database, Settings};
use crate::silence::SilenceWatcher;
use crate::storage::Store;

/// Opens the database the settings name, creating the data directory for SQLite.
pub async fn open_store(database: &Database) -> anyhow::Result<Store> {
    match database {
        Database::Sqlite(path) => {
            if let Some(directory) = path.parent() {
                // Only the server's user needs to look inside (the key file lives here too).
                std::os::unix::fs::DirBuilderExt::mode(
                    std::fs::DirBuilder::new().recursive(true),
                    0o700,
                )
                .create(directory)
                .with_context(|| {
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

/// The whole HTTP surface: the device API, the management API, the dashboard, `/healthz`
/// and `/metrics`, with the body limit over all of them, and a panic in any of them
/// answered 500 (the others go on).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::device_routes())
        .merge(api::management_routes())
        .merge(api::health_routes())
        .merge(dashboard::routes())
        .merge(api::panic_test_routes())
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(axum::middleware::from_fn(api::replace_nul_characters))
        .layer(axum::middleware::from_fn_with_state(
            state.limits.max_body_bytes,
            api::read_whole_body,
        ))
        .layer(axum::middleware::from_fn(api::catch_panic))
        .layer(axum::middleware::from_fn(listener::security_headers))
        .with_state(state)
}

/// How long a notification in flight may take to finish at shutdown.
const NOTIFIER_STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Serves the API on `listener` (over TLS when the settings give a certificate, reloaded at
/// each SIGHUP `hangup` reports: see [`handle_hangup`]), and sends notifications, until `shutdown`; then lets requests in flight finish
/// and the notification being sent, with a deadline.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    settings: &Settings,
    hangup: tokio::signal::unix::Signal,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let wake = Arc::new(Notify::new());
    let notifier = Notifier::new(
        store.clone(),
        settings.smtp.as_ref(),
        TargetPolicy::allowing_private(settings.allow_private_targets),
        settings.public_url.clone(),
        wake.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    let state = AppState::new(
        store.clone(),
        settings.limits.clone(),
        settings.notify_interval,
        wake,
        settings.device_key.clone(),
    )
    .await
    .context("cannot load the device-token key")?;
    let tls = match &settings.listener.tls {
        Some(files) => Some(Arc::new(listener::TlsCertificate::load(files.clone())?)),
        None => None,
    };
    tokio::spawn(reload_on_hangup(hangup, tls.clone(), shutdown.clone()));
    let mut state = state;
    state.fleet = state
        .fleet
        .with_private_targets(settings.allow_private_targets);
    let notifier = tokio::spawn(notifier.run(shutdown.clone()));
    let silence = SilenceWatcher {
        store: store.clone(),
        silent_after: settings.silent_after,
        notify_interval: settings.notify_interval,
        wake: state.silence_wake.clone(),
        notifier_wake: state.notifier_wake.clone(),
    };
    let silence = tokio::spawn(silence.run(shutdown.clone()));
    api::warn_if_built_to_abort();
    let router = router(state).layer(axum::Extension(settings.metrics.clone()));
    // `serve_connections` gives every request its peer address (`ConnectInfo`): it limits
    // new pending devices per source (`auth_requests`), and the login guard counts
    // failures per client address (`api::ClientAddress`).
    listener::serve_connections(listener, router, &settings.listener, tls, shutdown.clone()).await;
    shutdown.cancel();
    if tokio::time::timeout(NOTIFIER_STOP_DEADLINE, notifier)
        .await
        .is_err()
    {
        tracing::warn!("a notification was still being sent at shutdown; another replica or the next start sends it");
    }
    // It holds no request open: a silence being recorded is one short transaction.
    let _ = silence.await;
    store.close().await;
    Ok(())
}

/// Reads the TLS certificate and key again at each SIGHUP (a renewed certificate), keeping
/// the one in use when the new files are wrong. Connections open meanwhile go on. Without
/// TLS a SIGHUP only says there is nothing to reload.
async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    certificate: Option<Arc<listener::TlsCertificate>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = hangup.recv() => {}
        }
        let Some(certificate) = &certificate else {
            tracing::info!("SIGHUP: nothing to reload (the server serves plain HTTP)");
            continue;
        };
        match certificate.reload() {
            Ok(()) => tracing::info!("SIGHUP: reloaded the TLS certificate and key"),
            Err(error) => {
                tracing::error!("SIGHUP: {error:#}; still serving the previous certificate")
            }
        }
    }
}

/// Takes SIGHUP over from its default (ending the process; `systemctl reload` sends it), for
/// good: call it before the server says it listens, so that a reload sent as soon as it is
/// up neither ends it nor goes unseen. The stream reports each SIGHUP from then on.
pub fn handle_hangup() -> anyhow::Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup()).context("cannot handle SIGHUP")
}

/// Binds the listening socket, saying which address to use instead if it is taken.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}: choose another with --listen"))
}
