//! Where the broker is (`mqtt://host:1883`, `mqtts://host:8883`) and the TLS set-up for
//! `mqtts`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// A broker's address, from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    /// `mqtts`: TLS, checked against the system's roots and the `ca_file`.
    pub tls: bool,
}

/// Why a broker URL cannot be used. Never holds the URL's user part (a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("\"{0}\" is not a broker URL: write mqtt://host:1883 or mqtts://host:8883")]
    Scheme(String),
    #[error("the URL holds a user name or password: put them in username and password_file (or password_env) instead")]
    Credentials,
    #[error("\"{0}\": no host: write mqtt://host:1883 or mqtts://host:8883")]
    NoHost(String),
    #[error("\"{0}\": the port is not a number from 1 to 65535")]
    Port(String),
    #[error(
        "\"{0}\": a path, query or fragment means nothing to MQTT: write only scheme://host:port"
    )]
    Path(String),
}

impl BrokerUrl {
    /// `mqtt://host[:port]` (TCP, port 1883 by default) or `mqtts://host[:port]` (TLS, 8883);
    /// an IPv6 host in brackets (`mqtt://[::1]:1883`).
    pub fn parse(url: &str) -> Result<BrokerUrl, UrlError> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            // Only the scheme is shown: the rest may hold a password.
            let scheme = url.split("://").next().unwrap_or_default();
            return Err(UrlError::Scheme(format!("{scheme}://...")));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        if authority.contains(['/', '?', '#']) {
            return Err(UrlError::Path(url.to_owned()));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| UrlError::NoHost(url.to_owned()))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost(url.to_owned()));
        }
        let port = match port {
            None => {
                if tls {
                    8883
                } else {
                    1883
                }
            }
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| UrlError::Port(url.to_owned()))?,
        };
        Ok(BrokerUrl {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Why the TLS set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read ca_file {}: {error}", path.display())]
    CaFile { path: PathBuf, error: String },
    #[error("ca_file {} holds no PEM certificate", .0.display())]
    NoCertificate(PathBuf),
    #[error("TLS set-up: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A TLS client with rustls' ring provider (the agent's; aws-lc is not built), trusting the
/// system's roots and the certificates of `ca_file`.
pub fn tls_client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    // A system without a certificate store still reaches a broker of its own CA.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let cannot_read = |error: String| TlsError::CaFile {
            path: path.to_owned(),
            error,
        };
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|error| cannot_read(error.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| cannot_read(error.to_string()))?;
        if certificates.is_empty() {
            return Err(TlsError::NoCertificate(path.to_owned()));
        }
        for certificate in certificates {
            roots.add(certificate)?;
        }
    }
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_give_host_port_and_tls() {
        assert_eq!(
            BrokerUrl::parse("mqtt://broker.lan").unwrap(),
            BrokerUrl {
                host: "broker.lan".into(),
                port: 1883,
                tls: false
            }
        );
        let tls = BrokerUrl::parse("mqtts://127.0.0.1:18883/").unwrap();
        assert_eq!(
            (tls.host.as_str(), tls.port, tls.tls),
            ("127.0.0.1", 18883, true)
        );
        assert_eq!(BrokerUrl::parse("mqtts://[::1]").unwrap().port, 8883);
        assert_eq!(
            BrokerUrl::parse("mqtt://[::1]:1884").unwrap().to_string(),
            "mqtt://[::1]:1884"
        );
    }

    #[test]
    fn bad_broker_urls_say_the_fix_and_never_a_password() {
        let error = BrokerUrl::parse("mqtt://user:hunter2@broker:1883").unwrap_err();
        assert_eq!(error, UrlError::Credentials);
        assert!(!error.to_string().contains("hunter2"));
        let error = BrokerUrl::parse("https://user:hunter2@broker").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(matches!(error, UrlError::Scheme(_)));
        assert!(matches!(
            BrokerUrl::parse("mqtt://broker:99999"),
            Err(UrlError::Port(_))
        ));
        assert!(matches!(
            BrokerUrl::parse("mqtt://:1883"),
            Err(UrlError::NoHost(_))
        ));
        assert!(matches!(
            BrokerUrl::parse("mqtt://broker/topic"),
            Err(UrlError::Path(_))
        ));
    }
}
