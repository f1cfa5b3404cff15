//! `POST /api/devices/v1/authentication/auth_requests`: a device asks to join, as Mender
//! devices do, and gets a device JWT once it is accepted.

use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::{plain_text, ApiError, AppState};
use crate::credentials::token_hash;
use crate::device_auth::{canonical_identity, device_name, AuthRequest, PublicKey};
use crate::storage::{DeviceStatus, StorageError};

pub(super) async fn auth_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: AuthRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::BadRequest(format!(
            "the body must be {{\"id_data\", \"pubkey\", \"tenant_token\"}}: {error}"
        ))
    })?;
    let identity = canonical_identity(&request.id_data)
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let key = PublicKey::from_pem(&request.pubkey)
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let signature = headers
        .get("x-men-signature")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "X-MEN-Signature: missing (the body signed with the device's key)".into(),
            )
        })?;
    key.verify(&body, signature)
        .map_err(|error| ApiError::Unauthorized(error.to_string()))?;

    let enrolled = match request.tenant_token.as_deref().map(str::trim) {
        Some(token) if !token.is_empty() => {
            state
                .store
                .enrollment_token_valid(&token_hash(token), SystemTime::now())
                .await?
        }
        _ => false,
    };
    let public_key = request.pubkey.trim().to_owned();
    let device = match state.store.device_by_identity(&identity).await? {
        Some((device, stored_key)) => {
            if stored_key.as_deref().map(str::trim) != Some(public_key.as_str()) {
                tracing::warn!(device = %device.name, "an authentication request with another key for a known identity");
                return Err(ApiError::Unauthorized(
                    "this identity is known with another key: decommission the device and let it ask again".into(),
                ));
            }
            if device.status == DeviceStatus::Pending && enrolled {
                state
                    .store
                    .set_device_status(&device.id, DeviceStatus::Accepted)
                    .await?;
                tracing::info!(device = %device.name, "accepted with an enrollment token");
                crate::storage::Device {
                    status: DeviceStatus::Accepted,
                    ..device
                }
            } else {
                device
            }
        }
        None => {
            let status = if enrolled {
                DeviceStatus::Accepted
            } else {
                DeviceStatus::Pending
            };
            let name = device_name(&identity);
            match state
                .store
                .add_identified_device(&name, &identity, &public_key, status)
                .await
            {
                Ok(device) => {
                    tracing::info!(device = %device.name, status = status.as_str(), "a new device asked to join");
                    device
                }
                // Another request (or replica) added it meanwhile: answer as for a known one.
                Err(StorageError::Conflict(_)) => state
                    .store
                    .device_by_identity(&identity)
                    .await?
                    .map(|(device, _)| device)
                    .ok_or_else(|| ApiError::Internal("a device vanished while joining".into()))?,
                Err(error) => return Err(error.into()),
            }
        }
    };
    match device.status {
        DeviceStatus::Accepted => Ok(plain_text(state.jwt.issue(&device.id, SystemTime::now()))),
        other => Err(ApiError::Unauthorized(format!(
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
