//! A real `monitor-server` process for tests, on SQLite or on a real PostgreSQL.
//!
//! Shared by the server's own tests and the agent's end-to-end tests through `#[path]`
//! modules, so it uses only `std`, `tempfile` and the `postgres` support module (which the
//! including crate declares next to this one). The server listens on `127.0.0.1:0`; its
//! first line on stdout says the address.

#![allow(dead_code)] // each test target uses a different part of it

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::postgres::PostgresDatabase;

const START_DEADLINE: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// Where a server keeps its data.
pub enum ServerDatabase {
    Sqlite(tempfile::TempDir),
    Postgres(PostgresDatabase),
}

impl ServerDatabase {
    pub fn sqlite() -> ServerDatabase {
        ServerDatabase::Sqlite(
            tempfile::Builder::new()
                .prefix("monitor-server-")
                .tempdir()
                .expect("create a data directory"),
        )
    }

    /// A fresh PostgreSQL database (see `postgres.rs` for when this is `None`).
    pub fn postgres() -> Option<ServerDatabase> {
        PostgresDatabase::create().map(ServerDatabase::Postgres)
    }

    /// The flags that point a server or an admin command at this database.
    pub fn args(&self) -> Vec<String> {
        match self {
            ServerDatabase::Sqlite(directory) => {
                vec!["--data-dir".into(), directory.path().display().to_string()]
            }
            ServerDatabase::Postgres(database) => {
                vec!["--database-url".into(), database.url.clone()]
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, ServerDatabase::Postgres(_))
    }

    /// Runs an admin command (`device add pi`, …) on this database.
    pub fn admin(&self, binary: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(binary);
        command
            .args(self.args())
            .args(args)
            .env("MONITOR_SERVER_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("run monitor-server");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        drop(input);
        child.wait_with_output().expect("wait for monitor-server")
    }

    /// Runs an admin command that must succeed and returns its stdout, trimmed.
    pub fn admin_ok(&self, binary: &Path, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.admin(binary, args, stdin);
        assert!(
            output.status.success(),
            "monitor-server {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }
}

/// A running server; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts a server on the database and waits until it listens.
    pub fn start(binary: &Path, database: &ServerDatabase, extra_args: &[&str]) -> ServerProcess {
        let log_dir = tempfile::tempdir().expect("a directory for the log");
        let log = log_dir.path().join("server.log");
        let mut child = Command::new(binary)
            .args(database.args())
            .args(["--listen", "127.0.0.1:0"])
            .args(extra_args)
            .env("MONITOR_SERVER_LOG", "info,monitor_server=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).expect("create the log"))
            .spawn()
            .expect("start monitor-server");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_DEADLINE;
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "monitor-server did not start listening within {START_DEADLINE:?}: {}",
                        fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        ServerProcess {
            child: Some(child),
            url,
            log,
            _log_dir: log_dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and how it exited (SIGKILL after a deadline, which the status then shows).
    pub fn stop(mut self) -> ExitStatus {
        self.terminate()
    }

    /// SIGKILL: a crash.
    pub fn kill_hard(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        // Wait for the exit itself, on a thread, with a deadline for SIGKILL.
        let (sender, receiver) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait().expect("wait for monitor-server");
            let _ = sender.send(status);
        });
        let status = match receiver.recv_timeout(STOP_DEADLINE) {
            Ok(status) => status,
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                receiver.recv().expect("reap monitor-server")
            }
        };
        let _ = waiter.join();
        status
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
    }
}
