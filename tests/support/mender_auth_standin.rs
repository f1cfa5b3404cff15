//! A stand-in for mender-auth on a real private `dbus-daemon`, for tests.
//!
//! Shared by several test targets through
//! `#[path = "../../../tests/support/mender_auth_standin.rs"] mod mender_auth_standin;`,
//! so it uses only `std`, `tokio` and `zbus`. It starts its own `dbus-daemon` (session
//! configuration, a socket in a fresh temporary directory) and serves, as the Mender client
//! does on the system bus, `io.mender.AuthenticationManager` at
//! `/io/mender/AuthenticationManager` with interface `io.mender.Authentication1`:
//!
//! - `GetJwtToken() -> (token, server_url)`: the current ones (an empty token means "not
//!   authenticated").
//! - `FetchJwtToken() -> (true)`: after a short delay, the next planned token and server URL
//!   (see [`MenderAuthStandIn::plan_fetch`]; by default a new token at the same URL) become
//!   current and are sent in the signal `JwtTokenStateChange(token, server_url)`, as the real
//!   client's forwarder does (a new URL on every fetch). A planned failure sends empty strings.
//!
//! Dropping it stops the server thread and the daemon (SIGKILL, then reaped) and removes the
//! directory.

#![allow(dead_code)] // each test target uses a different part of it

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAEMON: &str = "dbus-daemon";
const NAME: &str = "io.mender.AuthenticationManager";
const PATH: &str = "/io/mender/AuthenticationManager";
const INTERFACE: &str = "io.mender.Authentication1";
/// How long the daemon and the server get to come up.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// Between `FetchJwtToken` and the signal, as with the real client (which asks the server).
const FETCH_DELAY: Duration = Duration::from_millis(50);

/// What the next `FetchJwtToken` brings.
#[derive(Debug, Clone)]
enum PlannedFetch {
    Token { token: String, server_url: String },
    Failure,
}

#[derive(Debug)]
struct State {
    token: String,
    server_url: String,
    planned: VecDeque<PlannedFetch>,
    fetch_count: usize,
}

#[derive(Clone)]
struct SharedState(Arc<Mutex<State>>);

impl SharedState {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct MenderAuthStandIn {
    /// The private bus's address, for `Auth::Mender { bus_address: Some(..) }`.
    pub bus_address: String,
    state: SharedState,
    directory: PathBuf,
    daemon: Child,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct AuthenticationManager {
    state: SharedState,
}

#[zbus::interface(name = "io.mender.Authentication1")]
impl AuthenticationManager {
    async fn get_jwt_token(&self) -> (String, String) {
        let state = self.state.lock();
        (state.token.clone(), state.server_url.clone())
    }

    async fn fetch_jwt_token(&self, #[zbus(connection)] connection: &zbus::Connection) -> bool {
        let planned = {
            let mut state = self.state.lock();
            state.fetch_count += 1;
            let count = state.fetch_count;
            state
                .planned
                .pop_front()
                .unwrap_or_else(|| PlannedFetch::Token {
                    token: format!("fetched-token-{count}"),
                    server_url: state.server_url.clone(),
                })
        };
        let state = self.state.clone();
        let connection = connection.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FETCH_DELAY).await;
            let (token, server_url) = match planned {
                PlannedFetch::Token { token, server_url } => {
                    let mut current = state.lock();
                    current.token = token.clone();
                    current.server_url = server_url.clone();
                    (token, server_url)
                }
                PlannedFetch::Failure => (String::new(), String::new()),
            };
            let _ = connection
                .emit_signal(
                    None::<&str>,
                    PATH,
                    INTERFACE,
                    "JwtTokenStateChange",
                    &(token, server_url),
                )
                .await;
        });
        true
    }
}

