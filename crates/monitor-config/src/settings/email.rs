//! `delivery.email[]`: mail alerts through an SMTP relay, for devices without a server.

use std::path::PathBuf;

use serde::Deserialize;

use super::{checks_entry_problem, MinLevel};

/// One SMTP relay and its recipients. The password is a secret: it comes from
/// `password_file` or `password_env`, never from monitor.yaml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// The relay's host name or address, e.g. `smtp.example.com`.
    pub smtp_host: String,
    /// Default by `tls`: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    #[serde(default)]
    pub smtp_port: Option<u16>,
    /// `starttls` (default), `tls`, or `none` (only for a loopback host or with
    /// `allow_insecure: true`: the password and alerts would cross the network in clear).
    #[serde(default)]
    pub tls: EmailTls,
    /// A CA certificate (PEM) to trust besides the system's, for a relay whose certificate
    /// a private CA signed (`starttls` and `tls`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Allows `tls: none` to a host that is not loopback (a relay on a trusted LAN).
    #[serde(default)]
    pub allow_insecure: bool,
    /// The login's user; with a password from `password_file` or `password_env`.
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the password (its first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The sender, e.g. `monitor <pi@example.com>`.
    pub from: String,
    /// The recipients; at least one.
    pub to: Vec<String>,
    /// `OK` (default: every alert) or `CRITICAL` (only CRITICALs).
    #[serde(default)]
    pub min_level: MinLevel,
    /// Only these checks, as `<subsystem>` or `<subsystem> <check>`; default every check.
    #[serde(default)]
    pub checks: Vec<String>,
}

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// Plain, then STARTTLS (required) before anything is sent.
    #[default]
    Starttls,
    /// TLS from the first byte (`smtps`).
    Tls,
    /// No encryption.
    None,
}

impl EmailSettings {
    /// The port: `smtp_port`, else the usual one for `tls`.
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.tls {
            EmailTls::Starttls => 587,
            EmailTls::Tls => 465,
            EmailTls::None => 25,
        })
    }

    /// Whether `smtp_host` is this machine (`localhost`, 127.0.0.0/8, ::1).
    pub fn host_is_loopback(&self) -> bool {
        monitor_wire::host::is_loopback(&self.smtp_host)
    }

    /// What serde cannot check, as `(field below delivery.email[index], message)`.
    pub fn problems(&self, index: usize) -> Vec<(String, String)> {
        let field = |name: &str| format!("delivery.email[{index}]{name}");
        let mut problems = Vec::new();
        if self.smtp_host.trim().is_empty() {
            problems.push((
                field(".smtp_host"),
                "empty: write the relay's host, such as smtp.example.com".to_owned(),
            ));
        }
        if self.tls == EmailTls::None && !self.allow_insecure && !self.host_is_loopback() {
            problems.push((
                field(".tls"),
                format!(
                    "none to {} would send the password and alerts in clear: use starttls or tls, or set allow_insecure: true for a relay on a trusted network",
                    self.smtp_host
                ),
            ));
        }
        if self.tls == EmailTls::None && self.ca_file.is_some() {
            problems.push((
                field(".ca_file"),
                "with tls: none no certificate is checked: use tls: starttls or tls, or remove ca_file".to_owned(),
            ));
        }
        if self.to.is_empty() {
            problems.push((
                field(".to"),
                "empty: list at least one recipient, such as [ops@example.com]".to_owned(),
            ));
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            problems.push((
                field(""),
                "set one of password_file and password_env, not both".to_owned(),
            ));
        }
        let has_password = self.password_file.is_some() || self.password_env.is_some();
        if self.username.is_some() != has_password {
            problems.push((
                field(""),
                "a login needs both username and password_file or password_env (or neither, for a relay without login)".to_owned(),
            ));
        }
        for message in self
            .checks
            .iter()
            .filter_map(|entry| checks_entry_problem(entry))
        {
            problems.push((field(".checks"), message));
        }
        problems
    }
}
