//! The listening socket's side of the server: connections (plain or TLS), how long and how
//! many clients may hold them, and the headers every answer carries.
//!
//! - [`serve_connections`]: serves up to `max_connections` at once; at the cap, a new
//!   connection closes the one idle the longest between requests (an agent's client keeps
//!   its connection a minute after each heartbeat, so 10,000 devices hold 10,000), and
//!   waits in the kernel's backlog only when none is idle. It cuts off a client that does
//!   not send its headers within
//!   `header_timeout` (and the TLS handshake), its body within `body_timeout`, or nothing
//!   for `idle_timeout` between requests, and serves each request with the router.
//! - [`TlsCertificate`]: the certificate and key, read again on SIGHUP; a connection keeps
//!   the configuration it started with, so a reload drops none.
//! - [`security_headers`]: CSP, framing, sniffing, referrer, and with TLS HSTS and `Secure`
//!   cookies, on every answer.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::settings::{ListenerSettings, TlsFiles};

/// How long to wait before accepting again after `accept` failed (out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(200);
/// At the cap, how long a new connection waits for the slot of the idle connection it
/// closed before closing another (that one may have started a request meanwhile).
const RECLAIM_RETRY: Duration = Duration::from_secs(1);

/// The certificate HTTPS is served with; [`TlsCertificate::reload`] reads the files again.
pub struct TlsCertificate {
    files: TlsFiles,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl TlsCertificate {
    /// Reads the certificate chain and its key; fails with the file and the fix.
    pub fn load(files: TlsFiles) -> anyhow::Result<TlsCertificate> {
        let config = server_config(&files)?;
        Ok(TlsCertificate {
            files,
            current: RwLock::new(config),
        })
    }

    /// Reads the files again; on failure the certificate in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = server_config(&self.files)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = config;
        Ok(())
    }

    fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }
}

fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let cert = &files.cert;
    let key = &files.key;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| {
            anyhow::anyhow!(
                "{}: cannot read the TLS certificate ({error}): give a PEM file with the \
                 server's certificate first, then its intermediates (--tls-cert)",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!(
            "{}: no certificate in the file: give a PEM file with `-----BEGIN CERTIFICATE-----` \
             blocks (--tls-cert)",
            cert.display()
        );
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|error| {
        anyhow::anyhow!(
            "{}: cannot read the TLS private key ({error}): give the PEM key (PKCS#8, PKCS#1 \
             or SEC1) of the certificate (--tls-key)",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .with_context(|| {
            format!(
                "{} and {}: the key does not fit the certificate, or is of a kind TLS cannot \
                 use: give the key the certificate was made for",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether the request came over TLS; set on every request by the listener.
#[derive(Debug, Clone, Copy)]
pub struct ServedOverTls(pub bool);

/// Serves `router` on `listener` until `shutdown`, then lets every connection finish the
/// request in flight and returns.
///
/// A connection is accepted, then given one of the `max_connections` slots. When none is
/// free, it closes the connection idle the longest between requests (as nginx reuses its
/// keep-alive connections when out of `worker_connections`): a client must expect a
/// server to close an idle connection (RFC 9112, 9.6), and opens another for its next
/// request. Only when no connection is idle does it wait, for one to close or go idle.
pub async fn serve_connections(
    listener: tokio::net::TcpListener,
    router: Router,
    settings: &ListenerSettings,
    tls: Option<Arc<TlsCertificate>>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let idle = Arc::new(IdleConnections::default());
    let connections = TaskTracker::new();
    let timeouts = Timeouts {
        header: settings.header_timeout,
        body: settings.body_timeout,
        idle: settings.idle_timeout,
    };
    'accepting: loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, peer),
                Err(error) => {
                    tracing::warn!("cannot accept a connection: {error}; trying again");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let slot = loop {
            if let Ok(slot) = slots.clone().try_acquire_owned() {
                break slot;
            }
            // Made before looking, so a connection going idle after the look wakes us.
            let went_idle = idle.went_idle.notified();
            let closing = idle.close_oldest();
            tokio::select! {
                _ = shutdown.cancelled() => break 'accepting,
                slot = slots.clone().acquire_owned() => {
                    break slot.expect("the semaphore is never closed")
                }
                _ = went_idle, if !closing => {}
                _ = tokio::time::sleep(RECLAIM_RETRY), if closing => {}
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        let idle = idle.clone();
        connections.spawn(async move {
            match tls {
                None => {
                    serve_connection(stream, peer, false, router, timeouts, idle, shutdown).await
                }
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                    match tokio::time::timeout(timeouts.header, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, peer, true, router, timeouts, idle, shutdown)
                                .await
                        }
                        Ok(Err(error)) => tracing::debug!("TLS handshake failed: {error}"),
                        Err(_) => {
                            tracing::debug!("TLS handshake not done within the header timeout")
                        }
                    }
                }
            }
            drop(slot);
        });
    }
    connections.close();
    connections.wait().await;
}

#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    body: Duration,
    idle: Duration,
}

/// Where a connection is, for its timeouts: hyper's own header timeout also runs while a
/// connection idles between requests, so a client reusing a connection at that moment
/// would find it closed under its request. Here idling has its own, longer, timeout
/// (longer than the usual clients' pool timeout of 90 s, so they close first), and the
/// header timeout starts with the first byte of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's headers since then (a new connection starts here).
    ReadingHead { since: Instant },
    /// A request is being served (its body has `body_timeout`).
    Serving,
    /// Between requests since then.
    Idle { since: Instant },
    /// Was idle the longest when a new connection needed its slot: closing.
    Reclaimed,
}

/// Idle connections by (idle since, connection id).
type IdleByAge = BTreeMap<(Instant, u64), Weak<ConnectionClock>>;

/// The connections idle between requests, the longest idle first, for a new connection
/// at the cap to close one.
#[derive(Default)]
struct IdleConnections {
    by_age: Mutex<IdleByAge>,
    /// Woken (`notify_waiters`) whenever a connection goes idle.
    went_idle: Notify,
    next_id: AtomicU64,
}

impl IdleConnections {
    fn by_age(&self) -> std::sync::MutexGuard<'_, IdleByAge> {
        self.by_age
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Tells the connection idle the longest to close; `false` when none is idle.
    fn close_oldest(&self) -> bool {
        loop {
            // The list's lock is let go before the connection's: `set` takes them the
            // other way round.
            let Some((_, clock)) = self.by_age().pop_first() else {
                return false;
            };
            if clock.upgrade().is_some_and(|clock| clock.reclaim()) {
                return true;
            }
        }
    }
}

struct ConnectionClock {
    id: u64,
    phase: Mutex<Phase>,
    changed: Notify,
    idle: Arc<IdleConnections>,
    /// Itself, for the idle list.
    this: Weak<ConnectionClock>,
}

impl ConnectionClock {
    fn new(idle: Arc<IdleConnections>) -> Arc<Self> {
        Arc::new_cyclic(|this| ConnectionClock {
            id: idle.next_id.fetch_add(1, Ordering::Relaxed),
            phase: Mutex::new(Phase::ReadingHead {
                since: Instant::now(),
            }),
            changed: Notify::new(),
            idle,
            this: this.clone(),
        })
    }

    fn phase(&self) -> Phase {
        *self
            .phase
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn set(&self, phase: Phase) {
        let mut current = self
            .phase
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Phase::Idle { since } = *current {
            self.idle.by_age().remove(&(since, self.id));
        }
        if let Phase::Idle { since } = phase {
            self.idle
                .by_age()
                .insert((since, self.id), self.this.clone());
            self.idle.went_idle.notify_waiters();
        }
        *current = phase;
        drop(current);
        self.changed.notify_one();
    }

    /// Closes the connection if it is still idle; says whether it was.
    fn reclaim(&self) -> bool {
        let mut current = self
            .phase
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if !matches!(*current, Phase::Idle { .. }) {
            return false;
        }
        *current = Phase::Reclaimed;
        drop(current);
        self.changed.notify_one();
        true
    }

    fn bytes_arrived(&self) {
        if let Phase::Idle { .. } = self.phase() {
            self.set(Phase::ReadingHead {
                since: Instant::now(),
            });
        }
    }

    /// Returns when the connection has been idle, or reading a request's headers, for too
    /// long; says which.
    async fn expired(&self, timeouts: Timeouts) -> &'static str {
        loop {
            let changed = self.changed.notified();
            let phase = self.phase();
            let (deadline, what) = match phase {
                Phase::ReadingHead { since } => (
                    since + timeouts.header,
                    "headers not sent within header_timeout",
                ),
                Phase::Idle { since } => (since + timeouts.idle, "idle for idle_timeout"),
                Phase::Reclaimed => {
                    return "idle the longest when max_connections were open and one more came"
                }
                Phase::Serving => {
                    changed.await;
                    continue;
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if self.phase() == phase {
                        return what;
                    }
                }
                _ = changed => {}
            }
        }
    }
}

impl Drop for ConnectionClock {
    /// A connection that ends while idle leaves the idle list.
    fn drop(&mut self) {
        if let Phase::Idle { since } = self.phase() {
            self.idle.by_age().remove(&(since, self.id));
        }
    }
}

/// A connection's stream, telling its clock when bytes arrive.
struct ClockedStream<S> {
    inner: S,
    clock: Arc<ConnectionClock>,
}

impl<S: AsyncRead + Unpin> AsyncRead for ClockedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buffer.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(context, buffer);
        if buffer.filled().len() > before {
            self.clock.bytes_arrived();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClockedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(context, buffer)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

async fn serve_connection<S>(
    stream: S,
    peer: std::net::SocketAddr,
    over_tls: bool,
    router: Router,
    timeouts: Timeouts,
    idle: Arc<IdleConnections>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let clock = ConnectionClock::new(idle);
    let stream = ClockedStream {
        inner: stream,
        clock: clock.clone(),
    };
    let service = hyper::service::service_fn({
        let clock = clock.clone();
        move |request: hyper::Request<Incoming>| {
            clock.set(Phase::Serving);
            let router = router.clone();
            let clock = clock.clone();
            let mut request =
                request.map(|body| axum::body::Body::new(TimedBody::new(body, timeouts.body)));
            request.extensions_mut().insert(ServedOverTls(over_tls));
            // The peer address: per-source limits of admission and of the login guard.
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            async move {
                let response = router
                    .oneshot(request)
                    .await
                    .unwrap_or_else(|never| match never {});
                clock.set(Phase::Idle {
                    since: Instant::now(),
                });
                Ok::<_, Infallible>(response)
            }
        }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        why = clock.expired(timeouts) => {
            // Dropping the connection closes it.
            tracing::debug!("connection closed: {why}");
            return;
        }
    };
    if let Err(error) = result {
        tracing::debug!("connection closed: {error}");
    }
}

/// A request body that fails once `body_timeout` has passed since its headers arrived.
struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        TimedBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(context) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(context) {
            Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                "the body did not arrive within {:?} (body_timeout)",
                this.timeout
            )
            .into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What pages may load: their own stylesheet and script, images inline (the chart is
/// inline SVG), forms posted to this server, and no framing by anyone.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";
/// A year; without `includeSubDomains`, since other hosts of a LAN domain may serve HTTP.
const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// Adds the security headers to every answer (pages, API, errors) that does not set its
/// own; over TLS, HSTS and the `Secure` attribute on every cookie set.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let over_tls = request
        .extensions()
        .get::<ServedOverTls>()
        .is_some_and(|tls| tls.0);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not `no-referrer`: with it, browsers send `Origin: null` on the dashboard's own
        // form posts, which the cross-site check then refuses.
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    if over_tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
        );
        if let header::Entry::Occupied(mut cookies) = headers.entry(header::SET_COOKIE) {
            for cookie in cookies.iter_mut() {
                let text = cookie.to_str().unwrap_or_default();
                let secure = text
                    .split(';')
                    .any(|attribute| attribute.trim().eq_ignore_ascii_case("secure"));
                if !secure {
                    if let Ok(value) = HeaderValue::from_str(&format!("{text}; Secure")) {
                        *cookie = value;
                    }
                }
            }
        }
    }
    response
}
