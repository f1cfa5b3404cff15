//! The server's settings: flags, then environment variables, then the optional YAML file
//! (`--config`), then defaults. Every field of the file is also a flag of the same name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use crate::device_key::{DeviceKeyLocation, KEY_FILE_NAME};

/// `30s`, `5m`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).map_err(|error| error.to_string())
}

/// The file given with `--config`; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// Address and port to listen on.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Where the SQLite database lives (when no database_url is given).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// `postgres://user:password@host/db`; better given by environment (it holds a secret).
    #[serde(default)]
    pub database_url: Option<String>,
    /// The largest request body, in bytes.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// The most alerts one request may carry.
    #[serde(default)]
    pub max_alerts_per_request: Option<usize>,
    /// Requests a device may make per minute on average before it gets 429.
    #[serde(default)]
    pub device_requests_per_minute: Option<u32>,
    /// New pending devices one source address may add per minute before it gets 429.
    #[serde(default)]
    pub pending_devices_per_minute: Option<u32>,
    /// The most pending devices kept; past it the oldest pending are dropped.
    #[serde(default)]
    pub max_pending_devices: Option<u64>,
    /// The SMTP relay for email channels (`smtp://host:25`, `smtps://user:password@host`);
    /// better given by environment (it may hold a password).
    #[serde(default)]
    pub smtp_url: Option<String>,
    /// The sender of notification emails.
    #[serde(default)]
    pub email_from: Option<String>,
    /// A device's state changes go to a channel at most once per interval (`5m`, `30s`):
    /// the first at once, the rest together at the end of the interval.
    #[serde(default)]
    pub notify_interval: Option<String>,
    /// The device-token signing key's file [default: `<data_dir>/device-token.key`; with
    /// PostgreSQL, none: the key stays in the database]. Replicas need the same file.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The certificate chain (PEM) to serve HTTPS with; needs `tls_key`. Read again on SIGHUP.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// How long a client may take to send a request's headers (`10s`).
    #[serde(default)]
    pub header_timeout: Option<String>,
    /// How long a client may take to send a request's body once its headers arrived (`30s`).
    #[serde(default)]
    pub body_timeout: Option<String>,
    /// How long a connection may idle between requests (`120s`).
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// The most connections served at once; more wait until one closes.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Serve `/metrics` to anyone (without it, a bearer token is needed).
    #[serde(default)]
    pub metrics_public: Option<bool>,
    /// A file holding the bearer token `/metrics` also accepts (besides API tokens).
    #[serde(default)]
    pub metrics_token_file: Option<PathBuf>,
    /// Let the HTTP channels (Discord, webhook, ntfy, Slack, Telegram) post to private and
    /// loopback hosts and over plain http, not only to public https services (a relay, a
    /// self-hosted service or a stand-in on the LAN).
    #[serde(default)]
    pub allow_private_targets: Option<bool>,
    /// The address users open the dashboard at (`https://monitor.example.com`): messages
    /// link the device's page under it.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How many missed heartbeats make a device silent (a device's own `silent_after` wins).
    #[serde(default)]
    pub silent_after: Option<u32>,
}

impl FileSettings {
    pub fn load(path: &Path) -> anyhow::Result<FileSettings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the configuration", path.display()))?;
        serde_norway::from_str(&text).map_err(|error| {
            anyhow::anyhow!(
                "{}: {error} (the fields are listen, data_dir, database_url, max_body_bytes, \
                 max_alerts_per_request, device_requests_per_minute, pending_devices_per_minute, \
                 max_pending_devices, smtp_url, email_from, notify_interval, key_file, tls_cert, \
                 tls_key, header_timeout, body_timeout, idle_timeout, max_connections, \
                 metrics_public, metrics_token_file, allow_private_targets, silent_after, \
                 public_url)",
                path.display()
            )
        })
    }
}

/// Where the data is.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// `<data_dir>/monitor-server.db`.
    Sqlite(PathBuf),
    Url(String),
}

