//! A local SMTP server on `127.0.0.1:0` that keeps every message: enough of RFC 5321
//! (`EHLO`/`HELO`, `MAIL`, `RCPT`, `DATA` with dot-unstuffing, `RSET`, `NOOP`, `QUIT`) for a
//! real client (lettre) to deliver to it. Runs on its own thread and runtime.
//!
//! For the failures a client must tell apart it can also:
//! - require a login ([`SmtpSink::start_with_login`]): `AUTH PLAIN` (RFC 4954, RFC 4616) is
//!   advertised; a wrong user or password is answered `535 5.7.8`, mail without a login
//!   `530 5.7.0`, as RFC 4954 section 6 says;
//! - answer one of the next commands with a scripted reply ([`SmtpSink::refuse_next`]), such
//!   as `451 4.3.0` to `MAIL` (a transient failure, RFC 5321 section 4.2.1) or `550 5.1.1` to
//!   `RCPT` (no such recipient).
//!
//! - speak TLS ([`SmtpSink::start_tls`]): `STARTTLS` (RFC 3207: advertised after `EHLO`,
//!   answered `220`, then a TLS handshake and a fresh session that no longer offers it) or
//!   TLS from the first byte (RFC 8314, "implicit TLS"), with a certificate made for the
//!   test (`tls_certificates.rs`); it records which commands came in clear
//!   ([`SmtpSink::commands_in_clear`]).
//!
//! Shared by monitor-server's tests and the e2e tests through `#[path]`; it uses only `std`,
//! `tokio` and `tokio-rustls`.

#![allow(dead_code)] // each test target uses a different part of it

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::TlsAcceptor;

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body as received (CRLF line ends, dot-unstuffed).
    pub data: String,
}

