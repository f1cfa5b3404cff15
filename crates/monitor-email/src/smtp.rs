//! One SMTP relay and what its answers mean.
//!
//! Replies are classified by their code (RFC 5321 section 4.2.1, RFC 4954 section 6):
//! - 4xx, a connection that fails or times out, a TLS failure: try again later
//!   ([`SmtpFailure::Transient`]);
//! - 530, 534, 535, 538 (authentication required, too weak, refused, needs encryption): the
//!   login is wrong ([`SmtpFailure::LoginRefused`]); nothing changes that but the settings;
//! - any other 5xx (a recipient refused, the message refused): [`SmtpFailure::Refused`];
//! - the client cannot go on (no login mechanism in common, no STARTTLS offered):
//!   [`SmtpFailure::Settings`].
//!
//! Messages name the relay and its reply, never the password.

use std::fmt;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

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
    /// Kept to take it out of any message, should a relay ever echo it.
    password: Option<String>,
}

impl Mailer {
    /// A mailer for `relay`. Errors (a host lettre cannot use for TLS) name the host.
    pub fn new(relay: &Relay, from: Mailbox) -> Result<Mailer, String> {
        let builder = match relay.security {
            Security::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&relay.host),
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&relay.host),
            Security::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &relay.host,
            )),
        }
        .map_err(|error| format!("smtp_host {}: {error}", relay.host))?;
        let mut builder = builder.port(relay.port).timeout(Some(SMTP_TIMEOUT));
        if let Some(login) = &relay.login {
            builder =
                builder.credentials(Credentials::new(login.user.clone(), login.password.clone()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            shown: format!("{}:{}", relay.host, relay.port),
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
                message: format!(
                    "{relay} and these settings do not work together ({text}): check tls and the login"
                ),
            },
            None if error.is_timeout() => SmtpFailure::Transient {
                message: format!("{relay} did not answer within {SMTP_TIMEOUT:?}"),
            },
            None => SmtpFailure::Transient {
                message: format!("{relay} cannot be reached ({text})"),
            },
        }
    }
}
