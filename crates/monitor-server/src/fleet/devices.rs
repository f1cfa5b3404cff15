//! Devices: what a device shows, what its status may become, and the administrator's
//! device tasks (add with a token, a new token, mute).

use super::error::{Entity, FleetError};
use super::service::Fleet;
use crate::credentials::{new_token, token_hash, TokenKind};
use crate::storage::{Device, DeviceStatus};

/// What a device that never reported shows as its last contact.
pub const NEVER_SEEN: &str = "never";

/// What a device shows, the same in the API (`alerts`), the dashboard (its badge and row),
/// the command line and the metrics: CRITICAL while the latest alert of any of its
/// subjects is CRITICAL, else OK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceHealth {
    Ok,
    Critical {
        /// Subjects whose latest alert is CRITICAL.
        open_alerts: u64,
    },
}

impl DeviceHealth {
    pub fn of(device: &Device) -> DeviceHealth {
        match device.alert_count {
            0 => DeviceHealth::Ok,
            open_alerts => DeviceHealth::Critical { open_alerts },
        }
    }

    pub fn is_critical(self) -> bool {
        matches!(self, DeviceHealth::Critical { .. })
    }

    pub fn open_alerts(self) -> u64 {
        match self {
            DeviceHealth::Ok => 0,
            DeviceHealth::Critical { open_alerts } => open_alerts,
        }
    }

    /// `ok` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceHealth::Ok => "ok",
            DeviceHealth::Critical { .. } => "critical",
        }
    }
}

/// How many devices have each admission status, every status listed.
pub fn count_by_status(devices: &[Device]) -> Vec<(DeviceStatus, usize)> {
    DeviceStatus::ALL
        .iter()
        .map(|&status| {
            let count = devices
                .iter()
                .filter(|device| device.status == status)
                .count();
            (status, count)
        })
        .collect()
}

/// A status as users write it.
pub fn parse_status(text: &str) -> Result<DeviceStatus, FleetError> {
    text.parse().map_err(FleetError::Invalid)
}

impl Fleet {
    /// The device with this id.
    pub async fn device(&self, id: &str) -> Result<Device, FleetError> {
        self.store
            .device(id)
            .await?
            .ok_or_else(|| FleetError::not_found(Entity::Device, id))
    }

    /// The device with this id, or else this name.
    pub async fn device_by_id_or_name(&self, key: &str) -> Result<Device, FleetError> {
        self.store
            .device_by_id_or_name(key)
            .await?
            .ok_or_else(|| FleetError::not_found(Entity::Device, key))
    }

    /// Devices by name, optionally only those with a status, or with open alerts.
    pub async fn devices(
        &self,
        status: Option<DeviceStatus>,
        with_open_alerts: bool,
    ) -> Result<Vec<Device>, FleetError> {
        Ok(self.store.devices(status, with_open_alerts).await?)
    }

    /// Adds an accepted device and returns it with its token (shown once).
    pub async fn add_device(&self, name: &str) -> Result<(Device, String), FleetError> {
        if name.trim().is_empty() {
            return Err(FleetError::Invalid(
                "the device name is empty: give a name such as pi-kitchen".into(),
            ));
        }
        let token = new_token(TokenKind::Device);
        let device = self
            .store
            .add_device(name, DeviceStatus::Accepted, Some(&token_hash(&token)))
            .await?;
        Ok((device, token))
    }

    /// Gives a device a new token (the old one stops working) and returns it.
    pub async fn renew_device_token(&self, device: &Device) -> Result<String, FleetError> {
        let token = new_token(TokenKind::Device);
        self.store
            .set_device_token(&device.id, &token_hash(&token))
            .await?;
        Ok(token)
    }

    /// A user's decision on a device: accepted, rejected or decommissioned. A device never
    /// goes back to pending, and a decommissioned one stays so (it may join again as a new
    /// device).
    pub async fn set_device_status(
        &self,
        device: &Device,
        status: DeviceStatus,
    ) -> Result<(), FleetError> {
        if status == DeviceStatus::Pending {
            return Err(FleetError::Invalid(
                "status: a device can be accepted, rejected or decommissioned".into(),
            ));
        }
        if device.status == DeviceStatus::Decommissioned {
            return Err(FleetError::Conflict(format!(
                "{} is decommissioned: add it again as a new device",
                device.name
            )));
        }
        self.store.set_device_status(&device.id, status).await?;
        tracing::info!(device = %device.name, status = status.as_str(), "device status");
        Ok(())
    }

    /// Mutes or unmutes one device's notifications.
    pub async fn set_device_muted(&self, device: &Device, muted: bool) -> Result<(), FleetError> {
        self.store.set_device_muted(&device.id, muted).await?;
        Ok(())
    }
}