impl Mail {
    /// A header's value, unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(current) = value.as_mut() {
                if line.starts_with(' ') || line.starts_with('\t') {
                    current.push_str(line.trim_start_matches(['\t']));
                    continue;
                }
                break;
            }
            if let Some((key, rest)) = line.split_once(':') {
                if key.eq_ignore_ascii_case(name) {
                    value = Some(rest.trim().to_owned());
                }
            }
        }
        value
    }

    /// The whole message with quoted-printable soft breaks and escapes decoded.
    pub fn decoded(&self) -> String {
        let joined = self.data.replace("=\r\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut index = 0;
        while index < bytes.len() {
            if bytes[index] == b'=' && index + 2 < bytes.len() {
                if let Ok(byte) = u8::from_str_radix(&joined[index + 1..index + 3], 16) {
                    out.push(byte);
                    index += 3;
                    continue;
                }
            }
            out.push(bytes[index]);
            index += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A command the sink can answer with a scripted reply instead of its usual one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Mail,
    Rcpt,
    /// The end of the message (the `.` line after `DATA`): the message is not kept.
    EndOfData,
}

/// How the sink protects its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// `STARTTLS` offered after `EHLO` (port 587 style).
    StartTls,
    /// TLS from the first byte (port 465 style).
    Implicit,
}

/// What the sessions share: the login asked for, the scripted replies, what was refused.
#[derive(Default)]
struct Rules {
    login: Option<(String, String)>,
    script: VecDeque<(Stage, String)>,
    /// Every reply that refused something (scripted or a failed login), in order.
    refusals: Vec<String>,
    /// The verb of every command received, and whether it came over TLS.
    commands: Vec<(String, bool)>,
}

pub struct SmtpSink {
    pub port: u16,
    received: mpsc::Receiver<Mail>,
    pub mails: Arc<Mutex<Vec<Mail>>>,
    rules: Arc<Mutex<Rules>>,
    _runtime: std::thread::JoinHandle<()>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        SmtpSink::start_with(None)
    }

    /// A sink that takes mail only after `AUTH PLAIN` with this user and password.
    pub fn start_with_login(user: &str, password: &str) -> SmtpSink {
        SmtpSink::start_with(Some((user.to_owned(), password.to_owned())))
    }

    /// The next `stage` command of any session is answered `reply` (a full reply line
    /// without CRLF, such as `451 4.3.0 try again later`); once.
    pub fn refuse_next(&self, stage: Stage, reply: &str) {
        self.rules
            .lock()
            .unwrap()
            .script
            .push_back((stage, reply.to_owned()));
    }

    /// Every refusing reply sent so far, in order.
    pub fn refusals(&self) -> Vec<String> {
        self.rules.lock().unwrap().refusals.clone()
    }

    /// A sink speaking TLS as `mode` says with the certificate `cert` and its key `key`
    /// (PEM files), taking mail after `AUTH PLAIN` with `login` when given.
    pub fn start_tls(
        mode: SinkTls,
        cert: &Path,
        key: &Path,
        login: Option<(&str, &str)>,
    ) -> SmtpSink {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificates = rustls::pki_types::CertificateDer::pem_file_iter(cert)
            .expect("the test certificate")
            .collect::<Result<Vec<_>, _>>()
            .expect("the test certificate");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).expect("the test key");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .expect("a TLS server configuration");
        let login = login.map(|(user, password)| (user.to_owned(), password.to_owned()));
        SmtpSink::start_with_tls(login, Some((mode, TlsAcceptor::from(Arc::new(config)))))
    }

    /// The verbs of the commands received in clear (before TLS), in order.
    pub fn commands_in_clear(&self) -> Vec<String> {
        let rules = self.rules.lock().unwrap();
        rules
            .commands
            .iter()
            .filter(|(_, encrypted)| !encrypted)
            .map(|(verb, _)| verb.clone())
            .collect()
    }

    /// The verbs of every command received, in order.
    pub fn commands(&self) -> Vec<String> {
        let rules = self.rules.lock().unwrap();
        rules
            .commands
            .iter()
            .map(|(verb, _)| verb.clone())
            .collect()
    }

    fn start_with(login: Option<(String, String)>) -> SmtpSink {
        SmtpSink::start_with_tls(login, None)
    }

    fn start_with_tls(
        login: Option<(String, String)>,
        tls: Option<(SinkTls, TlsAcceptor)>,
    ) -> SmtpSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the SMTP sink");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sender, received) = mpsc::channel();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        let rules = Arc::new(Mutex::new(Rules {
            login,
            ..Rules::default()
        }));
        let shared = rules.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let sinks = Sinks {
                        sender: sender.clone(),
                        kept: kept.clone(),
                        rules: shared.clone(),
                    };
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let _ = connection(stream, sinks, tls).await;
                    });
                }
            });
        });
        SmtpSink {
            port,
            received,
            mails,
            rules,
            _runtime: thread,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next message, waiting up to `deadline`.
    pub fn next(&self, deadline: Duration) -> Mail {
        self.received
            .recv_timeout(deadline)
            .unwrap_or_else(|_| panic!("no mail within {deadline:?}"))
    }

    /// The next message if one comes within `wait`.
    pub fn try_next(&self, wait: Duration) -> Option<Mail> {
        self.received.recv_timeout(wait).ok()
    }
}

/// The scripted reply for `stage`, if it is the next one in the script.
fn scripted(rules: &Mutex<Rules>, stage: Stage) -> Option<String> {
    let mut rules = rules.lock().unwrap();
    if rules.script.front().map(|(next, _)| *next) != Some(stage) {
        return None;
    }
    let (_, reply) = rules.script.pop_front()?;
    rules.refusals.push(reply.clone());
    Some(reply)
}

/// Where a session puts what it receives.
struct Sinks {
    sender: mpsc::Sender<Mail>,
    kept: Arc<Mutex<Vec<Mail>>>,
    rules: Arc<Mutex<Rules>>,
}

/// One connection: in clear, upgraded by `STARTTLS`, or TLS from the start.
async fn connection(
    stream: tokio::net::TcpStream,
    sinks: Sinks,
    tls: Option<(SinkTls, TlsAcceptor)>,
) -> std::io::Result<()> {
    match tls {
        None => session(stream, &sinks, false, true, false).await.map(drop),
        Some((SinkTls::Implicit, acceptor)) => {
            let stream = acceptor.accept(stream).await?;
            session(stream, &sinks, true, true, false).await.map(drop)
        }
        Some((SinkTls::StartTls, acceptor)) => {
            let Some(stream) = session(stream, &sinks, false, true, true).await? else {
                return Ok(());
            };
            // The client speaks first after the handshake (EHLO), without a new greeting.
            let stream = acceptor.accept(stream).await?;
            session(stream, &sinks, true, false, false).await.map(drop)
        }
    }
}

