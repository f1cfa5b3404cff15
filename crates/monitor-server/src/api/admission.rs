//! `POST /api/devices/v1/authentication/auth_requests`: a device asks to join, as Mender
//! devices do, and gets a device JWT once it is accepted.
//!
//! New pending devices are limited per source address (`pending_devices_per_minute`,
//! 429 with `Retry-After`) and in number (`max_pending_devices`, the oldest dropped), so
//! whoever can reach the server cannot fill the pending list or bury a real device in it.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use super::error::{plain_text, ApiError};
use super::state::AppState;
use crate::device_auth::AuthRequest;
use crate::fleet::{Admission, PendingLimits};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/devices/v1/authentication/auth_requests",
        post(auth_request),
    )
}

async fn auth_request(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: AuthRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::BadRequest(format!(
            "the body must be {{\"id_data\", \"pubkey\", \"tenant_token\"}}: {error}"
        ))
    })?;
    let signature = headers
        .get("x-men-signature")
        .and_then(|value| value.to_str().ok());
    let source = source_key(&extensions);
    let new_pending_allowed = || match state.pending_rate_limiter.admit(&source) {
        Ok(()) => None,
        Err(ApiError::TooManyRequests { retry_after }) => Some(retry_after),
        Err(_) => None,
    };
    let pending = PendingLimits {
        new_pending_allowed: &new_pending_allowed,
        max_pending: state.limits.max_pending_devices,
        dropped: &state.metrics.pending_devices_dropped,
    };
    match state
        .fleet
        .admit(&request, &body, signature, &pending)
        .await?
    {
        Admission::Token(token) => Ok(plain_text(token)),
        Admission::TryAgainIn(retry_after) => {
            tracing::warn!(source = %source, "too many new pending devices from one address: 429");
            Err(ApiError::TooManyRequests { retry_after })
        }
    }
}

/// Whom the per-address limit counts: the peer's IPv4 address, or its IPv6 /64 (one
/// host usually holds a whole /64, and picks any address in it at will).
fn source_key(extensions: &Extensions) -> String {
    let Some(ConnectInfo(peer)) = extensions.get::<ConnectInfo<SocketAddr>>() else {
        return "unknown".to_owned();
    };
    match peer.ip().to_canonical() {
        IpAddr::V4(address) => address.to_string(),
        IpAddr::V6(address) => {
            let segments = address.segments();
            format!(
                "{:x}:{:x}:{:x}:{:x}::/64",
                segments[0], segments[1], segments[2], segments[3]
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(peer: &str) -> String {
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        source_key(&extensions)
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64_and_a_mapped_ipv4_as_itself() {
        assert_eq!(key_of("192.0.2.7:4000"), "192.0.2.7");
        assert_eq!(key_of("[::ffff:192.0.2.7]:4000"), "192.0.2.7");
        assert_eq!(
            key_of("[2001:db8:1:2:aaaa::1]:4000"),
            key_of("[2001:db8:1:2:bbbb::9]:5000")
        );
        assert_eq!(key_of("[2001:db8:1:2::1]:4000"), "2001:db8:1:2::/64");
        assert_ne!(
            key_of("[2001:db8:1:3::1]:4000"),
            key_of("[2001:db8:1:2::1]:4000")
        );
        assert_eq!(source_key(&Extensions::new()), "unknown");
    }
}
