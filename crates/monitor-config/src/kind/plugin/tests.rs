//! `plugin` checks: their files, `monitorctl create`, validation and alert texts.

use std::path::PathBuf;

use monitor_engine::CheckSpec;
use monitor_wire::Subsystem;

use super::*;
use crate::kind::{CheckDefinition, CheckKind};

fn file() -> PathBuf {
    PathBuf::from("/etc/monitor/available/plugin_root_disk.yaml")
}

fn resolve(yaml: &str) -> Result<PluginCheck, Vec<String>> {
    let definition = CheckDefinition::from_yaml(Subsystem::Plugin, yaml, &file())
        .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    match definition.resolve(&file()) {
        Ok(CheckKind::Plugin(check)) => Ok(check),
        Ok(other) => panic!("expected a plugin check, got {other:?}"),
        Err(problems) => Err(problems.iter().map(ToString::to_string).collect()),
    }
}

const CHECK_DISK: &str = "/usr/lib/nagios/plugins/check_disk -w 20% -c 10% -p /";

#[test]
fn warning_and_unknown_are_critical_unless_the_check_says_otherwise() {
    let check = resolve(&format!("command: {CHECK_DISK}\n")).unwrap();
    assert_eq!(
        check.probe,
        PluginProbe {
            command: CHECK_DISK.to_owned(),
            timeout: DEFAULT_PLUGIN_TIMEOUT,
            warning: MappedState::Critical,
            unknown: MappedState::Critical,
        }
    );
    let CheckSpec::Condition(condition) = check.sampled.engine_spec() else {
        panic!("not a condition");
    };
    assert_eq!(condition.subject_type, "plugin");
    assert_eq!(condition.subject_name, CHECK_DISK);
    assert_eq!(
        condition.critical.name,
        "Plugin check_disk reports a problem"
    );
    assert_eq!(condition.flapping, None);
    assert_eq!(
        check.describe_source(),
        format!("{CHECK_DISK} (every 30s, timeout 10s)")
    );

    let check = resolve(&format!(
        "command: {CHECK_DISK}\nwarning: ok\nunknown: ok\ntimeout: 20s\ninterval: 1m\n"
    ))
    .unwrap();
    assert_eq!(check.probe.warning, MappedState::Ok);
    assert_eq!(check.probe.unknown, MappedState::Ok);
    assert_eq!(check.probe.timeout, std::time::Duration::from_secs(20));
}

#[test]
fn every_problem_names_its_field_and_the_fix() {
    let problems = resolve("command: ' '\nwarning: maybe\n").unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("warning: "), "{problems:?}");
    assert_eq!(
        resolve("command: ' '\n").unwrap_err(),
        ["/etc/monitor/available/plugin_root_disk.yaml: command: empty: write the plugin's command line, for example /usr/lib/nagios/plugins/check_disk -w 20% -c 10% -p /"]
    );
    assert_eq!(
        resolve(&format!("command: {CHECK_DISK}\ntimeout: 40s\n")).unwrap_err(),
        ["/etc/monitor/available/plugin_root_disk.yaml: timeout: 40s is longer than the interval (30s): shorten it, or sample less often"]
    );
    assert_eq!(
        resolve(&format!(
            "command: {CHECK_DISK}\ntimeout: 2m\ninterval: 5m\n"
        ))
        .unwrap_err(),
        ["/etc/monitor/available/plugin_root_disk.yaml: timeout: 2m is too long: at most 1m"]
    );
}

#[test]
fn monitorctl_create_takes_the_command_line() {
    let values = vec![Some("root_disk".to_owned()), Some(CHECK_DISK.to_owned())];
    let (id, definition) = CheckDefinition::from_create(Subsystem::Plugin, &values).unwrap();
    assert_eq!(id.to_string(), "plugin root_disk");
    assert_eq!(
        definition.to_yaml(&id).unwrap(),
        format!("# plugin check root_disk\ncommand: {CHECK_DISK}\n")
    );
    let yaml = definition.to_yaml(&id).unwrap();
    assert!(resolve(&yaml).is_ok());
    let empty = vec![Some("x".to_owned()), Some(" ".to_owned())];
    assert!(CheckDefinition::from_create(Subsystem::Plugin, &empty)
        .unwrap_err()
        .starts_with("the command is empty"));
}
