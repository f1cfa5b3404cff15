//! Users, their sessions and API tokens, and enrollment tokens: making, listing, revoking.
//!
//! Rules: a token made through the API or the dashboard never outlives the session or token
//! that made it, and lasts at most [`MAX_TOKEN_LIFETIME`]; only the command line (an
//! administrator on the server) makes tokens that never expire. Logging out ends the
//! session in the database; removing a user removes their sessions and tokens; changing a
//! password ends their sessions.

use std::time::{Duration, SystemTime};

use super::error::{Entity, FleetError};
use super::service::Fleet;
use crate::credentials::{
    hash_password, new_token, token_hash, verify_password_of_account, TokenKind,
};
use crate::storage::{EnrollmentToken, User, UserToken, UserTokenKind};

/// How long a login lasts (the API's session token and the dashboard's cookie alike).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest lifetime a token may be given (ten years).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The shortest password a user may choose.
const MIN_PASSWORD_CHARS: usize = 8;

/// Who asks for a new token, which bounds its life.
#[derive(Debug, Clone, Copy)]
pub enum TokenMaker<'a> {
    /// The command line, run by whoever administers the server: may make tokens that never
    /// expire.
    Administrator,
    /// A request made with this session or token: the new token expires no later.
    Token(&'a UserToken),
}

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
        let token = new_token(TokenKind::User);
        self.store
            .add_user_token(
                &user.id,
                label,
                UserTokenKind::Session,
                &token_hash(&token),
                Some(SystemTime::now() + SESSION_LIFETIME),
            )
            .await?;
        Ok(token)
    }

    /// Ends the session (or removes the token) `token`, at once, for every replica.
    pub async fn log_out(&self, token: &str) -> Result<(), FleetError> {
        self.store.remove_token_by_hash(&token_hash(token)).await?;
        Ok(())
    }

    /// The user a session or API token belongs to, if it has not expired.
    pub async fn user_for_token(&self, token: &str) -> Result<User, FleetError> {
        Ok(self.user_and_token(token).await?.0)
    }

    /// The user a session or API token belongs to, and the token, if it has not expired.
    pub async fn user_and_token(&self, token: &str) -> Result<(User, UserToken), FleetError> {
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
        check_password(password)?;
        Ok(self.store.add_user(email, &hash_password(password)).await?)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<User, FleetError> {
        self.store
            .user_by_email(email)
            .await?
            .ok_or_else(|| FleetError::not_found(Entity::User, email))
    }

    pub async fn user_by_id(&self, id: &str) -> Result<User, FleetError> {
        self.store
            .user(id)
            .await?
            .ok_or_else(|| FleetError::not_found(Entity::User, id))
    }

    /// A user by id, or by email.
    pub async fn user_by_id_or_email(&self, key: &str) -> Result<User, FleetError> {
        match self.store.user(key).await? {
            Some(user) => Ok(user),
            None => self.user_by_email(key).await,
        }
    }

    pub async fn users(&self) -> Result<Vec<User>, FleetError> {
        Ok(self.store.users().await?)
    }

    /// Removes a user with all their sessions and tokens.
    pub async fn remove_user(&self, user: &User) -> Result<(), FleetError> {
        if !self.store.remove_user(&user.id).await? {
            return Err(FleetError::not_found(Entity::User, &user.email));
        }
        tracing::info!(user = %user.email, "removed a user with their sessions and tokens");
        Ok(())
    }

    /// Sets a user's password; their sessions end (API tokens stay).
    pub async fn set_password(&self, user: &User, password: &str) -> Result<(), FleetError> {
        check_password(password)?;
        if !self
            .store
            .set_password(&user.id, &hash_password(password))
            .await?
        {
            return Err(FleetError::not_found(Entity::User, &user.email));
        }
        Ok(())
    }

    /// A personal API token for scripts and dashboards, shown once. Its life is bounded by
    /// `maker` (see [`TokenMaker`]); without a lifetime it lasts as long as its maker
    /// allows.
    pub async fn add_api_token(
        &self,
        user: &User,
        name: &str,
        lifetime: Option<Duration>,
        maker: TokenMaker<'_>,
    ) -> Result<String, FleetError> {
        if name.trim().is_empty() {
            return Err(FleetError::Invalid("name: give the token a name".into()));
        }
        let expires_at = expiry(lifetime, maker)?;
        let token = new_token(TokenKind::User);
        self.store
            .add_user_token(
                &user.id,
                name.trim(),
                UserTokenKind::Api,
                &token_hash(&token),
                expires_at,
            )
            .await?;
        Ok(token)
    }

    /// The sessions and tokens of one user, or of everyone, that have not expired.
    pub async fn user_tokens(&self, user: Option<&User>) -> Result<Vec<UserToken>, FleetError> {
        Ok(self
            .store
            .user_tokens(user.map(|user| user.id.as_str()), SystemTime::now())
            .await?)
    }

    /// Removes a session or token by id: only `user`'s own when a user asks.
    pub async fn remove_user_token(&self, id: &str, user: Option<&User>) -> Result<(), FleetError> {
        if self
            .store
            .remove_user_token(id, user.map(|user| user.id.as_str()))
            .await?
        {
            Ok(())
        } else {
            Err(FleetError::not_found(Entity::Token, id))
        }
    }

    /// An enrollment token, shown once: devices presenting it are accepted at once.
    pub async fn add_enrollment_token(
        &self,
        name: &str,
        lifetime: Option<Duration>,
        maker: TokenMaker<'_>,
    ) -> Result<String, FleetError> {
        if name.trim().is_empty() {
            return Err(FleetError::Invalid("name: give the token a name".into()));
        }
        let expires_at = expiry(lifetime, maker)?;
        let token = new_token(TokenKind::Enrollment);
        self.store
            .add_enrollment_token(name.trim(), &token_hash(&token), expires_at)
            .await?;
        Ok(token)
    }

    pub async fn enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>, FleetError> {
        Ok(self.store.enrollment_tokens().await?)
    }

    /// Removes an enrollment token by id: devices presenting it are no longer accepted.
    pub async fn remove_enrollment_token(&self, id: &str) -> Result<(), FleetError> {
        if self.store.remove_enrollment_token(id).await? {
            Ok(())
        } else {
            Err(FleetError::not_found(Entity::EnrollmentToken, id))
        }
    }
}

