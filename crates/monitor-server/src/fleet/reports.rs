//! What devices report (alerts, the checks they run, a Mender client's inventory) and what
//! users read of it.

use std::time::{Duration, SystemTime};

use monitor_wire::config_push::ConfigCheck;
use monitor_wire::Alert;

use super::error::{Entity, FleetError};
use super::service::Fleet;
use crate::storage::{
    AlertQuery, Device, DeviceDocument, LatestQuery, RecordedAlerts, StorageError, StoredAlert,
};

/// The longest alert name, and subject name, type or status, in characters.
const MAX_NAME_CHARS: usize = 1024;
const MAX_SUBJECT_FIELD_CHARS: usize = 256;
/// The most checks one configuration push may list.
const MAX_CHECKS: usize = 10_000;
/// How far ahead of the server's clock a device's timestamp may be. A device that is ahead
/// by more has a wrong clock, and its alerts would stay the "latest" of their subject.
const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// Checks a request's alerts: at most `max_alerts`, no empty or huge field, no time more
/// than a day ahead of `now`.
fn validate_alerts(alerts: &[Alert], max_alerts: usize, now: SystemTime) -> Result<(), String> {
    if alerts.len() > max_alerts {
        return Err(format!(
            "{} alerts in one request: send at most {max_alerts} at a time",
            alerts.len()
        ));
    }
    for (index, alert) in alerts.iter().enumerate() {
        let fields = [
            ("name", &alert.name, MAX_NAME_CHARS),
            ("subject.name", &alert.subject.name, MAX_SUBJECT_FIELD_CHARS),
            ("subject.type", &alert.subject.kind, MAX_SUBJECT_FIELD_CHARS),
            (
                "subject.status",
                &alert.subject.status,
                MAX_SUBJECT_FIELD_CHARS,
            ),
        ];
        for (field, value, max) in fields {
            if value.trim().is_empty() {
                return Err(format!("alert {index}: {field} is empty"));
            }
            let chars = value.chars().count();
            if chars > max {
                return Err(format!(
                    "alert {index}: {field} has {chars} characters, at most {max} are kept"
                ));
            }
        }
        if alert.timestamp.0 > now + MAX_CLOCK_AHEAD {
            return Err(format!(
                "alert {index}: timestamp {} is more than a day ahead of the server's clock ({}): \
                 set the device's clock (NTP)",
                alert.timestamp,
                monitor_wire::Timestamp(now)
            ));
        }
    }
    Ok(())
}

/// One inventory attribute as Mender clients send them.
#[derive(serde::Deserialize, serde::Serialize)]
pub struct InventoryAttribute {
    name: String,
    value: serde_json::Value,
}

fn to_json(what: &str, value: &impl serde::Serialize) -> Result<String, FleetError> {
    serde_json::to_string(value)
        .map_err(|error| FleetError::Storage(StorageError::Corrupt(format!("{what}: {error}"))))
}

impl Fleet {
    /// Validates and stores a device's alerts (resends are kept once) and queues the
    /// notifications of the state changes among them.
    pub async fn record_alerts(
        &self,
        device: &Device,
        alerts: &[Alert],
        max_alerts: usize,
        notify_interval: Duration,
    ) -> Result<RecordedAlerts, FleetError> {
        validate_alerts(alerts, max_alerts, SystemTime::now()).map_err(FleetError::Invalid)?;
        Ok(self
            .store
            .record_alerts(&device.id, alerts, SystemTime::now(), notify_interval)
            .await?)
    }

    /// Keeps the checks a device runs, as it pushed them.
    pub async fn record_checks(
        &self,
        device: &Device,
        checks: &[ConfigCheck],
    ) -> Result<(), FleetError> {
        if checks.len() > MAX_CHECKS {
            return Err(FleetError::Invalid(format!(
                "{} checks: at most {MAX_CHECKS} are kept",
                checks.len()
            )));
        }
        if let Some((index, check)) = checks
            .iter()
            .enumerate()
            .find(|(_, check)| check.name.trim().is_empty())
        {
            return Err(FleetError::Invalid(format!(
                "check {index} ({:?}): name is empty",
                check.kind
            )));
        }
        let json = to_json("configuration", &checks)?;
        self.store
            .set_device_document(&device.id, DeviceDocument::Config, &json, SystemTime::now())
            .await?;
        Ok(())
    }

    /// Keeps what a Mender client reports about itself; shown, nothing more.
    pub async fn record_inventory(
        &self,
        device: &Device,
        attributes: &[InventoryAttribute],
    ) -> Result<(), FleetError> {
        let json = to_json("inventory", &attributes)?;
        self.store
            .set_device_document(
                &device.id,
                DeviceDocument::Inventory,
                &json,
                SystemTime::now(),
            )
            .await?;
        Ok(())
    }

