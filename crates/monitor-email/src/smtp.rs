//! One SMTP relay and what its answers mean.
//!
//! Replies are classified by their code (RFC 5321 section 4.2.1, RFC 4954 section 6):
//! - 4xx, a connection that fails or times out, a TLS failure: try again later
//!   ([`SmtpFailure::Transient`]); a certificate the client does not trust says to set
//!   `ca_file` (a relay's certificate is fixed on the relay as often as in the settings);
//! - 530, 534, 535, 538 (authentication required, too weak, refused, needs encryption): the
//!   login is wrong ([`SmtpFailure::LoginRefused`]); nothing changes that but the settings;
//! - any other 5xx (a recipient refused, the message refused): [`SmtpFailure::Refused`];
//! - the client cannot go on (no login mechanism in common, no STARTTLS offered):
//!   [`SmtpFailure::Settings`]. With [`Security::StartTls`] nothing but `EHLO` and
//!   `STARTTLS` is ever sent in clear: a relay that does not offer it gets no login and no
//!   message, never a fall-back to plain text.
//!
//! Messages name the relay and its reply, never the password.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::pem::PemObject;

/// The longest an SMTP exchange may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain, then `STARTTLS` before anything else (required): port 587.
    StartTls,
    /// TLS from the first byte: port 465.
    Tls,
    /// No encryption: for a relay on the same machine or a trusted network.
    None,
}

/// A user and password for the relay. Its `Debug` shows no password.
#[derive(Clone)]
pub struct Login {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// An SMTP relay.
#[derive(Debug, Clone)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub login: Option<Login>,
    /// A CA certificate (PEM) to trust besides the system's: a relay with a private CA.
    pub ca_file: Option<PathBuf>,
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpFailure {
    /// Try again later: a 4xx reply, no connection, a timeout.
    Transient { message: String },
    /// A 5xx reply to the message or a recipient: sending it again changes nothing.
    Refused { message: String },
    /// The relay refused the login (or wants one): the settings must change.
    LoginRefused { message: String },
    /// The client and the relay cannot work together as set (no STARTTLS, no mechanism).
    Settings { message: String },
}

impl SmtpFailure {
    pub fn message(&self) -> &str {
        match self {
            SmtpFailure::Transient { message }
            | SmtpFailure::Refused { message }
            | SmtpFailure::LoginRefused { message }
            | SmtpFailure::Settings { message } => message,
        }
    }
}

/// Sends messages from one address through one relay. Each message opens its own
/// connection (alerts are rare; an idle connection would only be dropped by the relay).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The relay as messages name it (`smtp.example.com:587`).
    shown: String,
    /// As set (`None` for a mailer from a URL), to say which setting to change.
    security: Option<Security>,
    /// Kept to take it out of any message, should a relay ever echo it.
    password: Option<String>,
}

impl Mailer {
    /// A mailer for `relay`. Errors (a host lettre cannot use for TLS, an unreadable
    /// `ca_file`) name the field.
    pub fn new(relay: &Relay, from: Mailbox) -> Result<Mailer, String> {
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&relay.host);
        let builder = match relay.security {
            Security::StartTls => builder.tls(Tls::Required(tls_parameters(relay)?)),
            Security::Tls => builder.tls(Tls::Wrapper(tls_parameters(relay)?)),
            Security::None => builder,
        };
        let mut builder = builder.port(relay.port).timeout(Some(SMTP_TIMEOUT));
        if let Some(login) = &relay.login {
            builder =
                builder.credentials(Credentials::new(login.user.clone(), login.password.clone()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            shown: format!("{}:{}", relay.host, relay.port),
            security: Some(relay.security),
            password: relay.login.as_ref().map(|login| login.password.clone()),
        })
    }