impl std::fmt::Debug for Database {
    /// Never shows a URL's password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "SQLite at {}", path.display()),
            Database::Url(url) => write!(f, "{}", redact_url(url)),
        }
    }
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<database URL>".into();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let authority = match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{credentials}@{host}"),
        },
        None => authority.to_owned(),
    };
    let path = path.split('?').next().unwrap_or_default();
    format!("{scheme}://{authority}/{path}")
}

/// Limits that protect the server from one device or one request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest request body, in bytes (larger ones get 413).
    pub max_body_bytes: usize,
    /// The most alerts one request may carry.
    pub max_alerts_per_request: usize,
    /// Requests a device may make per minute, on average, before getting 429.
    pub device_requests_per_minute: u32,
    /// New pending devices one source address may add per minute (bursts as large) before
    /// its `auth_requests` get 429.
    pub pending_devices_per_minute: u32,
    /// The most pending devices kept; past it the oldest pending are dropped.
    pub max_pending_devices: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_alerts_per_request: 500,
            device_requests_per_minute: 600,
            pending_devices_per_minute: 10,
            max_pending_devices: 500,
        }
    }
}

pub const EMAIL_DEFAULT_FROM: &str = "monitor-server <monitor-server@localhost>";
/// The SMTP relay: `smtp://host:25`, `smtp://user:password@host:587?tls=required` (STARTTLS)
/// or `smtps://host:465`. The URL may hold a password: it is never logged.
#[derive(Clone)]
pub struct SmtpSettings {
    pub url: String,
    pub from: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &redact_url(&self.url))
            .field("from", &self.from)
            .finish()
    }
}

/// The certificate and key HTTPS is served with (PEM files, read again on SIGHUP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How the listener treats connections: TLS, and how long and how many clients may hold it.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    pub tls: Option<TlsFiles>,
    /// A client that has not sent a request's headers within this is cut off.
    pub header_timeout: Duration,
    /// A client that has not sent a request's body within this (after its headers) is cut off.
    pub body_timeout: Duration,
    /// A connection idle between requests for this long is closed; longer than clients'
    /// usual pool timeout (90 s), so that they close first and never reuse a closing one.
    pub idle_timeout: Duration,
    /// Connections served at once; the others wait in the kernel's backlog.
    pub max_connections: usize,
}

pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Who may read `/metrics`.
#[derive(Clone, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Anyone (`--metrics-public`).
    Public,
    /// A user's API token, or this token (from `--metrics-token-file`) when given.
    BearerToken(Option<String>),
}

impl std::fmt::Debug for MetricsAccess {
    /// Never shows the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsAccess::Public => write!(f, "public"),
            MetricsAccess::BearerToken(None) => write!(f, "API tokens"),
            MetricsAccess::BearerToken(Some(_)) => write!(f, "API tokens and the metrics token"),
        }
    }
}

/// The flags for what `serve` exposes and to whom; each is also a field of the file.
#[derive(Debug, Default, Clone)]
pub struct ExposureFlags {
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub metrics_public: bool,
    pub metrics_token_file: Option<PathBuf>,
    pub allow_private_targets: bool,
    pub public_url: Option<String>,
}

/// The address users open the dashboard at (`--public-url`), checked: `http` or `https`,
/// a host, maybe a path (behind a proxy), no user, password, query or fragment. Messages
/// link pages under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(reqwest::Url);

