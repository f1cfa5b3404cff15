//! [`LoginGuard`]: what keeps password checks from hurting the server, for the API's and
//! the dashboard's logins alike.
//!
//! A password check is Argon2: about 19 MiB and tens of milliseconds of one core, on
//! purpose. Without a guard, a few hundred concurrent wrong logins ran a few hundred checks
//! at once on the blocking pool and took gigabytes. So:
//!
//! - **at most [`LoginGuard::concurrent_checks`] checks at once** (a semaphore): a login
//!   waits for a turn a moment, behind at most [`MAX_WAITING`] others, or gets 503 with
//!   `Retry-After`;
//! - **growing delays after failures**, per client address (an IPv6 address counts by its
//!   /64, what one client usually holds) and per account: past a few free failures each
//!   one blocks the address, or the account, for twice as long as the one before (429 with
//!   `Retry-After`). The account's block holds for the addresses that failed on it, so a
//!   storm from one address does not lock the real user out from theirs; each new address
//!   gets one guess before the block holds for it too, and once
//!   [`MAX_ADDRESSES_PER_ACCOUNT`] addresses have failed on an account the block holds for
//!   everyone.
//!
//! Unknown accounts are counted like known ones (the key is the email as typed), and the
//! fleet checks a dummy hash for them, so neither the answer, the throttling nor the time
//! tells whether an account exists. Per replica and in memory: a restart forgets the
//! counts, which costs an attacker a restart they cannot cause.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::fleet::FleetError;

/// The failure from one address that starts its delays (the ones before are free: typos, a
/// script with an old password).
pub const FREE_FAILURES_PER_ADDRESS: u32 = 10;
/// The failure on one account that starts its delays.
pub const FREE_FAILURES_PER_ACCOUNT: u32 = 5;
/// The first delay; each further failure doubles it, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// A record with no failure for this long, and no block running, is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Past this many failing addresses an account's block holds for every address.
pub const MAX_ADDRESSES_PER_ACCOUNT: usize = 64;
/// Logins waiting for a turn at the password check; more get 503 at once.
const MAX_WAITING: usize = 64;
/// How long a login waits for its turn before 503.
const MAX_WAIT: Duration = Duration::from_secs(2);
/// The records each map keeps at most; past it, those without a running block go first.
const MAX_RECORDS: usize = 50_000;
/// An email longer than this is counted by its first characters (the key is kept in memory).
const MAX_KEY_CHARS: usize = 254;

/// Why a login is not checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// 429: too many failures from this address or for this account.
    Throttled { retry_after: Duration },
    /// 503: the password checks are all busy.
    Busy,
}

impl LoginRefusal {
    pub fn status(self) -> StatusCode {
        match self {
            LoginRefusal::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            LoginRefusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Whole seconds, at least 1, as `Retry-After` says it.
    pub fn retry_after_seconds(self) -> u64 {
        match self {
            LoginRefusal::Throttled { retry_after } => {
                retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)
            }
            LoginRefusal::Busy => 1,
        }
        .max(1)
    }

    pub fn message(self) -> String {
        let seconds = self.retry_after_seconds();
        match self {
            LoginRefusal::Throttled { .. } => format!(
                "too many failed logins from this address or for this account: try again in {seconds} s"
            ),
            LoginRefusal::Busy => {
                format!("too many logins are being checked at once: try again in {seconds} s")
            }
        }
    }

    /// Adds `Retry-After` to a response that says this refusal.
    pub fn with_retry_after(self, mut response: Response) -> Response {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_seconds()),
        );
        response
    }
}

/// The API's answer: `{"error": ...}` with the status and `Retry-After`.
impl IntoResponse for LoginRefusal {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message() }));
        self.with_retry_after((self.status(), body).into_response())
    }
}

/// The address a request comes from, when the server was started with connect info;
/// `None` in-process (tests of the router alone), where every login shares one record.
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        Ok(ClientAddress(address))
    }
}

/// Caps and throttles password checks; shared by every login route of a replica.
pub struct LoginGuard {
    checks: Arc<Semaphore>,
    concurrent_checks: usize,
    waiting: AtomicUsize,
    max_wait: Duration,
    records: Mutex<Records>,
}

#[derive(Default)]
struct Records {
    addresses: HashMap<IpAddr, Failures>,
    accounts: HashMap<String, AccountFailures>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Instant,
}

