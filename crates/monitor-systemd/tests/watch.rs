//! The watcher against a real `systemd --user` manager with its own session bus: real units,
//! real crashes and kills, a real `daemon-reexec`. Every wait is for an observed event with a
//! deadline; each test has its own manager.

#[path = "../../../tests/support/user_manager.rs"]
mod user_manager;
#[path = "../../../tests/support/watcher.rs"]
mod watcher;

use std::time::Duration;

use monitor_systemd::{
    read_unit_on, run_on, Bus, BusAddresses, FailedUnitsWatch, ServiceEvent, ServiceWatchConfig,
    SystemdError, UnitStatus, WatchedService,
};
use monitor_wire::{CheckId, Subsystem};
use user_manager::UserManager;
use watcher::WatcherUnderTest;

const EVENT_DEADLINE: Duration = Duration::from_secs(15);

fn check(name: &str) -> CheckId {
    CheckId::new(Subsystem::Service, name)
}

watcher::watcher_under_test!(Watcher, ServiceWatchConfig, ServiceEvent, SystemdError);

impl Watcher {
    /// Watches `(check, unit)` pairs on the manager's bus.
    fn start(manager: &UserManager, services: &[(&str, &str)]) -> Watcher {
        let config = ServiceWatchConfig {
            bus: Bus::Session,
            services: services
                .iter()
                .map(|(name, unit)| WatchedService {
                    check: check(name),
                    unit: unit.to_string(),
                })
                .collect(),
            failed_units: Vec::new(),
        };
        let addresses = BusAddresses::session(manager.bus_address());
        Watcher(WatcherUnderTest::start(
            config,
            64,
            EVENT_DEADLINE,
            |configs, events, shutdown| run_on(addresses, configs, events, shutdown),
        ))
    }

    async fn stop(self) {
        let (result, _) = self.0.stop().await;
        result.unwrap().unwrap();
    }
}

