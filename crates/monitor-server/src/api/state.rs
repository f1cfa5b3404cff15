//! [`AppState`]: what every handler shares.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::login_guard::LoginGuard;
use super::rate_limit::RateLimiter;
use crate::device_key::{DeviceKeyError, DeviceKeyLocation};
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::settings::Limits;
use crate::storage::Store;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub fleet: Fleet,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    /// State changes of one device go out at most once per interval and channel.
    pub notify_interval: Duration,
    /// Wakes this replica's notifier when alerts were queued for notification or a
    /// channel removed.
    pub notifier_wake: Arc<Notify>,
    /// Wakes this replica's silence watcher when a device's deadline moved earlier or came
    /// back (a new heartbeat interval, a device heard again, its `silent_after` changed).
    pub silence_wake: Arc<Notify>,
    /// Caps and throttles password checks (the API's and the dashboard's logins).
    pub login_guard: Arc<LoginGuard>,
    pub(super) rate_limiter: Arc<RateLimiter>,
    /// New pending devices per source address (`auth_requests`).
    pub(super) pending_rate_limiter: Arc<RateLimiter>,
}

impl AppState {
    /// The state for a server on `store`; reads (or makes) the device-token key.
    pub async fn new(
        store: Store,
        limits: Limits,
        notify_interval: Duration,
        notifier_wake: Arc<Notify>,
        device_key: DeviceKeyLocation,
    ) -> Result<Self, DeviceKeyError> {
        let rate_limiter = Arc::new(RateLimiter::new(limits.device_requests_per_minute));
        let pending_rate_limiter = Arc::new(RateLimiter::new(limits.pending_devices_per_minute));
        Ok(AppState {
            fleet: Fleet::open(store, device_key).await?,
            metrics: Arc::new(Metrics::default()),
            limits: Arc::new(limits),
            notify_interval,
            notifier_wake,
            silence_wake: Arc::new(Notify::new()),
            login_guard: Arc::new(LoginGuard::default()),
            rate_limiter,
            pending_rate_limiter,
        })
    }
}
