//! The container watcher: knows at once when a watched Docker (or Podman) container stops,
//! crashes, crash-loops under `--restart on-failure` or goes up and down, so containers go
//! through the same alert engine as systemd services (`monitorctl create service <container>
//! docker`).
//!
//! [`run`] talks to the Docker Engine API on a unix socket ([`Engine`], from `DOCKER_HOST` or
//! `/var/run/docker.sock`) with a small HTTP/1.1 client of its own. It inspects every watched
//! container (`GET /containers/{name}/json`) and sends a [`ContainerEvent::State`] with its
//! [`ContainerStatus`], then follows `GET /events` and re-inspects a container whenever the
//! engine reports it started, died, stopped, was killed, ran out of memory, restarted or was
//! removed, sending a `State` for every change between running and not running. The
//! container's own `die` and `start` events decide those changes (each run has one of each,
//! in order); the inspect only adds the details. An inspect alone would lose crashes: in a
//! restart loop faster than the watcher it can already show the next run, or still show the
//! one that died. So every crash is a down and an up, even when the engine restarted the
//! container before it was inspected.
//! Containers that do not exist are reported as [`ContainerEvent::Problem`]s. When the engine
//! goes away the watcher reconnects with capped backoff (100 ms → 30 s) and re-inspects every
//! container. While idle it waits on the event stream and does not poll.
//!
//! This crate does not decide what is an alert (the engine does: "not running", flapping),
//! does not start, stop or restart containers, and talks only to unix sockets (no TCP, no TLS).

mod http;
mod status;
mod watch;

use std::path::{Path, PathBuf};
use std::time::Duration;

use monitor_source::WatcherEvent;
use monitor_wire::CheckId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use status::ContainerStatus;

/// The engine's socket when `DOCKER_HOST` is not set.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long any single call to the engine (connecting, an inspect, opening the event stream)
/// may take. The event stream itself is open-ended.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the Docker Engine API is: a unix socket (Docker's, or `podman system service`'s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    pub socket: PathBuf,
}

impl Engine {
    /// The engine `DOCKER_HOST` names (`unix:///run/podman/podman.sock`), or
    /// [`DEFAULT_SOCKET`] when it is unset or empty. Errors for hosts that are not unix
    /// sockets (`tcp://`, `ssh://`), which this watcher does not speak.
    pub fn from_env() -> Result<Engine, DockerError> {
        Engine::from_docker_host(std::env::var("DOCKER_HOST").ok().as_deref())
    }

    /// [`Engine::from_env`] for a given `DOCKER_HOST` value.
    pub fn from_docker_host(docker_host: Option<&str>) -> Result<Engine, DockerError> {
        match docker_host.map(str::trim).filter(|host| !host.is_empty()) {
            None => Ok(Engine::at(DEFAULT_SOCKET)),
            Some(host) => match host.strip_prefix("unix://") {
                Some(path) if path.starts_with('/') => Ok(Engine::at(path)),
                _ => Err(DockerError::UnsupportedHost {
                    docker_host: host.to_owned(),
                }),
            },
        }
    }

    /// The engine listening on `socket`.
    pub fn at(socket: impl AsRef<Path>) -> Engine {
        Engine {
            socket: socket.as_ref().to_owned(),
        }
    }
}

/// One container to watch: the check it belongs to and the container's name or id.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchedContainer {
    pub check: CheckId,
    /// A name (`crasher-container`) or an id (full or a unique prefix), as `docker` takes it.
    pub container: String,
}

/// The whole set of containers to watch; a new one replaces the old.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerWatchConfig {
    pub engine: Engine,
    pub containers: Vec<WatchedContainer>,
}

