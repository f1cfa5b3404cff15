//! The device JWTs the server issues after admission (HS256, as Mender's device tokens
//! carry `sub` = device id and `mender.device: true`).
//!
//! The signing key lives apart from the database, in its own file (`crate::device_key`,
//! which also rotates it); replicas are given the same file, so every replica accepts every
//! replica's tokens. A token is checked against the
//! device's current status on every request, so rejecting or decommissioning a device
//! takes effect at once, before the token expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// How long a device token lasts (Mender's default is a week too).
pub const DEVICE_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    jti: String,
    sub: String,
    iat: u64,
    exp: u64,
    iss: String,
    #[serde(rename = "mender.device")]
    device: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the device token is malformed")]
    Malformed,
    #[error("the device token's signature is not this server's")]
    Signature,
    #[error("the device token expired: the device must authenticate again")]
    Expired,
}

/// Signs and checks device tokens with one HMAC key.
pub struct JwtKeys {
    key: hmac::Key,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        JwtKeys {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A token for `device_id`, valid from `now` for [`DEVICE_TOKEN_LIFETIME`].
    pub fn issue(&self, device_id: &str, now: SystemTime) -> String {
        self.issue_with_id(device_id, &crate::credentials::new_id(), now)
    }

    /// The token with id (`jti`) `token_id` for `device_id`, issued at `issued_at`: the
    /// same inputs (and key) give the same token, so a token can be handed out again
    /// without being stored.
    pub fn issue_with_id(&self, device_id: &str, token_id: &str, issued_at: SystemTime) -> String {
        let issued = seconds(issued_at);
        let claims = Claims {
            jti: token_id.to_owned(),
            sub: device_id.to_owned(),
            iat: issued,
            exp: issued + DEVICE_TOKEN_LIFETIME.as_secs(),
            iss: "monitor-server".into(),
            device: true,
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let signed = format!("{header}.{claims}");
        let signature = URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, signed.as_bytes()).as_ref());
        format!("{signed}.{signature}")
    }

    /// The device id of a valid, unexpired device token.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<String, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwtError::Malformed)?;
        hmac::verify(
            &self.key,
            format!("{header}.{claims}").as_bytes(),
            &signature,
        )
        .map_err(|_| JwtError::Signature)?;
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(header)
                .map_err(|_| JwtError::Malformed)?,
        )
        .map_err(|_| JwtError::Malformed)?;
        if header["alg"] != "HS256" {
            return Err(JwtError::Malformed);
        }
        let claims: Claims = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(claims)
                .map_err(|_| JwtError::Malformed)?,
        )
        .map_err(|_| JwtError::Malformed)?;
        if !claims.device {
            return Err(JwtError::Malformed);
        }
        if seconds(now) >= claims.exp {
            return Err(JwtError::Expired);
        }
        Ok(claims.sub)
    }
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_until_it_expires_and_only_with_its_key() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef");
        let now = UNIX_EPOCH + Duration::from_secs(1_795_262_400);
        let token = keys.issue("device-1", now);
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(keys.verify(&token, now), Ok("device-1".to_owned()));
        assert_eq!(
            keys.verify(&token, now + DEVICE_TOKEN_LIFETIME),
            Err(JwtError::Expired)
        );
        let other = JwtKeys::new(b"another key, another server.....");
        assert_eq!(other.verify(&token, now), Err(JwtError::Signature));
        let mut forged = token.clone();
        forged.insert(token.find('.').unwrap() + 2, 'x');
        assert!(keys.verify(&forged, now).is_err());
        assert_eq!(keys.verify("a.b", now), Err(JwtError::Malformed));
    }
}
