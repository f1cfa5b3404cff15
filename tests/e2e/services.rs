//! Service checks against a real `systemd --user` manager with its own D-Bus, real units
//! (the seed's crasher.service variants running the seed's crasher.py), real crashes.

use std::fs;
use std::time::Duration;

use crate::harness::{monitorctl_binary, repository_root, Sandbox};
use crate::user_manager::UserManager;

/// A sandbox whose agent watches the user manager's services.
fn sandbox_with(manager: &UserManager, settings: &str) -> Sandbox {
    let mut sandbox = Sandbox::new();
    sandbox.env = manager.env();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!("systemd:\n  bus: user\n{settings}"),
    )
    .unwrap();
    sandbox
}

fn crasher() -> String {
    repository_root()
        .join("examples/crasher/crasher.py")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

/// The seed's unit (`crasher.service [no restarting]`), pointing at this checkout's crasher.py.
fn seed_unit(exec_start_arguments: &str, service_lines: &str) -> String {
    let seed =
        fs::read_to_string(repository_root().join("examples/crasher/crasher.service")).unwrap();
    seed.replace(
        "ExecStart=/root/crasher.py --never-crash",
        &format!(
            "ExecStart={} {exec_start_arguments}\n{service_lines}",
            crasher()
        ),
    )
}

fn watch(sandbox: &Sandbox, service: &str) {
    sandbox.monitorctl_quietly(&["create", "service", service, "systemd"]);
    sandbox.monitorctl_quietly(&["enable", "service", service]);
}

fn details(alert: &serde_json::Value) -> &serde_json::Value {
    &alert["subject"]["details"]
}

/// The shipped `config/systemd/user/monitor-failure@.service`, pointed at the built
/// monitorctl and this sandbox's folders.
pub fn install_failure_handler(manager: &UserManager, sandbox: &Sandbox) {
    let environment: String = sandbox
        .environment()
        .iter()
        .map(|(name, value)| format!("Environment=\"{name}={value}\"\n"))
        .collect();
    let shipped =
        fs::read_to_string(repository_root().join("config/systemd/user/monitor-failure@.service"))
            .unwrap();
    manager.install_unit(
        "monitor-failure@.service",
        &shipped.replace(
            "ExecStart=/usr/bin/monitorctl",
            &format!("{environment}ExecStart={}", monitorctl_binary()),
        ),
    );
}

#[test]
fn stopping_a_service_is_critical_and_starting_it_again_is_ok() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit("crasher.service", &seed_unit("--never-crash", ""));
    manager.systemctl(&["start", "crasher"]);
    manager.wait_for_state("crasher.service", "active");
    let sandbox = sandbox_with(&manager, "");
    watch(&sandbox, "crasher");
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    manager.systemctl(&["stop", "crasher"]);
    let (_, critical) = alerts.expect("CRITICAL", "service crasher");
    assert_eq!(critical["name"], "Service crasher not running");
    assert_eq!(critical["subject"]["type"], "systemd");
    assert_eq!(critical["subject"]["status"], "not-running");
    // "inactive" once the stop settled; "deactivating" if it took longer than the watcher
    // waits for it (a loaded machine).
    let state = details(&critical)["active_state"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        ["inactive", "deactivating"].contains(&state.as_str()),
        "{critical:#}"
    );
    assert!(
        details(&critical)["description"]
            .as_str()
            .unwrap()
            .contains("crasher.service - Crasher"),
        "{critical:#}"
    );

    manager.systemctl(&["start", "crasher"]);
    let (_, ok) = alerts.expect("OK", "service crasher");
    assert_eq!(ok["name"], "Service crasher not running");
    assert_eq!(ok["subject"]["status"], "running");
    alerts.assert_quiet_for(Duration::from_millis(300));
}

#[test]
fn a_kill_9_is_seen_even_when_restart_always_brings_it_back_within_100ms() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit(
        "crasher.service",
        &seed_unit("--never-crash", "Restart=always\nRestartSec=100ms"),
    );
    manager.systemctl(&["start", "crasher"]);
    manager.wait_for_state("crasher.service", "active");
    let sandbox = sandbox_with(&manager, "");
    watch(&sandbox, "crasher");
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    manager.systemctl(&["kill", "-s", "KILL", "crasher"]);
    let (_, critical) = alerts.expect("CRITICAL", "service crasher");
    assert_eq!(critical["name"], "Service crasher not running");
    alerts.expect("OK", "service crasher");
    alerts.assert_quiet_for(Duration::from_millis(300));
}

