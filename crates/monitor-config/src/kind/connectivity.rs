//! `connectivity` checks: a host answers, by a TCP connection, an HTTP(S) request (a HEAD,
//! as Mender's demo `connectivity` subsystem does with curl, or a GET) or the resolution of
//! its name. Never ICMP. Sampled by the agent (see [`sampled`](super::sampled)); the
//! failures in a row before CRITICAL are the shared `for:`.
//!
//! ```yaml
//! http: https://hosted.mender.io/     # or tcp: db.local:5432, or dns: example.com
//! method: head                        # http only: head (default) or get
//! expected_status: 200-399            # http only: a status or a range (default 200-399)
//! timeout: 10s
//! interval: 1m
//! for: 3                              # 3 failures in a row before CRITICAL
//! ```

use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use monitor_health::connectivity::{ConnectivityProbe, ConnectivityTarget, HttpMethod};
use monitor_health::Probe;
use monitor_wire::Subsystem;
use serde::{Deserialize, Serialize};

use super::plugin::resolve_timeout;
use super::sampled::{Debounce, SampleInterval, SampledCheck, SampledDefinition, SampledTexts};
use crate::create::{CreateArgument, CreateCommand, CreateValues};
use crate::problem::Problem;

/// How long one attempt may take when the check file does not say.
pub const DEFAULT_CONNECTIVITY_TIMEOUT: Duration = Duration::from_secs(10);
/// What an HTTP check accepts when the file does not say: any answer but an error
/// (a redirect is an answer).
const DEFAULT_EXPECTED_STATUS: RangeInclusive<u16> = 200..=399;

/// A `connectivity` check file's own keys (besides `interval` and `for`). Exactly one of
/// `tcp`, `http` and `dns`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectivityDefinition {
    /// `host:port` (`[::1]:22` for an IPv6 address): a TCP connection is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// An `http://` or `https://` URL: a request is sent (redirects are not followed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// A host name: the system's resolver must find an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
    /// For `http`: `head` (default) or `get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<ConnectivityMethod>,
    /// For `http`: the status expected, `200`, or a range, `200-299`. Default 200-399.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<StatusRange>,
    /// How long one attempt may take (seconds or a duration). Default 10s (the interval if
    /// shorter); at most 60s and at most the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<SampleInterval>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectivityMethod {
    Head,
    Get,
}

/// `expected_status:` as written: `200` or `200-299`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusRange {
    One(u16),
    Range(String),
}

impl StatusRange {
    fn parse(&self) -> Result<RangeInclusive<u16>, String> {
        let valid = |status: u16| (100..=599).contains(&status);
        let range = match self {
            StatusRange::One(status) => *status..=*status,
            StatusRange::Range(text) => {
                let parsed = match text.split_once('-') {
                    Some((low, high)) => low
                        .trim()
                        .parse::<u16>()
                        .ok()
                        .zip(high.trim().parse::<u16>().ok()),
                    None => text.trim().parse::<u16>().ok().map(|one| (one, one)),
                };
                match parsed {
                    Some((low, high)) => low..=high,
                    None => {
                        return Err(format!(
                        "\"{text}\" is not a status or a range: write one such as 200 or 200-399"
                    ))
                    }
                }
            }
        };
        if !valid(*range.start()) || !valid(*range.end()) || range.start() > range.end() {
            return Err(format!(
                "{}-{} is not a range of HTTP statuses: write statuses from 100 to 599, the lower first, for example 200-399",
                range.start(),
                range.end()
            ));
        }
        Ok(range)
    }
}

/// A validated `connectivity` check.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectivityCheck {
    pub probe: ConnectivityProbe,
    pub sampled: SampledCheck,
}

