//! The watch loop: one session per connection to the engine (event stream open, every
//! container inspected, then events followed), reconnecting with capped backoff.

use std::collections::HashMap;
use std::time::Duration;

use monitor_source::watcher::Reconnect;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::http::{self, Body};
use crate::{
    ContainerEvent, ContainerStatus, ContainerWatchConfig, DockerError, Engine, WatchedContainer,
    CALL_TIMEOUT,
};

const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// `/events?filters={"type":["container"]}`: container events only, matched to watched
/// containers here (so renamed or re-created containers are still recognised).
const EVENTS_PATH: &str = "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D";

/// One watched container and what was last reported about it.
struct Tracked {
    watched: WatchedContainer,
    /// What the last `State` said; `None` before the first.
    running: Option<bool>,
    /// The engine's id and name for it, once inspected.
    id: String,
    name: String,
    restart_count: u64,
    /// A `Problem` was sent and the container has not been found since.
    problem_reported: bool,
}

impl Tracked {
    fn new(watched: WatchedContainer) -> Tracked {
        Tracked {
            watched,
            running: None,
            id: String::new(),
            name: String::new(),
            restart_count: 0,
            problem_reported: false,
        }
    }

    /// Whether an event about the container `id` named `name` is about this one.
    fn is(&self, id: &str, name: &str) -> bool {
        let wanted = self.watched.container.trim_start_matches('/');
        (!self.id.is_empty() && self.id == id)
            || (!name.is_empty() && (name == self.name || name == wanted))
            || (wanted.len() >= 4
                && wanted.bytes().all(|byte| byte.is_ascii_hexdigit())
                && id.starts_with(wanted))
    }
}

/// What an inspect found.
enum Inspection {
    Found(ContainerStatus),
    /// The engine does not know the container; its message.
    Missing(String),
}

/// Why a session ended.
enum SessionEnd {
    Stop,
    Lost { reason: String },
    EngineChanged,
}

struct Watcher {
    engine: Engine,
    tracked: Vec<Tracked>,
    events: mpsc::Sender<ContainerEvent>,
    /// When to connect again, and whether the outage was reported.
    reconnect: Reconnect,
}

pub(crate) async fn run(
    mut configs: mpsc::Receiver<ContainerWatchConfig>,
    events: mpsc::Sender<ContainerEvent>,
    shutdown: CancellationToken,
) -> Result<(), DockerError> {
    let config = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        config = configs.recv() => match config {
            Some(config) => config,
            None => return Ok(()),
        },
    };
    let mut watcher = Watcher {
        engine: config.engine,
        tracked: config.containers.into_iter().map(Tracked::new).collect(),
        events,
        reconnect: Reconnect::new(INITIAL_BACKOFF, MAX_BACKOFF),
    };
    loop {
        match watcher.session(&mut configs, &shutdown).await? {
            SessionEnd::Stop => return Ok(()),
            SessionEnd::EngineChanged => watcher.reconnect.start_over(),
            SessionEnd::Lost { reason } => {
                let (retry_in, new_outage) = watcher.reconnect.failed();
                tracing::warn!(socket = %watcher.engine.socket.display(), ?retry_in, "container engine lost: {reason}");
                if new_outage {
                    watcher
                        .send(ContainerEvent::Disconnected { reason })
                        .await?;
                }
                let deadline = Instant::now() + retry_in;
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep_until(deadline) => break,
                        config = configs.recv() => match config {
                            Some(config) => {
                                let engine_changed = config.engine != watcher.engine;
                                watcher.replace(config);
                                if engine_changed {
                                    watcher.reconnect.start_over();
                                    break;
                                }
                            }
                            None => return Ok(()),
                        },
                    }
                }
            }
        }
    }
}

