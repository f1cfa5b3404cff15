//! The checks the agent samples itself, on real file systems: `diskusage` on a
//! size-limited tmpfs the test fills and empties (`tests/support/mounts.rs`).

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{eventually, Sandbox};
use crate::mounts::Mount;

/// The `status --json` entry of the check `diskusage <name>`.
fn status_of(sandbox: &Sandbox, name: &str) -> Value {
    let output = sandbox.monitorctl(&["status", "--json"]);
    assert!(output.status.success(), "monitorctl status: {output:?}");
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["check"]["subsystem"] == "diskusage" && check["check"]["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no check diskusage {name} in {status:#}"))
}

/// A disk filled over its threshold is CRITICAL, with the measured value and the
/// threshold in the details, and OK once emptied; a path with no file system yet is the
/// check's problem (in `status`), not an alert.
#[test]
fn a_disk_filled_over_its_threshold_is_critical_until_emptied() {
    let sandbox = Sandbox::new();
    let disk = sandbox.path("disk");
    let shown = disk.to_str().unwrap();
    sandbox.monitorctl_quietly(&["create", "diskusage", "data", shown, "50"]);
    // Sampled every second, so the test takes seconds.
    let file = sandbox.config_dir().join("available/diskusage_data.yaml");
    let mut definition = fs::read_to_string(&file).unwrap();
    definition.push_str("interval: 1s\n");
    fs::write(&file, definition).unwrap();
    sandbox.monitorctl_quietly(&["enable", "diskusage", "data"]);
    let mut alerts = sandbox.follow_alerts();
    let mut agent = sandbox.start_agent();

    // Nothing mounted there yet: a problem, with its fix.
    eventually("status shows the missing mount point", || {
        let status = status_of(&sandbox, "data");
        status["state"] == "error"
            && status["detail"].as_str().is_some_and(|detail| {
                detail.contains("does not exist: mount the file system there")
            })
    });
    let Some(mount) = Mount::tmpfs_or_skip(&disk, "1m") else {
        return;
    };
    eventually("status shows the disk OK", || {
        let status = status_of(&sandbox, "data");
        status["state"] == "ok" && status["detail"] == "sampled every 1s, threshold 50%, clear 45%"
    });

    // 700 KiB of 1 MiB: 69% used, over 50%.
    let filler = mount.point().join("filler");
    fs::write(&filler, vec![7u8; 700 * 1024]).unwrap();
    let (_, critical) = alerts.expect("CRITICAL", "diskusage data");
    let subject = &critical["subject"];
    assert_eq!(subject["name"], shown);
    assert_eq!(subject["type"], "diskusage");
    assert_eq!(
        critical["name"],
        format!("Disk storage has grown to fill more than 50% of the disk '{shown}'")
    );
    let details = &subject["details"];
    assert_eq!(
        details["description"],
        format!("Disk {shown} 69% used (threshold 50%)"),
        "{critical:#}"
    );
    assert_eq!(details["value"], 69.0);
    assert_eq!(details["threshold"], 50.0);
    assert_eq!(details["clear_threshold"], 45.0);
    assert_eq!(details["unit"], "%");

    fs::remove_file(&filler).unwrap();
    let (_, ok) = alerts.expect("OK", "diskusage data");
    assert_eq!(
        ok["subject"]["details"]["description"],
        format!("Disk {shown} 0% used (threshold 50%)")
    );
    // Once: the next samples (one a second) change nothing.
    alerts.assert_quiet_for(Duration::from_millis(2500));
    agent.assert_alive();
    drop(mount);
}
