//! What monitor-server's management API answers: devices with their open alerts, and
//! stored alerts (the device's [`Alert`] plus the server's id and arrival time).

use serde::{Deserialize, Serialize};

use crate::{Alert, Timestamp};

/// A device in the management API's device list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedDevice {
    pub id: String,
    pub name: String,
    /// `pending`, `accepted`, `rejected` or `decommissioned`.
    pub status: String,
    /// How many of the device's subjects are CRITICAL now (Mender's inventory attribute).
    pub alert_count: u64,
    /// `alert_count > 0`, as in Mender's inventory.
    pub alerts: bool,
    /// Notifications about this device are off.
    pub muted: bool,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<Timestamp>,
    /// The identity a device that asked to join sent (`auth_requests`), canonical JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_data: Option<String>,
    /// The SHA-256 of its public key's DER, hex: what tells two devices with one identity
    /// apart (the README says how to read it on the device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sha256: Option<String>,
    /// The seconds between heartbeats the device announced (`monitord` in `auth: token`
    /// mode); absent: it sends none and never goes silent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_seconds: Option<u64>,
    /// How many missed heartbeats make this device silent: its own number (0: never), or
    /// absent for the server's `--silent-after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_after: Option<u32>,
    /// While the device is silent: since when (the last time it was heard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_since: Option<Timestamp>,
}

/// An alert as the server stored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    pub id: String,
    pub device_id: String,
    #[serde(flatten)]
    pub alert: Alert,
    pub received_at: Timestamp,
}
