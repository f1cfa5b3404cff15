//! `delivery.webhook[]` and `delivery.ntfy[]`: generic webhooks and ntfy topics, and the
//! rules serde cannot express for them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{checks_entry_problem, MinLevel};

/// One generic webhook: a JSON `POST` per alert.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The receiver, `https://…`; `http://` only to a loopback host or with
    /// `allow_insecure: true`.
    pub url: String,
    /// Allow `http://` to a host that is not loopback (a receiver on a trusted network).
    #[serde(default)]
    pub allow_insecure: bool,
    /// A JSON body with `{{device}}`, `{{level}}`, `{{check}}`, `{{subject}}`, `{{status}}`,
    /// `{{title}}`, `{{text}}` or `{{timestamp}}` inside its strings; default: the alert as
    /// JSON (device, check, seq, title, text, alert).
    #[serde(default)]
    pub template: Option<String>,
    /// Extra request headers (not Host or Content-Length).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A file holding the shared secret that signs each request (HMAC-SHA256).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// An environment variable holding the shared secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// `OK` (default: every alert) or `CRITICAL` (only CRITICALs).
    #[serde(default)]
    pub min_level: MinLevel,
    /// Only these checks, as `<subsystem>` or `<subsystem> <check>`; default every check.
    #[serde(default)]
    pub checks: Vec<String>,
}

/// One ntfy topic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfySettings {
    /// The topic URL: `https://ntfy.sh/<topic>` or a self-hosted server's.
    pub url: String,
    /// Allow `http://` to a host that is not loopback.
    #[serde(default)]
    pub allow_insecure: bool,
    /// A file holding an access token (`tk_…`), sent as `Authorization: Bearer`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the access token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A user, for basic auth with `password_file` or `password_env`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// Priorities by level, 1–5 or `min`, `low`, `default`, `high`, `max`; default
    /// CRITICAL `high`, OK `default`.
    #[serde(default)]
    pub priority: NtfyPriorities,
    /// Tags after the level's own (`rotating_light`, `white_check_mark`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// A link opened from the notification; `{{device}}` is replaced by the device's name.
    #[serde(default)]
    pub click_url: Option<String>,
    /// `OK` (default: every alert) or `CRITICAL` (only CRITICALs).
    #[serde(default)]
    pub min_level: MinLevel,
    /// Only these checks, as `<subsystem>` or `<subsystem> <check>`; default every check.
    #[serde(default)]
    pub checks: Vec<String>,
}

/// `priority: {CRITICAL: high, OK: 3}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfyPriorities {
    #[serde(rename = "CRITICAL", alias = "critical", default = "default_critical")]
    pub critical: NtfyPriority,
    #[serde(rename = "OK", alias = "ok", default = "default_ok")]
    pub ok: NtfyPriority,
}

impl Default for NtfyPriorities {
    fn default() -> Self {
        NtfyPriorities {
            critical: default_critical(),
            ok: default_ok(),
        }
    }
}

fn default_critical() -> NtfyPriority {
    NtfyPriority::Name("high".into())
}

fn default_ok() -> NtfyPriority {
    NtfyPriority::Name("default".into())
}

/// A priority as written: a number or one of ntfy's names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum NtfyPriority {
    Number(u64),
    Name(String),
}

impl NtfyPriority {
    /// As ntfy's `Priority` header takes it.
    pub fn as_text(&self) -> String {
        match self {
            NtfyPriority::Number(number) => number.to_string(),
            NtfyPriority::Name(name) => name.clone(),
        }
    }
}

const PRIORITY_WORDS: [&str; 11] = [
    "1", "2", "3", "4", "5", "min", "low", "default", "high", "max", "urgent",
];

/// The placeholders a webhook template may hold.
const PLACEHOLDERS: [&str; 8] = [
    "device",
    "level",
    "check",
    "subject",
    "status",
    "title",
    "text",
    "timestamp",
];

/// Problems of `delivery.webhook[index]`, each as (field, message).
pub(super) fn webhook_problems(index: usize, webhook: &WebhookSettings) -> Vec<(String, String)> {
    let at = |field: &str| format!("delivery.webhook[{index}]{field}");
    let mut problems = Vec::new();
    if let Err(message) = url_problem(&webhook.url, webhook.allow_insecure) {
        problems.push((at(".url"), message));
    }
    if let Some(template) = &webhook.template {
        if let Err(message) = template_problem(template) {
            problems.push((at(".template"), message));
        }
    }
    for (name, value) in &webhook.headers {
        if let Err(message) = header_problem(name, value) {
            problems.push((at(".headers"), message));
        }
    }
    if webhook.secret_file.is_some() && webhook.secret_env.is_some() {
        problems.push((
            at(""),
            "set at most one of secret_file and secret_env".to_owned(),
        ));
    }
    problems.extend(checks_problems(&webhook.checks, &at(".checks")));
    problems
}

