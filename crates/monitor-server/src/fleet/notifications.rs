//! Where notifications go and whether they go at all: channels and the mute switches.

use super::error::{Entity, FleetError};
use super::service::Fleet;
use crate::notify::{ChannelFilter, ChannelKind, TargetPolicy};
use crate::storage::Channel;

impl Fleet {
    /// The fleet letting the HTTP channels post to any host, over http too
    /// (`--allow-private-targets`), not only to public https services.
    pub fn with_private_targets(self, allowed: bool) -> Fleet {
        Fleet {
            targets: TargetPolicy::allowing_private(allowed),
            ..self
        }
    }

    pub async fn channels(&self) -> Result<Vec<Channel>, FleetError> {
        Ok(self.store.channels().await?)
    }

    /// Adds a channel of a kind (`email`, `discord`) whose target the kind accepts.
    pub async fn add_channel(
        &self,
        kind: &str,
        name: &str,
        target: &str,
        filter: &ChannelFilter,
    ) -> Result<Channel, FleetError> {
        let kind: ChannelKind = kind.parse().map_err(FleetError::Invalid)?;
        let target = target.trim();
        kind.validate_target(target, self.targets)
            .map_err(FleetError::Invalid)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(FleetError::Invalid("name: give the channel a name".into()));
        }
        Ok(self.store.add_channel(kind, name, target, filter).await?)
    }

    /// Replaces a channel's filter; alerts already waiting for it are still sent.
    pub async fn set_channel_filter(
        &self,
        id: &str,
        filter: &ChannelFilter,
    ) -> Result<Channel, FleetError> {
        self.store
            .set_channel_filter(id, filter)
            .await?
            .ok_or_else(|| FleetError::not_found(Entity::Channel, id))
    }

    /// Removes a channel and what waits for it.
    pub async fn remove_channel(&self, id: &str) -> Result<(), FleetError> {
        if self.store.remove_channel(id).await? {
            Ok(())
        } else {
            Err(FleetError::not_found(Entity::Channel, id))
        }
    }

    /// Whether every device's notifications are muted.
    pub async fn global_mute(&self) -> Result<bool, FleetError> {
        Ok(self.store.global_mute().await?)
    }

    /// Mutes or unmutes every device's notifications.
    pub async fn set_global_mute(&self, muted: bool) -> Result<(), FleetError> {
        Ok(self.store.set_global_mute(muted).await?)
    }

    /// Whether the channels of a kind (`email`, `discord`) are on for every device.
    pub async fn channel_kind_enabled(&self, kind: &str) -> Result<bool, FleetError> {
        let kind: ChannelKind = kind.parse().map_err(FleetError::Invalid)?;
        Ok(!self.store.channel_kind_muted(kind).await?)
    }

    /// Turns the channels of a kind off or on again for every device; the global mute and a
    /// device's mute still apply on top.
    pub async fn set_channel_kind_enabled(
        &self,
        kind: &str,
        enabled: bool,
    ) -> Result<(), FleetError> {
        let kind: ChannelKind = kind.parse().map_err(FleetError::Invalid)?;
        Ok(self.store.set_channel_kind_muted(kind, !enabled).await?)
    }
}
