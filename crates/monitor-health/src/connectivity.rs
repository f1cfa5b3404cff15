//! Whether a host answers: a TCP connection to `host:port`, an HTTP(S) request with its
//! status in an expected range (Mender's demo `connectivity` check does an HTTP HEAD), or
//! the resolution of a name by the system's resolver. Never ICMP: a ping needs privileges
//! and says little about the service.
//!
//! One sample is one attempt, bounded by the check's timeout; how many failures in a row
//! make an alert is the sampled checks' shared `for` debounce, not this module's.

use std::error::Error as _;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::plugin::describe_duration;
use crate::{Reading, Roots};

/// `monitord/<version>`, as the agent's requests to its backend.
const USER_AGENT: &str = concat!("monitord/", env!("CARGO_PKG_VERSION"));
/// How many addresses the text of a resolved name lists.
const ADDRESSES_SHOWN: usize = 3;

/// What a check reaches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectivityTarget {
    /// A TCP connection to `host:port` (the host a name or an address).
    Tcp { host: String, port: u16 },
    /// An HTTP or HTTPS request (redirects are not followed: a 301 is an answer) whose
    /// status must be in `expected_status`.
    Http {
        url: reqwest::Url,
        method: HttpMethod,
        expected_status: RangeInclusive<u16>,
    },
    /// The system resolver (`/etc/hosts`, DNS, as `getaddrinfo` is configured) finds an
    /// address for `name`.
    Dns { name: String },
}

impl fmt::Display for ConnectivityTarget {
    /// What the check watches, for the alert's subject: `db.local:5432`,
    /// `https://example.com/health` (never with its credentials), `example.com`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } => write!(formatter, "{}", host_and_port(host, *port)),
            Self::Http { url, .. } => formatter.write_str(&without_credentials(url)),
            Self::Dns { name } => formatter.write_str(name),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    /// The headers only (Mender's demo check, `curl --head`).
    Head,
    /// For servers that refuse HEAD (405); the body is not read.
    Get,
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            HttpMethod::Head => "HEAD",
            HttpMethod::Get => "GET",
        })
    }
}

/// Reaches for a target once per sample. Bad when it does not answer (in time, or with an
/// expected status).
#[derive(Debug, Clone)]
pub struct ConnectivityProbe {
    pub target: ConnectivityTarget,
    /// One attempt gives up after this long.
    pub timeout: Duration,
    /// Built at the first HTTP sample and kept (its TLS roots are read once), shared by the
    /// clones the agent samples with; the error of a build that failed, to say at each
    /// sample.
    client: Arc<OnceLock<Result<reqwest::Client, String>>>,
}

impl PartialEq for ConnectivityProbe {
    fn eq(&self, other: &Self) -> bool {
        self.target == other.target && self.timeout == other.timeout
    }
}

impl ConnectivityProbe {
    pub fn new(target: ConnectivityTarget, timeout: Duration) -> Self {
        ConnectivityProbe {
            target,
            timeout,
            client: Arc::new(OnceLock::new()),
        }
    }

    /// A [`Reading::Verdict`]: bad when the target does not answer as expected.
    /// `Unavailable` only when no HTTP client can be built (no TLS crypto provider).
    pub async fn sample(&self, _roots: &Roots) -> Reading {
        let started = Instant::now();
        let answer = match &self.target {
            ConnectivityTarget::Tcp { host, port } => self.connect(host, *port).await,
            ConnectivityTarget::Http {
                url,
                method,
                expected_status,
            } => match self.client() {
                Ok(client) => self.request(client, url, *method, expected_status).await,
                Err(problem) => return Reading::Unavailable(problem),
            },
            ConnectivityTarget::Dns { name } => self.resolve(name).await,
        };
        let took = started.elapsed().as_millis();
        match answer {
            Ok(text) => Reading::Verdict {
                bad: false,
                text: format!("{text} ({took} ms)"),
            },
            Err(text) => Reading::Verdict { bad: true, text },
        }
    }

    async fn connect(&self, host: &str, port: u16) -> Result<String, String> {
        let target = host_and_port(host, port);
        match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect((host, port))).await
        {
            Ok(Ok(_connection)) => Ok(format!("{target} accepts connections")),
            Ok(Err(error)) => Err(format!("cannot connect to {target}: {error}")),
            Err(_) => Err(format!(
                "{target} did not accept a connection within {}",
                describe_duration(self.timeout)
            )),
        }
    }

    async fn request(
        &self,
        client: &reqwest::Client,
        url: &reqwest::Url,
        method: HttpMethod,
        expected_status: &RangeInclusive<u16>,
    ) -> Result<String, String> {
        let shown = format!("{method} {}", without_credentials(url));
        let request = match method {
            HttpMethod::Head => client.head(url.clone()),
            HttpMethod::Get => client.get(url.clone()),
        };
        // The timeout covers connecting, TLS and the response's head; the body is dropped
        // unread.
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(format!("{shown}: {}", describe_request_error(&error))),
            Err(_) => {
                return Err(format!(
                    "{shown}: no answer within {}",
                    describe_duration(self.timeout)
                ));
            }
        };
        let status = response.status();
        if expected_status.contains(&status.as_u16()) {
            Ok(format!("{shown}: {status}"))
        } else {
            Err(format!(
                "{shown}: {status} (expected {}-{})",
                expected_status.start(),
                expected_status.end()
            ))
        }
    }

    async fn resolve(&self, name: &str) -> Result<String, String> {
        // getaddrinfo runs on a blocking thread; after the timeout it is left to finish.
        match tokio::time::timeout(self.timeout, tokio::net::lookup_host((name, 0))).await {
            Ok(Ok(addresses)) => {
                let mut shown: Vec<String> = Vec::new();
                for address in addresses {
                    let address = address.ip().to_string();
                    if !shown.contains(&address) {
                        shown.push(address);
                    }
                }
                if shown.is_empty() {
                    return Err(format!("{name} resolves to no address"));
                }
                let more = shown.len().saturating_sub(ADDRESSES_SHOWN);
                shown.truncate(ADDRESSES_SHOWN);
                let mut text = format!("{name} resolves to {}", shown.join(", "));
                if more > 0 {
                    text.push_str(&format!(" and {more} more"));
                }
                Ok(text)
            }
            Ok(Err(error)) => Err(format!("cannot resolve {name}: {error}")),
            Err(_) => Err(format!(
                "{name} was not resolved within {}",
                describe_duration(self.timeout)
            )),
        }
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(build_client)
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// rustls verifying with the platform's roots, no redirects, no cookies, no pool kept
/// between samples that are minutes apart.
fn build_client() -> Result<reqwest::Client, String> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        return Err("no TLS crypto provider is installed: the agent installs rustls's ring provider at start; a program using monitor-health must do the same".to_owned());
    }
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .tls_backend_rustls()
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))
}

/// reqwest's own text is "error sending request for url (…)"; the cause is in its sources.
fn describe_request_error(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        source = cause.source();
    }
    let kind = if error.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    match causes.last() {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_owned(),
    }
}

/// `host:port`, with an IPv6 address in brackets.
fn host_and_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The URL without a user name or password, for texts and subjects.
fn without_credentials(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests;
