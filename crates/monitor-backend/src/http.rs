//! The HTTP client the agent builds once and hands to [`crate::BackendClient::new`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::REQUEST_TIMEOUT;

/// `monitord/<version>`.
pub const USER_AGENT: &str = concat!("monitord/", env!("CARGO_PKG_VERSION"));
/// Connecting (TCP and TLS handshake) gives up after this long; the whole request after
/// [`REQUEST_TIMEOUT`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections are closed after this long: alerts are rare, and a forwarder may go away.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("cannot read the extra CA certificate {}: {source}", path.display())]
    ReadCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the extra CA certificate {} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----): give a PEM file", path.display())]
    NoCertificate { path: PathBuf },
    #[error("the extra CA certificate {} is not valid PEM: {reason}", path.display())]
    InvalidPem { path: PathBuf, reason: String },
    #[error("no rustls crypto provider is installed: call rustls::crypto::ring::default_provider().install_default() at start")]
    NoCryptoProvider,
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Reads a PEM file with one or more CA certificates (a bundle is fine), for a backend whose
/// certificate the platform's roots do not cover.
pub fn load_extra_ca(path: &Path) -> Result<reqwest::Certificate, HttpClientError> {
    let pem = std::fs::read(path).map_err(|source| HttpClientError::ReadCa {
        path: path.to_owned(),
        source,
    })?;
    // `Certificate::from_pem` only keeps the bytes: parse here, so a bad file is reported now
    // and with its name, not when the first request is made.
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
        HttpClientError::InvalidPem {
            path: path.to_owned(),
            reason: error.to_string(),
        }
    })?;
    if certificates.is_empty() {
        return Err(HttpClientError::NoCertificate {
            path: path.to_owned(),
        });
    }
    reqwest::Certificate::from_pem(&pem).map_err(|error| HttpClientError::InvalidPem {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

/// The HTTP client for the backend: rustls verifying with the platform's roots plus
/// `extra_ca`, `User-Agent: monitord/<version>`, a connect timeout and [`REQUEST_TIMEOUT`].
///
/// The binary installs the rustls crypto provider (ring) first; without one this returns
/// [`HttpClientError::NoCryptoProvider`] rather than panic.
pub fn http_client(extra_ca: Option<&Path>) -> Result<reqwest::Client, HttpClientError> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        return Err(HttpClientError::NoCryptoProvider);
    }
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tls_backend_rustls();
    if let Some(path) = extra_ca {
        builder = builder.tls_certs_merge([load_extra_ca(path)?]);
    }
    builder.build().map_err(HttpClientError::Build)
}