struct AccountFailures {
    failures: Failures,
    /// The addresses that failed on the account while its count ran.
    addresses: HashSet<IpAddr>,
}

impl Failures {
    fn new(now: Instant) -> Self {
        Failures {
            count: 0,
            last: now,
            blocked_until: now,
        }
    }

    /// Counts a failure at `now`: past `free` failures, a block twice as long as the last.
    fn add(&mut self, free: u32, now: Instant) {
        if self.is_stale(now) {
            *self = Failures::new(now);
        }
        self.count = self.count.saturating_add(1);
        self.last = now;
        if self.count >= free {
            let doublings = (self.count - free).min(20);
            let delay = FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY);
            self.blocked_until = now + delay;
        }
    }

    fn blocked_for(&self, now: Instant) -> Option<Duration> {
        Some(self.blocked_until.saturating_duration_since(now)).filter(|left| !left.is_zero())
    }

    fn is_stale(&self, now: Instant) -> bool {
        self.blocked_for(now).is_none() && now.saturating_duration_since(self.last) > FORGET_AFTER
    }
}

/// A place among the logins waiting for a turn, given back when dropped.
struct WaitingPlace<'a>(&'a AtomicUsize);

impl<'a> WaitingPlace<'a> {
    fn take(waiting: &'a AtomicUsize) -> Option<Self> {
        let place = WaitingPlace(waiting);
        (waiting.fetch_add(1, Ordering::SeqCst) < MAX_WAITING).then_some(place)
    }
}

impl Drop for WaitingPlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One login's turn at the password check: [`LoginAttempt::check`] runs the check.
pub struct LoginAttempt {
    guard: Arc<LoginGuard>,
    address: IpAddr,
    account: String,
    turn: OwnedSemaphorePermit,
}

impl LoginAttempt {
    /// Runs `log_in` (`Fleet::log_in`) to its end on a task of its own, holding the turn:
    /// a client that hangs up drops its request, but its Argon2 check on the blocking pool
    /// goes on, and must go on counting against the cap. A wrong password (or an unknown
    /// account: the same to the guard) counts as a failure.
    pub async fn check<F>(self, log_in: F) -> Result<String, FleetError>
    where
        F: Future<Output = Result<String, FleetError>> + Send + 'static,
    {
        let checked = tokio::spawn(async move {
            let result = log_in.await;
            if matches!(result, Err(FleetError::Unauthorized(_))) {
                self.guard
                    .record_failure(self.address, &self.account, Instant::now());
            }
            drop(self.turn);
            result
        })
        .await;
        match checked {
            Ok(result) => result,
            // The catch-panic layer answers it, as any other panic.
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => Err(FleetError::Unauthorized(format!(
                "the login was not checked ({error}): try again"
            ))),
        }
    }
}

impl Default for LoginGuard {
    fn default() -> Self {
        // One check per core, and never more than 4 (76 MiB) on a big machine.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        LoginGuard::new(cores.clamp(1, 4))
    }
}

impl LoginGuard {
    pub fn new(concurrent_checks: usize) -> Self {
        LoginGuard {
            checks: Arc::new(Semaphore::new(concurrent_checks)),
            concurrent_checks,
            waiting: AtomicUsize::new(0),
            max_wait: MAX_WAIT,
            records: Mutex::new(Records::default()),
        }
    }

    /// How many password checks run at once at most.
    pub fn concurrent_checks(&self) -> usize {
        self.concurrent_checks
    }

    /// A turn to check a password for `email` from `address`, or why not now.
    pub async fn begin(
        self: &Arc<Self>,
        address: Option<IpAddr>,
        email: &str,
    ) -> Result<LoginAttempt, LoginRefusal> {
        let address = address.map_or(IpAddr::from([0, 0, 0, 0]), address_key);
        let account = account_key(email);
        self.admit(address, &account, Instant::now())?;
        let turn = match self.checks.clone().try_acquire_owned() {
            Ok(turn) => turn,
            Err(_) => self.wait_for_turn().await?,
        };
        // Failures counted while this one waited may block it now.
        self.admit(address, &account, Instant::now())?;
        Ok(LoginAttempt {
            guard: self.clone(),
            address,
            account,
            turn,
        })
    }

