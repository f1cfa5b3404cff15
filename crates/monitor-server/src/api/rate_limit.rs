//! A token bucket per device, per replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::ApiError;

/// A token bucket per device: `per_minute` requests a minute on average, bursts up to the
/// same number. Per replica: it guards against a runaway device, not for billing.
pub(super) struct RateLimiter {
    per_second: f64,
    capacity: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub(super) fn new(per_minute: u32) -> Self {
        let capacity = f64::from(per_minute.max(1));
        RateLimiter {
            per_second: capacity / 60.0,
            capacity,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn admit(&self, device_id: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Forget full buckets now and then, so the map holds only devices that are busy.
        if buckets.len() > 10_000 {
            let (per_second, capacity) = (self.per_second, self.capacity);
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_second
                    < capacity
            });
        }
        let bucket = buckets.entry(device_id.to_owned()).or_insert(Bucket {
            tokens: self.capacity,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(ApiError::TooManyRequests {
                retry_after: Duration::from_secs_f64(wait.ceil()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limiter_allows_a_burst_then_says_when_to_come_back() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            limiter.admit("a").unwrap();
        }
        match limiter.admit("a") {
            Err(ApiError::TooManyRequests { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(20))
            }
            other => panic!("{other:?}"),
        }
        limiter.admit("b").expect("other devices are not affected");
    }
}
