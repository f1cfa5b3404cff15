//! Log checks: validation, YAML, and Mender's log check files.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::kind::{CheckDefinition, CheckKind};

fn file() -> PathBuf {
    PathBuf::from("/etc/monitor/available/log_app.yaml")
}

fn mender_file() -> PathBuf {
    PathBuf::from("/etc/mender-monitor/monitor.d/available/log_auth.sh")
}

#[test]
fn regex_errors_are_one_line_with_the_reason_and_the_fix() {
    let problems = CheckDefinition::Log(LogDefinition::new("(abc", "/var/log/app.log", None))
        .resolve(&file())
        .unwrap_err();
    assert_eq!(
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["/etc/monitor/available/log_app.yaml: pattern: regex parse error: unclosed group at column 1 of \"(abc\" — fix the pattern"]
    );
    let message = compile_pattern("a{2,1}").unwrap_err();
    assert_eq!(
        message,
        "regex parse error: invalid repetition count range, the start must be <= the end at column 2 of \"a{2,1}\" — fix the pattern"
    );
}

#[test]
fn a_log_definition_reports_every_problem() {
    let definition = LogDefinition {
        pattern: "[".to_owned(),
        source: "var/log/app.log".to_owned(),
        expiration: None,
        lines_before: Some(5000),
        lines_after: None,
        alert: AlertOverrides {
            status: Some(" ".to_owned()),
            ..AlertOverrides::default()
        },
        from: ReadFrom::Start,
    };
    let fields: Vec<Option<String>> = CheckDefinition::Log(definition)
        .resolve(&file())
        .unwrap_err()
        .into_iter()
        .map(|problem| problem.field)
        .collect();
    assert_eq!(
        fields,
        [
            Some("pattern".to_owned()),
            Some("source".to_owned()),
            Some("lines_before".to_owned()),
            Some("alert.status".to_owned())
        ]
    );
}

#[test]
fn docker_events_are_log_checks_like_menders() {
    let definition = CheckDefinition::Log(LogDefinition::docker_events(
        "web",
        "die",
        Some(Expiration::After(Duration::from_secs(60))),
    ));
    let CheckKind::Log(check) = definition.resolve(&file()).unwrap() else {
        panic!("not a log check");
    };
    assert_eq!(check.pattern, ".*container die.*name=web.*");
    assert_eq!(check.source, LogSource::Command("docker events".to_owned()));
    assert!(check
        .regex
        .is_match(b"2024-01-01 container die 0a1b (image=nginx, name=web)"));
    assert_eq!(
        check.alert.name.as_deref(),
        Some("Docker container web die")
    );
    assert_eq!(
        check.alert.description.as_deref(),
        Some("Alert was raised due to:%line_matching")
    );
    assert_eq!(
        check.alert.status.as_deref(),
        Some("DOCKEREVENTS_CONTAINER_EVENT")
    );
    assert_eq!(check.alert.kind.as_deref(), Some("docker_event"));
    assert!(definition.fits(Subsystem::Dockerevents));
    assert!(definition.fits(Subsystem::Log));
    assert!(!definition.fits(Subsystem::Service));
}

#[test]
fn written_yaml_is_short_and_reads_back() {
    let id = CheckId::new(Subsystem::Log, "crasher_app");
    let definition = CheckDefinition::Log(LogDefinition::new(
        "ERROR",
        "/root/crasher.log",
        Some(Expiration::After(Duration::from_secs(5))),
    ));
    let yaml = definition.to_yaml(&id).unwrap();
    assert_eq!(
        yaml,
        "# log check crasher_app\npattern: ERROR\nsource: /root/crasher.log\nexpiration: 5s\n"
    );
    assert_eq!(
        CheckDefinition::from_yaml(Subsystem::Log, &yaml, &file()),
        Ok(definition)
    );
}

