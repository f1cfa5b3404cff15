//! The checks the agent samples itself, on real file systems (`tests/support/mounts.rs`):
//! `diskusage` on a size-limited tmpfs the test fills and empties, `storage` on a
//! loop-mounted ext4 image remounted read-only and given a real ext4 error, and an eMMC's
//! wear from a Compute Module 4's files under `sysfs_root`/`procfs_root`.

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

/// Adds `interval: 1s` to a check file, so the test takes seconds.
fn sample_every_second(sandbox: &Sandbox, stem: &str) {
    let file = sandbox.config_dir().join(format!("available/{stem}.yaml"));
    let mut definition = fs::read_to_string(&file).unwrap();
    definition.push_str("interval: 1s\n");
    fs::write(&file, definition).unwrap();
}

fn wait_until_ok(sandbox: &Sandbox, subsystem: &str, name: &str) {
    eventually(&format!("status shows {subsystem} {name} ok"), || {
        status_entry(sandbox, subsystem, name)["state"] == "ok"
    });
}

fn status_entry(sandbox: &Sandbox, subsystem: &str, name: &str) -> Value {
    let output = sandbox.monitorctl(&["status", "--json"]);
    assert!(output.status.success(), "monitorctl status: {output:?}");
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["check"]["subsystem"] == subsystem && check["check"]["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no check {subsystem} {name} in {status:#}"))
}

/// A real loop-mounted ext4 file system: remounted read-only by hand (CRITICAL) and back
/// (OK); then a real ext4 error, which the kernel counts and answers by making the file
/// system read-only (`errors=remount-ro`): both checks CRITICAL.
#[test]
fn an_ext4_file_system_turned_read_only_or_with_errors_is_critical() {
    let sandbox = Sandbox::new();
    let point = sandbox.path("ext4");
    let Some(mount) = Mount::ext4_image_or_skip(&sandbox.path("ext4.img"), &point, 8) else {
        return;
    };
    let shown = point.to_str().unwrap();
    let device = mount.source();
    sandbox.monitorctl_quietly(&["create", "storage", "data_ro", shown]);
    sandbox.monitorctl_quietly(&["create", "storage", "data_errors", shown, "errors"]);
    for name in ["data_ro", "data_errors"] {
        sample_every_second(&sandbox, &format!("storage_{name}"));
        sandbox.monitorctl_quietly(&["enable", "storage", name]);
    }
    let mut alerts = sandbox.follow_alerts();
    let mut agent = sandbox.start_agent();
    wait_until_ok(&sandbox, "storage", "data_ro");
    wait_until_ok(&sandbox, "storage", "data_errors");

    mount.remount_read_only();
    let (_, critical) = alerts.expect("CRITICAL", "storage data_ro");
    assert_eq!(
        critical["name"],
        format!("File system {shown} is read-only")
    );
    assert_eq!(critical["subject"]["type"], "storage");
    assert_eq!(critical["subject"]["status"], "read-only");
    let description = critical["subject"]["details"]["description"]
        .as_str()
        .unwrap();
    assert!(
        description.starts_with(&format!(
            "File system {shown} ({device}) is read-only (mount options ro,"
        )),
        "{critical:#}"
    );
    mount.remount_read_write();
    let (_, ok) = alerts.expect("OK", "storage data_ro");
    assert_eq!(ok["subject"]["status"], "writable");

    mount.trigger_ext4_error();
    let mut both: Vec<Value> = (0..2).map(|_| alerts.expect_level("CRITICAL").1).collect();
    both.sort_by_key(|alert| alert["check"]["name"].as_str().unwrap().to_owned());
    let (errors, read_only) = (&both[0], &both[1]);
    assert_eq!(errors["check"]["name"], "data_errors", "{both:#?}");
    assert_eq!(
        errors["name"],
        format!("File system {shown} has 1 ext4 error or more")
    );
    let name = device.trim_start_matches("/dev/");
    assert_eq!(
        errors["subject"]["details"]["description"],
        format!("ext4 errors on {shown} ({name}) 1 (threshold 1)")
    );
    assert_eq!(errors["subject"]["details"]["value"], 1.0);
    assert_eq!(read_only["check"]["name"], "data_ro");
    let description = read_only["subject"]["details"]["description"]
        .as_str()
        .unwrap();
    assert!(
        description.contains("emergency_ro") || description.contains("super block ro"),
        "{description}"
    );
    agent.assert_alive();
    drop(mount);
}

/// An eMMC's wear, from the files of a Compute Module 4 (drivers/mmc/core/mmc.c's
/// formats) under `sysfs_root`/`procfs_root`: CRITICAL past 80%, OK once the card is
/// replaced, and a problem (not an alert) when the device reports no wear (an SD card).
#[test]
fn an_emmc_wearing_out_is_critical_and_an_sd_card_is_a_problem() {
    let sandbox = Sandbox::new();
    let sys = sandbox.path("pi/sys");
    let proc = sandbox.path("pi/proc");
    fs::create_dir_all(proc.join("self")).unwrap();
    fs::write(
        proc.join("self/mountinfo"),
        "22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/root rw\n",
    )
    .unwrap();
    let devices = "devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0";
    let device = sys.join(devices).join("device");
    fs::create_dir_all(&device).unwrap();
    fs::create_dir_all(sys.join(devices).join("mmcblk0p2")).unwrap();
    fs::create_dir_all(sys.join("dev/block")).unwrap();
    fs::create_dir_all(sys.join("block")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../{devices}/mmcblk0p2"),
        sys.join("dev/block/179:2"),
    )
    .unwrap();
    std::os::unix::fs::symlink(format!("../{devices}"), sys.join("block/mmcblk0")).unwrap();
    fs::write(device.join("life_time"), "0x02 0x01\n").unwrap();
    fs::write(device.join("pre_eol_info"), "0x01\n").unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "sysfs_root: {}\nprocfs_root: {}\n",
            sys.display(),
            proc.display()
        ),
    )
    .unwrap();
    sandbox.monitorctl_quietly(&["create", "storage", "emmc", "/", "wear"]);
    sample_every_second(&sandbox, "storage_emmc");
    sandbox.monitorctl_quietly(&["enable", "storage", "emmc"]);
    let mut alerts = sandbox.follow_alerts();
    let mut agent = sandbox.start_agent();
    wait_until_ok(&sandbox, "storage", "emmc");

    // Type A memory 80-90% used.
    fs::write(device.join("life_time"), "0x09 0x01\n").unwrap();
    let (_, critical) = alerts.expect("CRITICAL", "storage emmc");
    assert_eq!(critical["name"], "Storage of / is 80% worn");
    assert_eq!(
        critical["subject"]["details"]["description"],
        "eMMC mmcblk0 under / 90% worn, life_time 0x09 0x01, pre_eol_info 0x01 (threshold 80%)"
    );
    fs::write(device.join("life_time"), "0x01 0x01\n").unwrap();
    alerts.expect("OK", "storage emmc");

    // An SD card reports neither file.
    fs::remove_file(device.join("life_time")).unwrap();
    eventually("status shows that the device reports no wear", || {
        let status = status_entry(&sandbox, "storage", "emmc");
        status["state"] == "error"
            && status["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains("does not report its wear"))
    });
    alerts.assert_quiet_for(Duration::from_millis(1500));
    agent.assert_alive();
}
