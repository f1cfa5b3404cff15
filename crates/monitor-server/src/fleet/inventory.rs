//! A device as Mender's inventory API shows it: attributes with a scope. `monitor` holds
//! `alert_count` and `alerts` (where Mender's monitor add-on puts them), `inventory` what a
//! Mender client reported, `identity` the admission status and `tags` the device's name.

use serde_json::Value;

use super::devices::DeviceHealth;
use super::error::FleetError;
use super::service::Fleet;
use crate::storage::Device;

/// One attribute of a device's inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopedAttribute {
    pub name: String,
    /// `inventory`, `identity`, `monitor` or `tags`.
    pub scope: &'static str,
    pub value: Value,
}

/// A device and its attributes, Mender's inventory `DeviceInventory`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInventory {
    pub device: Device,
    pub attributes: Vec<ScopedAttribute>,
}

/// `{scope}/{name}={value}` from a query string, as Mender's inventory search takes it; no
/// scope means `inventory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeFilter {
    pub scope: String,
    pub name: String,
    pub value: String,
}

impl AttributeFilter {
    pub fn parse(key: &str, value: &str) -> AttributeFilter {
        let (scope, name) = key.split_once('/').unwrap_or(("inventory", key));
        AttributeFilter {
            scope: scope.to_owned(),
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    /// An attribute matches when its value is the filter's text: a string as it is, a
    /// number or a flag as JSON reads the text (`3`, `true`).
    fn matches(&self, inventory: &DeviceInventory) -> bool {
        inventory.attributes.iter().any(|attribute| {
            attribute.scope == self.scope
                && attribute.name == self.name
                && match &attribute.value {
                    Value::String(text) => *text == self.value,
                    other => serde_json::from_str::<Value>(&self.value)
                        .is_ok_and(|value| value == *other),
                }
        })
    }
}

impl DeviceInventory {
    fn of(device: Device, reported: Option<&str>) -> DeviceInventory {
        let health = DeviceHealth::of(&device);
        let mut attributes = vec![
            ScopedAttribute {
                name: "status".into(),
                scope: "identity",
                value: device.status.as_str().into(),
            },
            ScopedAttribute {
                name: "name".into(),
                scope: "tags",
                value: device.name.clone().into(),
            },
            ScopedAttribute {
                name: "alert_count".into(),
                scope: "monitor",
                value: health.open_alerts().into(),
            },
            ScopedAttribute {
                name: "alerts".into(),
                scope: "monitor",
                value: health.is_critical().into(),
            },
        ];
        // What a Mender client reported; a document that no longer parses shows nothing
        // rather than failing the whole list.
        let reported: Vec<Value> = reported
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        attributes.extend(reported.into_iter().filter_map(|attribute| {
            Some(ScopedAttribute {
                name: attribute.get("name")?.as_str()?.to_owned(),
                scope: "inventory",
                value: attribute.get("value")?.clone(),
            })
        }));
        DeviceInventory { device, attributes }
    }
}

impl Fleet {
    /// One device's inventory.
    pub async fn device_inventory(&self, id: &str) -> Result<DeviceInventory, FleetError> {
        let device = self.device(id).await?;
        let reported = self
            .store
            .device_document(&device.id, crate::storage::DeviceDocument::Inventory)
            .await?;
        Ok(DeviceInventory::of(device, reported.as_deref()))
    }

    /// The inventories of the devices that match every filter, by name: one page and how
    /// many match in all.
    pub async fn device_inventories(
        &self,
        filters: &[AttributeFilter],
        page: u64,
        per_page: u64,
    ) -> Result<(Vec<DeviceInventory>, u64), FleetError> {
        let matching: Vec<DeviceInventory> = self
            .store
            .devices_with_inventory()
            .await?
            .into_iter()
            .map(|(device, reported)| DeviceInventory::of(device, reported.as_deref()))
            .filter(|inventory| filters.iter().all(|filter| filter.matches(inventory)))
            .collect();
        let total = matching.len() as u64;
        let skip =
            usize::try_from(page.saturating_sub(1).saturating_mul(per_page)).unwrap_or(usize::MAX);
        let take = usize::try_from(per_page).unwrap_or(usize::MAX);
        Ok((matching.into_iter().skip(skip).take(take).collect(), total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_mender_scoped_keys_and_compare_values_as_text() {
        let filter = AttributeFilter::parse("monitor/alerts", "true");
        assert_eq!(
            (filter.scope.as_str(), filter.name.as_str()),
            ("monitor", "alerts")
        );
        let unscoped = AttributeFilter::parse("device_type", "raspberrypi4");
        assert_eq!(unscoped.scope, "inventory");

        let device = Device {
            id: "d1".into(),
            name: "pi-1".into(),
            status: crate::storage::DeviceStatus::Accepted,
            muted: false,
            created_at: std::time::UNIX_EPOCH,
            last_seen_at: None,
            alert_count: 2,
            identity: None,
            key_fingerprint: None,
            heartbeat_interval: None,
            silent_after: crate::storage::SilentAfter::ServerDefault,
            silent_since: None,
        };
        let inventory = DeviceInventory::of(
            device,
            Some(r#"[{"name":"device_type","value":"raspberrypi4"},{"name":"cpus","value":4}]"#),
        );
        assert!(filter.matches(&inventory));
        assert!(unscoped.matches(&inventory));
        assert!(AttributeFilter::parse("monitor/alert_count", "2").matches(&inventory));
        assert!(AttributeFilter::parse("cpus", "4").matches(&inventory));
        assert!(!AttributeFilter::parse("monitor/alerts", "false").matches(&inventory));
        assert!(!AttributeFilter::parse("tags/device_type", "raspberrypi4").matches(&inventory));
    }
}
