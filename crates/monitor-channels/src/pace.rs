//! Spacing between the requests of one destination, for services that document a rate per
//! chat or per webhook (Slack: one message a second per webhook; Telegram: one a second per
//! chat, twenty a minute in a group). Waiting before a request costs a second; a 429 costs
//! the service's wait and counts against the sender.

use std::time::Duration;

use tokio::time::Instant;

/// When the next request of a destination may go.
#[derive(Debug, Clone)]
pub(crate) struct Pace {
    interval: Duration,
    next: Option<Instant>,
}

impl Pace {
    pub(crate) fn new(interval: Duration) -> Pace {
        Pace {
            interval,
            next: None,
        }
    }

    /// Until when nothing may be sent, if that is still ahead.
    pub(crate) fn until(&self) -> Option<Instant> {
        self.next.filter(|next| *next > Instant::now())
    }

    /// Waits for the turn of the next request.
    pub(crate) async fn wait(&self) {
        if let Some(next) = self.until() {
            tokio::time::sleep_until(next).await;
        }
    }

    /// A request went out (answered or not: a refused one counts for the service too).
    pub(crate) fn sent(&mut self) {
        self.next = Some(Instant::now() + self.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_interval() {
        let mut pace = Pace::new(Duration::from_secs(3));
        let start = Instant::now();
        pace.wait().await;
        assert_eq!(Instant::now(), start, "the first request goes at once");
        pace.sent();
        assert_eq!(pace.until(), Some(start + Duration::from_secs(3)));
        pace.wait().await;
        assert_eq!(Instant::now(), start + Duration::from_secs(3));
        assert_eq!(pace.until(), None);
    }
}
