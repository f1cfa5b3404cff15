//! `storage` checks: files, `monitorctl create`, validation.

use std::path::PathBuf;

use monitor_engine::CheckSpec;
use monitor_wire::{CheckId, Subsystem};

use super::*;
use crate::kind::{CheckDefinition, CheckKind};

fn file() -> PathBuf {
    PathBuf::from("/etc/monitor/available/storage_root.yaml")
}

fn resolved(text: &str) -> Result<StorageCheck, Vec<String>> {
    let definition = CheckDefinition::from_yaml(Subsystem::Storage, text, &file())
        .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    match definition.resolve(&file()) {
        Ok(CheckKind::Storage(check)) => Ok(check),
        Ok(other) => panic!("not a storage check: {other:?}"),
        Err(problems) => Err(problems.iter().map(ToString::to_string).collect()),
    }
}

#[test]
fn an_empty_file_watches_the_root_file_system_turning_read_only() {
    let check = resolved("").unwrap();
    assert_eq!(check.path, PathBuf::from("/"));
    assert_eq!(check.watch, StorageAspect::ReadOnly);
    assert_eq!(check.sampled.threshold, None);
    assert_eq!(check.describe_source(), "/ read_only (every 30s)");
    let CheckSpec::Condition(condition) = check.sampled.engine_spec() else {
        panic!("not a condition");
    };
    assert_eq!(condition.critical.name, "File system / is read-only");
    assert_eq!(condition.critical.status, "read-only");
    assert_eq!(condition.ok.status, "writable");
    assert_eq!(condition.subject_type, "storage");
}

#[test]
fn errors_and_wear_take_thresholds_and_read_only_does_not() {
    let errors = resolved("path: /data\nwatch: errors\n").unwrap();
    let threshold = errors.sampled.threshold.unwrap();
    assert_eq!((threshold.raise, threshold.clear), (1.0, 1.0));
    assert_eq!(
        errors.describe_source(),
        "/data errors (every 30s, threshold 1)"
    );
    let wear = resolved("watch: wear\nthreshold: 90%\n").unwrap();
    assert_eq!(wear.sampled.threshold.unwrap().raise, 90.0);
    let CheckSpec::Condition(condition) = wear.sampled.engine_spec() else {
        panic!("not a condition");
    };
    assert_eq!(condition.critical.name, "Storage of / is 90% worn");

    assert_eq!(
        resolved("threshold: 1\nwatch: worn\n").unwrap_err(),
        ["/etc/monitor/available/storage_root.yaml: watch: unknown variant `worn`, expected one of `read_only`, `errors`, `wear`"]
    );
    assert_eq!(
        resolved("path: data\nthreshold: 1\n").unwrap_err(),
        [
            "/etc/monitor/available/storage_root.yaml: path: \"data\" is not an absolute path: write the file system's mount point, for example /",
            "/etc/monitor/available/storage_root.yaml: threshold: this check judges by itself and takes no threshold: remove the line",
        ]
    );
}

#[test]
fn monitorctl_create_names_what_it_watches() {
    let values = [
        Some("root_errors".to_owned()),
        Some("/".to_owned()),
        Some("errors".to_owned()),
    ];
    let (id, definition) = CheckDefinition::from_create(Subsystem::Storage, &values).unwrap();
    assert_eq!(id, CheckId::new(Subsystem::Storage, "root_errors"));
    assert_eq!(
        definition.to_yaml(&id).unwrap(),
        "# storage check root_errors\npath: /\nwatch: errors\n"
    );
    let bad = [
        Some("x".to_owned()),
        Some("/".to_owned()),
        Some("ro".to_owned()),
    ];
    assert_eq!(
        CheckDefinition::from_create(Subsystem::Storage, &bad).unwrap_err(),
        "unknown storage watch \"ro\": use read_only, errors or wear"
    );
    // Mender has no storage kind.
    let problems =
        CheckDefinition::from_mender_shell(Subsystem::Storage, "X=1\n", &file()).unwrap_err();
    assert!(
        problems.iter().any(|problem| problem.message.contains(
            "storage checks have no Mender form: write available/storage_<check>.yaml instead"
        )),
        "{problems:?}"
    );
}
