//! D-Bus checks: validation, YAML, Mender's files.

use std::path::PathBuf;

use super::*;
use crate::kind::{CheckDefinition, CheckKind};

fn file() -> PathBuf {
    PathBuf::from("/etc/monitor/available/log_app.yaml")
}

#[test]
fn dbus_empty_pattern_matches_every_signal() {
    let definition = CheckDefinition::Dbus(DbusDefinition::new(
        "io.mender.AuthenticationManager",
        "",
        "",
        None,
    ));
    let CheckKind::Dbus(check) = definition.resolve(&file()).unwrap() else {
        panic!("not a dbus check");
    };
    assert!(check.regex.is_none());
    let problems = CheckDefinition::Dbus(DbusDefinition::new("io mender", "(", "", None))
        .resolve(&file())
        .unwrap_err();
    assert_eq!(problems.len(), 2);
}

#[test]
fn alert_names_follow_mender() {
    assert_eq!(
        alert_name("type='signal',interface='org.example.Sensor'"),
        "D-Bus signal arrived on bus type=signal,interface=org.example.Sensor"
    );
    assert_eq!(alert_name(""), "D-Bus signal arrived on bus system bus");
}
