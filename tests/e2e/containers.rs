//! Docker containers end to end, on a real engine (podman's Docker-compatible API) and the
//! real `docker` CLI: seed 004's crasher container under `--restart on-failure`, watched
//! both as Mender does (`dockerevents`, a log check on `@docker events`) and natively.

use std::time::{Duration, SystemTime};

use crate::harness::Sandbox;
use crate::podman::{one_engine, Podman};

fn sandbox_on(podman: &Podman, settings: &str) -> Sandbox {
    let mut sandbox = Sandbox::new();
    sandbox
        .env
        .push(("DOCKER_HOST".into(), podman.docker_host()));
    std::fs::write(sandbox.config_dir().join("monitor.yaml"), settings).unwrap();
    sandbox
}

#[test]
fn seed_004_a_crashing_container_raises_dockerevents_and_going_up_and_down() {
    let _engine = one_engine();
    let Some(podman) = Podman::start() else {
        return;
    };
    let sandbox = sandbox_on(
        &podman,
        "flapping_interval: 30s\nflapping_count_threshold: 3\n",
    );
    sandbox.monitorctl_quietly(&[
        "create",
        "dockerevents",
        "crashing",
        "crasher-container",
        "die",
        "15",
    ]);
    sandbox.monitorctl_quietly(&["enable", "dockerevents", "crashing"]);
    sandbox.monitorctl_quietly(&["create", "service", "crasher-container", "docker"]);
    sandbox.monitorctl_quietly(&["enable", "service", "crasher-container"]);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    podman.docker_ok(&[
        "run",
        "-d",
        "--restart",
        "on-failure",
        "--network=none",
        "--name",
        "crasher-container",
        "localhost/bb:latest",
        "sh",
        "-c",
        "sleep 1; exit 1",
    ]);
    let mut dockerevents = None;
    let mut flapping = None;
    let mut going_up_and_down = 0;
    let mut exit_codes_before_flapping = Vec::new();
    while dockerevents.is_none() || flapping.is_none() {
        let (_, alert) = alerts.next();
        let name = alert["name"].as_str().unwrap().to_owned();
        if name == "Docker container crasher-container die" {
            dockerevents.get_or_insert(alert);
        } else if name == "Service crasher-container going up and down" {
            going_up_and_down += 1;
            flapping.get_or_insert(alert);
        } else if name == "Service crasher-container not running"
            && alert["level"] == "CRITICAL"
            && flapping.is_none()
        {
            exit_codes_before_flapping.push(alert["subject"]["details"]["exit_code"].clone());
        }
    }
    let dockerevents = dockerevents.unwrap();
    assert_eq!(dockerevents["level"], "CRITICAL");
    assert_eq!(dockerevents["subject"]["type"], "docker_event");
    let line = dockerevents["subject"]["details"]["line_matching"]["data"]
        .as_str()
        .unwrap();
    assert!(
        line.contains("container die") && line.contains("name=crasher-container"),
        "{line}"
    );
    let flapping = flapping.unwrap();
    assert_eq!(flapping["subject"]["type"], "docker");
    // The third change flaps (threshold 3, as Mender counts): a die or a start, depending on
    // whether the agent first saw the container before it started; a die came before it.
    assert!(
        flapping["subject"]["details"]["exit_code"].is_number(),
        "{flapping:#}"
    );
    assert!(
        exit_codes_before_flapping.contains(&serde_json::json!(1)),
        "{exit_codes_before_flapping:?}"
    );
    assert_eq!(going_up_and_down, 1);
}

#[test]
fn stopping_a_container_is_seen_at_once_and_starting_it_clears() {
    let _engine = one_engine();
    let Some(podman) = Podman::start() else {
        return;
    };
    podman.docker_ok(&[
        "run",
        "-d",
        "--network=none",
        "--name",
        "steady",
        "localhost/bb:latest",
        "sleep",
        "100000",
    ]);
    let sandbox = sandbox_on(&podman, "");
    sandbox.monitorctl_quietly(&["create", "service", "steady", "docker"]);
    sandbox.monitorctl_quietly(&["enable", "service", "steady"]);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    podman.docker_ok(&["stop", "-t", "0", "steady"]);
    let stopped = SystemTime::now();
    let (_, critical) = alerts.expect("CRITICAL", "service steady");
    assert_eq!(critical["name"], "Service steady not running");
    let at = humantime::parse_rfc3339(critical["timestamp"].as_str().unwrap()).unwrap();
    let late = at.duration_since(stopped).unwrap_or_default();
    assert!(
        late < Duration::from_secs(1),
        "seen {late:?} after the stop returned"
    );
    // A stalled machine can make podman give up starting it ("container creation timeout");
    // that is the engine's trouble, not the agent's: ask again.
    let started = (0..3).any(|_| podman.docker(&["start", "steady"]).status.success());
    assert!(
        started,
        "podman could not start the container; its log:\n{}",
        podman.log()
    );
    alerts.expect("OK", "service steady");
}
