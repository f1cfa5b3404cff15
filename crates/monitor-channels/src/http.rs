//! One request to a service and what its answer means, the same for every service here.
//!
//! - 2xx: delivered.
//! - 429: retry after the service's wait: its `Retry-After` header (seconds or an HTTP
//!   date), or what the service's body says (Telegram's `parameters.retry_after`), else the
//!   backoff.
//! - 408, 5xx, a network failure or a timeout: retry after the backoff (1 s doubling to
//!   5 min, with jitter), counted over failures in a row of this destination.
//! - 401, 403, 404, 410: gone — the token or the address is wrong; nothing will change that
//!   until the settings do.
//! - any other 4xx: refused for good (the message was at fault); the caller splits the
//!   batch to find the alert at fault.
//!
//! Messages name the service, the status and the service's own reason (its body, cut, with
//! control characters removed), never the URL: it may hold a token. A service may add what
//! to do about a status ([`Requests::with_fixes`]): which setting to check.

use std::time::{Duration, SystemTime};

use monitor_destination::Verdict;
use monitor_wire::backoff::Backoff;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

/// The first wait after a failure; it doubles up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(5 * 60);
/// Characters of a service's answer kept in a message.
const REASON_LIMIT: usize = 300;

/// Why a request failed, before the caller says how many alerts went before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Retry { after: Duration, message: String },
    Rejected { message: String },
    Gone { message: String },
}

impl Failure {
    /// The verdict on a batch whose first `delivered` alerts went out before this failure.
    pub(crate) fn verdict(self, delivered: usize) -> Verdict {
        match self {
            Failure::Retry { after, message } => Verdict::Retry {
                delivered,
                after,
                message,
            },
            Failure::Rejected { message } => Verdict::Rejected { delivered, message },
            Failure::Gone { message } => Verdict::Gone { message },
        }
    }
}

/// Sends requests for one destination and keeps its backoff.
#[derive(Debug, Clone)]
pub(crate) struct Requests {
    /// The service's name in messages (`ntfy`, `Slack`).
    service: &'static str,
    /// What to do about a status, if the service says.
    fixes: fn(u16) -> Option<&'static str>,
    backoff: Backoff,
}

impl Requests {
    pub(crate) fn new(service: &'static str) -> Requests {
        Requests {
            service,
            fixes: no_fixes,
            backoff: Backoff::new(FIRST_DELAY, MAX_DELAY).with_jitter(0.25),
        }
    }

    /// What to do about a status, appended to its message (`check url`), when `fixes`
    /// knows.
    pub(crate) fn with_fixes(mut self, fixes: fn(u16) -> Option<&'static str>) -> Requests {
        self.fixes = fixes;
        self
    }

    /// Sends `request`; on success returns the answer's body (some services say more than
    /// their status). `body_wait` reads a wait from a 429's body when the service puts it
    /// there.
    pub(crate) async fn send(
        &mut self,
        request: reqwest::RequestBuilder,
        body_wait: fn(&str) -> Option<Duration>,
    ) -> Result<String, Failure> {
        self.send_refined(request, body_wait, no_refinement).await
    }

    /// [`Requests::send`] for a service whose error body says more than its status
    /// (Telegram answers 400 both for a bad message and for a chat that does not exist):
    /// `refine` sees a non-2xx answer's status and body first and may say what it means,
    /// else the status decides as above.
    pub(crate) async fn send_refined(
        &mut self,
        request: reqwest::RequestBuilder,
        body_wait: fn(&str) -> Option<Duration>,
        refine: fn(StatusCode, &str) -> Option<Failure>,
    ) -> Result<String, Failure> {
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let error = error.without_url();
                let message = format!("{} cannot be reached: {error}", self.service);
                return Err(self.retry(None, message));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.text().await {
            Ok(body) => body,
            Err(error) if status.is_success() => {
                // The service took it; only its answer was lost.
                tracing::debug!("{}: answer unread: {}", self.service, error.without_url());
                String::new()
            }
            Err(error) => {
                let message = format!(
                    "{} answered {status} and then failed: {}",
                    self.service,
                    error.without_url()
                );
                return Err(self.retry(None, message));
            }
        };
        if status.is_success() {
            self.backoff.reset();
            return Ok(body);
        }
        if let Some(failure) = refine(status, &body) {
            return Err(failure);
        }
        Err(self.failure(status, &headers, &body, body_wait))
    }

