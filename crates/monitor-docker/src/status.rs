//! What is known about one container, and how it is shown to a person.

use std::collections::BTreeMap;

use monitor_source::WatchedStatus;
use monitor_wire::Details;
use serde::Deserialize;
use serde_json::Value as Json;

/// A container's state as `GET /containers/{name}/json` reports it. Fields the engine does not
/// report stay empty or zero.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerStatus {
    /// `Name` without the leading `/`: `crasher-container`.
    pub name: String,
    /// `Id`: the full 64-hex-digit id.
    pub id: String,
    /// `Config.Image`: the image as the container was created from it (`localhost/bb:latest`).
    pub image: String,
    /// `State.Status`: `running`, `exited`, `restarting`, `created`, `paused`, `dead`, or
    /// empty when the container does not exist (podman's `stopped` is shown as `exited`).
    pub status: String,
    /// `State.Running` and not `State.Restarting` (Docker sets both while it waits to restart
    /// a container, which is then not running).
    pub running: bool,
    /// `State.ExitCode` of the last run.
    pub exit_code: i64,
    /// `State.OOMKilled`: the kernel's OOM killer ended the last run.
    pub oom_killed: bool,
    /// `RestartCount`: how often the engine restarted it under its restart policy.
    pub restart_count: u64,
    /// `State.StartedAt` (RFC 3339), empty if never started.
    pub started_at: String,
    /// `State.FinishedAt` (RFC 3339), empty if it never stopped.
    pub finished_at: String,
    /// `State.Error`: why the engine could not start it, or why it is not known
    /// ("no such container").
    pub error: String,
}

/// The parts of an inspect answer that are read.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Inspect {
    id: String,
    name: String,
    restart_count: u64,
    state: InspectState,
    config: InspectConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct InspectState {
    status: String,
    running: bool,
    restarting: bool,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
    exit_code: i64,
    error: String,
    started_at: String,
    finished_at: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct InspectConfig {
    image: String,
}

/// What Go's zero `time.Time` looks like: the engine's "never".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl ContainerStatus {
    /// Parses an inspect answer.
    pub(crate) fn from_inspect(body: &[u8]) -> Result<ContainerStatus, serde_json::Error> {
        let inspect: Inspect = serde_json::from_slice(body)?;
        let time = |value: String| {
            if value == ZERO_TIME {
                String::new()
            } else {
                value
            }
        };
        Ok(ContainerStatus {
            name: inspect.name.trim_start_matches('/').to_owned(),
            id: inspect.id,
            image: inspect.config.image,
            status: docker_status(inspect.state.status),
            running: inspect.state.running && !inspect.state.restarting,
            exit_code: inspect.state.exit_code,
            oom_killed: inspect.state.oom_killed,
            restart_count: inspect.restart_count,
            started_at: time(inspect.state.started_at),
            finished_at: time(inspect.state.finished_at),
            error: inspect.state.error,
        })
    }

    /// The status of a container the engine does not know.
    pub(crate) fn missing(container: &str, message: &str) -> ContainerStatus {
        ContainerStatus {
            name: container.to_owned(),
            error: message.to_owned(),
            ..ContainerStatus::default()
        }
    }

    /// Whether the container counts as running (see the field).
    pub fn running(&self) -> bool {
        self.running
    }

    /// The alert details: a `docker ps`-like description, e.g. `container crasher-container
    /// (localhost/bb:latest): exited with code 1 at 2024-05-01T10:00:00Z, restarts: 3`, and
    /// the fields `status`, `exit_code`, `oom_killed`, `restart_count`, `image` (plus `id`
    /// and `error` when known).
    pub fn details(&self) -> Details {
        let mut fields = BTreeMap::new();
        fields.insert("status".to_owned(), Json::from(self.status.as_str()));
        fields.insert("exit_code".to_owned(), Json::from(self.exit_code));
        fields.insert("oom_killed".to_owned(), Json::from(self.oom_killed));
        fields.insert("restart_count".to_owned(), Json::from(self.restart_count));
        fields.insert("image".to_owned(), Json::from(self.image.as_str()));
        if !self.id.is_empty() {
            fields.insert("id".to_owned(), Json::from(self.id.as_str()));
        }
        if !self.error.is_empty() {
            fields.insert("error".to_owned(), Json::from(self.error.as_str()));
        }
        Details {
            description: Some(self.description()),
            fields,
            ..Details::default()
        }
    }

    fn description(&self) -> String {
        let mut text = format!("container {}", self.name);
        if !self.image.is_empty() {
            text.push_str(&format!(" ({})", self.image));
        }
        text.push_str(": ");
        let exited = |text: &mut String, verb: &str| {
            text.push_str(&format!("{verb} with code {}", self.exit_code));
            if !self.finished_at.is_empty() {
                text.push_str(&format!(" at {}", readable_time(&self.finished_at)));
            }
            if self.oom_killed {
                text.push_str(", killed for lack of memory");
            }
        };
        match self.status.as_str() {
            "" => text.push_str("not found"),
            "running" if self.running => {
                text.push_str("running");
                if !self.started_at.is_empty() {
                    text.push_str(&format!(" since {}", readable_time(&self.started_at)));
                }
            }
            "exited" | "dead" => exited(&mut text, &self.status),
            "restarting" => {
                text.push_str("restarting, last ");
                exited(&mut text, "exited");
            }
            other => text.push_str(other),
        }
        if !self.status.is_empty() {
            text.push_str(&format!(", restarts: {}", self.restart_count));
        }
        if !self.error.is_empty() {
            text.push_str(&format!(", error: {}", self.error));
        }
        text
    }
}

