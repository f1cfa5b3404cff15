//! The built-in default checks (`config/defaults/`): what a fresh agent watches with no
//! check files, shown by `monitorctl list`, disabled for good by `monitorctl disable`,
//! replaced by a file of the same id, all turned off by `default_checks: false`.

use std::fs;

use crate::harness::{append, eventually, stderr, stdout, Sandbox};
use crate::user_manager::UserManager;

/// A sandbox with the default checks on (the harness turns them off for other tests).
fn sandbox_with_defaults(settings: &str) -> Sandbox {
    let mut sandbox = Sandbox::new();
    sandbox.default_checks = true;
    fs::write(sandbox.config_dir().join("monitor.yaml"), settings).unwrap();
    sandbox
}

/// The row of `monitorctl list` for `check`, its columns split on runs of spaces.
fn listed(sandbox: &Sandbox, subsystem: &str, check: &str) -> Option<String> {
    let output = sandbox.monitorctl(&["list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .find(|line| {
            let mut columns = line.split_whitespace();
            columns.next() == Some(subsystem) && columns.next() == Some(check)
        })
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn failing_unit(description: &str) -> String {
    format!("[Unit]\nDescription={description}\n\n[Service]\nExecStart=/bin/sh -c 'exit 3'\n")
}

#[test]
fn a_fresh_agent_reports_failed_units_and_a_disabled_default_stays_off() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    // No check file at all: only where systemd is (a user manager here, PID 1 on a Pi).
    let mut sandbox = sandbox_with_defaults("systemd:\n  bus: user\n");
    sandbox.env = manager.env();
    assert_eq!(
        listed(&sandbox, "service", "failed_units").as_deref(),
        Some("service failed_units yes (default) - every unit that fails (systemd)")
    );
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    manager.install_unit("first.service", &failing_unit("First"));
    manager.systemctl(&["start", "first.service"]);
    let (_, critical) = alerts.expect("CRITICAL", "service failed_units/first.service");
    assert_eq!(critical["name"], "Service first.service failed");

    // Disabling the default ends what it raised, and writes its file, not enabled.
    sandbox.monitorctl_quietly(&["disable", "service", "failed_units"]);
    alerts.expect("OK", "service failed_units/first.service");
    assert!(sandbox
        .config_dir()
        .join("available/service_failed_units.yaml")
        .exists());
    assert_eq!(
        listed(&sandbox, "service", "failed_units").as_deref(),
        Some("service failed_units no - every unit that fails (systemd)")
    );

    // Still off after a restart: a unit failing now raises nothing; the sentinel (a log
    // check's match) is the next alert.
    agent.stop();
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    alerts.next();
    alerts.next();
    manager.install_unit("second.service", &failing_unit("Second"));
    manager.systemctl(&["start", "second.service"]);
    manager.wait_for_state("second.service", "failed");
    let log = sandbox.path("sentinel.log");
    fs::write(&log, "").unwrap();
    sandbox.monitorctl_quietly(&["create", "log", "sentinel", "ERROR", log.to_str().unwrap()]);
    sandbox.monitorctl_quietly(&["enable", "log", "sentinel"]);
    append(&log, "ERROR sentinel\n");
    alerts.expect("CRITICAL", "log sentinel");

    // Enabled again (its file now): the units failed now are reported, the one that
    // failed meanwhile too.
    sandbox.monitorctl_quietly(&["enable", "service", "failed_units"]);
    let mut reported: Vec<String> = (0..2)
        .map(|_| {
            let (_, alert) = alerts.expect_level("CRITICAL");
            crate::harness::describe_check(&alert)
        })
        .collect();
    reported.sort();
    assert_eq!(
        reported,
        [
            "service failed_units/first.service",
            "service failed_units/second.service"
        ]
    );
    let row = listed(&sandbox, "service", "failed_units").unwrap();
    assert!(row.starts_with("service failed_units yes "), "{row}");
    assert!(!row.contains("(default)"), "{row}");
}