impl MenderAuthStandIn {
    /// Starts a private bus with the stand-in on it, holding `token` and `server_url` (an
    /// empty token: not authenticated yet). Returns `None` (and says why) when `dbus-daemon`
    /// is missing, unless `CI=true`, where that is a failure.
    pub fn start(token: &str, server_url: &str) -> Option<MenderAuthStandIn> {
        if !daemon_available() {
            let reason =
                "dbus-daemon is not installed (install the dbus-daemon or dbus-bin package)";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but the mender-auth stand-in cannot run: {reason}");
            }
            eprintln!("skipping: the mender-auth stand-in cannot run: {reason}");
            return None;
        }
        let directory = fresh_directory();
        let (daemon, bus_address) = start_daemon(&directory);
        let state = SharedState(Arc::new(Mutex::new(State {
            token: token.to_owned(),
            server_url: server_url.to_owned(),
            planned: VecDeque::new(),
            fetch_count: 0,
        })));
        let (shutdown, shutdown_received) = tokio::sync::oneshot::channel::<()>();
        let (ready, ready_received) = std::sync::mpsc::channel::<Result<(), String>>();
        let serving = state.clone();
        let address = bus_address.clone();
        let thread = std::thread::Builder::new()
            .name("mender-auth-standin".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build the mender-auth stand-in's runtime");
                runtime.block_on(async move {
                    let connection = match serve(&address, serving).await {
                        Ok(connection) => connection,
                        Err(error) => {
                            let _ = ready.send(Err(error.to_string()));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let _ = shutdown_received.await;
                    drop(connection);
                });
            })
            .expect("spawn the mender-auth stand-in's thread");
        let mut standin = MenderAuthStandIn {
            bus_address,
            state,
            directory,
            daemon,
            shutdown: Some(shutdown),
            thread: Some(thread),
        };
        match ready_received.recv_timeout(START_DEADLINE) {
            Ok(Ok(())) => Some(standin),
            Ok(Err(error)) => {
                standin.stop();
                panic!("the mender-auth stand-in could not serve {NAME}: {error}")
            }
            Err(_) => {
                standin.stop();
                panic!("the mender-auth stand-in was not on the bus within {START_DEADLINE:?}")
            }
        }
    }

    /// Makes `token` and `server_url` current (what `GetJwtToken` answers).
    pub fn set_token(&self, token: &str, server_url: &str) {
        let mut state = self.state.lock();
        state.token = token.to_owned();
        state.server_url = server_url.to_owned();
    }

    /// The next unplanned `FetchJwtToken` brings `token` at `server_url`.
    pub fn plan_fetch(&self, token: &str, server_url: &str) {
        self.state.lock().planned.push_back(PlannedFetch::Token {
            token: token.to_owned(),
            server_url: server_url.to_owned(),
        });
    }

    /// The next unplanned `FetchJwtToken` fails: the signal carries empty strings.
    pub fn plan_fetch_failure(&self) {
        self.state.lock().planned.push_back(PlannedFetch::Failure);
    }

    /// How many times `FetchJwtToken` was called.
    pub fn fetch_count(&self) -> usize {
        self.state.lock().fetch_count
    }

    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The daemon holds no state worth a graceful stop.
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

impl Drop for MenderAuthStandIn {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(address: &str, state: SharedState) -> zbus::Result<zbus::Connection> {
    let build = zbus::connection::Builder::address(address)?
        .name(NAME)?
        .serve_at(PATH, AuthenticationManager { state })?
        .build();
    match tokio::time::timeout(START_DEADLINE, build).await {
        Ok(connection) => connection,
        Err(_) => Err(zbus::Error::Failure(format!(
            "connecting to {address} took longer than {START_DEADLINE:?}"
        ))),
    }
}

fn daemon_available() -> bool {
    Command::new(DAEMON)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn fresh_directory() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let directory = std::env::temp_dir().join(format!(
        "mender-auth-standin-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&directory).expect("create the mender-auth stand-in's directory");
    directory
}

/// Starts `dbus-daemon` and waits (up to [`START_DEADLINE`]) for the address it prints.
fn start_daemon(directory: &std::path::Path) -> (Child, String) {
    let socket = directory.join("bus");
    // Its complaints (it cannot raise the fd limit in a container) go to a file, shown if it
    // fails to start.
    let log_path = directory.join("dbus-daemon.log");
    let log = std::fs::File::create(&log_path).expect("create dbus-daemon.log");
    let mut daemon = Command::new(DAEMON)
        .arg("--session")
        .arg("--nofork")
        .arg("--print-address=1")
        .arg(format!("--address=unix:path={}", socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn dbus-daemon");
    let stdout = daemon.stdout.take().expect("dbus-daemon's stdout");
    let (address_sender, address_received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = address_sender.send(line);
    });
    match address_received.recv_timeout(START_DEADLINE) {
        Ok(line) if !line.trim().is_empty() => (daemon, line.trim().to_owned()),
        outcome => {
            let _ = daemon.kill();
            let status = daemon.wait();
            panic!(
                "dbus-daemon printed no address within {START_DEADLINE:?} ({}; exit: {status:?}); its log: {}",
                match outcome {
                    Ok(_) => "its output ended",
                    Err(_) => "timed out",
                },
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
    }
}
