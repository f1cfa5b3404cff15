//! Who may report: devices with a server-issued token or a device JWT, accepted; and
//! Mender-style admission (`auth_requests`), which adds a device as pending, or accepted
//! when it presents an enrollment token, and gives accepted devices a JWT.

use std::time::SystemTime;

use super::error::FleetError;
use super::service::Fleet;
use crate::credentials::token_hash;
use crate::device_auth::{canonical_identity, device_name, AuthRequest, PublicKey};
use crate::storage::{Device, DeviceStatus, StorageError};

/// Only accepted devices report; the others are told where they stand.
fn ensure_accepted(device: &Device) -> Result<(), FleetError> {
    match device.status {
        DeviceStatus::Accepted => Ok(()),
        other => Err(FleetError::Unauthorized(format!(
            "the device is {}{}",
            other.as_str(),
            if other == DeviceStatus::Pending {
                ": a user must accept it"
            } else {
                ""
            }
        ))),
    }
}

impl Fleet {
    /// The accepted device a bearer token belongs to: a device JWT from `auth_requests`
    /// (three dot-separated parts) or a server-issued device token.
    pub async fn reporting_device(&self, token: &str) -> Result<Device, FleetError> {
        let device = if token.matches('.').count() == 2 {
            let device_id = self
                .jwt
                .verify(token, SystemTime::now())
                .await
                .map_err(|error| FleetError::Unauthorized(error.to_string()))?;
            self.store.device(&device_id).await?
        } else {
            self.store.device_by_token_hash(&token_hash(token)).await?
        }
        .ok_or_else(|| FleetError::Unauthorized("unknown device token".into()))?;
        ensure_accepted(&device)?;
        Ok(device)
    }

    /// Answers a device's request to join: `body` is the exact request body, `signature`
    /// its `X-MEN-Signature`. Returns a device JWT once the device is accepted.
    pub async fn admit(
        &self,
        request: &AuthRequest,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<String, FleetError> {
        let invalid =
            |error: crate::device_auth::AdmissionError| FleetError::Invalid(error.to_string());
        let identity = canonical_identity(&request.id_data).map_err(invalid)?;
        let key = PublicKey::from_pem(&request.pubkey).map_err(invalid)?;
        let signature = signature.ok_or_else(|| {
            FleetError::Invalid(
                "X-MEN-Signature: missing (the body signed with the device's key)".into(),
            )
        })?;
        key.verify(body, signature)
            .map_err(|error| FleetError::Unauthorized(error.to_string()))?;

        let enrolled = match request.tenant_token.as_deref().map(str::trim) {
            Some(token) if !token.is_empty() => {
                self.store
                    .enrollment_token_valid(&token_hash(token), SystemTime::now())
                    .await?
            }
            _ => false,
        };
        let public_key = request.pubkey.trim().to_owned();
        let device = match self.store.device_by_identity(&identity).await? {
            Some((device, stored_key)) => {
                if stored_key.as_deref().map(str::trim) != Some(public_key.as_str()) {
                    tracing::warn!(device = %device.name, "an authentication request with another key for a known identity");
                    return Err(FleetError::Unauthorized(
                        "this identity is known with another key: decommission the device and let it ask again".into(),
                    ));
                }
                if device.status == DeviceStatus::Pending && enrolled {
                    self.store
                        .set_device_status(&device.id, DeviceStatus::Accepted)
                        .await?;
                    tracing::info!(device = %device.name, "accepted with an enrollment token");
                    Device {
                        status: DeviceStatus::Accepted,
                        ..device
                    }
                } else {
                    device
                }
            }
            None => {
                self.add_asking_device(&identity, &public_key, enrolled)
                    .await?
            }
        };
        ensure_accepted(&device)?;
        Ok(self.jwt.issue(&device.id, SystemTime::now()))
    }

    async fn add_asking_device(
        &self,
        identity: &str,
        public_key: &str,
        enrolled: bool,
    ) -> Result<Device, FleetError> {
        let status = if enrolled {
            DeviceStatus::Accepted
        } else {
            DeviceStatus::Pending
        };
        let name = device_name(identity);
        match self
            .store
            .add_identified_device(&name, identity, public_key, status)
            .await
        {
            Ok(device) => {
                tracing::info!(device = %device.name, status = status.as_str(), "a new device asked to join");
                Ok(device)
            }
            // Another request (or replica) added it meanwhile: answer as for a known one.
            Err(StorageError::Conflict(_)) => self
                .store
                .device_by_identity(identity)
                .await?
                .map(|(device, _)| device)
                .ok_or_else(|| {
                    FleetError::Storage(StorageError::Corrupt(
                        "a device vanished while joining".into(),
                    ))
                }),
            Err(error) => Err(error.into()),
        }
    }
}