/// `from: end` keeps "from now on" for a check; a wrong value says which ones exist.
#[test]
fn from_is_start_or_end() {
    let yaml = "pattern: ERROR\nsource: /var/log/app.log\nfrom: end\n";
    let Ok(CheckDefinition::Log(definition)) =
        CheckDefinition::from_yaml(Subsystem::Log, yaml, &file())
    else {
        panic!("from: end is read");
    };
    assert_eq!(definition.from, ReadFrom::End);
    let id = CheckId::new(Subsystem::Log, "app");
    let written = CheckDefinition::Log(definition.clone())
        .to_yaml(&id)
        .unwrap();
    assert!(written.contains("from: end\n"), "{written}");
    let check = definition.resolve(&file()).unwrap();
    assert!(matches!(
        check.watch(),
        Watch::Lines {
            from: ReadFrom::End,
            ..
        }
    ));
    // The default is not written.
    let default = CheckDefinition::Log(LogDefinition::new("ERROR", "/var/log/app.log", None));
    assert!(!default.to_yaml(&id).unwrap().contains("from"));

    let problems = CheckDefinition::from_yaml(
        Subsystem::Log,
        "pattern: ERROR\nsource: /var/log/app.log\nfrom: beginning\n",
        &file(),
    )
    .unwrap_err();
    let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        ["/etc/monitor/available/log_app.yaml: from: unknown variant `beginning`, expected `start` or `end`"]
    );
}

#[test]
fn yaml_problems_cover_every_key() {
    let problems = CheckDefinition::from_yaml(
        Subsystem::Log,
        "pattren: x\nexpiration: soon\nalert:\n  colour: red\n  type: x\n",
        &file(),
    )
    .unwrap_err();
    let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "/etc/monitor/available/log_app.yaml: pattren: unknown key: use one of pattern, source, expiration, lines_before, lines_after, alert, from",
            "/etc/monitor/available/log_app.yaml: expiration: invalid duration \"soon\": write seconds (30) or a number followed by a unit, for example 30s, 5m, 2h30m, or never",
            "/etc/monitor/available/log_app.yaml: alert.colour: unknown key: use one of name, description, details, status, type",
            "/etc/monitor/available/log_app.yaml: pattern: missing: add a `pattern:` line",
            "/etc/monitor/available/log_app.yaml: source: missing: add a `source:` line",
        ]
    );
}

#[test]
fn converts_a_log_check_with_overrides() {
    let text = "SERVICE_NAME=\"web_die\"\nLOG_PATTERN=\".*container die.*name=web.*\"\nLOG_FILE=\"@docker events\"\nLOG_PATTERN_EXPIRATION=\"60\"\nLOG_ALERT_LEVEL=\"CRITICAL\"\nLOG_ALERT_DESCRIPTION=\"Docker container web die\"\nLOG_ALERT_TYPE=\"docker_event\"\nDEFAULT_LOG_LINES_BEFORE=\"10\"\nLOG_LINES_AFTER=5\n";
    let definition =
        CheckDefinition::from_mender_shell(Subsystem::Log, text, &mender_file()).unwrap();
    assert_eq!(
        definition,
        CheckDefinition::Log(LogDefinition {
            pattern: ".*container die.*name=web.*".into(),
            source: "@docker events".into(),
            expiration: Some(Expiration::After(Duration::from_secs(60))),
            lines_before: Some(10),
            lines_after: Some(5),
            alert: AlertOverrides {
                name: Some("Docker container web die".into()),
                description: None,
                details: None,
                status: None,
                kind: Some("docker_event".into()),
            },
            from: ReadFrom::Start,
        })
    );
}

/// Mender's LOG_ALERT_DESCRIPTION is the alert's name for every log check (not only docker
/// events), and LOG_ALERT_DETAILS, `%line_matching` filled in, its description text.
#[test]
fn mender_description_is_the_name_and_details_the_description() {
    let text = "LOG_PATTERN=\"usb disconnect\"\nLOG_FILE=\"/var/log/kern.log\"\nLOG_ALERT_DESCRIPTION=\"USB device gone\"\nLOG_ALERT_DETAILS=\"seen: %line_matching\"\n";
    let definition =
        CheckDefinition::from_mender_shell(Subsystem::Log, text, &mender_file()).unwrap();
    let CheckKind::Log(check) = definition.resolve(&mender_file()).unwrap() else {
        panic!("not a log check");
    };
    let CheckSpec::Pattern(spec) =
        check.engine_spec(&CheckId::new(Subsystem::Log, "usb"), &Settings::default())
    else {
        panic!("not a pattern check");
    };
    assert_eq!(spec.alert_name, "USB device gone");
    assert_eq!(spec.subject_status, "LOGCONTAINS");
    // Filled in per match by the watcher; the engine's OK has no line to name.
    assert_eq!(spec.description, None);
    let Watch::Lines {
        details_template, ..
    } = check.watch()
    else {
        panic!("not a lines watch");
    };
    assert_eq!(details_template.as_deref(), Some("seen: %line_matching"));
}