/// Podman's compat API shows its own `stopped` between a process's exit and the engine's
/// cleanup of it, where Docker says `exited`; everything else is Docker's word already.
fn docker_status(status: String) -> String {
    if status == "stopped" {
        "exited".to_owned()
    } else {
        status
    }
}

/// `2024-05-01T10:00:00.123456789Z` → `2024-05-01T10:00:00Z`; other forms are kept.
fn readable_time(value: &str) -> String {
    match humantime::parse_rfc3339(value) {
        Ok(time) => humantime::format_rfc3339_seconds(time).to_string(),
        Err(_) => value.to_owned(),
    }
}

impl WatchedStatus for ContainerStatus {
    fn details(&self) -> Details {
        ContainerStatus::details(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRASHED: &str = r#"{
        "Id": "abbe2a7b2c87",
        "Name": "/crasher-container",
        "RestartCount": 3,
        "State": {"Status": "exited", "Running": false, "Paused": false, "Restarting": false,
                  "OOMKilled": false, "Dead": false, "Pid": 0, "ExitCode": 1, "Error": "",
                  "StartedAt": "2026-11-22T01:50:59.855590419Z",
                  "FinishedAt": "2026-11-22T01:51:00.932253246Z"},
        "Config": {"Image": "localhost/bb:latest"}
    }"#;

    #[test]
    fn an_inspect_answer_is_read() {
        let status = ContainerStatus::from_inspect(CRASHED.as_bytes()).unwrap();
        assert_eq!(
            status,
            ContainerStatus {
                name: "crasher-container".into(),
                id: "abbe2a7b2c87".into(),
                image: "localhost/bb:latest".into(),
                status: "exited".into(),
                running: false,
                exit_code: 1,
                oom_killed: false,
                restart_count: 3,
                started_at: "2026-11-22T01:50:59.855590419Z".into(),
                finished_at: "2026-11-22T01:51:00.932253246Z".into(),
                error: String::new(),
            }
        );
    }

    #[test]
    fn details_describe_a_crash() {
        let details = ContainerStatus::from_inspect(CRASHED.as_bytes())
            .unwrap()
            .details();
        assert_eq!(
            details.description.as_deref(),
            Some("container crasher-container (localhost/bb:latest): exited with code 1 at 2026-11-22T01:51:00Z, restarts: 3")
        );
        assert_eq!(
            serde_json::to_value(&details).unwrap(),
            serde_json::json!({
                "description": "container crasher-container (localhost/bb:latest): exited with code 1 at 2026-11-22T01:51:00Z, restarts: 3",
                "status": "exited",
                "exit_code": 1,
                "oom_killed": false,
                "restart_count": 3,
                "image": "localhost/bb:latest",
                "id": "abbe2a7b2c87",
            })
        );
    }

    #[test]
    fn a_restarting_container_is_not_running() {
        let body = r#"{"Name": "/web", "State": {"Status": "restarting", "Running": true,
            "Restarting": true, "ExitCode": 137, "OOMKilled": true,
            "FinishedAt": "0001-01-01T00:00:00Z"}, "Config": {"Image": "nginx"}}"#;
        let status = ContainerStatus::from_inspect(body.as_bytes()).unwrap();
        assert!(!status.running());
        assert_eq!(status.finished_at, "");
        assert_eq!(
            status.details().description.as_deref(),
            Some("container web (nginx): restarting, last exited with code 137, killed for lack of memory, restarts: 0")
        );
    }

    #[test]
    fn podmans_stopped_is_exited() {
        let body = r#"{"Name": "/web", "State": {"Status": "stopped", "ExitCode": 3}}"#;
        let status = ContainerStatus::from_inspect(body.as_bytes()).unwrap();
        assert_eq!(status.status, "exited");
    }

    #[test]
    fn details_of_a_running_and_a_missing_container() {
        let body = r#"{"Name": "/web", "RestartCount": 2, "State": {"Status": "running",
            "Running": true, "StartedAt": "2026-11-22T01:50:59.8Z"}, "Config": {"Image": "nginx"}}"#;
        let status = ContainerStatus::from_inspect(body.as_bytes()).unwrap();
        assert_eq!(
            status.details().description.as_deref(),
            Some("container web (nginx): running since 2026-11-22T01:50:59Z, restarts: 2")
        );
        let missing = ContainerStatus::missing("web", "no such container");
        assert_eq!(
            missing.details().description.as_deref(),
            Some("container web: not found, error: no such container")
        );
    }
}
