//! The device API: `POST /api/devices/v1/devicemonitor/alert` and `…/config`, as Mender's.

use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use monitor_wire::config_push::ConfigCheck;
use monitor_wire::Alert;

use super::{ApiError, AppState, AuthenticatedDevice};
use crate::storage::DeviceDocument;

/// The longest alert name, and subject name, type or status, in characters.
const MAX_NAME_CHARS: usize = 1024;
const MAX_SUBJECT_FIELD_CHARS: usize = 256;
/// The most checks one configuration push may list.
const MAX_CHECKS: usize = 10_000;

pub(super) async fn post_alerts(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let started = Instant::now();
    let alerts: Vec<Alert> = serde_json::from_slice(&body).map_err(|error| {
        state.metrics.alert_requests_rejected.inc();
        ApiError::BadRequest(format!(
            "the body must be a JSON array of alerts ({{name, level, timestamp, subject}}): {error}"
        ))
    })?;
    if let Err(problem) = validate_alerts(
        &alerts,
        state.limits.max_alerts_per_request,
        SystemTime::now(),
    ) {
        state.metrics.alert_requests_rejected.inc();
        return Err(ApiError::BadRequest(problem));
    }
    let recorded = state
        .store
        .record_alerts(
            &device.id,
            &alerts,
            SystemTime::now(),
            state.notify_interval,
        )
        .await?;
    if recorded.notifications_queued {
        state.notifier_wake.notify_one();
    }
    let stored = recorded.stored;
    state.metrics.alerts_received.add(alerts.len() as u64);
    state.metrics.alerts_stored.add(stored.len() as u64);
    state
        .metrics
        .alert_request_seconds
        .observe(started.elapsed());
    tracing::debug!(
        device = %device.name,
        received = alerts.len(),
        new = stored.len(),
        "alerts"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// How far ahead of the server's clock a device's timestamp may be. A device that is ahead
/// by more has a wrong clock, and its alerts would stay the "latest" of their subject.
const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(24 * 3600);

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

pub(super) async fn post_config(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let checks: Vec<ConfigCheck> = serde_json::from_slice(&body).map_err(|error| {
        ApiError::BadRequest(format!(
            "the body must be a JSON array of checks ({{name, status, type, log|service|dbus}}): {error}"
        ))
    })?;
    if checks.len() > MAX_CHECKS {
        return Err(ApiError::BadRequest(format!(
            "{} checks: at most {MAX_CHECKS} are kept",
            checks.len()
        )));
    }
    if let Some((index, check)) = checks
        .iter()
        .enumerate()
        .find(|(_, check)| check.name.trim().is_empty())
    {
        return Err(ApiError::BadRequest(format!(
            "check {index} ({:?}): name is empty",
            check.kind
        )));
    }
    let json = serde_json::to_string(&checks)
        .map_err(|error| ApiError::Internal(format!("configuration: {error}")))?;
    state
        .store
        .set_device_document(&device.id, DeviceDocument::Config, &json, SystemTime::now())
        .await?;
    state.metrics.configs_received.inc();
    Ok(StatusCode::NO_CONTENT)
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

/// One inventory attribute as Mender clients send them.
#[derive(serde::Deserialize, serde::Serialize)]
pub(super) struct InventoryAttribute {
    name: String,
    value: serde_json::Value,
}

/// `PUT`/`PATCH /api/devices/v1/inventory/device/attributes`: what a Mender client reports
/// about itself (device type, artifact name, …); kept and shown, nothing more.
pub(super) async fn put_inventory(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let attributes: Vec<InventoryAttribute> = serde_json::from_slice(&body).map_err(|error| {
        ApiError::BadRequest(format!(
            "the body must be a JSON array of {{\"name\", \"value\"}}: {error}"
        ))
    })?;
    let json = serde_json::to_string(&attributes)
        .map_err(|error| ApiError::Internal(format!("inventory: {error}")))?;
    state
        .store
        .set_device_document(
            &device.id,
            DeviceDocument::Inventory,
            &json,
            SystemTime::now(),
        )
        .await?;
    Ok(StatusCode::OK)
}

/// `GET`/`POST /api/devices/v1/deployments/device/deployments/next`: this server deploys
/// nothing, so there is never an update (204), as Mender answers when none is pending.
pub(super) async fn next_deployment(
    AuthenticatedDevice(_device): AuthenticatedDevice,
) -> StatusCode {
    StatusCode::NO_CONTENT
}