    /// The checks a device pushed last as JSON, `[]` before its first push.
    pub async fn checks_json(&self, device: &Device) -> Result<String, FleetError> {
        Ok(self
            .store
            .device_document(&device.id, DeviceDocument::Config)
            .await?
            .unwrap_or_else(|| "[]".to_owned()))
    }

    /// The checks a device pushed last (none before its first push).
    pub async fn checks(&self, device: &Device) -> Result<Vec<ConfigCheck>, FleetError> {
        Ok(self
            .store
            .device_document(&device.id, DeviceDocument::Config)
            .await?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default())
    }

    /// A Mender client's inventory attributes as (name, value) text.
    pub async fn inventory(&self, device: &Device) -> Result<Vec<(String, String)>, FleetError> {
        Ok(self
            .store
            .device_document(&device.id, DeviceDocument::Inventory)
            .await?
            .and_then(|json| serde_json::from_str::<Vec<serde_json::Value>>(&json).ok())
            .unwrap_or_default()
            .iter()
            .map(|attribute| {
                let value = &attribute["value"];
                (
                    attribute["name"].as_str().unwrap_or_default().to_owned(),
                    value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned),
                )
            })
            .collect())
    }

    /// A page of a device's alert history and how many alerts match in all.
    pub async fn alerts(
        &self,
        device: &Device,
        query: &AlertQuery,
    ) -> Result<(Vec<StoredAlert>, u64), FleetError> {
        Ok(self.store.alerts(&device.id, query).await?)
    }

    /// The latest alert of each of the device's subjects, newest first.
    pub async fn latest_alerts(&self, device: &Device) -> Result<Vec<StoredAlert>, FleetError> {
        Ok(self.store.latest_alerts(&device.id).await?)
    }

    /// A page of the latest alert of each subject from a level on, oldest first, and how
    /// many there are in all.
    pub async fn latest_alerts_page(
        &self,
        device: &Device,
        query: &LatestQuery,
    ) -> Result<(Vec<StoredAlert>, u64), FleetError> {
        Ok(self.store.latest_alerts_page(&device.id, query).await?)
    }

    /// One alert by its id, with its device.
    pub async fn alert(&self, id: &str) -> Result<(StoredAlert, Device), FleetError> {
        let not_found = || FleetError::not_found(Entity::Alert, id);
        let number: i64 = id.parse().map_err(|_| not_found())?;
        let alert = self.store.alert(number).await?.ok_or_else(not_found)?;
        let device = self.device(&alert.device_id).await?;
        Ok((alert, device))
    }

    /// Alerts per hour over the last day, for one device or the whole fleet.
    pub async fn alerts_per_day(
        &self,
        device: Option<&Device>,
        now: SystemTime,
    ) -> Result<Vec<(SystemTime, u64, u64)>, FleetError> {
        Ok(self
            .store
            .alerts_per_hour(
                device.map(|device| device.id.as_str()),
                now - Duration::from_secs(24 * 3600),
            )
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn alert(json: &str) -> Alert {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn alerts_with_empty_or_huge_fields_are_refused_with_the_field_named() {
        let good = r#"{"name":"n","level":"OK","timestamp":"2026-11-21T12:22:36Z","subject":{"name":"s","type":"log","status":"LOGCONTAINS"}}"#;
        let now = UNIX_EPOCH + Duration::from_secs(1_795_262_400); // 2026-11-21T12:00:00Z
        assert_eq!(validate_alerts(&[alert(good)], 10, now), Ok(()));
        let empty = good.replace(r#""type":"log""#, r#""type":" ""#);
        assert_eq!(
            validate_alerts(&[alert(good), alert(&empty)], 10, now),
            Err("alert 1: subject.type is empty".to_owned())
        );
        let long = good.replace(
            r#""name":"n""#,
            &format!(r#""name":"{}""#, "x".repeat(1025)),
        );
        assert_eq!(
            validate_alerts(&[alert(&long)], 10, now),
            Err("alert 0: name has 1025 characters, at most 1024 are kept".to_owned())
        );
        assert_eq!(
            validate_alerts(&[alert(good), alert(good)], 1, now),
            Err("2 alerts in one request: send at most 1 at a time".to_owned())
        );
        let ahead = good.replace("2026-11-21T12:22:36Z", "2026-11-23T12:22:36Z");
        assert_eq!(
            validate_alerts(&[alert(&ahead)], 10, now),
            Err("alert 0: timestamp 2026-11-23T12:22:36.000Z is more than a day ahead of the server's clock (2026-11-21T12:00:00.000Z): set the device's clock (NTP)".to_owned())
        );
    }
}