impl SampledDefinition<ConnectivityDefinition> {
    /// Validates the check file: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<ConnectivityCheck, Vec<Problem>> {
        let mut problems = Vec::new();
        let target = self.kind.target(file, &mut problems);
        let sampling = self
            .shared
            .resolve(file, None)
            .map_err(|more| problems.extend(more))
            .ok();
        let timeout = sampling.as_ref().and_then(|sampling| {
            resolve_timeout(
                self.kind.timeout,
                DEFAULT_CONNECTIVITY_TIMEOUT,
                sampling.interval,
            )
            .map_err(|message| problems.push(Problem::at_field(file, "timeout", message)))
            .ok()
        });
        let (Some(target), Some(sampling), Some(timeout), true) =
            (target, sampling, timeout, problems.is_empty())
        else {
            return Err(problems);
        };
        let shown = target.to_string();
        let name = match &target {
            ConnectivityTarget::Dns { .. } => format!("Cannot resolve {shown}"),
            _ => format!("Cannot reach {shown}"),
        };
        let texts = SampledTexts::new("connectivity", shown, name, "unreachable", "reachable");
        let probe = ConnectivityProbe::new(target, timeout);
        Ok(ConnectivityCheck {
            sampled: SampledCheck::new(Probe::Connectivity(probe.clone()), sampling, texts),
            probe,
        })
    }
}

impl ConnectivityDefinition {
    fn target(&self, file: &Path, problems: &mut Vec<Problem>) -> Option<ConnectivityTarget> {
        let is_http = self.http.is_some();
        for (field, set) in [
            ("method", self.method.is_some()),
            ("expected_status", self.expected_status.is_some()),
        ] {
            if set && !is_http {
                problems.push(Problem::at_field(
                    file,
                    field,
                    "only for an `http:` check: remove the line",
                ));
            }
        }
        match (&self.tcp, &self.http, &self.dns) {
            (Some(tcp), None, None) => match parse_host_port(tcp) {
                Ok((host, port)) => Some(ConnectivityTarget::Tcp { host, port }),
                Err(message) => {
                    problems.push(Problem::at_field(file, "tcp", message));
                    None
                }
            },
            (None, Some(http), None) => {
                let url = match parse_url(http) {
                    Ok(url) => Some(url),
                    Err(message) => {
                        problems.push(Problem::at_field(file, "http", message));
                        None
                    }
                };
                let expected_status = match &self.expected_status {
                    None => Some(DEFAULT_EXPECTED_STATUS),
                    Some(range) => match range.parse() {
                        Ok(range) => Some(range),
                        Err(message) => {
                            problems.push(Problem::at_field(file, "expected_status", message));
                            None
                        }
                    },
                };
                let method = match self.method {
                    Some(ConnectivityMethod::Get) => HttpMethod::Get,
                    Some(ConnectivityMethod::Head) | None => HttpMethod::Head,
                };
                Some(ConnectivityTarget::Http {
                    url: url?,
                    method,
                    expected_status: expected_status?,
                })
            }
            (None, None, Some(dns)) => match check_host_name(dns) {
                Ok(()) => Some(ConnectivityTarget::Dns {
                    name: dns.trim().to_owned(),
                }),
                Err(message) => {
                    problems.push(Problem::at_field(file, "dns", message));
                    None
                }
            },
            (None, None, None) => {
                problems.push(Problem::in_file(
                    file,
                    "nothing to reach: add `tcp: host:port`, `http: https://host/path` or `dns: host.name`",
                ));
                None
            }
            _ => {
                problems.push(Problem::in_file(
                    file,
                    "more than one of tcp, http and dns: keep one (make one check per target)",
                ));
                None
            }
        }
    }

    /// `monitorctl create connectivity <check> <target> [failures]`.
    pub(crate) const CREATE: CreateCommand = CreateCommand {
        subsystem: Subsystem::Connectivity,
        about: "A host answers: TCP connect, HTTP(S) status or DNS resolution",
        examples: "Examples:\n  monitorctl create connectivity backend https://hosted.mender.io/ 3\n  monitorctl create connectivity database db.local:5432\n  monitorctl create connectivity resolver example.com",
        arguments: &[
            CreateArgument::text("check", "CHECK", None),
            CreateArgument {
                name: "target",
                value_name: "TARGET",
                help: Some("An http:// or https:// URL (a HEAD request), host:port (a TCP connection), or a host name (resolved)"),
                required: true,
                check: Some(check_target),
            },
            CreateArgument {
                name: "failures",
                value_name: "FAILURES",
                help: Some("Failures in a row before CRITICAL (default 1)"),
                required: false,
                check: Some(check_failures),
            },
        ],
    };