/// Problems of `delivery.ntfy[index]`, each as (field, message).
pub(super) fn ntfy_problems(index: usize, ntfy: &NtfySettings) -> Vec<(String, String)> {
    let at = |field: &str| format!("delivery.ntfy[{index}]{field}");
    let mut problems = Vec::new();
    match url_problem(&ntfy.url, ntfy.allow_insecure) {
        Err(message) => problems.push((at(".url"), message)),
        Ok(url) => {
            let topic = url.path().trim_matches('/');
            if topic.is_empty() || topic.contains('/') || url.query().is_some() {
                problems.push((
                    at(".url"),
                    "not a topic URL: write the server and the topic, for example https://ntfy.sh/mytopic".to_owned(),
                ));
            }
        }
    }
    let token = ntfy.token_file.is_some() as u8 + ntfy.token_env.is_some() as u8;
    let password = ntfy.password_file.is_some() as u8 + ntfy.password_env.is_some() as u8;
    if token > 1 {
        problems.push((
            at(""),
            "set at most one of token_file and token_env".to_owned(),
        ));
    }
    if password > 1 {
        problems.push((
            at(""),
            "set at most one of password_file and password_env".to_owned(),
        ));
    }
    if ntfy.username.is_some() != (password > 0) {
        problems.push((
            at(""),
            "basic auth needs both username and one of password_file and password_env".to_owned(),
        ));
    }
    if token > 0 && ntfy.username.is_some() {
        problems.push((
            at(""),
            "set either an access token or a username and password, not both".to_owned(),
        ));
    }
    for (level, priority) in [
        ("CRITICAL", &ntfy.priority.critical),
        ("OK", &ntfy.priority.ok),
    ] {
        let text = priority.as_text().to_ascii_lowercase();
        if !PRIORITY_WORDS.contains(&text.as_str()) {
            problems.push((
                at(&format!(".priority.{level}")),
                format!(
                    "\"{text}\" is not a priority: use 1 to 5, or min, low, default, high or max"
                ),
            ));
        }
    }
    for tag in &ntfy.tags {
        if tag.is_empty() || tag.contains(',') || !tag.chars().all(|c| c.is_ascii_graphic()) {
            problems.push((
                at(".tags"),
                format!("\"{tag}\" is not a tag: use a word without commas or spaces, such as raspberry"),
            ));
        }
    }
    if let Some(click) = &ntfy.click_url {
        let sample = click.replace("{{device}}", "device");
        if reqwest::Url::parse(&sample).is_err() {
            problems.push((
                at(".click_url"),
                "not a URL: write it as https://host/path, with {{device}} where the device's name goes".to_owned(),
            ));
        }
    }
    problems.extend(checks_problems(&ntfy.checks, &at(".checks")));
    problems
}

/// The URL, or why the agent will not send to it.
fn url_problem(text: &str, allow_insecure: bool) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text.trim())
        .map_err(|error| format!("not a URL ({error}): write it as https://host/path"))?;
    let Some(host) = url.host_str() else {
        return Err("not an http(s) URL: write it as https://host/path".to_owned());
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err("not an http(s) URL: write it as https://host/path".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "holds a user or password: give the secret in its own setting, not in the URL"
                .to_owned(),
        );
    }
    let loopback = monitor_wire::host::is_loopback(host);
    if url.scheme() == "http" && !allow_insecure && !loopback {
        return Err(format!(
            "http://{host} sends alerts unencrypted: use https, or set allow_insecure: true for a receiver on a network you trust"
        ));
    }
    Ok(url)
}

/// Whether a template is JSON once its placeholders are filled.
fn template_problem(template: &str) -> Result<(), String> {
    let mut filled = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(length) = rest[start + 2..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + 2 + length].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{{{name}}}}}: use {}",
                PLACEHOLDERS
                    .map(|known| format!("{{{{{known}}}}}"))
                    .join(", ")
            ));
        }
        filled.push_str(&rest[..start]);
        filled.push_str("sample");
        rest = &rest[start + 2 + length + 2..];
    }
    filled.push_str(rest);
    serde_json::from_str::<serde_json::Value>(&filled)
        .map(drop)
        .map_err(|error| {
            format!(
                "not JSON once its placeholders are filled ({error}): put each placeholder inside a string, for example {{\"message\": \"{{{{title}}}}\"}}"
            )
        })
}

fn header_problem(name: &str, value: &str) -> Result<(), String> {
    let header = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        format!("\"{name}\" is not a valid header name: use letters, digits and dashes")
    })?;
    if matches!(
        header.as_str(),
        "host" | "content-length" | "transfer-encoding"
    ) || header.as_str().starts_with("x-monitor-")
    {
        return Err(format!("{name} is set by the agent itself: remove it"));
    }
    reqwest::header::HeaderValue::from_str(value).map_err(|_| {
        format!("the value of {name} is not a valid header value: use printable ASCII on one line")
    })?;
    Ok(())
}

/// `checks` entries that are not `<subsystem>` or `<subsystem> <check>`.
fn checks_problems(checks: &[String], field: &str) -> Vec<(String, String)> {
    checks
        .iter()
        .filter_map(|entry| checks_entry_problem(entry))
        .map(|message| (field.to_owned(), message))
        .collect()
}
