//! The check on every systemd unit (`service` named `*`, check `failed_units`) against a
//! real `systemd --user` manager: each unit that enters `failed` is a CRITICAL of its own,
//! leaving `failed` its OK, units that appear later included, each failure once.

use std::fs;

use crate::harness::{stdout, Sandbox};
use crate::user_manager::UserManager;

/// A sandbox whose agent watches the user manager's units.
fn sandbox_for(manager: &UserManager) -> Sandbox {
    let mut sandbox = Sandbox::new();
    sandbox.env = manager.env();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        "systemd:\n  bus: user\n",
    )
    .unwrap();
    sandbox
}

/// A unit that fails at once with exit status 3.
fn failing_unit(description: &str) -> String {
    format!("[Unit]\nDescription={description}\n\n[Service]\nExecStart=/bin/sh -c 'exit 3'\n")
}

fn fail(manager: &UserManager, unit: &str, description: &str) {
    manager.install_unit(unit, &failing_unit(description));
    manager.systemctl(&["start", unit]);
}

#[test]
fn every_unit_that_fails_is_critical_once_and_ok_when_it_is_reset() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    fail(&manager, "before.service", "Failed before the agent");
    manager.wait_for_state("before.service", "failed");
    let sandbox = sandbox_for(&manager);
    // `*` is every unit; the check is named failed_units.
    let created = sandbox.monitorctl(&["create", "service", "*", "systemd"]);
    assert!(created.status.success(), "{created:?}");
    sandbox.monitorctl_quietly(&["enable", "service", "failed_units"]);
    let listed = stdout(&sandbox.monitorctl(&["list"]));
    assert!(
        listed.contains("every unit that fails (systemd)"),
        "{listed}"
    );
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    // Failed before the agent started: reported once.
    let (_, critical) = alerts.expect("CRITICAL", "service failed_units/before.service");
    assert_eq!(critical["name"], "Service before.service failed");
    assert_eq!(critical["subject"]["name"], "before.service");
    assert_eq!(critical["subject"]["type"], "systemd");
    assert_eq!(critical["subject"]["status"], "failed");
    let details = &critical["subject"]["details"];
    assert_eq!(details["result"], "exit-code", "{critical:#}");
    assert_eq!(details["exit_status"], 3, "{critical:#}");
    assert!(
        details["description"]
            .as_str()
            .unwrap()
            .contains("before.service - Failed before the agent"),
        "{critical:#}"
    );

    // A unit that did not exist when the agent started.
    fail(&manager, "later.service", "Appeared later");
    let (_, later) = alerts.expect("CRITICAL", "service failed_units/later.service");
    assert_eq!(later["name"], "Service later.service failed");

    let status = stdout(&sandbox.monitorctl(&["status"]));
    assert!(
        status.contains("service failed_units/later.service"),
        "{status}"
    );

    manager.systemctl_ok(&["reset-failed", "before.service"]);
    let (_, ok) = alerts.expect("OK", "service failed_units/before.service");
    assert_eq!(ok["name"], "Service before.service failed");
    assert_eq!(ok["subject"]["status"], "recovered");

    // Once: the next alert is the sentinel's, nothing came in between (no second CRITICAL
    // for a unit already reported, none for the reloads that installing units makes).
    fail(&manager, "sentinel.service", "Sentinel");
    alerts.expect("CRITICAL", "service failed_units/sentinel.service");

    // A unit reset while the agent was down gets its OK when it starts again; one still
    // failed gets no second CRITICAL.
    agent.stop();
    manager.systemctl_ok(&["reset-failed", "later.service"]);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    for _ in 0..4 {
        alerts.next();
    }
    alerts.expect("OK", "service failed_units/later.service");
    fail(&manager, "second-sentinel.service", "Second sentinel");
    alerts.expect("CRITICAL", "service failed_units/second-sentinel.service");
}

#[test]
fn a_crash_loop_under_restart_always_is_not_failed() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit(
        "looping.service",
        "[Unit]\nDescription=Crash loop\nStartLimitIntervalSec=0\n\n[Service]\nExecStart=/bin/sh -c 'exit 1'\nRestart=always\nRestartSec=100ms\n",
    );
    let sandbox = sandbox_for(&manager);
    sandbox.monitorctl_quietly(&["create", "service", "*", "systemd"]);
    sandbox.monitorctl_quietly(&["enable", "service", "failed_units"]);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    manager.systemctl(&["start", "looping.service"]);
    crate::harness::eventually("looping.service restarted 5 times", || {
        manager
            .property("looping.service", "NRestarts")
            .parse::<u32>()
            .unwrap_or(0)
            >= 5
    });
    // Each crash stepped through `failed` on its way to `auto-restart`: none is reported,
    // the sentinel's failure is the first alert.
    fail(&manager, "sentinel.service", "Sentinel");
    alerts.expect("CRITICAL", "service failed_units/sentinel.service");
}
