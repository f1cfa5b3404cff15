//! Mender-style device admission: the identity a device claims, the public key it holds,
//! and the signature it makes over its `auth_requests` body with that key.
//!
//! `POST /api/devices/v1/authentication/auth_requests` carries
//! `{"id_data": "<JSON object as a string>", "pubkey": "<PEM>", "tenant_token": "…"}` and
//! the header `X-MEN-Signature: base64(signature over the exact body bytes)`. Keys are what
//! the Mender client makes: RSA (PKCS#1 v1.5 with SHA-256, 2048 to 8192 bits), ECDSA P-256
//! (SHA-256, ASN.1 signature) or Ed25519, as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).

use base64::Engine as _;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;

/// The body of an authentication request.
#[derive(Debug, Deserialize)]
pub struct AuthRequest {
    /// The identity, a JSON object serialized into a string (Mender's `id_data`).
    pub id_data: String,
    /// The device's public key, PEM.
    pub pubkey: String,
    /// Mender's tenant token; here an enrollment token that admits the device at once.
    #[serde(default)]
    pub tenant_token: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmissionError {
    #[error("id_data must be a JSON object in a string, such as \"{{\\\"mac\\\":\\\"dc:a6:32:01:02:03\\\"}}\": {0}")]
    Identity(String),
    #[error("pubkey: {0}")]
    PublicKey(String),
    #[error("X-MEN-Signature: {0}")]
    Signature(String),
}

/// A device's identity in one canonical form (keys sorted, no spaces), so the same identity
/// is recognised however the device spaced or ordered it.
pub fn canonical_identity(id_data: &str) -> Result<String, AdmissionError> {
    let value: serde_json::Value = serde_json::from_str(id_data)
        .map_err(|error| AdmissionError::Identity(error.to_string()))?;
    let object = value
        .as_object()
        .filter(|object| !object.is_empty())
        .ok_or_else(|| AdmissionError::Identity("not a non-empty object".into()))?;
    // serde_json's map is ordered by key (no `preserve_order` feature here).
    serde_json::to_string(object).map_err(|error| AdmissionError::Identity(error.to_string()))
}

/// A name for a device that asked to join: its MAC address when the identity has one (as
/// Mender's default identity script sends), else the identity itself.
pub fn device_name(canonical_identity: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(canonical_identity).unwrap_or_default();
    match value.get("mac").and_then(|mac| mac.as_str()) {
        Some(mac) if !mac.is_empty() => mac.to_owned(),
        _ => canonical_identity.chars().take(120).collect(),
    }
}

/// A public key the server can check signatures with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// PKCS#1 `RSAPublicKey` DER.
    Rsa(Vec<u8>),
    /// Uncompressed P-256 point.
    EcdsaP256(Vec<u8>),
    Ed25519(Vec<u8>),
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<PublicKey, AdmissionError> {
        PublicKey::from_spki(&spki_der(pem)?).ok_or_else(|| {
            AdmissionError::PublicKey(
                "an RSA, ECDSA P-256 or Ed25519 SubjectPublicKeyInfo was expected".into(),
            )
        })
    }

    fn from_spki(der: &[u8]) -> Option<PublicKey> {
        let (info, rest) = der_element(der, 0x30)?;
        if !rest.is_empty() {
            return None;
        }
        let (algorithm, info_rest) = der_element(info, 0x30)?;
        let (key_bits, tail) = der_element(info_rest, 0x03)?;
        if !tail.is_empty() {
            return None;
        }
        let (&unused_bits, key) = key_bits.split_first()?;
        if unused_bits != 0 {
            return None;
        }
        let (oid, parameters) = der_element(algorithm, 0x06)?;
        match oid {
            OID_RSA => Some(PublicKey::Rsa(key.to_vec())),
            OID_EC_PUBLIC_KEY => {
                let (curve, _) = der_element(parameters, 0x06)?;
                (curve == OID_P256).then(|| PublicKey::EcdsaP256(key.to_vec()))
            }
            OID_ED25519 => (key.len() == 32).then(|| PublicKey::Ed25519(key.to_vec())),
            _ => None,
        }
    }

