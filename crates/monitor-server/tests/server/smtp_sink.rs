//! A local SMTP server on `127.0.0.1:0` that keeps every message: enough of RFC 5321
//! (`EHLO`/`HELO`, `MAIL`, `RCPT`, `DATA` with dot-unstuffing, `RSET`, `NOOP`, `QUIT`) for a
//! real client (lettre) to deliver to it. Runs on its own thread and runtime. Also used by
//! the agent's end-to-end tests (`tests/e2e/silent.rs`) through a `#[path]` module.

#![allow(dead_code)] // each test target uses a different part of it

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

pub struct SmtpSink {
    pub port: u16,
    received: mpsc::Receiver<Mail>,
    #[allow(dead_code)] // for tests that look at every message
    pub mails: Arc<Mutex<Vec<Mail>>>,
    _runtime: std::thread::JoinHandle<()>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the SMTP sink");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sender, received) = mpsc::channel();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
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
                    let (sender, kept) = (sender.clone(), kept.clone());
                    tokio::spawn(async move {
                        let _ = session(stream, sender, kept).await;
                    });
                }
            });
        });
        SmtpSink {
            port,
            received,
            mails,
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
}

async fn session(
    stream: tokio::net::TcpStream,
    sender: mpsc::Sender<Mail>,
    kept: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 sink ESMTP ready\r\n").await?;
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
            "EHLO" => {
                writer
                    .write_all(b"250-sink greets you\r\n250 8BITMIME\r\n")
                    .await?
            }
            "HELO" => writer.write_all(b"250 sink\r\n").await?,
            "MAIL" => {
                from = address(&command);
                to.clear();
                writer.write_all(b"250 sender ok\r\n").await?;
            }
            "RCPT" => {
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
