//! Users of the management API, their API and session tokens, and enrollment tokens.

use std::time::SystemTime;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use super::sql::{from_millis, now_millis, to_millis, StorageError};
use super::store::Store;
use crate::credentials::new_id;

/// A user of the management API.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: String,
}

/// What a user's token is: a login (ended by logging out) or a token made for a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserTokenKind {
    Session,
    Api,
}

impl UserTokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UserTokenKind::Session => "session",
            UserTokenKind::Api => "api",
        }
    }
}

/// A user's token as listed (its secret is never kept, only its hash).
#[derive(Debug, Clone, PartialEq)]
pub struct UserToken {
    pub id: String,
    pub user_id: String,
    pub user_email: String,
    pub name: String,
    pub kind: UserTokenKind,
    pub created_at: SystemTime,
    /// None: it does not expire.
    pub expires_at: Option<SystemTime>,
}

/// An enrollment token as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentToken {
    pub id: String,
    pub name: String,
    pub created_at: SystemTime,
    pub expires_at: Option<SystemTime>,
}

const USER_TOKEN_COLUMNS: &str = "t.id, t.user_id, u.email AS user_email, t.name, t.kind, \
     t.created_at, t.expires_at FROM api_tokens t JOIN users u ON u.id = t.user_id";

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

    pub async fn user(&self, id: &str) -> Result<Option<User>, StorageError> {
        self.fetch_user(
            sqlx::query("SELECT id, email, password_hash FROM users WHERE id = $1").bind(id),
        )
        .await
    }

    /// Every user, by email.
    pub async fn users(&self) -> Result<Vec<User>, StorageError> {
        sqlx::query("SELECT id, email, password_hash FROM users ORDER BY email")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    /// Removes a user with every session and token of theirs; false if there was none.
    pub async fn remove_user(&self, id: &str) -> Result<bool, StorageError> {
        let _turn = self.write_turn().await;
        let mut transaction = self.pool.begin().await?;
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        let removed = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        transaction.commit().await?;
        Ok(removed > 0)
    }

    /// Sets a user's password hash and ends their sessions (their API tokens stay).
    pub async fn set_password(&self, id: &str, password_hash: &str) -> Result<bool, StorageError> {
        let _turn = self.write_turn().await;
        let mut transaction = self.pool.begin().await?;
        let changed = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1 AND kind = $2")
            .bind(id)
            .bind(UserTokenKind::Session.as_str())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(changed > 0)
    }

    /// The user a query selects (`id, email, password_hash`), if any.
    async fn fetch_user<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Option<User>, StorageError> {
        let row = query.fetch_optional(&self.pool).await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    /// Stores a token's hash for a user; `expires_at` None never expires. Returns its id.
    pub async fn add_user_token(
        &self,
        user_id: &str,
        name: &str,
        kind: UserTokenKind,
        token_hash: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<String, StorageError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, kind, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(name)
        .bind(kind.as_str())
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

    /// The user a token belongs to, and the token, if it exists and has not expired at `now`.
    pub async fn user_by_token_hash(
        &self,
        token_hash: &str,
        now: SystemTime,
    ) -> Result<Option<(User, UserToken)>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT u.password_hash, {USER_TOKEN_COLUMNS} \
             WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)"
        ))
        .bind(token_hash)
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token = user_token_from_row(&row)?;
        let user = User {
            id: token.user_id.clone(),
            email: token.user_email.clone(),
            password_hash: row.try_get("password_hash")?,
        };
        Ok(Some((user, token)))
    }

    /// Tokens that have not expired at `now`, of one user or of all, newest first.
    pub async fn user_tokens(
        &self,
        user_id: Option<&str>,
        now: SystemTime,
    ) -> Result<Vec<UserToken>, StorageError> {
        let only_user = if user_id.is_some() {
            "AND t.user_id = $2 "
        } else {
            ""
        };
        let sql = format!(
            "SELECT {USER_TOKEN_COLUMNS} \
             WHERE (t.expires_at IS NULL OR t.expires_at > $1) {only_user}\
             ORDER BY t.created_at DESC, t.id"
        );
        let mut query = sqlx::query(&sql).bind(to_millis(now));
        if let Some(user_id) = user_id {
            query = query.bind(user_id);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_token_from_row)
            .collect()
    }

    /// Removes a token by id, only if it is `user_id`'s when one is given; false if none was.
    pub async fn remove_user_token(
        &self,
        id: &str,
        user_id: Option<&str>,
    ) -> Result<bool, StorageError> {
        let result = match user_id {
            Some(user_id) => {
                sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM api_tokens WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(result.rows_affected() > 0)
    }

    /// Removes the token with this hash (a logout); false if there was none.
    pub async fn remove_token_by_hash(&self, token_hash: &str) -> Result<bool, StorageError> {
        let result = sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Stores an enrollment token's hash: devices presenting it are accepted at once.
    pub async fn add_enrollment_token(
        &self,
        name: &str,
        token_hash: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<String, StorageError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO enrollment_tokens (id, name, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(name)
        .bind(token_hash)
        .bind(now_millis())
        .bind(expires_at.map(to_millis))
        .execute(&self.pool)
        .await?;
        Ok(id)
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

    /// Every enrollment token (expired ones too: they show until removed), newest first.
    pub async fn enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>, StorageError> {
        sqlx::query(
            "SELECT id, name, created_at, expires_at FROM enrollment_tokens \
             ORDER BY created_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(EnrollmentToken {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                created_at: from_millis(row.try_get("created_at")?),
                expires_at: row
                    .try_get::<Option<i64>, _>("expires_at")?
                    .map(from_millis),
            })
        })
        .collect()
    }

    /// Removes an enrollment token by id; false if there was none.
    pub async fn remove_enrollment_token(&self, id: &str) -> Result<bool, StorageError> {
        let result = sqlx::query("DELETE FROM enrollment_tokens WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }
}

fn user_from_row(row: &AnyRow) -> Result<User, StorageError> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
    })
}

fn user_token_from_row(row: &AnyRow) -> Result<UserToken, StorageError> {
    let kind: String = row.try_get("kind")?;
    Ok(UserToken {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        user_email: row.try_get("user_email")?,
        name: row.try_get("name")?,
        kind: if kind == UserTokenKind::Session.as_str() {
            UserTokenKind::Session
        } else {
            UserTokenKind::Api
        },
        created_at: from_millis(row.try_get("created_at")?),
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")?
            .map(from_millis),
    })
}