    /// Checks `X-MEN-Signature` (base64) over `message`.
    pub fn verify(&self, message: &[u8], signature_base64: &str) -> Result<(), AdmissionError> {
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature_base64.trim())
            .map_err(|error| AdmissionError::Signature(format!("not base64: {error}")))?;
        let (algorithm, key): (&dyn signature::VerificationAlgorithm, &[u8]) = match self {
            PublicKey::Rsa(key) => (&signature::RSA_PKCS1_2048_8192_SHA256, key),
            PublicKey::EcdsaP256(key) => (&signature::ECDSA_P256_SHA256_ASN1, key),
            PublicKey::Ed25519(key) => (&signature::ED25519, key),
        };
        UnparsedPublicKey::new(algorithm, key)
            .verify(message, &signature)
            .map_err(|_| {
                AdmissionError::Signature(
                    "does not verify with the request's public key over its body".into(),
                )
            })
    }
}

/// The DER (SubjectPublicKeyInfo) inside a PEM `PUBLIC KEY`.
fn spki_der(pem: &str) -> Result<Vec<u8>, AdmissionError> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|rest| rest.trim_end().strip_suffix("-----END PUBLIC KEY-----"))
        .ok_or_else(|| {
            AdmissionError::PublicKey(
                "not a PEM public key (-----BEGIN PUBLIC KEY----- … -----END PUBLIC KEY-----)"
                    .into(),
            )
        })?;
    let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(base64)
        .map_err(|error| AdmissionError::PublicKey(format!("the PEM's base64: {error}")))
}

/// A public key's fingerprint as a user compares it with the device's: the SHA-256 of its
/// DER SubjectPublicKeyInfo in lowercase hex, exactly what
/// `openssl pkey -in <private key> -pubout -outform DER | sha256sum` prints on the device.
/// Hex rather than ssh's base64 so that line needs no other tool; all 64 digits are shown,
/// since a short prefix is cheap to match with a key made for the purpose.
pub fn key_fingerprint(pem: &str) -> Result<String, AdmissionError> {
    let der = spki_der(pem)?;
    Ok(hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        &der,
    )))
}

/// One DER element with `tag` at the start of `input`: its contents and what follows.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |length, &byte| (length << 8) | usize::from(byte));
        (length, &rest[count..])
    };
    (rest.len() >= length).then(|| rest.split_at(length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn pem(spki: &[u8]) -> String {
        let encoded = base64::engine::general_purpose::STANDARD.encode(spki);
        let lines: Vec<&str> = encoded
            .as_bytes()
            .chunks(64)
            .map(|chunk| std::str::from_utf8(chunk).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn ed25519_and_p256_signatures_verify_only_over_the_signed_body() {
        let random = SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&random).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(document.as_ref()).unwrap();
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let key = PublicKey::from_pem(&pem(&spki)).unwrap();
        let signature = b64(pair.sign(b"body").as_ref());
        assert_eq!(key.verify(b"body", &signature), Ok(()));
        assert!(key.verify(b"body!", &signature).is_err());

        let algorithm = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let document = EcdsaKeyPair::generate_pkcs8(algorithm, &random).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(algorithm, document.as_ref(), &random).unwrap();
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let key = PublicKey::from_pem(&pem(&spki)).unwrap();
        let signature = b64(pair.sign(&random, b"body").unwrap().as_ref());
        assert_eq!(key.verify(b"body", &signature), Ok(()));
        assert!(key.verify(b"other", &signature).is_err());
    }

    #[test]
    fn keys_that_are_not_supported_are_refused_with_a_reason() {
        assert!(matches!(
            PublicKey::from_pem("ssh-rsa AAAA"),
            Err(AdmissionError::PublicKey(_))
        ));
        let not_a_key = pem(&[0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(PublicKey::from_pem(&not_a_key).is_err());
    }

    #[test]
    fn a_fingerprint_is_the_sha256_of_the_der_key_in_hex() {
        let spki = [
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00, 1, 2, 3, 4, 5,
            6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
            29, 30, 31, 32,
        ];
        let expected = hex::encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        assert_eq!(key_fingerprint(&pem(&spki)).unwrap(), expected);
        assert_eq!(expected.len(), 64);
    }

    #[test]
    fn identities_are_compared_in_one_canonical_form() {
        assert_eq!(
            canonical_identity(r#"{ "sn": "42", "mac": "dc:a6:32:01:02:03" }"#).unwrap(),
            r#"{"mac":"dc:a6:32:01:02:03","sn":"42"}"#
        );
        assert!(canonical_identity("[]").is_err());
        assert!(canonical_identity("{}").is_err());
        assert_eq!(
            device_name(r#"{"mac":"dc:a6:32:01:02:03","sn":"42"}"#),
            "dc:a6:32:01:02:03"
        );
        assert_eq!(device_name(r#"{"sn":"42"}"#), r#"{"sn":"42"}"#);
    }
}
