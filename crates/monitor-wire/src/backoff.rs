//! Capped exponential backoff: how long to wait before the next try, after failures in a
//! row. One type for every reconnecting watcher and retrying client.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

/// `first`, doubling at every failure in a row, never beyond `max`; optionally plus up to
/// `jitter` × the delay of random extra (never beyond `max`), so devices that failed
/// together do not retry in step. The jitter only adds, so each delay is at least the one
/// before until the cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    jitter: f64,
    failures: u32,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            jitter: 0.0,
            failures: 0,
        }
    }

    /// Adds up to `fraction` (0.0 to 1.0) of each delay as random jitter.
    pub const fn with_jitter(mut self, fraction: f64) -> Backoff {
        self.jitter = fraction;
        self
    }

    /// Counts one more failure and returns how long to wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let base = self.peek();
        if self.jitter <= 0.0 {
            return base;
        }
        (base + base.mul_f64(self.jitter * random_fraction())).min(self.max)
    }

    /// The delay the next failure would give (without jitter), without counting one.
    pub fn peek(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(31);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A number in `[0, 1)`. Jitter needs no quality randomness: std's per-`RandomState` keys
/// differ on every call, which is enough and needs no dependency.
pub fn random_fraction() -> f64 {
    let bits = RandomState::new().hash_one(0u8);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<_> = (0..6).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.failures(), 6);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn jitter_only_adds_and_never_passes_the_cap() {
        let mut backoff =
            Backoff::new(Duration::from_secs(1), Duration::from_secs(300)).with_jitter(0.25);
        for failure in 1..=40u32 {
            let delay = backoff.next_delay();
            let base = Duration::from_secs(1)
                .saturating_mul(1 << (failure - 1).min(31))
                .min(Duration::from_secs(300));
            assert!(delay >= base && delay <= base.mul_f64(1.25).min(Duration::from_secs(300)));
        }
    }

    #[test]
    fn survives_any_number_of_failures() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100_000 {
            backoff.next_delay();
        }
        assert_eq!(backoff.next_delay(), Duration::from_secs(60));
    }
}
