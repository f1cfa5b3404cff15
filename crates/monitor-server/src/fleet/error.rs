//! [`FleetError`]: what a rule says when it refuses.

use crate::storage::StorageError;

/// What a lookup did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Device,
    Alert,
    Channel,
    User,
    Token,
    EnrollmentToken,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Device => "device",
            Entity::Alert => "alert",
            Entity::Channel => "channel",
            Entity::User => "user",
            Entity::Token => "token",
            Entity::EnrollmentToken => "enrollment token",
        }
    }
}

/// A refusal of the fleet's rules, or the database failing underneath them. The messages
/// say what to do; `NotFound` leaves the wording to each surface (an id in the API, a name
/// or id on the command line, each with its own hint).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("no {} `{key}`", what.as_str())]
    NotFound { what: Entity, key: String },
    /// The input breaks a rule; the message names the field where there is one.
    #[error("{0}")]
    Invalid(String),
    /// The request is valid but the state forbids it (a duplicate, a decommissioned device).
    #[error("{0}")]
    Conflict(String),
    /// Wrong credentials, or a device that may not report.
    #[error("{0}")]
    Unauthorized(String),
    #[error(transparent)]
    Storage(StorageError),
}

impl FleetError {
    pub(super) fn not_found(what: Entity, key: &str) -> FleetError {
        FleetError::NotFound {
            what,
            key: key.to_owned(),
        }
    }
}

impl From<StorageError> for FleetError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Conflict(message) => FleetError::Conflict(message),
            other => FleetError::Storage(other),
        }
    }
}
