//! Settings every replica shares: the global mute, the mute of a kind of channel, and
//! secrets made once.

use sqlx::Row;

use super::sql::StorageError;
use super::store::Store;
use crate::notify::ChannelKind;

/// The global mute setting's key: `"true"` while every device's notifications are off.
pub(super) const GLOBAL_MUTE: &str = "notifications.muted";

/// The key that mutes every channel of one kind, `"true"` while muted (Mender's
/// `…/settings/global/channel/alerts/{channel}/status`).
fn channel_kind_mute(kind: ChannelKind) -> String {
    format!("notifications.{}.muted", kind.as_str())
}

impl Store {
    pub(crate) async fn setting(&self, key: &str) -> Result<Option<String>, StorageError> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("value")?),
            None => None,
        })
    }

    pub(crate) async fn set_setting(&self, key: &str, value: &str) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn remove_setting(&self, key: &str) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM settings WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets `key` to `value` unless it has a value already; returns the value it has now
    /// (so that of replicas racing, every one learns which value won).
    pub(crate) async fn claim_setting(
        &self,
        key: &str,
        value: &str,
    ) -> Result<String, StorageError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        self.setting(key)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("the setting {key} vanished")))
    }

    /// Whether every device's notifications are muted.
    pub async fn global_mute(&self) -> Result<bool, StorageError> {
        Ok(self.setting(GLOBAL_MUTE).await?.as_deref() == Some("true"))
    }

    /// Mutes or unmutes every device's notifications.
    pub async fn set_global_mute(&self, muted: bool) -> Result<(), StorageError> {
        self.set_setting(GLOBAL_MUTE, if muted { "true" } else { "false" })
            .await
    }

    /// Whether every channel of this kind is muted.
    pub async fn channel_kind_muted(&self, kind: ChannelKind) -> Result<bool, StorageError> {
        Ok(self.setting(&channel_kind_mute(kind)).await?.as_deref() == Some("true"))
    }

    /// Mutes or unmutes every channel of this kind, for every device.
    pub async fn set_channel_kind_muted(
        &self,
        kind: ChannelKind,
        muted: bool,
    ) -> Result<(), StorageError> {
        self.set_setting(
            &channel_kind_mute(kind),
            if muted { "true" } else { "false" },
        )
        .await
    }

    /// A random secret every replica shares: made by the first one that asks.
    pub async fn shared_secret(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let fresh = hex::encode(crate::credentials::random_bytes::<32>());
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(&fresh)
        .execute(&self.pool)
        .await?;
        let stored = self
            .setting(key)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("the setting {key} vanished")))?;
        hex::decode(&stored).map_err(|error| StorageError::Corrupt(format!("{key}: {error}")))
    }
}