fn check_password(password: &str) -> Result<(), FleetError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(FleetError::Invalid(format!(
            "the password is shorter than {MIN_PASSWORD_CHARS} characters: choose a longer one"
        )));
    }
    Ok(())
}

/// When a token made now expires: after `lifetime` (at most [`MAX_TOKEN_LIFETIME`]), never
/// later than the token that makes it, and never only when an administrator asks for that.
fn expiry(
    lifetime: Option<Duration>,
    maker: TokenMaker<'_>,
) -> Result<Option<SystemTime>, FleetError> {
    if let Some(lifetime) = lifetime {
        if lifetime.is_zero() || lifetime > MAX_TOKEN_LIFETIME {
            return Err(FleetError::Invalid(format!(
                "expires_in: a token lasts 1 to {} seconds (ten years): give a lifetime in that range",
                MAX_TOKEN_LIFETIME.as_secs()
            )));
        }
    }
    let now = SystemTime::now();
    let asked = lifetime.map(|lifetime| now + lifetime);
    Ok(match maker {
        TokenMaker::Administrator => asked,
        TokenMaker::Token(parent) => {
            let longest = now + MAX_TOKEN_LIFETIME;
            let bound = parent.expires_at.map_or(longest, |at| at.min(longest));
            Some(asked.map_or(bound, |asked| asked.min(bound)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(expires_at: Option<SystemTime>) -> UserToken {
        UserToken {
            id: "t".into(),
            user_id: "u".into(),
            user_email: "a@example.com".into(),
            name: "session".into(),
            kind: UserTokenKind::Session,
            created_at: SystemTime::now(),
            expires_at,
        }
    }

    #[test]
    fn a_token_never_outlives_its_maker_and_only_administrators_make_eternal_ones() {
        let hour = SystemTime::now() + Duration::from_secs(3600);
        let session = parent(Some(hour));
        let year = Some(Duration::from_secs(365 * 24 * 3600));
        assert_eq!(
            expiry(year, TokenMaker::Token(&session)).unwrap(),
            Some(hour)
        );
        assert_eq!(
            expiry(None, TokenMaker::Token(&session)).unwrap(),
            Some(hour)
        );
        let eternal = parent(None);
        let made = expiry(None, TokenMaker::Token(&eternal)).unwrap().unwrap();
        assert!(made <= SystemTime::now() + MAX_TOKEN_LIFETIME);
        assert_eq!(expiry(None, TokenMaker::Administrator).unwrap(), None);
        for out_of_range in [
            Duration::ZERO,
            MAX_TOKEN_LIFETIME + Duration::from_secs(1),
            Duration::MAX,
        ] {
            assert!(matches!(
                expiry(Some(out_of_range), TokenMaker::Administrator),
                Err(FleetError::Invalid(_))
            ));
        }
    }
}