/// What the watcher observed ([`WatcherEvent`]; never a `Matched`).
///
/// - `State`: the container's state, sent for every watched container when it is first
///   inspected and after each reconnect (even if unchanged), then whenever `running` changes:
///   a `die` event is a `running: false`, a `start` event a `running: true`, with the status
///   inspected right after (a down's status says not running and carries the event's exit
///   code even when the engine already restarted the container). A restart count that grew
///   while the engine was unreachable is sent as a down and an up after the reconnect.
/// - `Problem`: the container does not exist: sent once per finding (with a `State` that is
///   not running), with a message a person can act on.
/// - `Connected`: the watcher is (again) connected to the engine and follows its events; a
///   `State` for every container follows.
/// - `Disconnected`: the engine was lost (or could not be reached); the watcher retries with
///   backoff. Sent once per outage.
pub type ContainerEvent = WatcherEvent<ContainerStatus>;

/// Why the engine could not be watched or read. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("DOCKER_HOST={docker_host} is not a unix socket; monitord talks to the container engine only through one: set DOCKER_HOST=unix:///var/run/docker.sock (or podman's socket)")]
    UnsupportedHost { docker_host: String },
    #[error("cannot connect to the container engine at {}: {source}; is docker (or `podman system service`) running? set DOCKER_HOST=unix:///path/to/socket to use another socket", .socket.display())]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("the connection to the container engine at {} broke during {call}: {source}; the connection is retried", .socket.display())]
    Io {
        socket: PathBuf,
        call: String,
        source: std::io::Error,
    },
    #[error("the container engine at {} did not answer {call} within {}; it may be busy, the call is retried", .socket.display(), humantime::format_duration(*.timeout))]
    Timeout {
        socket: PathBuf,
        call: String,
        timeout: Duration,
    },
    #[error("the container engine answered {call} with something unexpected: {reason}; is this socket the Docker Engine API?")]
    Protocol { call: String, reason: String },
    #[error("the container engine refused {call}: {message} (HTTP {status})")]
    Refused {
        call: String,
        status: u16,
        message: String,
    },
    #[error("the receiver of container events is gone; the agent's engine stopped, nothing is left to watch for")]
    EventsClosed,
}

/// Watches the containers of the latest config from `configs` and sends what it observes to
/// `events`. Waits for the first config.
///
/// Returns `Ok` on shutdown or when `configs` closes, and an error only when `events` closes.
/// Engine trouble is reported as [`ContainerEvent::Disconnected`] and retried. `events` is
/// bounded: when it is full the watcher waits (the engine's events queue up in the socket
/// meanwhile).
pub async fn run(
    configs: mpsc::Receiver<ContainerWatchConfig>,
    events: mpsc::Sender<ContainerEvent>,
    shutdown: CancellationToken,
) -> Result<(), DockerError> {
    watch::run(configs, events, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_comes_from_docker_host() {
        assert_eq!(
            Engine::from_docker_host(None).unwrap(),
            Engine::at("/var/run/docker.sock")
        );
        assert_eq!(
            Engine::from_docker_host(Some("")).unwrap(),
            Engine::at("/var/run/docker.sock")
        );
        assert_eq!(
            Engine::from_docker_host(Some("unix:///tmp/podman.sock")).unwrap(),
            Engine::at("/tmp/podman.sock")
        );
    }

    #[test]
    fn only_unix_sockets_are_spoken() {
        let error = Engine::from_docker_host(Some("tcp://10.0.0.1:2375")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "DOCKER_HOST=tcp://10.0.0.1:2375 is not a unix socket; monitord talks to the container engine only through one: set DOCKER_HOST=unix:///var/run/docker.sock (or podman's socket)"
        );
    }

    #[test]
    fn errors_say_what_to_do() {
        let error = DockerError::Timeout {
            socket: "/tmp/podman.sock".into(),
            call: "GET /containers/web/json".into(),
            timeout: CALL_TIMEOUT,
        };
        assert_eq!(
            error.to_string(),
            "the container engine at /tmp/podman.sock did not answer GET /containers/web/json within 5s; it may be busy, the call is retried"
        );
    }
}
