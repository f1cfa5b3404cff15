//! Users of the management API, their API and session tokens, and enrollment tokens.

use std::time::SystemTime;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use super::sql::{now_millis, to_millis, StorageError};
use super::store::Store;
use crate::credentials::new_id;

/// A user of the management API.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: String,
}

impl Store {
    pub async fn add_user(&self, email: &str, password_hash: &str) -> Result<User, StorageError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(email)
        .bind(password_hash)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(|error| {
            StorageError::from_unique_violation(error, || {
                format!("a user with the email `{email}` exists already")
            })
        })?;
        Ok(User {
            id,
            email: email.to_owned(),
            password_hash: password_hash.to_owned(),
        })
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StorageError> {
        self.fetch_user(
            sqlx::query("SELECT id, email, password_hash FROM users WHERE email = $1").bind(email),
        )
        .await
    }

    /// The user a query selects (`id, email, password_hash`), if any.
    async fn fetch_user<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Option<User>, StorageError> {
        let row = query.fetch_optional(&self.pool).await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    /// Stores a token's hash for a user; `expires_at` None never expires.
    pub async fn add_api_token(
        &self,
        user_id: &str,
        name: &str,
        token_hash: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<String, StorageError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(name)
        .bind(token_hash)
        .bind(now_millis())
        .bind(expires_at.map(to_millis))
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Forgets tokens that expired before `now` (old sessions); returns how many.
    pub async fn remove_expired_tokens(&self, now: SystemTime) -> Result<u64, StorageError> {
        let result =
            sqlx::query("DELETE FROM api_tokens WHERE expires_at IS NOT NULL AND expires_at <= $1")
                .bind(to_millis(now))
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected())
    }

    /// The user a token belongs to, if the token exists and has not expired at `now`.
    pub async fn user_by_token_hash(
        &self,
        token_hash: &str,
        now: SystemTime,
    ) -> Result<Option<User>, StorageError> {
        self.fetch_user(
            sqlx::query(
                "SELECT u.id, u.email, u.password_hash FROM api_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)",
            )
            .bind(token_hash)
            .bind(to_millis(now)),
        )
        .await
    }

    /// Stores an enrollment token's hash: devices presenting it are accepted at once.
    pub async fn add_enrollment_token(
        &self,
        name: &str,
        token_hash: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO enrollment_tokens (id, name, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_id())
        .bind(name)
        .bind(token_hash)
        .bind(now_millis())
        .bind(expires_at.map(to_millis))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether an enrollment token exists and has not expired at `now`.
    pub async fn enrollment_token_valid(
        &self,
        token_hash: &str,
        now: SystemTime,
    ) -> Result<bool, StorageError> {
        let row = sqlx::query(
            "SELECT id FROM enrollment_tokens \
             WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(token_hash)
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }
}

fn user_from_row(row: &AnyRow) -> Result<User, StorageError> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
    })
}