impl PublicUrl {
    /// The message names the flag, the file's field and what to give instead.
    pub fn parse(text: &str) -> anyhow::Result<PublicUrl> {
        let problem = |shown: &str, what: &str| {
            anyhow::anyhow!(
                "--public-url (public_url) `{shown}`: {what}: give the address users open the \
                 dashboard at, such as https://monitor.example.com"
            )
        };
        let url = reqwest::Url::parse(text.trim())
            .map_err(|error| problem(text, &format!("not a URL ({error})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(problem(text, "not an http or https address"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Shown without them: the password is a secret.
            let mut shown = url.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            return Err(problem(
                shown.as_str(),
                "it holds a user or a password, which every message would show",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(problem(
                text,
                "it has a query or a fragment, which no page of the dashboard takes",
            ));
        }
        Ok(PublicUrl(url))
    }

    /// The dashboard's page of a device: `<public URL>/ui/devices/<id>` (the id
    /// percent-encoded).
    pub fn device_page(&self, device_id: &str) -> String {
        let mut url = self.0.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["ui", "devices", device_id]);
        }
        url.into()
    }
}

/// The settings a run uses.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database: Database,
    pub limits: Limits,
    /// Email channels are served only with an SMTP relay.
    pub smtp: Option<SmtpSettings>,
    pub notify_interval: Duration,
    /// Where the device-token signing key lives.
    pub device_key: DeviceKeyLocation,
    pub listener: ListenerSettings,
    pub metrics: MetricsAccess,
    /// The HTTP channels may post to any host, over http too, not only to public services.
    pub allow_private_targets: bool,
    /// Messages link the dashboard's page of their device under it.
    pub public_url: Option<PublicUrl>,
    /// Missed heartbeats that make a device silent, for devices without their own number.
    pub silent_after: u32,
}

pub const DEFAULT_NOTIFY_INTERVAL: Duration = Duration::from_secs(300);

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/monitor-server";
pub const DATABASE_FILE: &str = "monitor-server.db";

impl Settings {
    /// Flags and environment (already merged by clap) over the file over the defaults.
    pub fn resolve(
        file: FileSettings,
        listen: Option<SocketAddr>,
        data_dir: Option<PathBuf>,
        database_url: Option<String>,
        smtp_url: Option<String>,
        exposure: ExposureFlags,
    ) -> anyhow::Result<Settings> {
        let defaults = Limits::default();
        let database = match database_url.or(file.database_url) {
            Some(url) => Database::Url(url),
            None => Database::Sqlite(
                data_dir
                    .or(file.data_dir)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
                    .join(DATABASE_FILE),
            ),
        };
        // Next to the database, never in it; PostgreSQL has no data directory that replicas
        // share, so there it is a file only when given (see `device_key`).
        let device_key = match (&file.key_file, &database) {
            (Some(path), _) => DeviceKeyLocation::File(path.clone()),
            (None, Database::Sqlite(path)) => {
                DeviceKeyLocation::File(path.parent().unwrap_or(Path::new(".")).join(KEY_FILE_NAME))
            }
            (None, Database::Url(_)) => DeviceKeyLocation::Database,
        };
        let notify_interval = duration_field(
            "notify_interval",
            &file.notify_interval,
            DEFAULT_NOTIFY_INTERVAL,
        )?;
        let listener = ListenerSettings {
            tls: tls_files(
                exposure.tls_cert.or(file.tls_cert.clone()),
                exposure.tls_key.or(file.tls_key.clone()),
            )?,
            header_timeout: duration_field(
                "header_timeout",
                &file.header_timeout,
                DEFAULT_HEADER_TIMEOUT,
            )?,
            body_timeout: duration_field("body_timeout", &file.body_timeout, DEFAULT_BODY_TIMEOUT)?,
            idle_timeout: duration_field("idle_timeout", &file.idle_timeout, DEFAULT_IDLE_TIMEOUT)?,
            max_connections: match file.max_connections {
                Some(0) => anyhow::bail!("max_connections: 0 would serve nobody: give at least 1"),
                Some(count) => count,
                None => DEFAULT_MAX_CONNECTIONS,
            },
        };
        let metrics = if exposure.metrics_public || file.metrics_public == Some(true) {
            MetricsAccess::Public
        } else {
            match exposure
                .metrics_token_file
                .or(file.metrics_token_file.clone())
            {
                Some(path) => MetricsAccess::BearerToken(Some(read_metrics_token(&path)?)),
                None => MetricsAccess::BearerToken(None),
            }
        };
        let smtp = smtp_url.or(file.smtp_url).map(|url| SmtpSettings {
            url,
            from: file
                .email_from
                .clone()
                .unwrap_or_else(|| EMAIL_DEFAULT_FROM.to_owned()),
        });
        let silent_after = match file.silent_after {
            Some(0) => anyhow::bail!(
                "silent_after: 0 would take every device with heartbeats for silent: give at least 1 (a device that should never be: `monitor-server device silent-after <device> never`)"
            ),
            Some(missed) => missed,
            None => crate::fleet::DEFAULT_SILENT_AFTER,
        };
        let public_url = match exposure.public_url.or(file.public_url) {
            Some(text) => Some(PublicUrl::parse(&text)?),
            None => None,
        };
        Ok(Settings {
            public_url,
            silent_after,
            device_key,
            listener,
            metrics,
            allow_private_targets: exposure.allow_private_targets
                || file.allow_private_targets == Some(true),
            smtp,
            notify_interval,
            listen: listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid address")),
            database,
            limits: Limits {
                max_body_bytes: file.max_body_bytes.unwrap_or(defaults.max_body_bytes),
                max_alerts_per_request: file
                    .max_alerts_per_request
                    .unwrap_or(defaults.max_alerts_per_request),
                device_requests_per_minute: file
                    .device_requests_per_minute
                    .unwrap_or(defaults.device_requests_per_minute),
                pending_devices_per_minute: file
                    .pending_devices_per_minute
                    .unwrap_or(defaults.pending_devices_per_minute),
                max_pending_devices: file
                    .max_pending_devices
                    .unwrap_or(defaults.max_pending_devices),
            },
        })
    }
}

/// A duration field of the file, or its default.
fn duration_field(
    field: &str,
    text: &Option<String>,
    default: Duration,
) -> anyhow::Result<Duration> {
    match text {
        Some(text) => parse_duration(text).map_err(|error| {
            anyhow::anyhow!("{field}: `{text}` is not a duration such as 5m or 30s ({error})")
        }),
        None => Ok(default),
    }
}

fn tls_files(cert: Option<PathBuf>, key: Option<PathBuf>) -> anyhow::Result<Option<TlsFiles>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => anyhow::bail!(
            "tls_cert is given without tls_key: give both, or neither to serve plain HTTP"
        ),
        (None, Some(_)) => anyhow::bail!(
            "tls_key is given without tls_cert: give both, or neither to serve plain HTTP"
        ),
    }
}