#[test]
fn a_crash_loop_is_one_going_up_and_down_per_episode_and_clears() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    // The seed's restarting unit, faster: crash after 1 s, restart after 100 ms.
    let looping = seed_unit("--crash-interval 1", "Restart=always\nRestartSec=100ms")
        .replace("[Unit]", "[Unit]\nStartLimitIntervalSec=0");
    manager.install_unit("crasher.service", &looping);
    let sandbox = sandbox_with(
        &manager,
        "flapping_interval: 10s\nflapping_count_threshold: 3\nalert_log_max_age: 1m\n",
    );
    watch(&sandbox, "crasher");
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    manager.systemctl(&["start", "crasher"]);

    // Crash, back, crash ... each change is one alert until the third change within the
    // window (the threshold, as in Mender: "as soon as there are 3 flaps") makes it
    // flapping. Counted within the window (10 s) before the flapping alert: on a loaded
    // machine the first crash can come so late that the changes around the start have left
    // the window. (Whether the agent first saw the unit before or after the start is a
    // race: a first sight of it stopped is one more CRITICAL, so the count is 2 or 3.)
    let time = |alert: &serde_json::Value| {
        humantime::parse_rfc3339_weak(alert["timestamp"].as_str().unwrap()).unwrap()
    };
    let mut before_flapping = Vec::new();
    let flapping_at = loop {
        let (_, alert) = alerts.next();
        let name = alert["name"].as_str().unwrap().to_owned();
        if name == "Service crasher going up and down" {
            assert_eq!(alert["level"], "CRITICAL");
            break time(&alert);
        }
        assert_eq!(name, "Service crasher not running");
        before_flapping.push((alert["level"].as_str().unwrap().to_owned(), time(&alert)));
    };
    let levels: Vec<&str> = before_flapping
        .iter()
        .map(|(level, _)| level.as_str())
        .collect();
    assert!(
        levels.windows(2).all(|pair| pair[0] != pair[1]),
        "{levels:?}"
    );
    let in_window = before_flapping
        .iter()
        .filter(|(_, at)| {
            flapping_at.duration_since(*at).unwrap_or_default() <= Duration::from_secs(10)
        })
        .count();
    assert!(
        (2..=3).contains(&in_window),
        "{in_window} in the window: {before_flapping:?}"
    );
    // Fix the service. Once the flaps leave the window the episode ends: with an OK if the
    // fix has landed, or with a CRITICAL `not running` first if the loop was still going (a
    // slow machine), and then the OK. Never a second "going up and down" within an episode.
    manager.install_unit(
        "crasher.service",
        &seed_unit("--never-crash", "Restart=always\nRestartSec=100ms"),
    );
    manager.systemctl(&["restart", "crasher"]);
    let mut in_episode = true;
    let mut next = None;
    loop {
        let alert = next.take().unwrap_or_else(|| alerts.next().1);
        let name = alert["name"].as_str().unwrap();
        if name == "Service crasher going up and down" {
            assert!(
                !in_episode,
                "a second flapping alert within one episode: {alert:#}"
            );
            in_episode = true;
            continue;
        }
        assert_eq!(name, "Service crasher not running");
        in_episode = false;
        if alert["level"] == "OK" {
            // Settled when nothing follows for a while.
            match alerts.try_next(Duration::from_millis(1500)) {
                None => {
                    assert_eq!(alert["subject"]["status"], "running");
                    break;
                }
                Some((_, following)) => next = Some(following),
            }
        }
    }
}

#[test]
fn a_forking_daemon_with_a_pid_file_dying_is_seen() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit(
        "telldusd.service",
        "[Unit]\nDescription=A forking daemon, as in the Telldus seed\n[Service]\nType=forking\nPIDFile=%t/telldusd.pid\nExecStart=/bin/sh -c 'sleep infinity & echo $! > %t/telldusd.pid'\n",
    );
    manager.systemctl(&["start", "telldusd"]);
    manager.wait_for_state("telldusd.service", "active");
    let sandbox = sandbox_with(&manager, "");
    watch(&sandbox, "telldusd");
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    let pid = String::from_utf8(
        manager
            .systemctl(&["show", "-p", "MainPID", "--value", "telldusd"])
            .stdout,
    )
    .unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (_, critical) = alerts.expect("CRITICAL", "service telldusd");
    assert_eq!(details(&critical)["exit_code"], "killed");
    assert_eq!(details(&critical)["exit_status"], "KILL");
}

