//! Times on the boot clock, as the engine keeps them.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::spec::Moment;

/// A time on the boot clock, in nanoseconds since boot. Negative for times before this
/// boot: a snapshot of an earlier boot is carried over with its times where they were
/// (see [`Snapshot`](crate::Snapshot)), so that a match 90 s before a reboot is still 90 s
/// old after it, even when the device has been up for only 20 s. In a snapshot, whole
/// milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct BootTime(i64);

const NANOS_PER_MILLI: i64 = 1_000_000;

impl BootTime {
    /// `since_boot` after boot; beyond 292 years of uptime, the latest time it can hold.
    pub(crate) fn of(since_boot: Duration) -> Self {
        BootTime(i64::try_from(since_boot.as_nanos()).unwrap_or(i64::MAX))
    }

    pub(crate) fn checked_add(self, duration: Duration) -> Option<Self> {
        let nanos = i64::try_from(duration.as_nanos()).ok()?;
        self.0.checked_add(nanos).map(BootTime)
    }

    pub(crate) fn checked_sub(self, duration: Duration) -> Option<Self> {
        let nanos = i64::try_from(duration.as_nanos()).ok()?;
        self.0.checked_sub(nanos).map(BootTime)
    }

    /// As a time since boot, for callers; times before this boot are its start (anything
    /// due then is due now).
    pub(crate) fn since_boot(self) -> Duration {
        Duration::from_nanos(u64::try_from(self.0).unwrap_or(0))
    }

    /// This time on the wall clock of `now`: what that clock said then, or will say, as far
    /// as it knows now. A wall clock set since then shows the time at its right date.
    pub(crate) fn wall(self, now: Moment) -> SystemTime {
        let now_boot = BootTime::of(now.boot);
        let distance = Duration::from_nanos(self.0.abs_diff(now_boot.0));
        let wall = if self <= now_boot {
            now.wall.checked_sub(distance)
        } else {
            now.wall.checked_add(distance)
        };
        // Only out of range for times no clock shows; `now` is the nearest honest one.
        wall.unwrap_or(now.wall)
    }
}

impl Serialize for BootTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0.div_euclid(NANOS_PER_MILLI))
    }
}

impl<'de> Deserialize<'de> for BootTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let millis = i64::deserialize(deserializer)?;
        millis
            .checked_mul(NANOS_PER_MILLI)
            .map(BootTime)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("boot clock time {millis} ms is out of range"))
            })
    }
}
