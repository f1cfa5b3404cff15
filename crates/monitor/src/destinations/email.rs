//! `delivery.email[]`: alerts mailed through an SMTP relay.

use lettre::message::Mailbox;
use monitor_config::{EmailSettings, EmailTls, MinLevel};
use monitor_destination::{Filter, PlannedDestination};
use monitor_email::smtp::{Login, Mailer, Relay, Security};
use monitor_email::EmailDestination;
use monitor_wire::Level;

use super::secret;

/// The relay's name in the outbox is `email:<first recipient>@<host>`: reordering the
/// list keeps its progress.
pub(super) fn plan(settings: &EmailSettings) -> Result<PlannedDestination, String> {
    if let Some((field, message)) = settings.problems(0).into_iter().next() {
        let field = field.trim_start_matches("delivery.email[0]");
        let field = field.trim_start_matches('.');
        return Err(if field.is_empty() {
            message
        } else {
            format!("{field}: {message}")
        });
    }
    let from: Mailbox = settings.from.parse().map_err(|error| {
        format!(
            "from: `{}` is not an address ({error}): write one such as monitor <pi@example.com>",
            settings.from
        )
    })?;
    let to = settings
        .to
        .iter()
        .map(|address| {
            address.parse::<Mailbox>().map_err(|error| {
                format!("to: `{address}` is not an address ({error}): write one such as ops@example.com")
            })
        })
        .collect::<Result<Vec<Mailbox>, String>>()?;
    let password = if let Some(file) = &settings.password_file {
        Some(
            secret::from_file(file, "password_file")?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        )
    } else if let Some(variable) = &settings.password_env {
        Some(secret::from_env(variable, "password_env")?)
    } else {
        None
    };
    let login = match (&settings.username, password) {
        (Some(user), Some(password)) => Some(Login {
            user: user.clone(),
            password,
        }),
        _ => None,
    };
    let relay = Relay {
        host: settings.smtp_host.clone(),
        port: settings.port(),
        security: match settings.tls {
            EmailTls::Starttls => Security::StartTls,
            EmailTls::Tls => Security::Tls,
            EmailTls::None => Security::None,
        },
        login,
        ca_file: settings.ca_file.clone(),
    };
    let name = format!("email:{}@{}", settings.to[0], settings.smtp_host);
    let identity = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        relay,
        settings.from,
        settings.to,
        settings.min_level,
        settings.checks,
        // The password itself: a changed password is a changed destination (a relay that
        // refused the old one is tried again). The identity is never printed.
        relay.login.as_ref().map(|login| &login.password),
    );
    let min_level = match settings.min_level {
        MinLevel::Ok => Level::Ok,
        MinLevel::Critical => Level::Critical,
    };
    Ok(PlannedDestination {
        name,
        identity,
        filter: Filter::new(min_level, settings.checks.clone()),
        start: Box::new(move || {
            let mailer = Mailer::new(&relay, from)?;
            Ok(Box::new(EmailDestination::new(mailer, to)))
        }),
    })
}
