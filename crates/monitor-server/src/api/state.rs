//! [`AppState`]: what every handler shares.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::login_guard::LoginGuard;
use super::rate_limit::RateLimiter;
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::settings::Limits;
use crate::storage::{StorageError, Store};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub fleet: Fleet,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    /// State changes of one device go out at most once per interval and channel.
    pub notify_interval: Duration,
    /// Wakes this replica's notifier when alerts were queued for notification.
    pub notifier_wake: Arc<Notify>,
    /// Caps and throttles password checks (the API's and the dashboard's logins).
    pub login_guard: Arc<LoginGuard>,
    pub(super) rate_limiter: Arc<RateLimiter>,
}

impl AppState {
    /// The state for a server on `store`; reads (or makes) the JWT key every replica shares.
    pub async fn new(
        store: Store,
        limits: Limits,
        notify_interval: Duration,
        notifier_wake: Arc<Notify>,
    ) -> Result<Self, StorageError> {
        let rate_limiter = Arc::new(RateLimiter::new(limits.device_requests_per_minute));
        Ok(AppState {
            fleet: Fleet::open(store).await?,
            metrics: Arc::new(Metrics::default()),
            limits: Arc::new(limits),
            notify_interval,
            notifier_wake,
            login_guard: Arc::new(LoginGuard::default()),
            rate_limiter,
        })
    }
}
