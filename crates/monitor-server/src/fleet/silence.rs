//! Devices that go silent: what a heartbeat may announce, what counts as hearing from a
//! device, and how many missed heartbeats make one silent.

use std::time::{Duration, SystemTime};

use super::error::FleetError;
use super::service::Fleet;
use crate::storage::{Device, RecordedAlerts, SilentAfter};

/// The longest interval a heartbeat may announce: a week. Longer would mean a device that
/// is silent for months before anyone hears of it.
pub const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The server's missed heartbeats before a device is silent, unless `--silent-after` says.
pub const DEFAULT_SILENT_AFTER: u32 = 3;

impl Fleet {
    /// Notes that `device` was heard (any authenticated device request counts); if it was
    /// silent, records its return, an OK alert queued for notification, and returns it. A
    /// device that never announced a heartbeat costs nothing here: it cannot go silent, and
    /// what it sends notes its last contact as before.
    pub async fn heard_from(
        &self,
        device: &Device,
        notify_interval: Duration,
    ) -> Result<Option<RecordedAlerts>, FleetError> {
        if device.heartbeat_interval.is_none() && device.silent_since.is_none() {
            return Ok(None);
        }
        let back = self
            .store
            .device_heard(&device.id, &device.name, SystemTime::now(), notify_interval)
            .await?;
        if back.is_some() {
            tracing::info!(device = %device.name, "device heard again after its silence");
        }
        Ok(back)
    }

    /// Keeps the interval a heartbeat announced (0 seconds: no more heartbeats); returns
    /// whether it changed, which moves the device's deadline.
    pub async fn record_heartbeat(
        &self,
        device: &Device,
        interval_seconds: u64,
    ) -> Result<bool, FleetError> {
        let interval = Duration::from_secs(interval_seconds);
        if interval > MAX_HEARTBEAT_INTERVAL {
            return Err(FleetError::Invalid(format!(
                "interval_seconds: {interval_seconds} is more than a week: announce at most {}",
                MAX_HEARTBEAT_INTERVAL.as_secs()
            )));
        }
        let interval = (!interval.is_zero()).then_some(interval);
        if device.heartbeat_interval == interval {
            return Ok(false);
        }
        self.store
            .set_heartbeat_interval(&device.id, interval, SystemTime::now())
            .await?;
        tracing::info!(
            device = %device.name,
            interval_seconds,
            "heartbeat interval announced"
        );
        Ok(true)
    }

    /// Sets how many missed heartbeats make one device silent.
    pub async fn set_device_silent_after(
        &self,
        device: &Device,
        silent_after: SilentAfter,
    ) -> Result<(), FleetError> {
        if silent_after == SilentAfter::Missed(0) {
            return Err(FleetError::Invalid(
                "silent_after: 0 is never; give at least 1 missed heartbeat".into(),
            ));
        }
        self.store
            .set_device_silent_after(&device.id, silent_after)
            .await?;
        tracing::info!(device = %device.name, "silent after {silent_after}");
        Ok(())
    }
}