#[test]
fn on_failure_reports_through_monitor_failure_with_the_agent_stopped() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    let sandbox = sandbox_with(&manager, "");
    install_failure_handler(&manager, &sandbox);
    // Seed 000's justfail.service.
    manager.install_unit(
        "justfail.service",
        "[Unit]\nDescription=This will just fail\nOnFailure=monitor-failure@%n.service\n[Service]\nExecStart=sh -c 'echo fail; exit 1'\n",
    );
    let mut alerts = sandbox.follow_alerts();
    manager.systemctl(&["start", "justfail"]);

    let (_, critical) = alerts.expect("CRITICAL", "service justfail");
    assert_eq!(critical["name"], "Service justfail not running");
    assert_eq!(details(&critical)["result"], "exit-code");
    let description = details(&critical)["description"].as_str().unwrap();
    assert!(
        description.contains("justfail.service - This will just fail"),
        "{description}"
    );
    assert!(description.contains("status=1"), "{description}");
}

#[test]
fn exec_stop_post_reports_a_failed_exit_with_its_code_and_ignores_a_clean_one() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    let sandbox = sandbox_with(&manager, "");
    let environment: String = sandbox
        .environment()
        .iter()
        .map(|(name, value)| format!("Environment=\"{name}={value}\"\n"))
        .collect();
    let unit = |exit: u32| {
        format!(
            "[Unit]\nDescription=Exits with {exit}\n[Service]\n{environment}ExecStart=/bin/sh -c 'exit {exit}'\nExecStopPost={} notify-failure --from-env %n\n",
            monitorctl_binary()
        )
    };
    manager.install_unit("clean.service", &unit(0));
    manager.install_unit("dispenser.service", &unit(3));
    let mut alerts = sandbox.follow_alerts();
    manager.systemctl(&["start", "clean"]);
    manager.systemctl(&["start", "dispenser"]);

    let (_, critical) = alerts.expect("CRITICAL", "service dispenser");
    assert_eq!(details(&critical)["result"], "exit-code");
    assert_eq!(details(&critical)["exit_code"], "exited");
    assert_eq!(details(&critical)["exit_status"], 3);
    // The clean one, started first, made nothing.
    alerts.assert_quiet_for(Duration::from_millis(300));
}

#[test]
fn a_daemon_reexec_under_a_running_agent_loses_and_repeats_nothing() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit("crasher.service", &seed_unit("--never-crash", ""));
    manager.systemctl(&["start", "crasher"]);
    manager.wait_for_state("crasher.service", "active");
    let sandbox = sandbox_with(&manager, "");
    watch(&sandbox, "crasher");
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    manager.systemctl(&["daemon-reexec"]);
    manager.systemctl(&["stop", "crasher"]);
    alerts.expect("CRITICAL", "service crasher");
    manager.systemctl(&["daemon-reexec"]);
    manager.systemctl(&["start", "crasher"]);
    alerts.expect("OK", "service crasher");
    alerts.assert_quiet_for(Duration::from_millis(500));
    assert!(agent.log().contains("systemd"), "{}", agent.log());
}

#[test]
fn a_unit_that_does_not_exist_is_reported_once_not_as_ok() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    let sandbox = sandbox_with(&manager, "");
    watch(&sandbox, "nosuchthing");
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let (_, critical) = alerts.expect("CRITICAL", "service nosuchthing");
    assert_eq!(details(&critical)["load_state"], "not-found");
    let status = sandbox.monitorctl(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("service nosuchthing  error"), "{text}");
    assert!(text.contains("nosuchthing.service"), "{text}");
    alerts.assert_quiet_for(Duration::from_millis(300));
    let warnings = agent
        .log()
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("nosuchthing"))
        .count();
    assert_eq!(warnings, 1, "{}", agent.log());
}

#[test]
fn on_failure_restart_brings_a_unit_without_restart_back_within_its_limit() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit("telldusd.service", &seed_unit("--never-crash", ""));
    manager.systemctl(&["start", "telldusd"]);
    manager.wait_for_state("telldusd.service", "active");
    let sandbox = sandbox_with(&manager, "");
    let config = sandbox.config_dir();
    fs::create_dir_all(config.join("available")).unwrap();
    fs::write(
        config.join("available/service_telldusd.yaml"),
        "name: telldusd\ntype: systemd\non_failure:\n  action: restart\n  max_restarts: 1\n  window: 10m\n",
    )
    .unwrap();
    sandbox.monitorctl_quietly(&["enable", "service", "telldusd"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    // monit's job (seed 002): the agent restarts what systemd does not.
    manager.systemctl(&["kill", "-s", "KILL", "telldusd"]);
    alerts.expect("CRITICAL", "service telldusd");
    alerts.expect("OK", "service telldusd");
    // The limit is one restart per ten minutes: the second death stays reported, not fixed.
    manager.systemctl(&["kill", "-s", "KILL", "telldusd"]);
    alerts.expect("CRITICAL", "service telldusd");
    alerts.assert_quiet_for(Duration::from_secs(1));
    assert!(
        agent.log().contains("not restarting the unit"),
        "{}",
        agent.log()
    );
}