/// One SMTP session over `stream`, starting with the `220` greeting when `greet`; the
/// stream back when the client asked for `STARTTLS` (offered when `offer_starttls`), to go
/// on over TLS.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    sinks: &Sinks,
    encrypted: bool,
    greet: bool,
    offer_starttls: bool,
) -> std::io::Result<Option<S>> {
    let Sinks {
        sender,
        kept,
        rules,
    } = sinks;
    let mut stream = BufReader::new(stream);
    if greet {
        stream.write_all(b"220 sink ESMTP ready\r\n").await?;
    }
    let login = rules.lock().unwrap().login.clone();
    let mut logged_in = login.is_none();
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        rules
            .lock()
            .unwrap()
            .commands
            .push((verb.clone(), encrypted));
        match verb.as_str() {
            "EHLO" => {
                let mut reply = String::from("250-sink greets you\r\n");
                if offer_starttls {
                    reply.push_str("250-STARTTLS\r\n");
                }
                if login.is_some() {
                    reply.push_str("250-AUTH PLAIN\r\n");
                }
                reply.push_str("250 8BITMIME\r\n");
                stream.write_all(reply.as_bytes()).await?
            }
            "STARTTLS" if offer_starttls => {
                stream
                    .write_all(b"220 2.0.0 ready to start TLS\r\n")
                    .await?;
                stream.flush().await?;
                return Ok(Some(stream.into_inner()));
            }
            "HELO" => stream.write_all(b"250 sink\r\n").await?,
            "AUTH" => {
                let given = command
                    .split_whitespace()
                    .nth(2)
                    .and_then(decode_base64)
                    .unwrap_or_default();
                // PLAIN: authorization identity, NUL, user, NUL, password.
                let mut parts = given.split(|&byte| byte == 0).skip(1);
                let user = String::from_utf8_lossy(parts.next().unwrap_or_default());
                let password = String::from_utf8_lossy(parts.next().unwrap_or_default());
                let matches = login
                    .as_ref()
                    .is_some_and(|(wanted_user, wanted_password)| {
                        *wanted_user == user && *wanted_password == password
                    });
                if matches {
                    logged_in = true;
                    stream
                        .write_all(b"235 2.7.0 Authentication successful\r\n")
                        .await?;
                } else {
                    let reply = "535 5.7.8 Authentication credentials invalid";
                    rules.lock().unwrap().refusals.push(reply.to_owned());
                    stream.write_all(format!("{reply}\r\n").as_bytes()).await?;
                }
            }
            "MAIL" if !logged_in => {
                stream
                    .write_all(b"530 5.7.0 Authentication required\r\n")
                    .await?
            }
            "MAIL" => {
                if let Some(reply) = scripted(rules, Stage::Mail) {
                    stream.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    continue;
                }
                from = address(&command);
                to.clear();
                stream.write_all(b"250 sender ok\r\n").await?;
            }
            "RCPT" => {
                if let Some(reply) = scripted(rules, Stage::Rcpt) {
                    stream.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    continue;
                }
                to.push(address(&command));
                stream.write_all(b"250 recipient ok\r\n").await?;
            }
            "DATA" => {
                stream.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await? == 0 {
                        return Ok(None);
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(unstuffed);
                }
                if let Some(reply) = scripted(rules, Stage::EndOfData) {
                    stream.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    continue;
                }
                let mail = Mail {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                };
                kept.lock().unwrap().push(mail.clone());
                let _ = sender.send(mail);
                stream.write_all(b"250 queued\r\n").await?;
            }
            "RSET" | "NOOP" => stream.write_all(b"250 ok\r\n").await?,
            "QUIT" => {
                stream.write_all(b"221 bye\r\n").await?;
                return Ok(None);
            }
            _ => stream.write_all(b"502 not implemented\r\n").await?,
        }
    }
}

fn address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}

/// Standard base64 (RFC 4648), padding optional; `None` for anything else.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |byte: u8| -> Option<u32> {
        Some(match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut bytes = Vec::new();
    let (mut bits, mut count) = (0u32, 0);
    for byte in text.trim_end_matches('=').bytes() {
        bits = ((bits << 6) | value(byte)?) & 0xFF_FFFF;
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
        }
    }
    Some(bytes)
}
