//! The watcher against a real container engine: `podman system service` with its
//! Docker-compatible API, driven by the real `docker` CLI. Real containers, real crashes
//! under `--restart on-failure`, a real engine killed and restarted. Every wait is for an
//! observed event with a deadline; each test has its own engine.

#[path = "../../../tests/support/podman.rs"]
mod podman;
#[path = "../../../tests/support/watcher.rs"]
mod watcher;

use std::time::Duration;

use monitor_docker::{
    run, ContainerEvent, ContainerWatchConfig, DockerError, Engine, WatchedContainer,
};
use monitor_wire::{CheckId, Subsystem};
use podman::{Podman, IMAGE};
use watcher::WatcherUnderTest;

const EVENT_DEADLINE: Duration = Duration::from_secs(20);

fn check(name: &str) -> CheckId {
    CheckId::new(Subsystem::Service, name)
}

watcher::watcher_under_test!(Watcher, ContainerWatchConfig, ContainerEvent, DockerError);

impl Watcher {
    /// Watches containers (each its own check, named after it) on the engine.
    fn start(podman: &Podman, containers: &[&str]) -> Watcher {
        let config = ContainerWatchConfig {
            engine: Engine::at(podman.socket()),
            containers: containers
                .iter()
                .map(|name| WatchedContainer {
                    check: check(name),
                    container: name.to_string(),
                })
                .collect(),
        };
        Watcher(WatcherUnderTest::start(config, 256, EVENT_DEADLINE, run))
    }