/// The first line of the metrics token file.
fn read_metrics_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "{}: cannot read the metrics token (metrics_token_file)",
            path.display()
        )
    })?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        anyhow::bail!(
            "{}: the metrics token file is empty: put a long random token on its first line",
            path.display()
        );
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_shown_without_their_password() {
        assert_eq!(
            redact_url("postgres://monitor:s3cret@db.example:5432/monitor?sslmode=require"),
            "postgres://monitor:***@db.example:5432/monitor"
        );
        assert_eq!(redact_url("postgres://db/monitor"), "postgres://db/monitor");
        assert!(
            !format!("{:?}", Database::Url("postgres://a:s3cret@h/d".into())).contains("s3cret")
        );
    }

    #[test]
    fn a_public_url_links_device_pages_under_its_path() {
        let root = PublicUrl::parse("https://monitor.example").unwrap();
        assert_eq!(
            root.device_page("d 1"),
            "https://monitor.example/ui/devices/d%201"
        );
        let proxied = PublicUrl::parse("http://lan.example:8080/monitor/").unwrap();
        assert_eq!(
            proxied.device_page("abc"),
            "http://lan.example:8080/monitor/ui/devices/abc"
        );
        for bad in [
            "monitor.example",
            "ftp://monitor.example",
            "https://admin:pw@monitor.example",
            "https://monitor.example/?x=1",
            "https://monitor.example/#top",
        ] {
            let error = PublicUrl::parse(bad).unwrap_err().to_string();
            assert!(
                error.starts_with("--public-url (public_url) `")
                    && error.contains("such as https://"),
                "{error}"
            );
            assert!(
                !error.contains("pw"),
                "the password is never shown: {error}"
            );
        }
    }

    #[test]
    fn an_unknown_field_in_the_file_is_named() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("server.yaml");
        std::fs::write(&path, "listen: 127.0.0.1:9000\nlisten_port: 9\n").unwrap();
        let error = FileSettings::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("server.yaml") && error.contains("listen_port"),
            "{error}"
        );
    }
}
