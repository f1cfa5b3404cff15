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
//! Shared by monitor-server's tests and the e2e tests through `#[path]`; it uses only `std`
//! and `tokio`.

#![allow(dead_code)] // each test target uses a different part of it

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

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

/// What the sessions share: the login asked for, the scripted replies, what was refused.
#[derive(Default)]
struct Rules {
    login: Option<(String, String)>,
    script: VecDeque<(Stage, String)>,
    /// Every reply that refused something (scripted or a failed login), in order.
    refusals: Vec<String>,
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

    fn start_with(login: Option<(String, String)>) -> SmtpSink {
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
                    let (sender, kept, rules) = (sender.clone(), kept.clone(), shared.clone());
                    tokio::spawn(async move {
                        let _ = session(stream, sender, kept, rules).await;
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

async fn session(
    stream: tokio::net::TcpStream,
    sender: mpsc::Sender<Mail>,
    kept: Arc<Mutex<Vec<Mail>>>,
    rules: Arc<Mutex<Rules>>,
) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 sink ESMTP ready\r\n").await?;
    let login = rules.lock().unwrap().login.clone();
    let mut logged_in = login.is_none();
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" if login.is_some() => {
                writer
                    .write_all(b"250-sink greets you\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
                    .await?
            }
            "EHLO" => {
                writer
                    .write_all(b"250-sink greets you\r\n250 8BITMIME\r\n")
                    .await?
            }
            "HELO" => writer.write_all(b"250 sink\r\n").await?,
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
                    writer
                        .write_all(b"235 2.7.0 Authentication successful\r\n")
                        .await?;
                } else {
                    let reply = "535 5.7.8 Authentication credentials invalid";
                    rules.lock().unwrap().refusals.push(reply.to_owned());
                    writer.write_all(format!("{reply}\r\n").as_bytes()).await?;
                }
            }
            "MAIL" if !logged_in => {
                writer
                    .write_all(b"530 5.7.0 Authentication required\r\n")
                    .await?
            }
            "MAIL" => {
                if let Some(reply) = scripted(&rules, Stage::Mail) {
                    writer.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    continue;
                }
                from = address(&command);
                to.clear();
                writer.write_all(b"250 sender ok\r\n").await?;
            }
            "RCPT" => {
                if let Some(reply) = scripted(&rules, Stage::Rcpt) {
                    writer.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    continue;
                }
                to.push(address(&command));
                writer.write_all(b"250 recipient ok\r\n").await?;
            }
            "DATA" => {
                writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(unstuffed);
                }
                if let Some(reply) = scripted(&rules, Stage::EndOfData) {
                    writer.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    continue;
                }
                let mail = Mail {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                };
                kept.lock().unwrap().push(mail.clone());
                let _ = sender.send(mail);
                writer.write_all(b"250 queued\r\n").await?;
            }
            "RSET" | "NOOP" => writer.write_all(b"250 ok\r\n").await?,
            "QUIT" => {
                writer.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => writer.write_all(b"502 not implemented\r\n").await?,
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
