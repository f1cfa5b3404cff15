//! Times kept on the wall clock (snapshot version 1, and every snapshot of another boot):
//! how they are written, and how they are carried onto this boot's clock.

use std::time::{Duration, SystemTime};

use crate::boot_time::BootTime;

/// Places times kept on the wall clock (an old snapshot, or one of another boot) on this
/// boot's clock, by how long before or after `wall` they are.
pub(crate) struct CarryOver {
    /// This boot's clock now.
    pub(crate) boot: BootTime,
    /// The wall clock now, as far as carrying over trusts it.
    pub(crate) wall: SystemTime,
}

impl CarryOver {
    /// Something that happened at `at`, on the boot clock: as long ago as on the wall
    /// clock, before this boot if need be, and never after now.
    pub(crate) fn event(&self, at: SystemTime) -> BootTime {
        let age = self.wall.duration_since(at).unwrap_or_default();
        // Only out of range for ages beyond 292 years, which no event has.
        self.boot.checked_sub(age).unwrap_or(self.boot)
    }

    /// A deadline at `at`, on the boot clock: what is left of it, at most `longest`; one
    /// already past is due now.
    pub(crate) fn deadline(&self, at: SystemTime, longest: Duration) -> BootTime {
        let left = at
            .duration_since(self.wall)
            .unwrap_or_default()
            .min(longest);
        self.boot.checked_add(left).unwrap_or(self.boot)
    }
}

/// Milliseconds since the Unix epoch; times before it become 0, since a snapshot must
/// always be writable and such a clock is wrong anyway.
fn to_epoch_millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|since_epoch| u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn from_epoch_millis<E: serde::de::Error>(millis: u64) -> Result<SystemTime, E> {
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(millis))
        .ok_or_else(|| {
            E::custom(format!(
                "time {millis} ms after the unix epoch is out of range"
            ))
        })
}

/// `#[serde(with)]` for a `SystemTime` as epoch milliseconds.
pub(crate) mod epoch_millis {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        time: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(super::to_epoch_millis(*time))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        super::from_epoch_millis(u64::deserialize(deserializer)?)
    }
}

/// `#[serde(with)]` for an `Option<SystemTime>` as epoch milliseconds or null.
pub(crate) mod optional_epoch_millis {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        time: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        time.map(super::to_epoch_millis).serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Option::<u64>::deserialize(deserializer)?
            .map(super::from_epoch_millis)
            .transpose()
    }
}

/// `#[serde(with)]` for a `VecDeque<SystemTime>` as a sorted list of epoch milliseconds.
pub(crate) mod epoch_millis_deque {
    use std::collections::VecDeque;
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        times: &VecDeque<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(times.iter().map(|&time| super::to_epoch_millis(time)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<VecDeque<SystemTime>, D::Error> {
        let times = Vec::<u64>::deserialize(deserializer)?
            .into_iter()
            .map(super::from_epoch_millis)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::condition::sorted::sort(times))
    }
}