    /// The check's name and definition from [`ConnectivityDefinition::CREATE`]'s arguments.
    pub(crate) fn from_create(
        values: CreateValues,
    ) -> Result<(String, SampledDefinition<ConnectivityDefinition>), String> {
        let target = values.text(1);
        let target = target.trim();
        let mut definition = ConnectivityDefinition::default();
        match classify(target)? {
            TargetKind::Http => definition.http = Some(target.to_owned()),
            TargetKind::Tcp => definition.tcp = Some(target.to_owned()),
            TargetKind::Dns => definition.dns = Some(target.to_owned()),
        }
        let mut definition = SampledDefinition::new(definition);
        let failures = values.text(2);
        if !failures.is_empty() {
            definition.shared.debounce = Some(Debounce::Samples(parse_failures(&failures)?));
        }
        Ok((values.text(0), definition))
    }
}

enum TargetKind {
    Http,
    Tcp,
    Dns,
}

/// A URL, `host:port`, or a name, as `monitorctl create connectivity` takes it.
fn classify(target: &str) -> Result<TargetKind, String> {
    if target.contains("://") {
        parse_url(target).map(|_| TargetKind::Http)
    } else if target.contains(':') {
        parse_host_port(target).map(|_| TargetKind::Tcp)
    } else {
        check_host_name(target).map(|()| TargetKind::Dns)
    }
}

fn check_target(text: &str) -> Result<(), String> {
    classify(text.trim()).map(|_| ())
}

fn parse_failures(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|failures| *failures >= 1)
        .ok_or_else(|| {
            format!("\"{text}\" is not a count of failures: write 1 or more, for example 3")
        })
}

fn check_failures(text: &str) -> Result<(), String> {
    parse_failures(text).map(|_| ())
}

fn parse_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|error| {
        format!("\"{text}\" is not a URL ({error}): write one such as https://example.com/health")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "\"{text}\" is not an http:// or https:// URL with a host: write one such as https://example.com/health"
        ));
    }
    Ok(url)
}

/// `host:port`, `[v6]:port`.
fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    let text = text.trim();
    let wrong =
        || format!("\"{text}\" is not host:port: write one such as db.local:5432 or [::1]:22");
    let (host, port) = text.rsplit_once(':').ok_or_else(wrong)?;
    let host = match host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
    {
        Some(v6) => v6,
        None if host.contains(':') => return Err(wrong()),
        None => host,
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(wrong)?;
    if host.is_empty() {
        return Err(wrong());
    }
    Ok((host.to_owned(), port))
}

fn check_host_name(text: &str) -> Result<(), String> {
    let name = text.trim();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "\"{text}\" is not a host name: write one such as example.com (a URL for HTTP, host:port for TCP)"
        ))
    }
}

impl ConnectivityCheck {
    /// What `monitorctl list` shows as its source: `HEAD https://example.com/ (every 30s)`.
    pub fn describe_source(&self) -> String {
        let what = match &self.probe.target {
            ConnectivityTarget::Tcp { .. } => format!("tcp {}", self.probe.target),
            ConnectivityTarget::Http {
                method,
                expected_status,
                ..
            } => format!(
                "{method} {} (expects {}-{})",
                self.probe.target,
                expected_status.start(),
                expected_status.end()
            ),
            ConnectivityTarget::Dns { .. } => format!("dns {}", self.probe.target),
        };
        format!("{what} ({})", self.sampled.describe_sampling())
    }
}

#[cfg(test)]
mod tests;
