//! `process` checks: their files, `monitorctl create`, validation and alert texts.

use std::path::PathBuf;

use monitor_engine::CheckSpec;
use monitor_wire::Subsystem;

use super::*;
use crate::kind::{CheckDefinition, CheckKind};

fn file() -> PathBuf {
    PathBuf::from("/etc/monitor/available/process_telldusd.yaml")
}

fn resolve(yaml: &str) -> Result<ProcessCheck, Vec<String>> {
    let definition = CheckDefinition::from_yaml(Subsystem::Process, yaml, &file())
        .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    match definition.resolve(&file()) {
        Ok(CheckKind::Process(check)) => Ok(check),
        Ok(other) => panic!("expected a process check, got {other:?}"),
        Err(problems) => Err(problems.iter().map(ToString::to_string).collect()),
    }
}

#[test]
fn a_daemon_by_its_pid_file_goes_up_and_down_like_a_service() {
    let check = resolve("pid_file: /var/run/telldusd.pid\nname: telldusd\ninterval: 10s\nfor: 2\n")
        .unwrap();
    assert_eq!(
        check.selector,
        ProcessSelector::PidFile {
            path: PathBuf::from("/var/run/telldusd.pid"),
            name: Some("telldusd".to_owned())
        }
    );
    assert_eq!(check.sampled.interval, std::time::Duration::from_secs(10));
    assert_eq!(check.sampled.debounce, 2);
    assert_eq!(check.sampled.threshold, None);
    let CheckSpec::Condition(condition) = check.sampled.engine_spec() else {
        panic!("not a condition");
    };
    assert_eq!(condition.subject_type, "process");
    assert_eq!(condition.subject_name, "telldusd");
    assert_eq!(condition.critical.name, "Process telldusd not running");
    assert_eq!(condition.critical.status, "not-running");
    assert_eq!(condition.ok.status, "running");
    assert_eq!(
        condition.flapping.unwrap().name,
        "Process telldusd going up and down"
    );
    assert_eq!(
        check.describe_source(),
        "pid file /var/run/telldusd.pid (telldusd) (every 10s, for 2 samples)"
    );
}

#[test]
fn by_name_and_by_command_line() {
    let check = resolve("name: telldusd\n").unwrap();
    assert_eq!(check.selector, ProcessSelector::Name("telldusd".to_owned()));
    assert_eq!(check.describe_source(), "name telldusd (every 30s)");

    let check = resolve("command_line: 'python3 .*cherrytelldus'\n").unwrap();
    let CheckSpec::Condition(condition) = check.sampled.engine_spec() else {
        panic!("not a condition");
    };
    assert_eq!(condition.subject_name, "/python3 .*cherrytelldus/");
}

#[test]
fn every_problem_names_its_field_and_the_fix() {
    let problems = resolve("command_line: '(unclosed'\nthreshold: 3\n").unwrap_err();
    assert_eq!(
        problems,
        [
            "/etc/monitor/available/process_telldusd.yaml: command_line: regex parse error: unclosed group at column 1 of \"(unclosed\" — fix the pattern",
            "/etc/monitor/available/process_telldusd.yaml: threshold: this check judges by itself and takes no threshold: remove the line",
        ]
    );
    assert_eq!(
        resolve("interval: 5s\n").unwrap_err(),
        ["/etc/monitor/available/process_telldusd.yaml: no process to look for: add `name:` (as `ps -e` shows it), `command_line:` (a regular expression) or `pid_file:`"]
    );
    assert_eq!(
        resolve("pid_file: run/x.pid\n").unwrap_err(),
        ["/etc/monitor/available/process_telldusd.yaml: pid_file: \"run/x.pid\" is not an absolute path: write the pid file's path, for example /var/run/telldusd.pid"]
    );
    assert!(resolve("name: /usr/sbin/telldusd\n").unwrap_err()[0]
        .contains("name: \"/usr/sbin/telldusd\" is not a process name"));
    assert!(resolve("name: a\ncommand_line: b\n").unwrap_err()[0]
        .contains("command_line: give one way to find the process"));
    assert!(resolve("nam: telldusd\n").unwrap_err()[0]
        .contains("unknown key: use one of name, command_line, pid_file, interval"));
}

#[test]
fn monitorctl_create_takes_how_and_what() {
    let values = |by: &str, value: &str| {
        vec![
            Some("telldusd".to_owned()),
            Some(by.to_owned()),
            Some(value.to_owned()),
        ]
    };
    let (id, definition) =
        CheckDefinition::from_create(Subsystem::Process, &values("pid_file", "/run/telldusd.pid"))
            .unwrap();
    assert_eq!(id.to_string(), "process telldusd");
    assert_eq!(
        definition.to_yaml(&id).unwrap(),
        "# process check telldusd\npid_file: /run/telldusd.pid\n"
    );
    let (_, definition) =
        CheckDefinition::from_create(Subsystem::Process, &values("name", "telldusd")).unwrap();
    assert!(definition.resolve(&file()).is_ok());
    assert_eq!(
        CheckDefinition::from_create(Subsystem::Process, &values("pid", "x")).unwrap_err(),
        "\"pid\" is not a way to find a process: write name, command_line or pid_file"
    );
    assert!(
        CheckDefinition::from_create(Subsystem::Process, &values("command_line", "(x"))
            .unwrap_err()
            .starts_with("regex parse error: unclosed group")
    );
}
