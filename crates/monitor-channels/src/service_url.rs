//! A service's URL as a user gives it (a Slack webhook, a Telegram Bot API server): split
//! into scheme, host and path without a URL crate, and judged for where it may send a
//! secret: `https`, or plain `http` to this machine only, unless the user allows it.

/// A URL split into its parts; the path may hold a secret, so nothing here shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ServiceUrl {
    /// `https` or `http`, lowercase.
    pub scheme: String,
    /// The host with its port if one was given.
    pub host: String,
    /// From the first `/` on, without query or fragment (empty when there is none).
    pub path: String,
}

/// Why a text is not a URL a service can be reached at; no variant holds the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServiceUrlError {
    Empty,
    MissingScheme,
    UnsupportedScheme(String),
    MissingHost,
    Credentials(String),
}

impl ServiceUrlError {
    /// The problem in words, before the service's own "expected ...".
    pub(crate) fn describe(&self, what: &str) -> String {
        match self {
            ServiceUrlError::Empty => format!("the {what} is empty"),
            ServiceUrlError::MissingScheme => format!("the {what} has no scheme"),
            ServiceUrlError::UnsupportedScheme(scheme) => {
                format!("the {what}'s scheme `{scheme}` is not https or http")
            }
            ServiceUrlError::MissingHost => format!("the {what} has no host"),
            ServiceUrlError::Credentials(host) => {
                format!("the {what} on `{host}` carries a user name or password")
            }
        }
    }
}

impl std::fmt::Debug for ServiceUrl {
    /// Scheme and host only: the path may hold a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceUrl({}://{}/…)", self.scheme, self.host)
    }
}

impl ServiceUrl {
    /// Parses `text` (surrounding whitespace ignored); a query or fragment is dropped.
    pub(crate) fn parse(text: &str) -> Result<ServiceUrl, ServiceUrlError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ServiceUrlError::Empty);
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or(ServiceUrlError::MissingScheme)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(ServiceUrlError::UnsupportedScheme(scheme));
        }
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        if authority.contains('@') {
            let host = authority.rsplit('@').next().unwrap_or_default().to_owned();
            return Err(ServiceUrlError::Credentials(host));
        }
        if authority.is_empty() || authority.starts_with(':') {
            return Err(ServiceUrlError::MissingHost);
        }
        Ok(ServiceUrl {
            scheme,
            host: authority.to_ascii_lowercase(),
            path: path.to_owned(),
        })
    }

    /// The host without its port, and without the brackets of an IPv6 address.
    pub(crate) fn host_name(&self) -> &str {
        let host = &self.host;
        if let Some(bracketed) = host.strip_prefix('[') {
            return bracketed.split(']').next().unwrap_or_default();
        }
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    }

    /// `https` on `name` and its default port.
    pub(crate) fn is_https_on(&self, name: &str) -> bool {
        self.scheme == "https" && (self.host == name || self.host == format!("{name}:443"))
    }

    /// This machine: `localhost`, 127.0.0.0/8 or `::1`; a secret sent there in plain
    /// `http` does not cross a network.
    pub(crate) fn is_loopback(&self) -> bool {
        monitor_wire::host::is_loopback(self.host_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_scheme_host_and_path() {
        let url =
            ServiceUrl::parse(" HTTPS://Hooks.Slack.com:443/services/T1/B2/x?a=1#f ").unwrap();
        assert_eq!(url.scheme, "https");
        assert_eq!(url.host, "hooks.slack.com:443");
        assert_eq!(url.path, "/services/T1/B2/x");
        assert!(url.is_https_on("hooks.slack.com"));
        assert!(!url.is_loopback());
        for loopback in [
            "http://127.0.0.1:8080",
            "http://[::1]:9/x",
            "http://localhost",
        ] {
            assert!(
                ServiceUrl::parse(loopback).unwrap().is_loopback(),
                "{loopback}"
            );
        }
        assert_eq!(
            ServiceUrl::parse("https://user:secret@example.com/"),
            Err(ServiceUrlError::Credentials("example.com".into()))
        );
        assert_eq!(
            ServiceUrl::parse("ftp://example.com"),
            Err(ServiceUrlError::UnsupportedScheme("ftp".into()))
        );
    }
}