/// `alert.details` is the old name of `alert.description`: read alone, refused next to it.
#[test]
fn alert_details_is_an_old_name_of_description() {
    let source = "pattern: x\nsource: /var/log/x\n";
    let definition = CheckDefinition::from_yaml(
        Subsystem::Log,
        &format!("{source}alert:\n  details: 'saw %line_matching'\n"),
        &file(),
    )
    .unwrap();
    let CheckKind::Log(check) = definition.resolve(&file()).unwrap() else {
        panic!("not a log check");
    };
    let Watch::Lines {
        details_template, ..
    } = check.watch()
    else {
        panic!("not a lines watch");
    };
    assert_eq!(details_template.as_deref(), Some("saw %line_matching"));

    let both = CheckDefinition::from_yaml(
        Subsystem::Log,
        &format!("{source}alert:\n  description: a\n  details: b\n"),
        &file(),
    )
    .unwrap();
    let messages: Vec<String> = both
        .resolve(&file())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        messages,
        ["/etc/monitor/available/log_app.yaml: alert.details: the old name of alert.description, which is set too: keep only alert.description"]
    );
}

/// What Mender's `ctl-lib.sh` writes for `create dockerevents`.
#[test]
fn docker_events_are_what_mender_writes() {
    let definition = LogDefinition::docker_events("mycontainer", "restart", None);
    assert_eq!(
        definition.alert,
        AlertOverrides {
            name: Some("Docker container mycontainer restart".into()),
            description: Some("Alert was raised due to:%line_matching".into()),
            details: None,
            status: Some("DOCKEREVENTS_CONTAINER_EVENT".into()),
            kind: Some("docker_event".into()),
        }
    );
    let check = definition.resolve(&file()).unwrap();
    let CheckSpec::Pattern(spec) = check.engine_spec(
        &CheckId::new(Subsystem::Dockerevents, "container_mycontainer_restart"),
        &Settings::default(),
    ) else {
        panic!("not a pattern check");
    };
    assert_eq!(spec.alert_name, "Docker container mycontainer restart");
    assert_eq!(spec.subject_status, "DOCKEREVENTS_CONTAINER_EVENT");
    assert_eq!(spec.subject_type, "docker_event");
    assert_eq!(spec.expiration, Expiration::Never);
}

#[test]
fn every_problem_names_the_mender_key() {
    let text = "LOG_PATERN=\"x\"\nLOG_FILE=\"/var/log/x\"\nLOG_PATTERN_EXPIRATION=\"soon\"\nLOG_ALERT_LEVEL=\"WARNING\"\n";
    let messages: Vec<String> =
        CheckDefinition::from_mender_shell(Subsystem::Log, text, &mender_file())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
    assert_eq!(
        messages,
        [
            "/etc/mender-monitor/monitor.d/available/log_auth.sh: LOG_PATERN: line 1: unknown key for a log check, ignored: Mender ignores it too; remove it or use LOG_PATTERN if you meant it",
            "/etc/mender-monitor/monitor.d/available/log_auth.sh: LOG_PATTERN: missing: add LOG_PATTERN=\"<regex>\"",
            "/etc/mender-monitor/monitor.d/available/log_auth.sh: LOG_PATTERN_EXPIRATION: line 3: invalid duration \"soon\": write seconds (30) or a number followed by a unit, for example 30s, 5m, 2h30m, or never",
            "/etc/mender-monitor/monitor.d/available/log_auth.sh: LOG_ALERT_LEVEL: line 4: alert level \"WARNING\" is not supported, only CRITICAL: set LOG_ALERT_LEVEL=\"CRITICAL\" or remove the line",
        ]
    );
}
