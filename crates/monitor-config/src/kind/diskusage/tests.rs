//! `diskusage` checks: Mender's demo check file, `monitorctl create`, validation.

use std::path::PathBuf;

use monitor_engine::CheckSpec;
use monitor_wire::{CheckId, Subsystem};

use super::*;
use crate::kind::{CheckDefinition, CheckKind};

fn mender_file() -> PathBuf {
    PathBuf::from("/etc/mender-monitor/monitor.d/available/diskusage_root_space.sh")
}

fn yaml_file() -> PathBuf {
    PathBuf::from("/etc/monitor/available/diskusage_root_space.yaml")
}

fn resolved(definition: &CheckDefinition, file: &Path) -> DiskusageCheck {
    match definition.resolve(file) {
        Ok(CheckKind::Diskusage(check)) => check,
        other => panic!("expected a diskusage check, got {other:?}"),
    }
}

/// The check file of Mender's advanced monitoring docs ("Writing new Subsystems"), as it is.
const MENDER_ROOT_SPACE: &str = r#"# Copyright 2022 Northern.tech AS
#
#    All Rights Reserved

#
# Monitor the whole rootfs space usage
#
DISKUSAGE_NAME="/"
# Report on 3/4 full disk
DISKUSAGE_THRESHOLD=75
"#;

#[test]
fn menders_demo_check_file_is_accepted() {
    let definition =
        CheckDefinition::from_mender_shell(Subsystem::Diskusage, MENDER_ROOT_SPACE, &mender_file())
            .unwrap_or_else(|problems| panic!("{problems:?}"));
    let check = resolved(&definition, &mender_file());
    assert_eq!(check.path, PathBuf::from("/"));
    assert_eq!(check.metric, DiskusageMetric::Used);
    let threshold = check.sampled.threshold.unwrap();
    assert_eq!((threshold.raise, threshold.clear), (75.0, 70.0));
    let CheckSpec::Condition(condition) = check.sampled.engine_spec() else {
        panic!("not a condition");
    };
    assert_eq!(
        condition.critical.name,
        "Disk storage has grown to fill more than 75% of the disk '/'"
    );
    assert_eq!(condition.critical.status, "DISKUSAGE_USAGE_WARNING");
    assert_eq!(condition.subject_type, "diskusage");
    assert_eq!(condition.subject_name, "/");

    // Without a threshold: Mender's default, 80.
    let definition = CheckDefinition::from_mender_shell(
        Subsystem::Diskusage,
        "DISKUSAGE_NAME=/data\n",
        &mender_file(),
    )
    .unwrap();
    let check = resolved(&definition, &mender_file());
    assert_eq!(check.sampled.threshold.unwrap().raise, 80.0);

    let problems = CheckDefinition::from_mender_shell(
        Subsystem::Diskusage,
        "DISKUSAGE_THRESHOLD=75\n",
        &mender_file(),
    )
    .unwrap_err();
    assert_eq!(
        problems[0].to_string(),
        "/etc/mender-monitor/monitor.d/available/diskusage_root_space.sh: DISKUSAGE_NAME: missing: add DISKUSAGE_NAME=\"/\""
    );
}

#[test]
fn monitorctl_create_writes_the_threshold_it_was_given() {
    let values = [
        Some("root_space".to_owned()),
        Some("/".to_owned()),
        Some("90".to_owned()),
    ];
    let (id, definition) = CheckDefinition::from_create(Subsystem::Diskusage, &values).unwrap();
    assert_eq!(id, CheckId::new(Subsystem::Diskusage, "root_space"));
    let yaml = definition.to_yaml(&id).unwrap();
    assert_eq!(
        yaml,
        "# diskusage check root_space\npath: /\nthreshold: 90\n"
    );
    let read = CheckDefinition::from_yaml(Subsystem::Diskusage, &yaml, &yaml_file()).unwrap();
    assert_eq!(read, definition);
    let check = resolved(&read, &yaml_file());
    assert_eq!(check.sampled.threshold.unwrap().raise, 90.0);
    assert_eq!(
        check.describe_source(),
        "/ used (every 30s, threshold 90%, clear 85%)"
    );

    let bad = [
        Some("root".to_owned()),
        Some("/".to_owned()),
        Some("ninety".to_owned()),
    ];
    assert_eq!(
        CheckDefinition::from_create(Subsystem::Diskusage, &bad).unwrap_err(),
        "\"ninety\" is not a percentage: write a number from 0 to 100, for example 90"
    );
}

#[test]
fn free_space_needs_a_size_and_paths_must_be_absolute() {
    let text = "path: data\nmetric: free\n";
    let definition = CheckDefinition::from_yaml(Subsystem::Diskusage, text, &yaml_file()).unwrap();
    let problems: Vec<String> = definition
        .resolve(&yaml_file())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        [
            "/etc/monitor/available/diskusage_root_space.yaml: path: \"data\" is not an absolute path: write the file system's mount point, for example /",
            "/etc/monitor/available/diskusage_root_space.yaml: threshold: missing: add a `threshold:` line, for example threshold: 1G",
        ]
    );
    let text = "path: /data\nmetric: free\nthreshold: 1G\n";
    let definition = CheckDefinition::from_yaml(Subsystem::Diskusage, text, &yaml_file()).unwrap();
    let check = resolved(&definition, &yaml_file());
    let threshold = check.sampled.threshold.unwrap();
    assert_eq!(threshold.raise, 1024.0 * 1024.0 * 1024.0);
    assert!(threshold.clear > threshold.raise);
    let CheckSpec::Condition(condition) = check.sampled.engine_spec() else {
        panic!("not a condition");
    };
    assert_eq!(
        condition.critical.name,
        "Disk '/data' has less than 1 GiB free"
    );
}
