//! Users, their sessions and API tokens, and enrollment tokens.

use std::time::{Duration, SystemTime};

use super::error::{Entity, FleetError};
use super::service::Fleet;
use crate::credentials::{
    hash_password, new_token, token_hash, verify_password_of_account, TokenKind,
};
use crate::storage::User;

/// How long a login lasts (the API's session token and the dashboard's cookie alike).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// The shortest password a user may choose.
const MIN_PASSWORD_CHARS: usize = 8;

impl Fleet {
    /// Checks an email and password and, when they match, makes a session token (named
    /// `label`, lasting [`SESSION_LIFETIME`]). Callers over the network hold a turn of the
    /// [`LoginGuard`](crate::api::LoginGuard) around it.
    pub async fn log_in(
        &self,
        email: &str,
        password: String,
        label: &str,
    ) -> Result<String, FleetError> {
        let user = self.store.user_by_email(email.trim()).await?;
        // Argon2 is slow on purpose; keep it off the async workers. An unknown account is
        // checked against a dummy hash: the same work, so the time tells nothing.
        let stored = user.as_ref().map(|user| user.password_hash.clone());
        let matches = tokio::task::spawn_blocking(move || {
            verify_password_of_account(&password, stored.as_deref())
        })
        .await
        .unwrap_or(false);
        let Some(user) = user.filter(|_| matches) else {
            return Err(FleetError::Unauthorized("wrong email or password".into()));
        };
        // Logins are rare: a good moment to forget sessions that ran out.
        self.store.remove_expired_tokens(SystemTime::now()).await?;
        self.make_user_token(&user, label, Some(SESSION_LIFETIME))
            .await
    }

    /// The user a session or API token belongs to, if it has not expired.
    pub async fn user_for_token(&self, token: &str) -> Result<User, FleetError> {
        self.store
            .user_by_token_hash(&token_hash(token), SystemTime::now())
            .await?
            .ok_or_else(|| {
                FleetError::Unauthorized("unknown or expired token: log in again".into())
            })
    }

    /// Adds a user who logs in with `email` and `password`.
    pub async fn add_user(&self, email: &str, password: &str) -> Result<User, FleetError> {
        if !email.contains('@') {
            return Err(FleetError::Invalid(format!(
                "`{email}` is not an email address: users log in with their email"
            )));
        }
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(FleetError::Invalid(format!(
                "the password is shorter than {MIN_PASSWORD_CHARS} characters: choose a longer one"
            )));
        }
        Ok(self.store.add_user(email, &hash_password(password)).await?)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<User, FleetError> {
        self.store
            .user_by_email(email)
            .await?
            .ok_or_else(|| FleetError::not_found(Entity::User, email))
    }

    /// A personal API token for scripts and dashboards, shown once; without a lifetime it
    /// does not expire.
    pub async fn add_api_token(
        &self,
        user: &User,
        name: &str,
        lifetime: Option<Duration>,
    ) -> Result<String, FleetError> {
        if name.trim().is_empty() {
            return Err(FleetError::Invalid("name: give the token a name".into()));
        }
        self.make_user_token(user, name, lifetime).await
    }

    async fn make_user_token(
        &self,
        user: &User,
        name: &str,
        lifetime: Option<Duration>,
    ) -> Result<String, FleetError> {
        let token = new_token(TokenKind::User);
        self.store
            .add_api_token(&user.id, name, &token_hash(&token), expiry(lifetime))
            .await?;
        Ok(token)
    }

    /// An enrollment token, shown once: devices presenting it are accepted at once.
    pub async fn add_enrollment_token(
        &self,
        name: &str,
        lifetime: Option<Duration>,
    ) -> Result<String, FleetError> {
        let token = new_token(TokenKind::Enrollment);
        self.store
            .add_enrollment_token(name, &token_hash(&token), expiry(lifetime))
            .await?;
        Ok(token)
    }
}

/// When a token made now with this lifetime expires; never without one.
fn expiry(lifetime: Option<Duration>) -> Option<SystemTime> {
    lifetime.map(|lifetime| SystemTime::now() + lifetime)
}
