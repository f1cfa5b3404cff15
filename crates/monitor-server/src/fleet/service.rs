//! [`Fleet`]: the handle every surface holds.

use std::sync::Arc;

use super::error::FleetError;
use crate::jwt::JwtKeys;
use crate::notify::TargetPolicy;
use crate::storage::{StorageError, Store};

/// The `settings` key of the device-JWT signing key.
const DEVICE_JWT_SECRET: &str = "device_jwt.hs256_key";

/// The fleet's rules over one store; cheap to clone.
#[derive(Clone)]
pub struct Fleet {
    pub(super) store: Store,
    /// Signs and checks device JWTs (the key is shared through the database).
    pub(super) jwt: Arc<JwtKeys>,
    /// Where channels may send (see `with_private_targets`).
    pub(super) targets: TargetPolicy,
}

impl Fleet {
    /// The fleet on `store`; reads (or makes) the JWT key every replica shares.
    pub async fn open(store: Store) -> Result<Fleet, StorageError> {
        let secret = store.shared_secret(DEVICE_JWT_SECRET).await?;
        Ok(Fleet {
            store,
            jwt: Arc::new(JwtKeys::new(&secret)),
            targets: TargetPolicy::default(),
        })
    }

    /// The schema version, and that the database answers.
    pub async fn schema_version(&self) -> Result<i64, FleetError> {
        Ok(self.store.schema_version().await?)
    }

    /// Notifications in the outbox: (sent, failed, waiting).
    pub async fn notification_counts(&self) -> Result<(u64, u64, u64), FleetError> {
        Ok(self.store.notification_counts().await?)
    }
}
