//! `connectivity` checks: their files, `monitorctl create`, validation and alert texts.

use std::path::PathBuf;

use monitor_engine::CheckSpec;
use monitor_wire::Subsystem;

use super::*;
use crate::kind::{CheckDefinition, CheckKind};

fn file() -> PathBuf {
    PathBuf::from("/etc/monitor/available/connectivity_backend.yaml")
}

fn resolve(yaml: &str) -> Result<ConnectivityCheck, Vec<String>> {
    let definition = CheckDefinition::from_yaml(Subsystem::Connectivity, yaml, &file())
        .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    match definition.resolve(&file()) {
        Ok(CheckKind::Connectivity(check)) => Ok(check),
        Ok(other) => panic!("expected a connectivity check, got {other:?}"),
        Err(problems) => Err(problems.iter().map(ToString::to_string).collect()),
    }
}

fn problem(message: &str) -> String {
    format!("/etc/monitor/available/connectivity_backend.yaml: {message}")
}

#[test]
fn an_http_check_with_its_failure_count() {
    let check = resolve("http: https://hosted.mender.io/\nfor: 3\ninterval: 1m\n").unwrap();
    assert_eq!(
        check.probe.target,
        ConnectivityTarget::Http {
            url: "https://hosted.mender.io/".parse().unwrap(),
            method: HttpMethod::Head,
            expected_status: 200..=399,
        }
    );
    assert_eq!(check.probe.timeout, DEFAULT_CONNECTIVITY_TIMEOUT);
    assert_eq!(check.sampled.debounce, 3);
    let CheckSpec::Condition(condition) = check.sampled.engine_spec() else {
        panic!("not a condition");
    };
    assert_eq!(condition.subject_type, "connectivity");
    assert_eq!(condition.subject_name, "https://hosted.mender.io/");
    assert_eq!(
        condition.critical.name,
        "Cannot reach https://hosted.mender.io/"
    );
    assert_eq!(condition.critical.status, "unreachable");
    assert_eq!(condition.ok.status, "reachable");
    assert_eq!(
        check.describe_source(),
        "HEAD https://hosted.mender.io/ (expects 200-399) (every 1m, for 3 samples)"
    );

    let check =
        resolve("http: http://127.0.0.1:8080/health\nmethod: get\nexpected_status: 200-299\n")
            .unwrap();
    let ConnectivityTarget::Http {
        method,
        expected_status,
        ..
    } = &check.probe.target
    else {
        panic!("not http");
    };
    assert_eq!(
        (*method, expected_status.clone()),
        (HttpMethod::Get, 200..=299)
    );
    let check = resolve("http: http://127.0.0.1/\nexpected_status: 204\n").unwrap();
    assert!(matches!(
        check.probe.target,
        ConnectivityTarget::Http { ref expected_status, .. } if *expected_status == (204..=204)
    ));
}

#[test]
fn tcp_and_dns_checks() {
    let check = resolve("tcp: db.local:5432\ntimeout: 3s\n").unwrap();
    assert_eq!(
        check.probe.target,
        ConnectivityTarget::Tcp {
            host: "db.local".to_owned(),
            port: 5432
        }
    );
    assert_eq!(check.probe.timeout, std::time::Duration::from_secs(3));
    let check = resolve("tcp: '[::1]:22'\n").unwrap();
    assert_eq!(check.probe.target.to_string(), "[::1]:22");
    let check = resolve("dns: example.com\n").unwrap();
    let CheckSpec::Condition(condition) = check.sampled.engine_spec() else {
        panic!("not a condition");
    };
    assert_eq!(condition.critical.name, "Cannot resolve example.com");
}

#[test]
fn every_problem_names_its_field_and_the_fix() {
    assert_eq!(
        resolve("interval: 5s\n").unwrap_err(),
        [problem(
            "nothing to reach: add `tcp: host:port`, `http: https://host/path` or `dns: host.name`"
        )]
    );
    assert_eq!(
        resolve("tcp: a:1\ndns: b\n").unwrap_err(),
        [problem(
            "more than one of tcp, http and dns: keep one (make one check per target)"
        )]
    );
    assert_eq!(
        resolve("tcp: db.local\nmethod: get\n").unwrap_err(),
        [
            problem("method: only for an `http:` check: remove the line"),
            problem(
                "tcp: \"db.local\" is not host:port: write one such as db.local:5432 or [::1]:22"
            ),
        ]
    );
    assert_eq!(
        resolve("http: ftp://example.com/\n").unwrap_err(),
        [problem("http: \"ftp://example.com/\" is not an http:// or https:// URL with a host: write one such as https://example.com/health")]
    );
    assert_eq!(
        resolve("http: http://example.com/\nexpected_status: 400-200\n").unwrap_err(),
        [problem("expected_status: 400-200 is not a range of HTTP statuses: write statuses from 100 to 599, the lower first, for example 200-399")]
    );
    assert_eq!(
        resolve("dns: 'not a name'\n").unwrap_err(),
        [problem("dns: \"not a name\" is not a host name: write one such as example.com (a URL for HTTP, host:port for TCP)")]
    );
    assert_eq!(
        resolve("dns: example.com\ntimeout: 50ms\n").unwrap_err(),
        [problem(
            "timeout: 50ms is too short: give it at least 100ms, for example timeout: 10s"
        )]
    );
}

#[test]
fn monitorctl_create_tells_the_target_by_its_shape() {
    let create = |target: &str, failures: Option<&str>| {
        let values = vec![
            Some("backend".to_owned()),
            Some(target.to_owned()),
            failures.map(str::to_owned),
        ];
        CheckDefinition::from_create(Subsystem::Connectivity, &values)
            .map(|(id, definition)| definition.to_yaml(&id).unwrap())
    };
    assert_eq!(
        create("https://hosted.mender.io/", Some("3")).unwrap(),
        "# connectivity check backend\nhttp: https://hosted.mender.io/\nfor: 3\n"
    );
    assert_eq!(
        create("db.local:5432", None).unwrap(),
        "# connectivity check backend\ntcp: db.local:5432\n"
    );
    assert_eq!(
        create("example.com", None).unwrap(),
        "# connectivity check backend\ndns: example.com\n"
    );
    assert_eq!(
        create("example.com", Some("0")).unwrap_err(),
        "\"0\" is not a count of failures: write 1 or more, for example 3"
    );
    assert!(create("db.local:http", None)
        .unwrap_err()
        .contains("is not host:port"));
}
