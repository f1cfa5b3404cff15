//! Secrets: tokens handed to devices and users, and user passwords.
//!
//! Tokens are random 32-byte strings with a prefix that says what they are for
//! (`mdt_` a device token, `mut_` a user's API or session token, `met_` an enrollment
//! token). Only their SHA-256 is
//! stored, so a leaked database lets nobody report or log in; the token is shown once, when
//! it is made. Passwords are hashed with Argon2id and a random salt.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ring::rand::{SecureRandom, SystemRandom};

/// What a token is for, written as its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Device,
    User,
    /// Admits devices at once (`auth_requests`' `tenant_token`).
    Enrollment,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Device => "mdt_",
            TokenKind::User => "mut_",
            TokenKind::Enrollment => "met_",
        }
    }
}

/// A new random token of a kind.
pub fn new_token(kind: TokenKind) -> String {
    format!("{}{}", kind.prefix(), hex::encode(random_bytes::<32>()))
}

/// A random id in UUID v4 form.
pub fn new_id() -> String {
    let mut bytes = random_bytes::<16>();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The stored form of a token: its SHA-256 in hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random number generator failed");
    bytes
}

/// Hashes a password with Argon2id (PHC string form).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters hashes any password")
        .to_string()
}

/// Whether `password` matches the stored hash of an account; for an account that does not
/// exist (`None`) it is never a match, but the same work is done against a dummy hash, so
/// the time a login takes does not tell whether its account exists.
pub fn verify_password_of_account(password: &str, stored_hash: Option<&str>) -> bool {
    static DUMMY_HASH: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| hash_password(&hex::encode(random_bytes::<16>())));
    match stored_hash {
        Some(stored_hash) => verify_password(password, stored_hash),
        None => {
            let _ = verify_password(password, &DUMMY_HASH);
            false
        }
    }
}

/// Whether `password` matches a hash made by [`hash_password`].
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horse ", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse"), "salted");
    }

    #[test]
    fn an_unknown_account_never_matches() {
        let hash = hash_password("correct horse");
        assert!(verify_password_of_account("correct horse", Some(&hash)));
        assert!(!verify_password_of_account("correct horse", None));
        assert!(!verify_password_of_account("", None));
    }

    #[test]
    fn tokens_say_what_they_are_and_are_stored_hashed() {
        let token = new_token(TokenKind::Device);
        assert!(
            token.starts_with("mdt_") && token.len() == 4 + 64,
            "{token}"
        );
        assert_ne!(token, new_token(TokenKind::Device));
        assert_eq!(token_hash(&token).len(), 64);
        assert_eq!(token_hash(&token), token_hash(&token));
    }
}