#[test]
fn default_checks_false_turns_them_off_and_a_file_of_the_same_id_replaces_one() {
    let sandbox = sandbox_with_defaults("default_checks: false\n");
    assert_eq!(listed(&sandbox, "service", "failed_units"), None);

    fs::write(sandbox.config_dir().join("monitor.yaml"), "").unwrap();
    let output = sandbox.monitorctl(&["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let default = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["check"] == "failed_units")
        .unwrap_or_else(|| panic!("{rows:#}"));
    assert_eq!(default["enabled"], true);
    assert_eq!(default["default"], true);

    // A default with no file of its own cannot be deleted.
    let output = sandbox.monitorctl(&["delete", "service", "failed_units"]);
    assert!(!output.status.success());
    assert_eq!(
        stderr(&output),
        "monitorctl: \"service failed_units\" is a built-in default check: disable it with monitorctl disable service failed_units, or turn every default off with `default_checks: false` in monitor.yaml\n"
    );

    // A file of the same id replaces it (not enabled until `enable`).
    fs::create_dir_all(sandbox.config_dir().join("available")).unwrap();
    fs::write(
        sandbox
            .config_dir()
            .join("available/service_failed_units.yaml"),
        "name: crasher\ntype: systemd\n",
    )
    .unwrap();
    assert_eq!(
        listed(&sandbox, "service", "failed_units").as_deref(),
        Some("service failed_units no - crasher.service (systemd)")
    );
    // Deleting the file brings the default back.
    sandbox.monitorctl_quietly(&["delete", "service", "failed_units"]);
    assert_eq!(
        listed(&sandbox, "service", "failed_units").as_deref(),
        Some("service failed_units yes (default) - every unit that fails (systemd)")
    );
}

/// The `status --json` entry of `<kind> <name>`.
fn status_of(sandbox: &Sandbox, kind: &str, name: &str) -> serde_json::Value {
    let output = sandbox.monitorctl(&["status", "--json"]);
    assert!(output.status.success(), "monitorctl status: {output:?}");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["check"]["subsystem"] == kind && check["check"]["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no check {kind} {name} in {status:#}"))
}

/// The device-health defaults: listed, quiet on a board without the sensor (status says it
/// is not on this device, not an error) and alerting on one that has it: a Pi 4's SoC at
/// 85 °C (its zone written under `sysfs_root`) is CRITICAL with no check file at all.
#[test]
fn the_health_defaults_are_quiet_without_the_hardware_and_alert_with_it() {
    let probe = Sandbox::new();
    let sys = probe.path("sys");
    fs::create_dir_all(&sys).unwrap();
    let sandbox = sandbox_with_defaults(&format!("sysfs_root: {}\n", sys.display()));
    for (kind, check, row) in [
        (
            "diskusage",
            "root_space",
            "diskusage root_space yes (default)",
        ),
        (
            "storage",
            "root_readonly",
            "storage root_readonly yes (default)",
        ),
        ("temperature", "soc", "temperature soc yes (default)"),
        ("power", "board", "power board yes (default)"),
    ] {
        let listed = listed(&sandbox, kind, check).unwrap_or_else(|| panic!("{kind} {check}"));
        assert!(listed.starts_with(row), "{listed}");
    }

    // No thermal zone, no Pi firmware: both say so, neither is an error.
    let agent = sandbox.start_agent();
    for (kind, check) in [("temperature", "soc"), ("power", "board")] {
        eventually(&format!("status says {kind} {check} is not here"), || {
            let status = status_of(&sandbox, kind, check);
            status["state"] == "unknown"
                && status["detail"]
                    .as_str()
                    .is_some_and(|detail| detail.starts_with("not on this device"))
        });
    }
    agent.stop();

    // A Pi 4's SoC zone at 85 °C (bcm2711_thermal shows millidegrees).
    fs::create_dir_all(sys.join("class/thermal/thermal_zone0")).unwrap();
    fs::write(
        sys.join("class/thermal/thermal_zone0/type"),
        "cpu-thermal\n",
    )
    .unwrap();
    fs::write(sys.join("class/thermal/thermal_zone0/temp"), "85000\n").unwrap();
    let mut alerts = sandbox.follow_alerts();
    let _agent = sandbox.start_agent();
    let (_, critical) = alerts.expect("CRITICAL", "temperature soc");
    assert_eq!(
        critical["subject"]["details"]["description"],
        "SoC temperature 85 °C (threshold 80 °C)"
    );
}