    /// Stops the watcher and returns what it sent that was not read yet.
    async fn stop(self) -> Vec<ContainerEvent> {
        let (result, rest) = self.0.stop().await;
        result.unwrap().unwrap();
        rest
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_and_a_start_of_a_container_are_reported() {
    let Some(podman) = Podman::start() else {
        return;
    };
    podman.docker_ok(&[
        "run",
        "-d",
        "--network=none",
        "--name",
        "sleeper",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let mut watcher = Watcher::start(&podman, &["sleeper"]);
    watcher
        .expect("Connected", |event| *event == ContainerEvent::Connected)
        .await;
    let (running, initial) = watcher.next_state("sleeper").await;
    assert!(running, "{initial:#?}");
    assert_eq!(initial.name, "sleeper");
    assert_eq!(initial.status, "running");
    assert_eq!(initial.image, IMAGE);
    assert_eq!(initial.id.len(), 64, "{initial:#?}");
    assert!(!initial.started_at.is_empty());

    // busybox `sleep` as PID 1 ignores SIGTERM: docker stop kills it after the timeout.
    podman.docker_ok(&["stop", "--time=1", "sleeper"]);
    let stopped = watcher.expect_state("sleeper", false).await;
    assert_eq!(stopped.status, "exited", "{stopped:#?}");
    assert_eq!(stopped.exit_code, 137, "{stopped:#?}");
    assert!(!stopped.finished_at.is_empty());
    let description = stopped.details().description.unwrap();
    assert!(
        description.starts_with(&format!(
            "container sleeper ({IMAGE}): exited with code 137 at "
        )),
        "{description}"
    );

    podman.docker_ok(&["start", "sleeper"]);
    let started = watcher.expect_state("sleeper", true).await;
    assert_eq!(started.status, "running");
    let rest = watcher.stop().await;
    assert!(
        !rest
            .iter()
            .any(|event| matches!(event, ContainerEvent::State { .. })),
        "no more states than changes: {rest:#?}"
    );
}

/// Seed 004: the crasher container under `--restart on-failure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_under_restart_on_failure_is_every_crash_a_down_and_an_up() {
    let Some(podman) = Podman::start() else {
        return;
    };
    podman.docker_ok(&[
        "run",
        "-d",
        "--restart",
        "on-failure",
        "--network=none",
        "--name",
        "crasher-container",
        IMAGE,
        "sh",
        "-c",
        "sleep 1; exit 1",
    ]);
    let mut watcher = Watcher::start(&podman, &["crasher-container"]);
    watcher
        .expect("Connected", |event| *event == ContainerEvent::Connected)
        .await;
    let (mut running, first) = watcher.next_state("crasher-container").await;
    let mut downs = 0u64;
    let mut last = first.clone();
    // Follow the loop until three crashes were seen and the container runs again.
    while downs < 3 || !running {
        let (now_running, status) = watcher.next_state("crasher-container").await;
        assert_ne!(
            now_running, running,
            "states alternate: {:#?}",
            watcher.seen
        );
        if !now_running {
            downs += 1;
            assert_eq!(status.exit_code, 1, "{status:#?}");
            let details = status.details();
            assert_eq!(details.fields["exit_code"], 1);
            assert!(
                details.description.as_deref().unwrap().starts_with(
                    "container crasher-container (localhost/bb:latest): exited with code 1"
                ),
                "{details:#?}"
            );
        }
        running = now_running;
        last = status;
    }
    // Every restart the engine counted since the first state is one down we reported (the
    // first state itself may have been a down, waiting for its restart).
    let all_downs = downs + u64::from(!first.running);
    assert_eq!(
        last.restart_count - first.restart_count,
        all_downs,
        "first {first:#?}\nlast {last:#?}\nevents {:#?}",
        watcher.seen
    );
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_does_not_exist_is_a_problem_once() {
    let Some(podman) = Podman::start() else {
        return;
    };
    podman.docker_ok(&[
        "run",
        "-d",
        "--network=none",
        "--name",
        "bystander",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let mut watcher = Watcher::start(&podman, &["nosuch", "bystander"]);
    watcher
        .expect("Connected", |event| *event == ContainerEvent::Connected)
        .await;
    let problem = watcher
        .expect("Problem", |event| {
            matches!(event, ContainerEvent::Problem { .. })
        })
        .await;
    let ContainerEvent::Problem {
        check: about,
        message,
    } = problem
    else {
        unreachable!()
    };
    assert_eq!(about, check("nosuch"));
    assert!(
        message.starts_with("container nosuch does not exist on the container engine at "),
        "{message}"
    );
    assert!(
        message.ends_with("create it, or fix the name in the check"),
        "{message}"
    );
    let missing = watcher.expect_state("nosuch", false).await;
    assert_eq!(missing.error, "no such container");
    assert_eq!(
        missing.details().description.as_deref(),
        Some("container nosuch: not found, error: no such container")
    );
    watcher.expect_state("bystander", true).await;

    // Other containers' events do not repeat the problem.
    podman.docker_ok(&["stop", "--time=0", "bystander"]);
    watcher.expect_state("bystander", false).await;
    let mut all = watcher.seen.clone();
    all.extend(watcher.stop().await);
    let problems = all
        .iter()
        .filter(|event| matches!(event, ContainerEvent::Problem { .. }))
        .count();
    let nosuch_states = all
        .iter()
        .filter(|event| matches!(event, ContainerEvent::State { check: c, .. } if *c == check("nosuch")))
        .count();
    assert_eq!((problems, nosuch_states), (1, 1), "{all:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_killed_and_restarted_is_a_disconnect_and_a_reconnect() {
    let Some(mut podman) = Podman::start() else {
        return;
    };
    podman.docker_ok(&[
        "run",
        "-d",
        "--network=none",
        "--name",
        "survivor",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let mut watcher = Watcher::start(&podman, &["survivor"]);
    watcher
        .expect("Connected", |event| *event == ContainerEvent::Connected)
        .await;
    watcher.expect_state("survivor", true).await;

    podman.kill_service();
    let disconnected = watcher.next().await;
    assert!(
        matches!(&disconnected, ContainerEvent::Disconnected { reason } if reason.contains(&podman.socket().display().to_string())),
        "{disconnected:#?}"
    );
    podman.start_service();
    watcher
        .expect("Connected", |event| *event == ContainerEvent::Connected)
        .await;
    // Everything is inspected again after a reconnect.
    watcher.expect_state("survivor", true).await;
    assert_eq!(
        watcher
            .seen
            .iter()
            .filter(|event| matches!(event, ContainerEvent::Disconnected { .. }))
            .count(),
        1,
        "one Disconnected per outage: {:#?}",
        watcher.seen
    );

    podman.docker_ok(&["stop", "--time=0", "survivor"]);
    let stopped = watcher.expect_state("survivor", false).await;
    assert_eq!(stopped.status, "exited", "{stopped:#?}");
    watcher.stop().await;
}

/// A container that crashes at once restarts faster than the watcher inspects it: the `die`
/// events are the evidence, and no crash is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_faster_than_the_inspect_loses_no_crash() {
    let Some(podman) = Podman::start() else {
        return;
    };
    let mut watcher = Watcher::start(&podman, &["fast-crasher"]);
    watcher
        .expect("Connected", |event| *event == ContainerEvent::Connected)
        .await;
    watcher.expect_state("fast-crasher", false).await;
    podman.docker_ok(&[
        "run",
        "-d",
        "--restart",
        "on-failure:8",
        "--network=none",
        "--name",
        "fast-crasher",
        IMAGE,
        "sh",
        "-c",
        "exit 3",
    ]);
    let mut running = false;
    let mut downs = 0u64;
    // `on-failure:8`: the first run and eight restarts, then it stays down.
    while downs < 9 {
        let (now_running, status) = watcher.next_state("fast-crasher").await;
        assert_ne!(
            now_running, running,
            "states alternate: {:#?}",
            watcher.seen
        );
        if !now_running {
            downs += 1;
            assert_eq!(status.exit_code, 3, "{status:#?}");
        }
        running = now_running;
    }
    // One run and eight restarts: nine crashes, each reported once.
    let restarts = podman.docker_ok(&["inspect", "--format", "{{.RestartCount}}", "fast-crasher"]);
    assert_eq!(restarts, "8");
    let mut all = watcher.seen.clone();
    all.extend(watcher.stop().await);
    let states: Vec<_> = all
        .iter()
        .filter_map(|event| match event {
            ContainerEvent::State {
                running, status, ..
            } => Some(format!(
                "{running} {} {} {} {}",
                status.status, status.restart_count, status.started_at, status.finished_at
            )),
            _ => None,
        })
        .collect();
    // The missing container, then nine ups and nine downs.
    assert_eq!(states.len(), 1 + 2 * 9, "{states:#?}");
}
