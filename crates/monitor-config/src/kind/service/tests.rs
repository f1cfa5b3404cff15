//! Service checks: validation, YAML, Mender's files.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::kind::{CheckDefinition, CheckKind, DbusDefinition};
use crate::watch::Watch;

fn mender_file() -> PathBuf {
    PathBuf::from("/etc/mender-monitor/monitor.d/available/log_auth.sh")
}

#[test]
fn a_service_may_ask_to_be_restarted_within_limits() {
    let file = PathBuf::from("/etc/monitor/available/service_telldusd.yaml");
    let text = "name: telldusd\ntype: sysV\non_failure:\n  action: restart\n  window: 5m\n";
    let definition = CheckDefinition::from_yaml(Subsystem::Service, text, &file).unwrap();
    let CheckKind::Service(service) = definition.resolve(&file).unwrap() else {
        panic!("a service check")
    };
    assert_eq!(
        service.restart,
        Some(RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(300)
        })
    );
    let wrong = "name: telldusd\ntype: systemd\non_failure:\n  action: reboot\n  windw: 5m\n";
    let problems: Vec<String> = CheckDefinition::from_yaml(Subsystem::Service, wrong, &file)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("on_failure.action: unknown variant `reboot`"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("on_failure.windw: unknown key"),
        "{problems:?}"
    );
}

#[test]
fn unit_names_get_service_unless_they_have_a_suffix() {
    let unit = |name: &str| {
        ServiceCheck {
            name: name.to_owned(),
            kind: ServiceKind::Systemd,
            restart: None,
        }
        .unit_name()
    };
    assert_eq!(unit("crasher"), "crasher.service");
    assert_eq!(unit("crasher.service"), "crasher.service");
    assert_eq!(unit("cron.timer"), "cron.timer");
    assert_eq!(unit("docker.socket"), "docker.socket");
    assert_eq!(unit("getty@tty1"), "getty@tty1.service");
    assert_eq!(unit("my.app"), "my.app.service");
}

#[test]
fn service_kinds_parse_mender_spellings() {
    assert_eq!("systemd".parse(), Ok(ServiceKind::Systemd));
    assert_eq!("sysV".parse(), Ok(ServiceKind::SysV));
    assert_eq!("sysv".parse(), Ok(ServiceKind::SysV));
    assert_eq!(
        "upstart".parse::<ServiceKind>().unwrap_err().to_string(),
        "unknown service type \"upstart\": use systemd, sysV or docker"
    );
}

#[test]
fn converts_service_and_dbus_checks() {
    assert_eq!(
        CheckDefinition::from_mender_shell(
            Subsystem::Service,
            "SERVICE_NAME=\"cron\"\nSERVICE_TYPE=\"systemd\"\n",
            &mender_file()
        ),
        Ok(CheckDefinition::Service(ServiceDefinition::new(
            "cron",
            ServiceKind::Systemd
        )))
    );
    assert_eq!(
        CheckDefinition::from_mender_shell(
            Subsystem::Dbus,
            "DBUS_NAME=\"io.mender.AuthenticationManager\"\nDBUS_PATTERN=\"JwtTokenStateChange\"\nDBUS_WATCH_EXPRESSION=\"type='signal',interface='io.mender.Authentication1'\"\nDBUS_ALERT_EXPIRATION=\"0\"\n",
            &mender_file()
        ),
        Ok(CheckDefinition::Dbus(DbusDefinition::new(
            "io.mender.AuthenticationManager",
            "JwtTokenStateChange",
            "type='signal',interface='io.mender.Authentication1'",
            Some(Expiration::Never)
        )))
    );
}

#[test]
fn service_type_must_be_known() {
    let messages: Vec<String> = CheckDefinition::from_mender_shell(
        Subsystem::Service,
        "SERVICE_NAME=\"cron\"\nSERVICE_TYPE=\"upstart\"\n",
        &mender_file(),
    )
    .unwrap_err()
    .iter()
    .map(|problem| problem.to_string())
    .collect();
    assert_eq!(
        messages,
        ["/etc/mender-monitor/monitor.d/available/log_auth.sh: SERVICE_TYPE: line 2: unknown service type \"upstart\": use systemd, sysV or docker"]
    );
}

#[test]
fn snapshots_keep_the_service_form_for_the_service_texts() {
    // The engine stores a condition with exactly these texts as the `service` check older
    // builds wrote, and reads such a check back with them: were the texts here to drift,
    // snapshots would change form and old ones would restore with other texts.
    let file = PathBuf::from("/etc/monitor/available/service_nginx.yaml");
    for (kind, subject_type) in [
        (ServiceKind::Systemd, "systemd"),
        (ServiceKind::SysV, "sysv"),
    ] {
        let CheckKind::Service(check) =
            CheckDefinition::Service(ServiceDefinition::new("nginx", kind))
                .resolve(&file)
                .unwrap()
        else {
            panic!("a service check")
        };
        let now = monitor_engine::Moment {
            wall: std::time::UNIX_EPOCH,
            boot: Duration::ZERO,
        };
        let mut engine = monitor_engine::Engine::new(monitor_engine::EngineSettings::default());
        let id = CheckId::new(Subsystem::Service, "nginx");
        assert!(engine.configure(id, check.engine_spec(), now).is_empty());
        let json = serde_json::to_string(&engine.snapshot(now, None)).unwrap();
        assert!(
            json.contains(&format!(
                r#""kind":"service","spec":{{"service_name":"nginx","subject_type":"{subject_type}"}}"#
            )),
            "{json}"
        );
    }
}

#[test]
fn a_check_on_every_unit_is_systemd_only_and_restarts_nothing() {
    let file = PathBuf::from("/etc/monitor/available/service_failed_units.yaml");
    let resolve = |text: &str| {
        CheckDefinition::from_yaml(Subsystem::Service, text, &file)
            .unwrap()
            .resolve(&file)
    };
    let Ok(CheckKind::Service(every)) = resolve("name: \"*\"\ntype: systemd\n") else {
        panic!("a service check")
    };
    assert!(every.is_all_units());
    assert!(matches!(every.watch(), Watch::FailedUnits));
    assert_eq!(every.describe_source(), "every unit that fails (systemd)");
    let spec = ServiceCheck::failed_unit_spec("backup.service");
    assert_eq!(spec.subject_name, "backup.service");
    assert_eq!(spec.subject_type, "systemd");
    assert_eq!(spec.critical.name, "Service backup.service failed");
    assert_eq!(spec.critical.status, "failed");
    assert_eq!(spec.ok.status, "recovered");
    assert_eq!(spec.flapping, None);

    let problems: Vec<String> =
        resolve("name: \"*\"\ntype: sysV\non_failure:\n  action: restart\n")
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
    assert_eq!(
        problems,
        [
            "/etc/monitor/available/service_failed_units.yaml: type: name \"*\" watches every systemd unit: set type: systemd, or name one sysV service",
            "/etc/monitor/available/service_failed_units.yaml: on_failure: a check on every unit (name \"*\") restarts nothing: remove on_failure, or write a check per unit to restart",
        ]
    );
}

#[test]
fn create_names_the_check_on_every_unit_failed_units() {
    let values = [Some("*".to_owned()), Some("systemd".to_owned())];
    let (id, definition) = CheckDefinition::from_create(Subsystem::Service, &values).unwrap();
    assert_eq!(id, CheckId::new(Subsystem::Service, ALL_UNITS_CHECK_NAME));
    assert_eq!(
        definition.to_yaml(&id).unwrap(),
        "# service check failed_units\nname: '*'\ntype: systemd\n"
    );
}
