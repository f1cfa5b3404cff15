//! How long to wait before sending a refused batch again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monitor_wire::backoff::Backoff;

/// The delay after the first failure.
pub(crate) const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay, however many failures came before.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(5 * 60);

/// Exponential backoff over consecutive failures: 1 s, 2 s, 4 s, ... up to 5 min, each plus
/// up to a quarter more of random jitter (never beyond 5 min), so devices that lost the backend
/// together do not come back in step. The jitter only adds, so every delay is longer than the
/// one before until the cap.
pub(crate) const RETRY_BACKOFF: Backoff = Backoff::new(FIRST_DELAY, MAX_DELAY).with_jitter(0.25);

/// `Retry-After: <seconds>` or `Retry-After: <HTTP date>` (RFC 9110), as a delay from `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// IMF-fixdate, the only form servers may send: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    let (_weekday, rest) = value.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':');
    let hour: u64 = clock.next()?.parse().ok()?;
    let minute: u64 = clock.next()?.parse().ok()?;
    let second: u64 = clock.next()?.parse().ok()?;
    if parts.next()? != "GMT" || parts.next().is_some() || clock.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_one_second_with_jitter_up_to_five_minutes() {
        let mut backoff = RETRY_BACKOFF;
        let delays: Vec<Duration> = (0..14).map(|_| backoff.next_delay()).collect();
        for (failure, delay) in delays.iter().enumerate() {
            let base = (FIRST_DELAY * (1 << failure.min(16))).min(MAX_DELAY);
            assert!(*delay >= base, "delay {failure}: {delay:?} < {base:?}");
            assert!(
                *delay <= (base * 5 / 4).min(MAX_DELAY),
                "delay {failure}: {delay:?}"
            );
        }
        assert!(delays.windows(2).take(8).all(|pair| pair[0] < pair[1]));
        assert_eq!(*delays.last().unwrap(), MAX_DELAY);
        backoff.reset();
        assert!(backoff.next_delay() < Duration::from_millis(1_250));
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770); // Sun, 06 Nov 1994 08:49:30 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 21), 20_778);
    }
}
