//! Who may report: devices with a server-issued token or a device JWT, accepted; and
//! Mender-style admission (`auth_requests`), which adds a device as pending, or accepted
//! when it presents an enrollment token, and gives accepted devices a JWT.

use std::time::{Duration, SystemTime};

use super::error::{Entity, FleetError};
use super::service::Fleet;
use crate::credentials::{new_id, token_hash};
use crate::device_auth::{
    canonical_identity, device_name, key_fingerprint, AuthRequest, PublicKey,
};
use crate::jwt::DEVICE_TOKEN_LIFETIME;
use crate::metrics::Counter;
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
    /// its `X-MEN-Signature`, `pending` what limits new pending devices. Returns a device
    /// JWT once the device is accepted.
    ///
    /// Each identity and key is a device of its own: a second key for a known identity (an
    /// impostor, or the real device after a new key) is a second device, pending, which a
    /// user tells apart by its key's fingerprint.
    pub async fn admit(
        &self,
        request: &AuthRequest,
        body: &[u8],
        signature: Option<&str>,
        pending: &PendingLimits<'_>,
    ) -> Result<Admission, FleetError> {
        let invalid =
            |error: crate::device_auth::AdmissionError| FleetError::Invalid(error.to_string());
        let identity = canonical_identity(&request.id_data).map_err(invalid)?;
        let key = PublicKey::from_pem(&request.pubkey).map_err(invalid)?;
        let fingerprint = key_fingerprint(&request.pubkey).map_err(invalid)?;
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
        let known = self
            .store
            .devices_by_identity(&identity)
            .await?
            .into_iter()
            .find(|device| device.key_fingerprint.as_deref() == Some(fingerprint.as_str()));
        let device = match known {
            Some(device) if device.status == DeviceStatus::Pending && enrolled => {
                self.store
                    .set_device_status(&device.id, DeviceStatus::Accepted)
                    .await?;
                tracing::info!(device = %device.name, "accepted with an enrollment token");
                Device {
                    status: DeviceStatus::Accepted,
                    ..device
                }
            }
            Some(device) => device,
            None => {
                if !enrolled {
                    if let Some(wait) = (pending.new_pending_allowed)() {
                        return Ok(Admission::TryAgainIn(wait));
                    }
                }
                let public_key = request.pubkey.trim();
                let device = self
                    .add_asking_device(&identity, public_key, &fingerprint, enrolled)
                    .await?;
                if device.status == DeviceStatus::Pending {
                    let dropped = self.store.drop_oldest_pending(pending.max_pending).await?;
                    if dropped > 0 {
                        tracing::warn!(
                            dropped,
                            max_pending = pending.max_pending,
                            "dropped the oldest pending devices: more asked to join than max_pending_devices"
                        );
                        pending.dropped.add(dropped);
                    }
                }
                device
            }
        };
        ensure_accepted(&device)?;
        Ok(Admission::Token(self.device_token(&device).await?))
    }

    /// The device's current token while it has most of its life ahead, else a new one.
    ///
    /// Mender clients sign no nonce or time (the body is `id_data`, `pubkey` and
    /// `tenant_token`; RSA signatures are deterministic), so a replayed request is
    /// byte for byte what the device itself sends when it asks again, after a restart or
    /// a 401. It cannot be refused without shutting the device out; instead, a replay
    /// gets the token the device already holds: what the captured exchange showed anyway,
    /// nothing new. Only the token's id and time are kept, never the token.
    async fn device_token(&self, device: &Device) -> Result<String, FleetError> {
        let now = SystemTime::now();
        if let Some((token_id, issued_at)) = self.store.device_token_issued(&device.id).await? {
            let reuse_until = issued_at + DEVICE_TOKEN_LIFETIME - DEVICE_TOKEN_LIFETIME / 10;
            if issued_at <= now && now < reuse_until {
                return Ok(self.jwt.issue_with_id(&device.id, &token_id, issued_at));
            }
        }
        let token_id = new_id();
        self.store
            .set_device_token_issued(&device.id, &token_id, now)
            .await?;
        Ok(self.jwt.issue_with_id(&device.id, &token_id, now))
    }

    /// The device a user means by `key` when accepting or rejecting: its id, or else its
    /// name or the MAC address it asked with, when exactly one device has it. Several
    /// devices claiming one MAC are refused with each one's id and key fingerprint.
    pub async fn device_to_admit(&self, key: &str) -> Result<Device, FleetError> {
        if let Some(device) = self.store.device(key).await? {
            return Ok(device);
        }
        let candidates: Vec<Device> = self
            .store
            .devices(None, false)
            .await?
            .into_iter()
            .filter(|device| device.name == key || device.identity_mac().as_deref() == Some(key))
            .collect();
        match <[Device; 1]>::try_from(candidates) {
            Ok([device]) => Ok(device),
            Err(candidates) if candidates.is_empty() => {
                Err(FleetError::not_found(Entity::Device, key))
            }
            Err(candidates) => {
                let list: Vec<String> = candidates
                    .iter()
                    .map(|device| {
                        format!(
                            "  {} {} ({}) key SHA-256 {}",
                            device.id,
                            device.name,
                            device.status.as_str(),
                            device
                                .key_fingerprint
                                .as_deref()
                                .unwrap_or("none (a token device)")
                        )
                    })
                    .collect();
                Err(FleetError::Conflict(format!(
                    "{} devices claim `{key}`: give the id of the one whose key fingerprint \
                     matches the device's (see the README, \"Checking a device's key\"):\n{}",
                    candidates.len(),
                    list.join("\n")
                )))
            }
        }
    }

    async fn add_asking_device(
        &self,
        identity: &str,
        public_key: &str,
        fingerprint: &str,
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
            .add_identified_device(&name, identity, public_key, fingerprint, status)
            .await
        {
            Ok(device) => {
                tracing::info!(device = %device.name, key_sha256 = fingerprint, status = status.as_str(), "a new device asked to join");
                Ok(device)
            }
            // Another request (or replica) added it meanwhile: answer as for a known one.
            Err(StorageError::Conflict(_)) => self
                .store
                .devices_by_identity(identity)
                .await?
                .into_iter()
                .find(|device| device.key_fingerprint.as_deref() == Some(fingerprint))
                .ok_or_else(|| {
                    FleetError::Storage(StorageError::Corrupt(
                        "a device vanished while joining".into(),
                    ))
                }),
            Err(error) => Err(error.into()),
        }
    }
}

/// What limits new pending devices, handed in by the API for each request.
pub struct PendingLimits<'a> {
    /// Asked before a request adds a pending device: `None` to go on, or how long its
    /// source must wait (the per-address rate).
    pub new_pending_allowed: &'a (dyn Fn() -> Option<Duration> + Send + Sync),
    /// The most pending devices kept; past it the oldest are dropped.
    pub max_pending: u64,
    /// Counts the pending devices dropped for `max_pending`.
    pub dropped: &'a Counter,
}

/// The answer to a request to join.
#[derive(Debug)]
pub enum Admission {
    /// The device is accepted: its JWT.
    Token(String),
    /// The request would add a pending device, and its source asked too often.
    TryAgainIn(Duration),
}