    /// A mailer for the relay of an `smtp://` or `smtps://` URL (monitor-server's
    /// `smtp_url`), which may hold a login. Errors are lettre's, without the URL.
    pub fn from_url(url: &str, from: Mailbox) -> Result<Mailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| error.to_string())?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Mailer {
            transport,
            from,
            shown: "the SMTP relay".into(),
            security: None,
            password: None,
        })
    }

    /// Sends one message to `to` (never empty): a text body, and an HTML one when given.
    pub async fn send(
        &self,
        to: &[Mailbox],
        subject: String,
        text: String,
        html: Option<String>,
    ) -> Result<(), SmtpFailure> {
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        for recipient in to {
            builder = builder.to(recipient.clone());
        }
        let built = match html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html)),
            None => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            ),
        };
        let message = built.map_err(|error| SmtpFailure::Refused {
            message: format!("the message cannot be built: {error}"),
        })?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) => Err(self.failure(&error)),
        }
    }

    fn failure(&self, error: &lettre::transport::smtp::Error) -> SmtpFailure {
        let mut text = error.to_string();
        if let Some(password) = self
            .password
            .as_deref()
            .filter(|password| !password.is_empty())
        {
            text = text.replace(password, "[redacted]");
        }
        let code = error
            .status()
            .and_then(|code| code.to_string().parse::<u16>().ok());
        let relay = &self.shown;
        match code {
            Some(530 | 534 | 535 | 538) => SmtpFailure::LoginRefused {
                message: format!(
                    "{relay} refused the login ({text}): check username and the password in password_file or password_env"
                ),
            },
            Some(500..=599) => SmtpFailure::Refused {
                message: format!("{relay} refused the message ({text})"),
            },
            Some(_) => SmtpFailure::Transient {
                message: format!("{relay} said to try again later ({text})"),
            },
            None if error.is_client() => SmtpFailure::Settings {
                message: match self.security {
                    Some(Security::StartTls) => format!(
                        "{relay} and these settings do not work together ({text}): with tls: starttls nothing is sent before STARTTLS succeeds; use tls: tls for a relay that speaks TLS from the first byte (port 465), and check the login"
                    ),
                    _ => format!(
                        "{relay} and these settings do not work together ({text}): check tls and the login"
                    ),
                },
            },
            None => match tls_failure(error) {
                Some(rustls::Error::InvalidCertificate(problem)) => SmtpFailure::Transient {
                    message: format!(
                        "{relay} presented a certificate that is not trusted ({problem:?}): for a relay with a private CA set ca_file to that CA's certificate (PEM); check that smtp_host is the name on the certificate"
                    ),
                },
                Some(failure) => SmtpFailure::Transient {
                    message: format!(
                        "TLS with {relay} failed ({failure}): check tls (starttls for port 587, tls for port 465) and smtp_port"
                    ),
                },
                None if error.is_timeout() => SmtpFailure::Transient {
                    message: format!("{relay} did not answer within {SMTP_TIMEOUT:?}"),
                },
                None => SmtpFailure::Transient {
                    message: format!("{relay} cannot be reached ({text})"),
                },
            },
        }
    }
}

/// TLS for `relay`: the system's roots and the certificates of its `ca_file`.
fn tls_parameters(relay: &Relay) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(relay.host.clone());
    if let Some(path) = &relay.ca_file {
        let cannot_use = |error: &dyn fmt::Display| format!("ca_file {}: {error}", path.display());
        let pem = std::fs::read(path).map_err(|error| cannot_use(&error))?;
        let certificates = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| cannot_use(&error))?;
        if certificates.is_empty() {
            return Err(cannot_use(
                &"holds no PEM certificate: write the relay's CA certificate (-----BEGIN CERTIFICATE-----) in it",
            ));
        }
        let certificate = Certificate::from_pem(&pem).map_err(|error| cannot_use(&error))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|error| format!("smtp_host {}: {error}", relay.host))
}

/// The TLS error under a failed connection, if that is why it failed (rustls' handshake
/// errors reach lettre inside an `io::Error`).
fn tls_failure(error: &lettre::transport::smtp::Error) -> Option<&rustls::Error> {
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        if let Some(failure) = current.downcast_ref::<rustls::Error>() {
            return Some(failure);
        }
        if let Some(failure) = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(failure);
        }
        source = current.source();
    }
    None
}