    async fn wait_for_turn(&self) -> Result<OwnedSemaphorePermit, LoginRefusal> {
        // Counted out on drop too: a client that hangs up while waiting drops this future.
        let place = WaitingPlace::take(&self.waiting).ok_or(LoginRefusal::Busy)?;
        let turn = tokio::time::timeout(self.max_wait, self.checks.clone().acquire_owned()).await;
        drop(place);
        match turn {
            Ok(Ok(turn)) => Ok(turn),
            _ => Err(LoginRefusal::Busy),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Whether a login for `account` from `address` may be checked at `now`.
    fn admit(&self, address: IpAddr, account: &str, now: Instant) -> Result<(), LoginRefusal> {
        let records = self.lock();
        let by_address = records
            .addresses
            .get(&address)
            .and_then(|failures| failures.blocked_for(now));
        let by_account = records.accounts.get(account).and_then(|record| {
            let holds = record.addresses.contains(&address)
                || record.addresses.len() >= MAX_ADDRESSES_PER_ACCOUNT;
            record.failures.blocked_for(now).filter(|_| holds)
        });
        match by_address.max(by_account) {
            Some(retry_after) => Err(LoginRefusal::Throttled { retry_after }),
            None => Ok(()),
        }
    }

    fn record_failure(&self, address: IpAddr, account: &str, now: Instant) {
        let mut records = self.lock();
        if records.addresses.len() >= MAX_RECORDS || records.accounts.len() >= MAX_RECORDS {
            records.forget(now);
        }
        records
            .addresses
            .entry(address)
            .or_insert_with(|| Failures::new(now))
            .add(FREE_FAILURES_PER_ADDRESS, now);
        let record = records
            .accounts
            .entry(account.to_owned())
            .or_insert_with(|| AccountFailures {
                failures: Failures::new(now),
                addresses: HashSet::new(),
            });
        if record.failures.is_stale(now) {
            record.addresses.clear();
        }
        record.failures.add(FREE_FAILURES_PER_ACCOUNT, now);
        if record.addresses.len() < MAX_ADDRESSES_PER_ACCOUNT {
            record.addresses.insert(address);
        }
    }
}

impl Records {
    /// Drops what is stale; if that is not enough, every record without a running block.
    fn forget(&mut self, now: Instant) {
        self.addresses.retain(|_, failures| !failures.is_stale(now));
        self.accounts
            .retain(|_, record| !record.failures.is_stale(now));
        if self.addresses.len() >= MAX_RECORDS {
            self.addresses
                .retain(|_, failures| failures.blocked_for(now).is_some());
        }
        if self.accounts.len() >= MAX_RECORDS {
            self.accounts
                .retain(|_, record| record.failures.blocked_for(now).is_some());
        }
    }
}

/// An IPv4 address as it is; an IPv6 address by its /64 (an IPv4-mapped one as IPv4).
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::from([
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ])
            }
        },
    }
}

