//! What users see from monitorctl: Mender's argument order, silence on success, one-line
//! errors that name the fix, and the table and JSON outputs.

use std::fs;
use std::time::Duration;

use crate::harness::{append, cpu_ticks, stderr, stdout, Sandbox};

#[test]
fn create_writes_mender_shaped_checks_for_every_subsystem() {
    let sandbox = Sandbox::new();
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "crasher_app",
        "ERROR",
        "/root/crasher.log",
        "5",
    ]);
    sandbox.monitorctl_quietly(&["create", "service", "crasher", "systemd"]);
    sandbox.monitorctl_quietly(&[
        "create",
        "dockerevents",
        "crashing",
        "crasher-container",
        "die",
        "15",
    ]);
    sandbox.monitorctl_quietly(&[
        "create",
        "dbus",
        "upower",
        "org.freedesktop.UPower",
        "",
        "type='signal'",
    ]);
    sandbox.monitorctl_quietly(&["enable", "service", "crasher"]);

    let available = sandbox.config_dir().join("available");
    assert_eq!(
        fs::read_to_string(available.join("log_crasher_app.yaml")).unwrap(),
        "# log check crasher_app\npattern: ERROR\nsource: /root/crasher.log\nexpiration: 5s\n"
    );
    // A log check, as Mender stores it (`log_<check>`).
    let docker = fs::read_to_string(available.join("log_crashing.yaml")).unwrap();
    assert!(
        docker.contains("pattern: .*container die.*name=crasher-container.*"),
        "{docker}"
    );
    assert!(docker.contains("source: '@docker events'"), "{docker}");
    assert!(
        docker.contains("Docker container crasher-container die"),
        "{docker}"
    );
    assert!(docker.contains("type: docker_event"), "{docker}");

    let list = sandbox.monitorctl(&["list"]);
    assert!(list.status.success());
    assert_eq!(
        stdout(&list),
        "SUBSYSTEM  CHECK        ENABLED  STATE  SOURCE\n\
         log        crasher_app  no       -      /root/crasher.log\n\
         log        crashing     no       -      @docker events\n\
         service    crasher      yes      -      crasher.service (systemd)\n\
         dbus       upower       no       -      org.freedesktop.UPower type='signal'\n"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&sandbox.monitorctl(&["list", "--json"]).stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 4);
    assert_eq!(json[2]["check"], "crasher");
    assert_eq!(json[2]["enabled"], true);
}

#[test]
fn mistakes_get_one_line_that_names_the_fix_and_a_non_zero_exit() {
    let sandbox = Sandbox::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["create", "log", "app", "(unclosed", "/var/log/app.log"],
            "pattern: regex parse error",
        ),
        (&["enable", "log", "nope"], "no check \"log nope\""),
        (&["create", "files", "x"], "unrecognized subcommand 'files'"),
        (
            &["create", "log", "app", "ERROR", "relative.log"],
            "use an absolute path",
        ),
        (&["status"], "monitord is not running"),
    ];
    for (args, expected) in cases {
        let output = sandbox.monitorctl(args);
        assert!(!output.status.success(), "monitorctl {args:?} should fail");
        let message = stderr(&output);
        assert!(message.contains(expected), "monitorctl {args:?}: {message}");
        assert!(
            output.stdout.is_empty(),
            "monitorctl {args:?} printed to stdout"
        );
    }
    // The failed create left nothing behind.
    assert!(fs::read_dir(sandbox.config_dir().join("available"))
        .map_or(true, |mut entries| entries.next().is_none()));

    sandbox.monitorctl_quietly(&["create", "log", "app", "ERROR", "/var/log/app.log"]);
    let duplicate = sandbox.monitorctl(&["create", "log", "app", "WARN", "/var/log/app.log"]);
    assert_eq!(duplicate.status.code(), Some(1));
    assert!(
        stderr(&duplicate).contains("already exists"),
        "{}",
        stderr(&duplicate)
    );
    assert_eq!(stderr(&duplicate).lines().count(), 1);
}

