//! [`Fleet`]: the handle every surface holds.

use std::sync::Arc;

use super::error::FleetError;
use crate::device_key::{DeviceKeyError, DeviceKeyLocation, DeviceKeys};
use crate::notify::TargetPolicy;
use crate::storage::Store;

/// The fleet's rules over one store; cheap to clone.
#[derive(Clone)]
pub struct Fleet {
    pub(super) store: Store,
    /// Signs and checks device JWTs (the key is in its own file; see `device_key`).
    pub(super) jwt: Arc<DeviceKeys>,
    /// Where channels may send (see `with_private_targets`).
    pub(super) targets: TargetPolicy,
}

impl Fleet {
    /// The fleet on `store`; reads (or makes) the device-token key where it lives.
    pub async fn open(
        store: Store,
        device_key: DeviceKeyLocation,
    ) -> Result<Fleet, DeviceKeyError> {
        let jwt = DeviceKeys::open(store.clone(), device_key).await?;
        Ok(Fleet {
            store,
            jwt: Arc::new(jwt),
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