/// An email as the guard counts it: trimmed, lowercase, at most [`MAX_KEY_CHARS`].
fn account_key(email: &str) -> String {
    email
        .trim()
        .chars()
        .take(MAX_KEY_CHARS)
        .collect::<String>()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn blocked(guard: &LoginGuard, address: IpAddr, account: &str, now: Instant) -> Option<u64> {
        match guard.admit(address, &account_key(account), now) {
            Ok(()) => None,
            Err(refusal) => Some(refusal.retry_after_seconds()),
        }
    }

    #[test]
    fn an_address_gets_free_failures_then_delays_that_double() {
        let guard = LoginGuard::new(1);
        let start = Instant::now();
        let mut now = start;
        for attempt in 0..FREE_FAILURES_PER_ADDRESS - 1 {
            assert_eq!(
                blocked(&guard, A, "x", now),
                None,
                "failure {attempt} is free"
            );
            // A different account each time: the address's count alone decides.
            guard.record_failure(A, &format!("user{attempt}@example.com"), now);
        }
        assert_eq!(blocked(&guard, A, "y", now), None);
        let mut delays = Vec::new();
        for attempt in 0..5 {
            guard.record_failure(A, &format!("other{attempt}@example.com"), now);
            delays.push(blocked(&guard, A, "z", now).expect("blocked"));
            now += Duration::from_secs(delays.last().copied().unwrap());
            assert_eq!(blocked(&guard, A, "z", now), None, "the block ends");
        }
        assert_eq!(delays, [1, 2, 4, 8, 16]);
        assert_eq!(
            blocked(&guard, B, "z", now),
            None,
            "other addresses are not blocked"
        );
        let later = now + FORGET_AFTER + Duration::from_secs(1);
        guard.record_failure(A, "again@example.com", later);
        assert_eq!(
            blocked(&guard, A, "z", later),
            None,
            "old failures are forgotten"
        );
    }

    #[test]
    fn an_account_blocks_the_addresses_that_failed_on_it_and_lets_another_try() {
        let guard = LoginGuard::new(1);
        let now = Instant::now();
        for _ in 0..FREE_FAILURES_PER_ACCOUNT {
            guard.record_failure(A, "admin@example.com", now);
        }
        assert_eq!(blocked(&guard, A, "Admin@Example.com ", now), Some(1));
        assert_eq!(blocked(&guard, A, "other@example.com", now), None);
        assert_eq!(
            blocked(&guard, B, "admin@example.com", now),
            None,
            "B never failed"
        );
        guard.record_failure(B, "admin@example.com", now);
        assert_eq!(blocked(&guard, B, "admin@example.com", now), Some(2));
    }

    #[test]
    fn many_failing_addresses_block_an_account_for_everyone() {
        let guard = LoginGuard::new(1);
        let now = Instant::now();
        for host in 0..MAX_ADDRESSES_PER_ACCOUNT {
            let address = IpAddr::from([10, 0, (host / 256) as u8, (host % 256) as u8]);
            guard.record_failure(address, "admin@example.com", now);
        }
        assert!(blocked(&guard, B, "admin@example.com", now).is_some());
    }

    #[test]
    fn the_delay_stops_growing_at_its_cap() {
        let guard = LoginGuard::new(1);
        let now = Instant::now();
        for _ in 0..200 {
            guard.record_failure(A, "admin@example.com", now);
        }
        assert_eq!(
            blocked(&guard, A, "admin@example.com", now),
            Some(MAX_DELAY.as_secs())
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(address_key(one), address_key(two));
        assert_ne!(
            address_key(one),
            address_key("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(address_key("::ffff:192.0.2.1".parse().unwrap()), A);
    }

    #[tokio::test]
    async fn password_checks_past_the_cap_wait_then_get_busy() {
        let guard = Arc::new(LoginGuard {
            max_wait: Duration::from_millis(20),
            ..LoginGuard::new(1)
        });
        let first = guard.begin(Some(A), "a@example.com").await.expect("a turn");
        let refusal = guard.begin(Some(B), "b@example.com").await.err();
        assert_eq!(refusal, Some(LoginRefusal::Busy));
        drop(first);
        assert!(guard.begin(Some(B), "b@example.com").await.is_ok());
    }

    #[tokio::test]
    async fn a_login_given_up_while_waiting_leaves_its_place() {
        let guard = Arc::new(LoginGuard::new(1));
        let first = guard.begin(Some(A), "a@example.com").await.expect("a turn");
        for _ in 0..MAX_WAITING * 2 {
            // Polled once (it takes a place and waits), then dropped: a client hanging up.
            let waiting = guard.begin(Some(B), "b@example.com");
            let _ = tokio::time::timeout(Duration::from_millis(1), waiting).await;
        }
        assert_eq!(guard.waiting.load(Ordering::SeqCst), 0);
        drop(first);
        assert!(guard.begin(Some(B), "b@example.com").await.is_ok());
    }

    #[tokio::test]
    async fn a_check_given_up_by_its_client_holds_its_turn_until_it_ends() {
        let guard = Arc::new(LoginGuard {
            max_wait: Duration::from_millis(20),
            ..LoginGuard::new(1)
        });
        let attempt = guard.begin(Some(A), "a@example.com").await.expect("a turn");
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let check = attempt.check(async move {
            let _ = finished.await;
            Err(FleetError::Unauthorized("wrong email or password".into()))
        });
        // The client hangs up: the request (and this future) is dropped mid-check.
        let _ = tokio::time::timeout(Duration::from_millis(5), check).await;
        let refusal = guard.begin(Some(B), "b@example.com").await.err();
        assert_eq!(refusal, Some(LoginRefusal::Busy), "the check still runs");
        finish.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match guard.begin(Some(B), "b@example.com").await {
                Ok(_) => break,
                Err(refusal) => assert!(Instant::now() < deadline, "{refusal:?}"),
            }
        }
        let failures = guard
            .lock()
            .addresses
            .get(&A)
            .map(|failures| failures.count);
        assert_eq!(failures, Some(1), "its failure was counted");
    }
}