#[test]
fn validate_reports_every_problem_with_its_file_and_field() {
    let sandbox = Sandbox::new();
    let config = sandbox.config_dir();
    fs::create_dir_all(config.join("available")).unwrap();
    fs::write(config.join("monitor.yaml"), "flaping_interval: 30s\n").unwrap();
    fs::write(
        config.join("available/log_one.yaml"),
        "pattern: '[a-'\nsource: /var/log/one\n",
    )
    .unwrap();
    fs::write(
        config.join("available/service_two.yaml"),
        "name: two\ntype: upstart\n",
    )
    .unwrap();
    fs::write(
        config.join("available/log_fine.yaml"),
        "pattern: ok\nsource: /var/log/fine\n",
    )
    .unwrap();

    let output = sandbox.monitorctl(&["validate"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    let monitor_yaml = config.join("monitor.yaml");
    assert!(
        text.contains(&format!(
            "{}: flaping_interval: unknown",
            monitor_yaml.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("log_one.yaml: pattern: regex parse error"),
        "{text}"
    );
    assert!(text.contains("service_two.yaml: type: "), "{text}");
    assert!(text.ends_with("3 problems found\n"), "{text}");

    fs::remove_file(config.join("monitor.yaml")).unwrap();
    fs::remove_file(config.join("available/log_one.yaml")).unwrap();
    fs::remove_file(config.join("available/service_two.yaml")).unwrap();
    let output = sandbox.monitorctl(&["validate"]);
    assert!(output.status.success());
    assert_eq!(stdout(&output), "1 checks (0 enabled), no problems\n");
}

#[test]
fn import_mender_converts_check_files_without_running_them() {
    let sandbox = Sandbox::new();
    let mender = sandbox.path("monitor.d");
    fs::create_dir_all(mender.join("available")).unwrap();
    fs::create_dir_all(mender.join("enabled")).unwrap();
    let marker = sandbox.path("executed");
    fs::write(
        mender.join("available/log_crasher_app.sh"),
        format!(
            "SERVICE_NAME=\"crasher_app\"\nLOG_PATTERN=\"ERROR\"\nLOG_FILE=\"/root/crasher.log\"\nLOG_PATTERN_EXPIRATION=5\n# touch {}\n",
            marker.display()
        ),
    )
    .unwrap();
    fs::write(
        mender.join("available/service_crasher.sh"),
        "SERVICE_NAME=\"crasher\"\nSERVICE_TYPE=\"systemd\"\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "/etc/mender-monitor/monitor.d/available/service_crasher.sh",
        mender.join("enabled/service_crasher.sh"),
    )
    .unwrap();

    let output = sandbox.monitorctl(&["import-mender", mender.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!marker.exists());
    let list = stdout(&sandbox.monitorctl(&["list"]));
    assert!(
        list.contains("log        crasher_app  no       -      /root/crasher.log"),
        "{list}"
    );
    assert!(
        list.contains("service    crasher      yes      -      crasher.service (systemd)"),
        "{list}"
    );
}

#[test]
fn help_has_examples_and_version_prints_the_version() {
    let sandbox = Sandbox::new();
    let help = stdout(&sandbox.monitorctl(&["--help"]));
    assert!(
        help.contains("monitorctl create log crasher_app ERROR /root/crasher.log 5"),
        "{help}"
    );
    let create_help = stdout(&sandbox.monitorctl(&["create", "dockerevents", "--help"]));
    assert!(create_help.contains("Example"), "{create_help}");
    assert_eq!(
        stdout(&sandbox.monitorctl(&["version"])),
        format!("monitorctl {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Every e2e test runs a follower: one that spins (reacting to the inotify events of its own
/// reads) takes a core from the agent it watches.
#[test]
fn an_idle_follower_uses_no_cpu_and_still_follows() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    for name in ["first", "second"] {
        let pattern = format!("^{name}$");
        sandbox.monitorctl_quietly(&["create", "log", name, &pattern, log.to_str().unwrap()]);
        sandbox.monitorctl_quietly(&["enable", "log", name]);
    }
    let _agent = sandbox.start_agent();
    {
        let mut alerts = sandbox.follow_alerts();
        append(&log, "first\n");
        alerts.expect("CRITICAL", "log first");
    }

    // A new follower on the existing, non-empty history: once it printed what is there,
    // it has nothing to do until the agent appends.
    let mut follower = sandbox.follow_alerts();
    follower.expect("CRITICAL", "log first");
    let before = cpu_ticks(follower.pid());
    follower.assert_quiet_for(Duration::from_secs(2));
    let used = cpu_ticks(follower.pid()) - before;
    assert!(
        used <= 3,
        "an idle follower used {used} ticks of CPU in 2 s (a spinning one uses most of a core: ~200)"
    );

    append(&log, "second\n");
    follower.expect("CRITICAL", "log second");
}

#[test]
fn a_reader_that_goes_away_ends_monitorctl_quietly_and_successfully() {
    // `monitorctl list | grep -q app` under `set -o pipefail`: grep leaves at its first
    // match, and monitorctl once panicked on the broken pipe, failing the pipeline
    // (cross/check-packages.sh, now and then). A Unix filter drops the rest and succeeds.
    let sandbox = Sandbox::new();
    sandbox.monitorctl_quietly(&["create", "log", "app", "ERROR", "/var/log/app.log"]);
    for args in [&["list"][..], &["list", "--json"], &["validate"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = sandbox
            .monitorctl_command(args)
            .stdout(writer)
            .output()
            .expect("monitorctl runs");
        assert!(
            output.status.success() && output.stderr.is_empty(),
            "monitorctl {args:?} with its reader gone: {}\nstderr: {}",
            output.status,
            stderr(&output)
        );
    }
}