fn simple_unit(description: &str, service_lines: &str) -> String {
    format!("[Unit]\nDescription={description}\nStartLimitIntervalSec=0\n\n[Service]\n{service_lines}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_and_a_start_of_a_simple_service_are_reported() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit(
        "sleeper.service",
        &simple_unit("Sleeper", "Type=simple\nExecStart=/bin/sleep infinity"),
    );
    let mut watcher = Watcher::start(&manager, &[("sleeper", "sleeper.service")]);
    watcher
        .expect("Connected", |event| *event == ServiceEvent::Connected)
        .await;
    let initial = watcher.expect_state("sleeper", false).await;
    assert_eq!(initial.active_state, "inactive");
    assert_eq!(initial.load_state, "loaded");
    assert_eq!(initial.unit, "sleeper.service");
    assert_eq!(initial.description, "Sleeper");

    manager.systemctl_ok(&["start", "sleeper.service"]);
    let running = watcher.expect_state("sleeper", true).await;
    assert_eq!(running.active_state, "active");
    assert_eq!(running.sub_state, "running");
    assert_ne!(running.main_pid, 0);
    assert!(running
        .status_text()
        .starts_with("sleeper.service - Sleeper\n"));

    manager.systemctl_ok(&["stop", "sleeper.service"]);
    let stopped = watcher.expect_state("sleeper", false).await;
    assert_eq!(stopped.active_state, "inactive", "{stopped:#?}");

    manager.systemctl_ok(&["start", "sleeper.service"]);
    watcher.expect_state("sleeper", true).await;
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_under_restart_always_is_a_down_and_an_up() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit(
        "phoenix.service",
        &simple_unit(
            "Phoenix",
            "ExecStart=/bin/sleep infinity\nRestart=always\nRestartSec=100ms",
        ),
    );
    manager.systemctl_ok(&["start", "phoenix.service"]);
    manager.wait_for_state("phoenix.service", "active");
    let mut watcher = Watcher::start(&manager, &[("phoenix", "phoenix.service")]);
    let before = watcher.expect_state("phoenix", true).await;

    manager.systemctl_ok(&["kill", "-s", "KILL", "phoenix.service"]);
    let down = watcher.expect_state("phoenix", false).await;
    let up = watcher.expect_state("phoenix", true).await;
    assert_eq!(up.n_restarts, before.n_restarts + 1, "{down:#?}\n{up:#?}");
    assert_eq!(up.active_state, "active");
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_restart_of_a_crash_loop_is_a_down_and_an_up() {
    const RESTARTS: u32 = 6;
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit(
        "crasher.service",
        &simple_unit(
            "Crasher",
            "ExecStart=/bin/sh -c 'sleep 0.2; exit 1'\nRestart=always\nRestartSec=100ms",
        ),
    );
    let mut watcher = Watcher::start(&manager, &[("crasher", "crasher.service")]);
    let initial = watcher.expect_state("crasher", false).await;
    assert_eq!(initial.n_restarts, 0);

    manager.systemctl_ok(&["start", "crasher.service"]);
    // Count the changes as the engine does (repeated equal states are no change) until a
    // State shows as many downs as restarts, and at least RESTARTS of them.
    let mut last = false;
    let (mut downs, mut ups) = (0u32, 0u32);
    loop {
        let (running, status) = watcher.next_state("crasher").await;
        if running != last {
            if running {
                ups += 1;
            } else {
                downs += 1;
            }
            last = running;
        }
        assert!(
            downs <= status.n_restarts + 1,
            "more downs ({downs}) than crashes ({} restarts); events: {:#?}",
            status.n_restarts,
            watcher.seen
        );
        if running && status.n_restarts >= RESTARTS && downs == status.n_restarts {
            assert_eq!(ups, downs + 1);
            break;
        }
    }
    manager.systemctl_ok(&["stop", "crasher.service"]);
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_that_does_not_exist_is_a_problem_and_not_running() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    let mut watcher = Watcher::start(&manager, &[("nothere", "nothere.service")]);
    let problem = watcher
        .expect("Problem", |event| {
            matches!(event, ServiceEvent::Problem { .. })
        })
        .await;
    let ServiceEvent::Problem {
        check: checked,
        message,
    } = problem
    else {
        unreachable!()
    };
    assert_eq!(checked, check("nothere"));
    assert!(message.contains("nothere.service"), "{message}");
    assert!(message.contains("not found"), "{message}");
    let status = watcher.expect_state("nothere", false).await;
    assert_eq!(status.load_state, "not-found");
    assert!(
        status.status_text().contains("not-found"),
        "{}",
        status.status_text()
    );

    // Installing it later is noticed at the daemon-reload; starting it is reported.
    manager.install_unit(
        "nothere.service",
        &simple_unit("Now here", "ExecStart=/bin/sleep infinity"),
    );
    manager.systemctl_ok(&["start", "nothere.service"]);
    let running = watcher.expect_state("nothere", true).await;
    assert_eq!(running.load_state, "loaded");
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_of_a_forking_daemon_reports_the_signal() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit(
        "forking.service",
        &simple_unit(
            "Forking daemon",
            "Type=forking\nExecStart=/bin/sh -c 'sleep infinity & echo $! > %t/forking.pid'\nPIDFile=%t/forking.pid",
        ),
    );
    manager.systemctl_ok(&["start", "forking.service"]);
    manager.wait_for_state("forking.service", "active");
    let mut watcher = Watcher::start(&manager, &[("forking", "forking.service")]);
    let running = watcher.expect_state("forking", true).await;
    assert_ne!(running.main_pid, 0);

    let killed = std::process::Command::new("kill")
        .args(["-9", &running.main_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let down = watcher.expect_state("forking", false).await;
    assert_eq!(down.active_state, "failed", "{down:#?}");
    assert_eq!(down.result, "signal");
    assert_eq!(down.exec_main_code, 2);
    assert_eq!(down.exec_main_status, 9);
    let details = down.details();
    assert_eq!(details.fields["exit_code"], "killed");
    assert_eq!(details.fields["exit_status"], "KILL");
    assert!(
        down.status_text().contains("(code=killed, status=9/KILL)"),
        "{}",
        down.status_text()
    );
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_reexec_reconnects_and_loses_no_change() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit(
        "steady.service",
        &simple_unit("Steady", "ExecStart=/bin/sleep infinity"),
    );
    manager.systemctl_ok(&["start", "steady.service"]);
    manager.wait_for_state("steady.service", "active");
    let mut watcher = Watcher::start(&manager, &[("steady", "steady.service")]);
    watcher
        .expect("Connected", |event| *event == ServiceEvent::Connected)
        .await;
    watcher.expect_state("steady", true).await;

    manager.systemctl_ok(&["daemon-reexec"]);
    manager.systemctl_ok(&["stop", "steady.service"]);
    watcher
        .expect("Connected again", |event| *event == ServiceEvent::Connected)
        .await;
    let stopped = watcher.expect_state("steady", false).await;
    assert_eq!(stopped.active_state, "inactive");

    // And signals flow again after the reconnection.
    manager.systemctl_ok(&["start", "steady.service"]);
    watcher.expect_state("steady", true).await;
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_config_replaces_the_watched_set() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    for name in ["first", "second"] {
        manager.install_unit(
            &format!("{name}.service"),
            &simple_unit(name, "ExecStart=/bin/sleep infinity"),
        );
    }
    let mut watcher = Watcher::start(&manager, &[("first", "first.service")]);
    watcher.expect_state("first", false).await;

    watcher
        .configs
        .send(ServiceWatchConfig {
            bus: Bus::Session,
            services: vec![WatchedService {
                check: check("second"),
                unit: "second.service".into(),
            }],
            failed_units: Vec::new(),
        })
        .await
        .unwrap();
    watcher.expect_state("second", false).await;
    manager.systemctl_ok(&["start", "first.service"]);
    manager.systemctl_ok(&["start", "second.service"]);
    watcher.expect_state("second", true).await;
    assert!(
        !watcher.seen.iter().any(|event| matches!(
            event,
            ServiceEvent::State { check: checked, running: true, .. } if *checked == check("first")
        )),
        "a unit no longer watched was reported: {:#?}",
        watcher.seen
    );
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_unit_reads_a_failed_unit_once() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit(
        "fails.service",
        &simple_unit("Fails", "ExecStart=/bin/sh -c 'exit 3'"),
    );
    manager.systemctl(&["start", "fails.service"]);
    manager.wait_for_state("fails.service", "failed");
    let addresses = BusAddresses::session(manager.bus_address());
    // A bare service name is completed.
    let status = read_unit_on(&addresses, Bus::Session, "fails")
        .await
        .unwrap();
    assert_eq!(status.unit, "fails.service");
    assert_eq!(status.active_state, "failed");
    assert_eq!(status.result, "exit-code");
    assert_eq!(status.exec_main_code, 1);
    assert_eq!(status.exec_main_status, 3);
    assert!(!status.running());
    assert!(
        status.status_text().contains("status=3"),
        "{}",
        status.status_text()
    );
    assert!(status
        .status_text()
        .contains("Active: failed (Result: exit-code)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_unit_says_what_to_do_when_the_bus_is_not_there() {
    let directory = tempfile::tempdir().unwrap();
    let address = format!("unix:path={}", directory.path().join("bus").display());
    let error = read_unit_on(&BusAddresses::session(&address), Bus::Session, "x")
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot connect to the session bus at {address}: ")),
        "{message}"
    );
    assert!(
        message.contains("is `systemd --user` running?"),
        "{message}"
    );
}

impl Watcher {
    /// Watches every unit for `failed`, for the check `failed_units`.
    fn start_on_every_unit(manager: &UserManager) -> Watcher {
        let config = ServiceWatchConfig {
            bus: Bus::Session,
            services: Vec::new(),
            failed_units: vec![FailedUnitsWatch {
                check: check("failed_units"),
                known_failed: ["reset-while-away.service".to_owned()].into(),
            }],
        };
        let addresses = BusAddresses::session(manager.bus_address());
        Watcher(WatcherUnderTest::start(
            config,
            64,
            EVENT_DEADLINE,
            |configs, events, shutdown| run_on(addresses, configs, events, shutdown),
        ))
    }

    /// The next State of the check on every unit: whether the unit runs (is not failed), and
    /// its status.
    async fn next_unit(&mut self) -> (bool, UnitStatus) {
        self.next_state("failed_units").await
    }
}

/// Waits (with a deadline) until systemd restarted `unit` at least `count` times.
fn wait_for_restarts(manager: &UserManager, unit: &str, count: u32) {
    let deadline = std::time::Instant::now() + EVENT_DEADLINE;
    while manager
        .property(unit, "NRestarts")
        .parse::<u32>()
        .unwrap_or(0)
        < count
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{unit} did not restart {count} times"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unit_that_enters_failed_is_reported_once_and_its_recovery_too() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    let failing = |description: &str| simple_unit(description, "ExecStart=/bin/sh -c 'exit 3'");
    manager.install_unit("before.service", &failing("Failed before the watch"));
    manager.systemctl(&["start", "before.service"]);
    manager.wait_for_state("before.service", "failed");
    // A crash loop under Restart=always steps through `failed` on each crash: not failed.
    manager.install_unit(
        "looping.service",
        &simple_unit(
            "Crash loop",
            "ExecStart=/bin/sh -c 'exit 1'\nRestart=always\nRestartSec=200ms",
        ),
    );
    manager.systemctl(&["start", "looping.service"]);

    let mut watcher = Watcher::start_on_every_unit(&manager);
    // Failed before the watch: reported once; a unit the caller held as failed and that is
    // not (reset while the agent was down) gets its recovery.
    let mut first = [watcher.next_unit().await, watcher.next_unit().await];
    first.sort_by_key(|(running, _)| *running);
    assert_eq!(
        first
            .iter()
            .map(|(running, status)| (*running, status.unit.as_str()))
            .collect::<Vec<_>>(),
        [
            (false, "before.service"),
            (true, "reset-while-away.service")
        ]
    );
    let before = &first[0].1;
    assert_eq!(before.result, "exit-code");
    assert_eq!(before.exec_main_status, 3);
    assert!(
        before.status_text().contains("Failed before the watch"),
        "{}",
        before.status_text()
    );

    // A unit that appears after the watch started, and fails.
    manager.install_unit("later.service", &failing("Appeared later"));
    manager.systemctl(&["start", "later.service"]);
    let (running, later) = watcher.next_unit().await;
    assert!(!running, "{later:?}");
    assert_eq!(later.unit, "later.service");
    assert_eq!(later.active_state, "failed");
    assert_eq!(later.exec_main_status, 3);

    manager.systemctl_ok(&["reset-failed", "before.service"]);
    let (running, reset) = watcher.next_unit().await;
    assert!(running, "{reset:?}");
    assert_eq!(reset.unit, "before.service");

    // Started again and failing again is a new failure.
    manager.systemctl(&["start", "later.service"]);
    let (running, restarted) = watcher.next_unit().await;
    assert_eq!((running, restarted.unit.as_str()), (true, "later.service"));
    let (running, again) = watcher.next_unit().await;
    assert_eq!((running, again.unit.as_str()), (false, "later.service"));

    // The crash loop went round a few times meanwhile and was never reported; the sentinel
    // is the next report, so nothing came in between.
    wait_for_restarts(&manager, "looping.service", 3);
    manager.install_unit("sentinel.service", &failing("Sentinel"));
    manager.systemctl(&["start", "sentinel.service"]);
    let (running, sentinel) = watcher.next_unit().await;
    assert_eq!(
        (running, sentinel.unit.as_str()),
        (false, "sentinel.service")
    );
    watcher.stop().await;
}
