//! The device token and server URL from mender-auth, over D-Bus.
//!
//! `GetJwtToken() -> (token, server_url)` gives the current ones (an empty token when the
//! device is not authenticated); `FetchJwtToken() -> (success)` asks for new ones, which arrive
//! later in the signal `JwtTokenStateChange(token, server_url)`. The server URL is usually a
//! local forwarder whose port changes on every fetch, so nothing is cached here: every request
//! asks `GetJwtToken` (a local call), and a refresh uses what the signal brought.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{timeout, timeout_at, Instant};
use zbus::export::futures_core::Stream;
use zbus::message::Type as MessageType;
use zbus::{Connection, MatchRule, MessageStream};

use crate::{Credentials, TOKEN_FETCH_TIMEOUT};

const NAME: &str = "io.mender.AuthenticationManager";
const PATH: &str = "/io/mender/AuthenticationManager";
const INTERFACE: &str = "io.mender.Authentication1";
const STATE_CHANGE: &str = "JwtTokenStateChange";
/// Connecting to the bus and each method call give up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Signals held while waiting for the fetched token; only one is expected.
const SIGNAL_QUEUE: usize = 8;

/// A failure to get a token, as a message for [`crate::BackendFailure`]; always retryable.
pub(crate) type AuthError = String;

pub(crate) struct MenderAuth {
    /// `None`: the system bus.
    bus_address: Option<String>,
    /// Connected on first use; dropped after a bus error so that the next call reconnects
    /// (the bus or mender-auth may have restarted).
    connection: Option<Connection>,
}

impl fmt::Debug for MenderAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MenderAuth")
            .field("bus_address", &self.bus_address)
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl MenderAuth {
    pub(crate) fn new(bus_address: Option<String>) -> Self {
        MenderAuth {
            bus_address,
            connection: None,
        }
    }

    fn bus_name(&self) -> String {
        match &self.bus_address {
            None => "the system bus".to_owned(),
            Some(address) => format!("the bus at {address}"),
        }
    }

    /// The current token and server URL; when mender-auth has none yet, fetches them.
    pub(crate) async fn current(&mut self) -> Result<Credentials, AuthError> {
        let (token, server_url): (String, String) = self.call("GetJwtToken", &()).await?;
        if token.is_empty() {
            tracing::info!("mender-auth has no device token yet: asking it to fetch one");
            return self.fetch().await;
        }
        Ok(Credentials { server_url, token })
    }

    /// Asks mender-auth for a new token and waits (up to [`TOKEN_FETCH_TIMEOUT`]) for it and
    /// its server URL to arrive in `JwtTokenStateChange`.
    pub(crate) async fn fetch(&mut self) -> Result<Credentials, AuthError> {
        let connection = self.connection().await?;
        // Subscribe before asking, or the answer could come before we listen.
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(NAME)
            .and_then(|rule| rule.path(PATH))
            .and_then(|rule| rule.interface(INTERFACE))
            .and_then(|rule| rule.member(STATE_CHANGE))
            .expect("the JwtTokenStateChange match rule is valid")
            .build();
        let subscribe = MessageStream::for_match_rule(rule, &connection, Some(SIGNAL_QUEUE));
        let mut signals = match timeout(CALL_TIMEOUT, subscribe).await {
            Ok(Ok(signals)) => signals,
            Ok(Err(error)) => {
                return Err(self.bus_failure(format!("subscribing to {STATE_CHANGE}"), error))
            }
            Err(_) => {
                self.connection = None;
                return Err(format!(
                    "mender-auth is not reachable: subscribing to {STATE_CHANGE} on {} timed out",
                    self.bus_name()
                ));
            }
        };
        let deadline = Instant::now() + TOKEN_FETCH_TIMEOUT;
        let (accepted,): (bool,) = self.call("FetchJwtToken", &()).await?;
        if !accepted {
            return Err(
                "mender-auth refused to fetch a new device token (FetchJwtToken returned false)"
                    .to_owned(),
            );
        }
        loop {
            let next = poll_fn(|context| Pin::new(&mut signals).poll_next(context));
            let message = match timeout_at(deadline, next).await {
                Err(_) => {
                    return Err(format!(
                        "mender-auth sent no new device token within {}s of FetchJwtToken",
                        TOKEN_FETCH_TIMEOUT.as_secs()
                    ))
                }
                Ok(None) => {
                    self.connection = None;
                    return Err(format!(
                        "the connection to {} closed while waiting for {STATE_CHANGE}",
                        self.bus_name()
                    ));
                }
                Ok(Some(Err(error))) => {
                    return Err(self.bus_failure(format!("waiting for {STATE_CHANGE}"), error))
                }
                Ok(Some(Ok(message))) => message,
            };
            let Ok((token, server_url)) = message.body().deserialize::<(String, String)>() else {
                tracing::debug!("ignoring a {STATE_CHANGE} signal without (token, server_url)");
                continue;
            };
            if token.is_empty() {
                return Err("mender-auth could not fetch a device token (is the device accepted by the server?)".to_owned());
            }
            tracing::info!(server_url, "mender-auth fetched a new device token");
            return Ok(Credentials { server_url, token });
        }
    }

    async fn connection(&mut self) -> Result<Connection, AuthError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let bus = self.bus_name();
        let builder = match &self.bus_address {
            None => zbus::connection::Builder::system(),
            Some(address) => zbus::connection::Builder::address(address.as_str()),
        }
        .map_err(|error| format!("cannot connect to {bus} for mender-auth: {error}"))?;
        let connection = timeout(CALL_TIMEOUT, builder.build())
            .await
            .map_err(|_| format!("cannot connect to {bus} for mender-auth: timed out"))?
            .map_err(|error| format!("cannot connect to {bus} for mender-auth: {error}"))?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    async fn call<R>(&mut self, method: &str, body: &()) -> Result<R, AuthError>
    where
        R: for<'de> zbus::export::serde::Deserialize<'de> + zbus::zvariant::Type,
    {
        let connection = self.connection().await?;
        let call = connection.call_method(Some(NAME), PATH, Some(INTERFACE), method, body);
        let reply = match timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) => return Err(self.bus_failure(format!("{method}()"), error)),
            Err(_) => {
                return Err(format!(
                    "mender-auth did not answer {method}() within {}s",
                    CALL_TIMEOUT.as_secs()
                ))
            }
        };
        reply
            .body()
            .deserialize::<R>()
            .map_err(|error| format!("mender-auth answered {method}() unexpectedly: {error}"))
    }

    fn bus_failure(&mut self, what: String, error: zbus::Error) -> AuthError {
        match error {
            zbus::Error::MethodError(name, _, _)
                if matches!(
                    name.as_str(),
                    "org.freedesktop.DBus.Error.ServiceUnknown"
                        | "org.freedesktop.DBus.Error.NameHasNoOwner"
                ) =>
            {
                format!(
                    "mender-auth is not running: {NAME} is not on {} (is the Mender client started?)",
                    self.bus_name()
                )
            }
            zbus::Error::MethodError(name, message, _) => format!(
                "mender-auth refused {what}: {name}{}",
                message.map(|text| format!(": {text}")).unwrap_or_default()
            ),
            error => {
                self.connection = None;
                format!("mender-auth: {what} on {} failed: {error}", self.bus_name())
            }
        }
    }
}