impl Watcher {
    /// Connects, inspects everything and follows events until the engine is lost, the engine
    /// changes or the watcher stops. Errors only when `events` closes.
    async fn session(
        &mut self,
        configs: &mut mpsc::Receiver<ContainerWatchConfig>,
        shutdown: &CancellationToken,
    ) -> Result<SessionEnd, DockerError> {
        let lost = |error: DockerError| match error {
            DockerError::EventsClosed => Err(DockerError::EventsClosed),
            error => Ok(SessionEnd::Lost {
                reason: error.to_string(),
            }),
        };
        let socket = self.engine.socket.clone();
        let call = "GET /events";
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return Ok(SessionEnd::Stop),
            opened = tokio::time::timeout(CALL_TIMEOUT, http::open(&socket, EVENTS_PATH, call)) => opened,
        };
        let (status, body) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(error)) => return lost(error),
            Err(_) => {
                let error = DockerError::Timeout {
                    socket,
                    call: call.to_owned(),
                    timeout: CALL_TIMEOUT,
                };
                return lost(error);
            }
        };
        if status != 200 {
            let error = DockerError::Refused {
                call: call.to_owned(),
                status,
                message: String::new(),
            };
            return lost(error);
        }
        let mut stream = EventStream {
            body,
            buffer: Vec::new(),
        };
        self.reconnect.connected();
        tracing::info!(socket = %self.engine.socket.display(), "following the container engine's events");
        self.send(ContainerEvent::Connected).await?;
        for index in 0..self.tracked.len() {
            if let Err(error) = self.refresh(index, None).await {
                return lost(error);
            }
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(SessionEnd::Stop),
                config = configs.recv() => match config {
                    None => return Ok(SessionEnd::Stop),
                    Some(config) => {
                        if config.engine != self.engine {
                            self.replace(config);
                            return Ok(SessionEnd::EngineChanged);
                        }
                        let new = self.replace(config);
                        for index in new {
                            if let Err(error) = self.refresh(index, None).await {
                                return lost(error);
                            }
                        }
                    }
                },
                event = stream.next_event() => match event {
                    Ok(Some(event)) => {
                        if let Err(error) = self.handle(&event).await {
                            return lost(error);
                        }
                    }
                    Ok(None) => {
                        let error = DockerError::Io {
                            socket: self.engine.socket.clone(),
                            call: call.to_owned(),
                            source: std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "the engine ended the event stream",
                            ),
                        };
                        return lost(error);
                    }
                    Err(error) => return lost(error),
                },
            }
        }
    }

    /// Takes a new config: containers in both keep what was reported about them. Returns the
    /// indexes of the new ones.
    fn replace(&mut self, config: ContainerWatchConfig) -> Vec<usize> {
        self.engine = config.engine;
        let mut old = std::mem::take(&mut self.tracked);
        let mut new = Vec::new();
        for watched in config.containers {
            match old.iter().position(|tracked| tracked.watched == watched) {
                Some(position) => self.tracked.push(old.swap_remove(position)),
                None => {
                    new.push(self.tracked.len());
                    self.tracked.push(Tracked::new(watched));
                }
            }
        }
        new
    }

    async fn handle(&mut self, event: &RawEvent) -> Result<(), DockerError> {
        if !event.is_container() {
            return Ok(());
        }
        let action = event.action();
        if !matches!(
            action,
            "start"
                | "die"
                | "stop"
                | "kill"
                | "oom"
                | "restart"
                | "destroy"
                | "remove"
                | "create"
                | "pause"
                | "unpause"
                | "rename"
        ) {
            return Ok(());
        }
        let (id, name) = (event.id(), event.name());
        for index in 0..self.tracked.len() {
            if self.tracked[index].is(id, name) {
                tracing::debug!(container = name, action, "container event");
                self.refresh(index, Some(event)).await?;
            }
        }
        Ok(())
    }

    /// Inspects the container at `index` and reports what changed, with `event` as evidence
    /// of what happened; without an event (after a (re)connect or a new config) it reports
    /// the state even if unchanged.
    async fn refresh(&mut self, index: usize, event: Option<&RawEvent>) -> Result<(), DockerError> {
        let container = self.tracked[index].watched.container.clone();
        let inspection = match self.inspect(&container).await {
            Ok(inspection) => inspection,
            Err(error @ DockerError::Refused { .. }) => {
                // One odd answer is not a lost engine; the next event inspects again.
                tracing::warn!(container, "{error}");
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let check = self.tracked[index].watched.check.clone();
        match inspection {
            Inspection::Missing(message) => {
                let tracked = &mut self.tracked[index];
                let report_problem = !tracked.problem_reported;
                let report_state = event.is_none() || tracked.running != Some(false);
                tracked.problem_reported = true;
                tracked.running = Some(false);
                let status = ContainerStatus::missing(&container, "no such container");
                if report_problem {
                    let message = format!(
                        "container {container} does not exist on the container engine at {} ({message}); create it, or fix the name in the check",
                        self.engine.socket.display()
                    );
                    self.send(ContainerEvent::Problem {
                        check: check.clone(),
                        message,
                    })
                    .await?;
                }
                if report_state {
                    self.send_state(&check, false, status).await?;
                }
            }
            Inspection::Found(status) => {
                let tracked = &mut self.tracked[index];
                tracked.problem_reported = false;
                tracked.id = status.id.clone();
                tracked.name = status.name.clone();
                let restarts_grew = status.restart_count > tracked.restart_count;
                tracked.restart_count = status.restart_count;
                let reported = tracked.running;
                let transitions = match event.map(RawEvent::action) {
                    // After a (re)connect or a new config: the state as it is, and a crash the
                    // outage hid, seen only in the restart count, as a down and an up.
                    None => {
                        let mut transitions = Vec::new();
                        if reported == Some(true) && status.running && restarts_grew {
                            transitions.push(marked_down(&status, None));
                        }
                        transitions.push(status);
                        transitions
                    }
                    // Each run of a container has one `start` and one `die`, in order; they
                    // decide the transitions, the inspect only says more about them. An
                    // inspect lags or leads the events in a fast restart loop (the engine
                    // logs an event before it saves the state, and may have restarted or
                    // crashed again before the event is read), so it never decides alone.
                    Some("die") if reported != Some(false) => {
                        vec![marked_down(&status, event)]
                    }
                    Some("start") if reported != Some(true) => {
                        let mut up = status;
                        up.running = true;
                        up.status = "running".to_owned();
                        vec![up]
                    }
                    // In case an engine does not send a `die` for these.
                    Some("stop" | "kill" | "oom" | "destroy" | "remove")
                        if reported == Some(true) && !status.running =>
                    {
                        vec![status]
                    }
                    Some(_) => Vec::new(),
                };
                for status in transitions {
                    let running = status.running;
                    if event.is_none() || self.tracked[index].running != Some(running) {
                        self.tracked[index].running = Some(running);
                        self.send_state(&check, running, status).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn inspect(&self, container: &str) -> Result<Inspection, DockerError> {
        let path = format!("/containers/{}/json", encode_path_segment(container));
        let response = http::get(&self.engine.socket, &path, CALL_TIMEOUT).await?;
        match response.status {
            200 => ContainerStatus::from_inspect(&response.body)
                .map(Inspection::Found)
                .map_err(|error| DockerError::Protocol {
                    call: format!("GET {path}"),
                    reason: error.to_string(),
                }),
            404 => Ok(Inspection::Missing(error_message(&response.body))),
            status => Err(DockerError::Refused {
                call: format!("GET {path}"),
                status,
                message: error_message(&response.body),
            }),
        }
    }

    async fn send_state(
        &self,
        check: &monitor_wire::CheckId,
        running: bool,
        status: ContainerStatus,
    ) -> Result<(), DockerError> {
        tracing::debug!(container = %status.name, running, status = %status.status, "container state");
        self.send(ContainerEvent::State {
            check: check.clone(),
            running,
            status,
        })
        .await
    }

    async fn send(&self, event: ContainerEvent) -> Result<(), DockerError> {
        self.events
            .send(event)
            .await
            .map_err(|_| DockerError::EventsClosed)
    }
}

/// `status` as it is after a `die` `event` (or a crash seen only in the restart count): not
/// running, with the event's exit code. The inspect may already show the next run.
fn marked_down(status: &ContainerStatus, event: Option<&RawEvent>) -> ContainerStatus {
    let mut down = status.clone();
    down.running = false;
    if down.status == "running" {
        down.status = "exited".to_owned();
    }
    if let Some(code) = event.and_then(RawEvent::exit_code) {
        down.exit_code = code;
    }
    down
}

/// The `message` of an engine's error answer, or the answer itself.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorAnswer {
        message: String,
    }
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(answer) => answer.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    }
}

/// Percent-encodes all but unreserved characters, so a name cannot leave its path segment.
fn encode_path_segment(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.trim_start_matches('/').bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// One event of `GET /events`, in either the current (`Type`, `Action`, `Actor`) or the old
/// (`status`, `id`) shape.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawEvent {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Action")]
    action: String,
    status: String,
    id: String,
    #[serde(rename = "Actor")]
    actor: Actor,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Actor {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Attributes")]
    attributes: HashMap<String, serde_json::Value>,
}

impl RawEvent {
    fn is_container(&self) -> bool {
        self.kind.is_empty() || self.kind == "container"
    }

    /// `die`, `start`, ...; `exec_start: sh` → `exec_start`.
    fn action(&self) -> &str {
        let action = if self.action.is_empty() {
            &self.status
        } else {
            &self.action
        };
        action.split(':').next().unwrap_or_default().trim()
    }

    fn id(&self) -> &str {
        if self.actor.id.is_empty() {
            &self.id
        } else {
            &self.actor.id
        }
    }

    fn name(&self) -> &str {
        self.attribute("name").unwrap_or_default()
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.actor.attributes.get(name)?.as_str()
    }

    fn exit_code(&self) -> Option<i64> {
        self.attribute("exitCode")?.parse().ok()
    }
}

/// The decoded event stream: JSON values one after another (newline-separated in practice).
struct EventStream {
    body: Body,
    /// Decoded bytes not yet parsed.
    buffer: Vec<u8>,
}

impl EventStream {
    /// The next event, or `None` when the engine ended the stream. Cancel-safe.
    async fn next_event(&mut self) -> Result<Option<RawEvent>, DockerError> {
        loop {
            if let Some(event) = self.parse()? {
                return Ok(Some(event));
            }
            if !self.body.read_some(&mut self.buffer).await? {
                return self.parse();
            }
        }
    }

    fn parse(&mut self) -> Result<Option<RawEvent>, DockerError> {
        let start = self
            .buffer
            .iter()
            .position(|byte| !byte.is_ascii_whitespace())
            .unwrap_or(self.buffer.len());
        self.buffer.drain(..start);
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let mut values = serde_json::Deserializer::from_slice(&self.buffer).into_iter();
        match values.next() {
            Some(Ok(event)) => {
                let end = values.byte_offset();
                self.buffer.drain(..end);
                Ok(Some(event))
            }
            Some(Err(error)) if error.is_eof() => Ok(None),
            Some(Err(error)) => Err(DockerError::Protocol {
                call: "GET /events".to_owned(),
                reason: format!("an event is not JSON: {error}"),
            }),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_and_docker_events_are_read() {
        let podman = r#"{"status":"die","id":"abbe","from":"localhost/bb:latest","Type":"container","Action":"die","Actor":{"ID":"abbe","Attributes":{"containerExitCode":"1","exitCode":"1","image":"localhost/bb:latest","name":"crasher-container","podId":""}},"scope":"local","time":1795312253,"timeNano":1795312253812605538}"#;
        let event: RawEvent = serde_json::from_str(podman).unwrap();
        assert!(event.is_container());
        assert_eq!(event.action(), "die");
        assert_eq!(event.id(), "abbe");
        assert_eq!(event.name(), "crasher-container");
        assert_eq!(event.exit_code(), Some(1));

        let docker_exec = r#"{"Type":"container","Action":"exec_start: sh -c true","Actor":{"ID":"ff","Attributes":{"name":"web"}}}"#;
        let event: RawEvent = serde_json::from_str(docker_exec).unwrap();
        assert_eq!(event.action(), "exec_start");
        assert_eq!(event.exit_code(), None);
    }

    #[test]
    fn containers_are_matched_by_id_name_or_id_prefix() {
        let check = monitor_wire::CheckId::new(monitor_wire::Subsystem::Service, "web");
        let mut tracked = Tracked::new(WatchedContainer {
            check: check.clone(),
            container: "web".into(),
        });
        assert!(tracked.is("0123", "web"));
        assert!(!tracked.is("0123", "other"));
        tracked.id = "0123".into();
        tracked.name = "renamed".into();
        assert!(tracked.is("0123", "other"));
        assert!(tracked.is("4567", "renamed"));
        let by_id = Tracked::new(WatchedContainer {
            check,
            container: "abcdef12".into(),
        });
        assert!(by_id.is("abcdef1234567890", ""));
        assert!(!by_id.is("abcdef0000", ""));
    }

    #[test]
    fn names_stay_in_their_path_segment() {
        assert_eq!(
            encode_path_segment("crasher-container"),
            "crasher-container"
        );
        assert_eq!(encode_path_segment("/web"), "web");
        assert_eq!(encode_path_segment("a/../b?c"), "a%2F..%2Fb%3Fc");
    }

    #[test]
    fn error_answers_give_their_message() {
        assert_eq!(
            error_message(br#"{"cause":"no such container","message":"no container with name or ID \"x\" found: no such container","response":404}"#),
            "no container with name or ID \"x\" found: no such container"
        );
        assert_eq!(error_message(b"page not found\n"), "page not found");
    }
}