    /// What a non-2xx answer means.
    pub(crate) fn failure(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &str,
        body_wait: fn(&str) -> Option<Duration>,
    ) -> Failure {
        let mut message = format!("{} answered {status}: {}", self.service, reason(body));
        if let Some(fix) = (self.fixes)(status.as_u16()) {
            message.push_str(": ");
            message.push_str(fix);
        }
        match status.as_u16() {
            429 => {
                let wait = headers
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| parse_retry_after(value, SystemTime::now()))
                    .or_else(|| body_wait(body));
                self.retry(wait, message)
            }
            408 | 500..=599 => self.retry(None, message),
            401 | 403 | 404 | 410 => Failure::Gone { message },
            _ => Failure::Rejected { message },
        }
    }

    /// A retry after the service's `wait`, or after the backoff. The backoff counts it
    /// either way, so a service that keeps answering 429 is not asked ever faster.
    fn retry(&mut self, wait: Option<Duration>, message: String) -> Failure {
        let backoff = self.backoff.next_delay();
        Failure::Retry {
            after: wait.unwrap_or(backoff),
            message,
        }
    }
}

/// No advice for any status.
fn no_fixes(_status: u16) -> Option<&'static str> {
    None
}

/// A service's answer as a message may show it: one line, no control characters, cut.
pub(crate) fn reason(body: &str) -> String {
    let line: String = body
        .chars()
        .map(|character| {
            if character.is_control() {
                ' '
            } else {
                character
            }
        })
        .collect();
    let line = line.trim();
    if line.is_empty() {
        return "(no reason given)".into();
    }
    crate::text::cut(line, REASON_LIMIT)
}

/// The status alone decides.
pub(crate) fn no_refinement(_: StatusCode, _: &str) -> Option<Failure> {
    None
}

/// No wait in the body.
pub(crate) fn no_body_wait(_: &str) -> Option<Duration> {
    None
}

/// `Retry-After: <seconds>` or `Retry-After: <HTTP date>` (RFC 9110), as a delay from `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// IMF-fixdate, the only form servers may send: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn httpdate(value: &str) -> Option<SystemTime> {
    let (_weekday, rest) = value.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: i64 = parts.next()?.parse().ok()?;
    let month_name = parts.next()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|name| *name == month_name)? as i64
        + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':');
    let hour: u64 = clock.next()?.parse().ok()?;
    let minute: u64 = clock.next()?.parse().ok()?;
    let second: u64 = clock.next()?.parse().ok()?;
    if parts.next()? != "GMT" || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = u64::try_from(era * 146_097 + day_of_era - 719_468).ok()?;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_767);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn statuses_mean_retry_refused_or_gone() {
        let mut requests = Requests::new("ntfy");
        let headers = HeaderMap::new();
        let mut with_wait = HeaderMap::new();
        with_wait.insert(RETRY_AFTER, "30".parse().unwrap());
        let failure = requests.failure(StatusCode::TOO_MANY_REQUESTS, &with_wait, "", no_body_wait);
        assert!(
            matches!(failure, Failure::Retry { after, .. } if after == Duration::from_secs(30))
        );
        let failure = requests.failure(StatusCode::BAD_GATEWAY, &headers, "", no_body_wait);
        assert!(matches!(failure, Failure::Retry { .. }));
        let failure = requests.failure(StatusCode::NOT_FOUND, &headers, "no\ntopic", no_body_wait);
        assert_eq!(
            failure,
            Failure::Gone {
                message: "ntfy answered 404 Not Found: no topic".into()
            }
        );
        let failure = requests.failure(StatusCode::BAD_REQUEST, &headers, "", no_body_wait);
        assert!(matches!(failure, Failure::Rejected { .. }));
    }
}
