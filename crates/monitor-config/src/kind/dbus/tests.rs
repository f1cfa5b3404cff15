//! D-Bus checks: validation, YAML, Mender's files.

use std::path::PathBuf;

use super::*;
use crate::kind::{CheckDefinition, CheckKind};
use monitor_engine::CheckSpec;

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
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field.as_deref(), Some("pattern"));
}

fn dbus_file() -> PathBuf {
    PathBuf::from("/etc/monitor/available/dbus_test.sh")
}

fn resolve_mender(text: &str) -> DbusCheck {
    let definition = CheckDefinition::from_mender_shell(Subsystem::Dbus, text, &dbus_file())
        .unwrap_or_else(|problems| panic!("{problems:?}"));
    match definition.resolve(&dbus_file()) {
        Ok(CheckKind::Dbus(check)) => check,
        other => panic!("{other:?}"),
    }
}

/// Mender's docs: "DBUS_NAME — The name of the watcher" (`u-power`, `upower`); Mender's own
/// tests write `DBUS_NAME=test`. A label: never a sender filter, never checked as a bus name.
#[test]
fn dbus_name_is_a_label_that_filters_nothing() {
    for label in ["test", "u-power", "upower", "my watcher", ""] {
        let check = resolve_mender(&format!("DBUS_NAME=\"{label}\"\n"));
        assert_eq!(check.bus_name, label);
        assert_eq!(check.sender, None);
        let Watch::Signal {
            sender,
            regex,
            watch_expression,
        } = check.watch()
        else {
            panic!("not a signal watch");
        };
        assert_eq!(sender, None, "{label}");
        assert!(regex.is_none());
        assert_eq!(watch_expression, "");
        let CheckSpec::Pattern(spec) =
            check.engine_spec(&CheckId::new(Subsystem::Dbus, "test"), &Settings::default())
        else {
            panic!("not a pattern check");
        };
        assert_eq!(spec.alert_name, "D-Bus signal arrived on bus system bus");
        assert_eq!(spec.expiration, Expiration::Never);
    }
}

#[test]
fn sender_filters_and_must_be_a_bus_name() {
    let yaml =
        "bus_name: upower\nsender: org.freedesktop.UPower\nwatch_expression: type='signal'\n";
    let definition = CheckDefinition::from_yaml(Subsystem::Dbus, yaml, &file()).unwrap();
    let CheckKind::Dbus(check) = definition.resolve(&file()).unwrap() else {
        panic!("not a dbus check");
    };
    let Watch::Signal { sender, .. } = check.watch() else {
        panic!("not a signal watch");
    };
    assert_eq!(sender.as_deref(), Some("org.freedesktop.UPower"));
    assert_eq!(
        check.describe_source(),
        "upower sender=org.freedesktop.UPower type='signal'"
    );
    for good in [":1.42", "org.example.Sensor_2", "a-b.c"] {
        let mut definition = DbusDefinition::new("label", "", "", None);
        definition.sender = Some(good.to_owned());
        assert!(definition.resolve(&file()).is_ok(), "{good}");
    }
    let mut definition = DbusDefinition::new("label", "", "", None);
    for (bad, reason) in [
        ("upower", "it needs at least two elements separated by dots"),
        ("org..UPower", "an element between dots is empty"),
        (
            "org.free desktop",
            "only letters, digits, _ and - may appear between the dots",
        ),
        (
            "org.2fast",
            "an element of a well-known name cannot start with a digit",
        ),
        ("", "it is empty"),
    ] {
        definition.sender = Some(bad.to_owned());
        let problems = definition.resolve(&file()).unwrap_err();
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [format!(
                "/etc/monitor/available/log_app.yaml: sender: \"{bad}\" is not a D-Bus bus name ({reason}): write a name such as org.freedesktop.UPower or :1.42, or remove the line to accept any sender"
            )]
        );
    }
}

/// Mender's docs name the per-check key both DBUS_ALERT_EXPIRATION and
/// DBUS_PATTERN_EXPIRATION; without either, `default_dbus_alert_expiration` applies (not the
/// log default).
#[test]
fn dbus_expiration_keys_and_default() {
    let settings = Settings {
        default_log_pattern_expiration: Expiration::After(std::time::Duration::from_secs(7)),
        default_dbus_alert_expiration: Expiration::After(std::time::Duration::from_secs(60)),
        ..Settings::default()
    };
    let expiration = |text: &str| {
        let check = resolve_mender(text);
        let CheckSpec::Pattern(spec) =
            check.engine_spec(&CheckId::new(Subsystem::Dbus, "test"), &settings)
        else {
            panic!("not a pattern check");
        };
        (
            spec.expiration,
            check.config_push(
                &CheckId::new(Subsystem::Dbus, "test"),
                monitor_wire::config_push::CheckStatus::Enabled,
                &settings,
            ),
        )
    };
    let seconds = |seconds| Expiration::After(std::time::Duration::from_secs(seconds));
    assert_eq!(expiration("DBUS_NAME=test\n").0, seconds(60));
    assert_eq!(
        expiration("DBUS_NAME=test\nDBUS_PATTERN_EXPIRATION=32\n").0,
        seconds(32)
    );
    assert_eq!(
        expiration("DBUS_NAME=test\nDBUS_ALERT_EXPIRATION=5\nDBUS_PATTERN_EXPIRATION=32\n").0,
        seconds(5)
    );
    let (_, pushed) = expiration("DBUS_NAME=test\n");
    let pushed = serde_json::to_value(pushed).unwrap();
    assert_eq!(pushed["dbus"]["alert_expiration"], 60, "{pushed}");
}

#[test]
fn alert_names_follow_mender() {
    assert_eq!(
        alert_name("type='signal',interface='org.example.Sensor'"),
        "D-Bus signal arrived on bus type=signal,interface=org.example.Sensor"
    );
    assert_eq!(alert_name(""), "D-Bus signal arrived on bus system bus");
}
