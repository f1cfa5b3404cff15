//! A real Mosquitto broker (Debian's `mosquitto`) on free ports of 127.0.0.1, and
//! `mosquitto_sub` (`mosquitto-clients`) to watch what is published, as Home Assistant
//! would. Outside CI a test without them skips with the reason; under `CI=true` it fails.
//!
//! The broker keeps nothing on disk (`persistence false`): killed and started again, it has
//! lost its retained messages, as a broker whose disk was wiped would.

#![allow(dead_code)] // each test target uses a different part of it

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::tls_certificates::TestCertificates;

/// How long a test waits for a message it expects.
const DEADLINE: Duration = Duration::from_secs(30);

/// What the broker asks of clients.
#[derive(Default)]
pub struct BrokerSettings {
    /// A user and password every client must give (else anonymous clients are welcome).
    pub login: Option<(String, String)>,
    /// A second listener with TLS, its certificate signed by a test CA.
    pub tls: bool,
}

pub struct Mosquitto {
    directory: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    pub tls_port: Option<u16>,
    certificates: Option<TestCertificates>,
    login: Option<(String, String)>,
}

/// Whether `program` can be run, else why not: fails under `CI=true`.
fn available(program: &str, package: &str) -> bool {
    if Command::new(program)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        return true;
    }
    let reason = format!("{program} is missing: apt-get install {package}");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl Mosquitto {
    /// A running broker; `None` (outside CI) when Mosquitto is not installed.
    pub fn start(settings: BrokerSettings) -> Option<Mosquitto> {
        if !available("mosquitto", "mosquitto") || !available("mosquitto_sub", "mosquitto-clients")
        {
            return None;
        }
        let directory = tempfile::tempdir().expect("a directory for the broker");
        let port = free_port();
        let mut conf = format!(
            "user root\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlistener {port} 127.0.0.1\n"
        );
        let certificates = settings.tls.then(TestCertificates::generate);
        let tls_port = certificates.as_ref().map(|certificates| {
            let tls_port = free_port();
            conf.push_str(&format!(
                "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                certificates.ca().display(),
                certificates.cert().display(),
                certificates.key().display()
            ));
            tls_port
        });
        match &settings.login {
            Some((user, password)) => {
                let passwords = directory.path().join("passwords");
                let made = Command::new("mosquitto_passwd")
                    .arg("-b")
                    .arg("-c")
                    .arg(&passwords)
                    .args([user, password])
                    .output()
                    .expect("mosquitto_passwd runs");
                assert!(made.status.success(), "mosquitto_passwd: {made:?}");
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    passwords.display()
                ));
            }
            None => conf.push_str("allow_anonymous true\n"),
        }
        std::fs::write(directory.path().join("mosquitto.conf"), conf).unwrap();
        let mut broker = Mosquitto {
            directory,
            child: None,
            port,
            tls_port,
            certificates,
            login: settings.login,
        };
        broker.launch();
        Some(broker)
    }

    /// Starts the broker (again) on its ports, and waits until it takes connections.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "the broker runs already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.directory.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        let started = Instant::now();
        for port in [Some(self.port), self.tls_port].into_iter().flatten() {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("mosquitto exited with {status}: {}", self.log());
                }
                assert!(
                    started.elapsed() < DEADLINE,
                    "mosquitto does not listen on {port}: {}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGKILL: the broker goes away with no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_path(&self) -> PathBuf {
        self.directory.path().join("mosquitto.log")
    }

    /// What the broker logged (errors, warnings, notices).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// `mqtts://127.0.0.1:<tls port>`.
    pub fn tls_url(&self) -> String {
        format!(
            "mqtts://127.0.0.1:{}",
            self.tls_port.expect("a broker started with tls")
        )
    }

    /// The CA that signed the TLS listener's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.certificates
            .as_ref()
            .expect("a broker started with tls")
            .ca()
    }

    /// `mosquitto_sub` on `filter` (plain listener, the broker's login), from now on.
    pub fn watch(&self, filter: &str) -> Watcher {
        let mut command = Command::new("mosquitto_sub");
        command
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-q", "1", "-t", filter, "-F", "%r\t%t\t%p"]);
        if let Some((user, password)) = &self.login {
            command.args(["-u", user, "-P", password]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mosquitto_sub starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut fields = line.splitn(3, '\t');
                let message = Message {
                    retained: fields.next() == Some("1"),
                    topic: fields.next().unwrap_or_default().to_owned(),
                    payload: fields.next().unwrap_or_default().to_owned(),
                };
                if sender.send(message).is_err() {
                    break;
                }
            }
        });
        Watcher {
            child,
            receiver,
            seen: Vec::new(),
            unclaimed: VecDeque::new(),
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- mosquitto's log:\n{}", self.log());
        }
        self.kill();
    }
}

/// One message as `mosquitto_sub` printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Sent because it was retained, when the subscription was made.
    pub retained: bool,
    pub topic: String,
    pub payload: String,
}

/// A running `mosquitto_sub`.
pub struct Watcher {
    child: Child,
    receiver: mpsc::Receiver<Message>,
    /// Every message received so far, in order.
    pub seen: Vec<Message>,
    /// Received and not yet returned by [`Watcher::expect`].
    unclaimed: VecDeque<Message>,
}

impl Watcher {
    /// The first message on `topic` whose payload `matches` not returned yet, waiting for
    /// it if none came: messages on different topics may come in any order.
    pub fn expect(&mut self, topic: &str, matches: impl Fn(&str) -> bool) -> Message {
        let wanted = |message: &Message| message.topic == topic && matches(&message.payload);
        if let Some(index) = self.unclaimed.iter().position(&wanted) {
            return self.unclaimed.remove(index).unwrap();
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.receiver.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no message on {topic} as expected within {DEADLINE:?}; got {:#?}",
                    self.seen
                )
            });
            self.seen.push(message.clone());
            if wanted(&message) {
                return message;
            }
            self.unclaimed.push_back(message);
        }
    }

    /// Waits for `payload` on `topic`.
    pub fn expect_payload(&mut self, topic: &str, payload: &str) -> Message {
        self.expect(topic, |seen| seen == payload)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
