//! `monitorctl` as a Mender user drives it (issue 16): dockerevents checks stored and
//! addressed as log checks, systemd unit names as check names, trailing arguments Mender's
//! tool ignores, and `import-mender` carrying Mender's `config.sh`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::harness::{append, describe_check, stderr, stdout, Sandbox};
use crate::user_manager::UserManager;

/// A `docker` on PATH whose `docker events` prints the lines appended to `events`, as
/// Mender's own test fakes the docker CLI.
fn fake_docker(sandbox: &mut Sandbox) -> std::path::PathBuf {
    let bin = sandbox.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let events = sandbox.path("docker-events.log");
    fs::write(&events, "").unwrap();
    let docker = bin.join("docker");
    fs::write(
        &docker,
        format!(
            "#!/bin/sh\n[ \"$1\" = events ] || exit 1\nexec tail -n +1 -f {}\n",
            events.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&docker, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    sandbox.env.push(("PATH".into(), path));
    events
}

#[test]
fn create_dockerevents_stores_a_log_check_that_both_names_address_as_in_mender() {
    let mut sandbox = Sandbox::new();
    let events = fake_docker(&mut sandbox);
    // Mender's test_monitorclient_dockerevents, with the CLI.
    sandbox.monitorctl_quietly(&[
        "create",
        "dockerevents",
        "container_mycontainer_restart",
        "mycontainer",
        "restart",
        "32",
    ]);
    let available = sandbox.config_dir().join("available");
    assert!(available
        .join("log_container_mycontainer_restart.yaml")
        .is_file());
    assert!(!available
        .join("dockerevents_container_mycontainer_restart.yaml")
        .exists());

    // Both names address it; enabled under one, disabled under the other.
    sandbox.monitorctl_quietly(&["enable", "log", "container_mycontainer_restart"]);
    sandbox.monitorctl_quietly(&["disable", "dockerevents", "container_mycontainer_restart"]);
    assert!(fs::symlink_metadata(
        sandbox
            .config_dir()
            .join("enabled/log_container_mycontainer_restart.yaml")
    )
    .is_err());
    sandbox.monitorctl_quietly(&["enable", "dockerevents", "container_mycontainer_restart"]);

    // A Mender file (ctl-lib.sh writes it as log_<check>.sh) and one made by older versions.
    fs::write(
        available.join("log_mender_made.sh"),
        "SERVICE_NAME=\"mender_made\"\nLOG_PATTERN=\".*container die.*name=web.*\"\nLOG_FILE=\"@docker events\"\nLOG_ALERT_DESCRIPTION=\"Docker container web die\"\nLOG_ALERT_TYPE=docker_event\n",
    )
    .unwrap();
    fs::write(
        available.join("dockerevents_older.yaml"),
        "pattern: .*container oom.*name=db.*\nsource: '@docker events'\nalert:\n  name: Docker container db oom\n  type: docker_event\n",
    )
    .unwrap();
    fs::write(
        available.join("log_plain.yaml"),
        "pattern: ERROR\nsource: /var/log/app.log\n",
    )
    .unwrap();
    sandbox.monitorctl_quietly(&["enable", "dockerevents", "mender_made"]);
    sandbox.monitorctl_quietly(&["enable", "dockerevents", "older"]);
    let plain = sandbox.monitorctl(&["enable", "dockerevents", "plain"]);
    assert_eq!(plain.status.code(), Some(1));
    assert!(
        stderr(&plain).contains("not over docker events") && stderr(&plain).contains("log plain"),
        "{}",
        stderr(&plain)
    );

    let listed = sandbox.monitorctl(&["list", "dockerevents"]);
    assert_eq!(
        stdout(&listed),
        "SUBSYSTEM     CHECK                          ENABLED  STATE  SOURCE\n\
         log           container_mycontainer_restart  yes      -      @docker events\n\
         log           mender_made                    yes      -      @docker events\n\
         dockerevents  older                          yes      -      @docker events\n"
    );

    // Its alerts name it `log <check>`, as Mender's do.
    sandbox.monitorctl_quietly(&["disable", "dockerevents", "mender_made"]);
    sandbox.monitorctl_quietly(&["disable", "dockerevents", "older"]);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(
        &events,
        "2026-12-01T12:00:00.000000000Z container restart 4f2a (image=alpine, name=mycontainer)\n",
    );
    let (_, critical) = alerts.expect("CRITICAL", "log container_mycontainer_restart");
    assert_eq!(critical["name"], "Docker container mycontainer restart");
    assert_eq!(critical["subject"]["name"], "container_mycontainer_restart");
    assert_eq!(critical["subject"]["type"], "docker_event");

    // `clear dockerevents <check>` finds it too.
    let clear = sandbox.monitorctl(&["clear", "dockerevents", "container_mycontainer_restart"]);
    assert!(clear.status.success(), "{}", stderr(&clear));
    alerts.expect("OK", "log container_mycontainer_restart");

    sandbox.monitorctl_quietly(&["delete", "dockerevents", "container_mycontainer_restart"]);
    assert!(!available
        .join("log_container_mycontainer_restart.yaml")
        .exists());
}

#[test]
fn trailing_arguments_mender_tolerates_are_ignored_with_one_line_on_stderr() {
    let sandbox = Sandbox::new();
    sandbox.monitorctl_quietly(&["create", "service", "countdown", "systemd"]);
    for verb in ["enable", "disable"] {
        let output = sandbox.monitorctl(&[verb, "service", "countdown", "systemd"]);
        assert!(output.status.success(), "{verb}: {}", stderr(&output));
        assert_eq!(
            stderr(&output),
            "monitorctl: ignoring extra argument \"systemd\" (Mender's mender-monitorctl ignores it too)\n"
        );
    }
    // Mender's own tutorial: `sudo mender-monitorctl delete service countdown systemd`.
    let output = sandbox.monitorctl(&["delete", "service", "countdown", "systemd", "now"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "monitorctl: ignoring extra arguments \"systemd\" \"now\" (Mender's mender-monitorctl ignores them too)\n"
    );
    assert!(!sandbox
        .config_dir()
        .join("available/service_countdown.yaml")
        .exists());
    // clear says so too, before it finds no agent.
    let output = sandbox.monitorctl(&["clear", "log", "x", "extra"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("monitorctl: ignoring extra argument \"extra\""),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_template_instance_service_check_alerts_when_that_instance_stops() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    manager.install_unit(
        "sleeper@.service",
        "[Unit]\nDescription=Sleeper %i\n\n[Service]\nExecStart=/bin/sleep infinity\n",
    );
    // A template instance, and one whose instance is systemd-escaped (`a-b`).
    let instances = ["sleeper@one", "sleeper@a\\x2db"];
    for instance in instances {
        manager.systemctl(&["start", &format!("{instance}.service")]);
        manager.wait_for_state(&format!("{instance}.service"), "active");
    }
    let mut sandbox = Sandbox::new();
    sandbox.env = manager.env();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        "systemd:\n  bus: user\n",
    )
    .unwrap();
    for instance in instances {
        sandbox.monitorctl_quietly(&["create", "service", instance, "systemd"]);
        sandbox.monitorctl_quietly(&["enable", "service", instance]);
    }
    let listed = stdout(&sandbox.monitorctl(&["list", "service", "sleeper@a\\x2db"]));
    assert_eq!(
        listed,
        "SUBSYSTEM  CHECK           ENABLED  STATE  SOURCE\n\
         service    sleeper@a\\x2db  yes      -      sleeper@a\\x2db.service (systemd)\n"
    );
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    for instance in instances {
        manager.systemctl(&["stop", &format!("{instance}.service")]);
        let (_, critical) = alerts.expect("CRITICAL", &format!("service {instance}"));
        assert_eq!(critical["name"], format!("Service {instance} not running"));
        assert_eq!(critical["subject"]["name"], instance);
    }
    let status = stdout(&sandbox.monitorctl(&["status"]));
    assert!(status.contains("service sleeper@one"), "{status}");
    assert!(status.contains("service sleeper@a\\x2db"), "{status}");

    manager.systemctl(&["start", "sleeper@one.service"]);
    let (_, ok) = alerts.expect("OK", "service sleeper@one");
    assert_eq!(ok["name"], "Service sleeper@one not running");
    alerts.assert_quiet_for(Duration::from_millis(300));
    assert_eq!(describe_check(&ok), "service sleeper@one");
}

/// A Mender `config.sh` as an installation tuned by its user might hold.
const CONFIG_SH: &str = r#"# Mender Monitor settings
ALERT_URL="https://hosted.mender.io/api/devices/v1/devicemonitor/alert"
CONFIG_LOG_LEVEL=debug
DAEMON_LOG_FILE=/var/log/mender-monitor.log
MONITOR_D_DIRECTORY=/etc/mender-monitor/monitor.d
FLAPPING_INTERVAL=120
FLAPPING_COUNT_THRESHOLD=3
ALERT_LOG_MAX_AGE=7200
DEFAULT_LOG_LINES_BEFORE=10
DEFAULT_LOG_LINES_AFTER=5
DEFAULT_LOG_PATTERN_EXPIRATION_SECONDS=300
DEFAULT_DBUS_ALERT_EXPIRATION_SECONDS=0
ALERT_OFFLINE_STORE_MAX_COUNT=500
ALERT_STORE_MAX_RECORD_AGE_S=86400
CONFPUSH_INTERVAL=300
SOMETHING_NEW=1
"#;

#[test]
fn import_mender_carries_config_sh_and_names_the_commands_monitord_will_run() {
    let sandbox = Sandbox::new();
    let mender = sandbox.path("monitor.d");
    fs::create_dir_all(mender.join("available")).unwrap();
    fs::create_dir_all(mender.join("enabled")).unwrap();
    // Mender's test_monitorclient_send_configuration_data checks.
    fs::write(
        mender.join("available/log_clientlogs.sh"),
        "SERVICE_NAME=\"clientlogs\"\nLOG_PATTERN=\"[Ee]rror.*\"\nLOG_FILE=\"@journalctl -u mender-authd -f\"\n",
    )
    .unwrap();
    fs::write(
        mender.join("available/log_syslog.sh"),
        "SERVICE_NAME=\"syslog\"\nLOG_PATTERN=\"root.*access\"\nLOG_FILE=\"/var/log/syslog\"\nLOG_PATERN_EXPIRATION=30\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../available/log_clientlogs.sh",
        mender.join("enabled/log_clientlogs.sh"),
    )
    .unwrap();
    let config_sh = sandbox.path("config.sh");
    fs::write(&config_sh, CONFIG_SH).unwrap();
    let settings_file = sandbox.config_dir().join("monitor.yaml");

    // No monitor.yaml yet: written.
    let output = sandbox.monitorctl(&[
        "import-mender",
        mender.to_str().unwrap(),
        "--mender-config",
        config_sh.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    // A key Mender ignores too is left out, with a warning that names it and the fix.
    let warned = stderr(&output);
    assert!(
        warned.contains("warning: ")
            && warned.contains("LOG_PATERN_EXPIRATION")
            && warned.contains("use LOG_PATTERN_EXPIRATION if you meant it"),
        "{warned}"
    );
    let printed = stdout(&output);
    let config_sh_shown = config_sh.display();
    let settings_shown = settings_file.display();
    assert_eq!(
        printed,
        format!(
            "imported log clientlogs (enabled) to {available}/log_clientlogs.yaml\n\
             imported log syslog (disabled) to {available}/log_syslog.yaml\n\
             log clientlogs runs a command: monitord will run `journalctl -u mender-authd -f` with sh -c, as its own user\n\
             not carried: ALERT_URL: no counterpart: the server is set in monitor.yaml under delivery.backend (with auth: mender the Mender client says where it is)\n\
             not carried: CONFIG_LOG_LEVEL: no counterpart: monitord's log level is set with RUST_LOG (for example RUST_LOG=debug in its unit's Environment=)\n\
             not carried: DAEMON_LOG_FILE: no counterpart: monitord logs to stderr, which systemd keeps in the journal (journalctl -u monitord)\n\
             not carried: MONITOR_D_DIRECTORY: no counterpart: the checks live in monitorctl's --config-dir (default /etc/monitor); import-mender converts the monitor.d folder it is given\n\
             not carried: SOMETHING_NEW: no counterpart in this agent's settings (see monitor.yaml's documented keys)\n\
             not carried: CONFPUSH_INTERVAL: monitor.yaml has no delivery.backend section: add config_push_interval: 300 under delivery.backend once you configure one\n\
             wrote {settings_shown} with settings from {config_sh_shown}:\n\
             \x20 flapping_interval: 120 (from FLAPPING_INTERVAL)\n\
             \x20 flapping_count_threshold: 3 (from FLAPPING_COUNT_THRESHOLD)\n\
             \x20 alert_log_max_age: 7200 (from ALERT_LOG_MAX_AGE)\n\
             \x20 log_lines_before: 10 (from DEFAULT_LOG_LINES_BEFORE)\n\
             \x20 log_lines_after: 5 (from DEFAULT_LOG_LINES_AFTER)\n\
             \x20 default_log_pattern_expiration: 300 (from DEFAULT_LOG_PATTERN_EXPIRATION_SECONDS)\n\
             \x20 default_dbus_alert_expiration: never (from DEFAULT_DBUS_ALERT_EXPIRATION_SECONDS)\n\
             \x20 delivery.alert_offline_store_max_count: 500 (from ALERT_OFFLINE_STORE_MAX_COUNT)\n\
             \x20 delivery.alert_store_max_record_age: 86400 (from ALERT_STORE_MAX_RECORD_AGE_S)\n",
            available = sandbox.config_dir().join("available").display(),
        )
    );
    let written = fs::read_to_string(&settings_file).unwrap();
    assert!(written.contains("flapping_interval: 120\n"), "{written}");
    let validate = sandbox.monitorctl(&["validate"]);
    assert!(validate.status.success(), "{}", stderr(&validate));

    // A monitor.yaml now exists (a user's edits): left alone, the lines to add printed.
    fs::write(
        &settings_file,
        "# mine\ndevice_id: pi-kitchen\nflapping_interval: 60\n",
    )
    .unwrap();
    fs::set_permissions(&settings_file, fs::Permissions::from_mode(0o600)).unwrap();
    let empty_mender = sandbox.path("empty.d");
    fs::create_dir_all(empty_mender.join("available")).unwrap();
    let import_again = |extra: &[&str]| {
        let mut args = vec![
            "import-mender",
            empty_mender.to_str().unwrap(),
            "--mender-config",
            config_sh.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        sandbox.monitorctl(&args)
    };
    let output = import_again(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&format!(
            "{settings_shown} exists: left as it is; add these settings from {config_sh_shown} to it (or rerun with --merge-settings):\n  flapping_interval: 120\n"
        )),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        fs::read_to_string(&settings_file).unwrap(),
        "# mine\ndevice_id: pi-kitchen\nflapping_interval: 60\n"
    );

    // --merge-settings: set in it, other keys kept, the old text kept aside, mode kept.
    let output = import_again(&["--merge-settings"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&format!(
            "merged settings from {config_sh_shown} into {settings_shown} (its old text is in {settings_shown}.orig):\n"
        )),
        "{}",
        stdout(&output)
    );
    let merged = fs::read_to_string(&settings_file).unwrap();
    assert!(merged.contains("device_id: pi-kitchen\n"), "{merged}");
    assert!(merged.contains("flapping_interval: 120\n"), "{merged}");
    assert_eq!(
        fs::metadata(&settings_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::read_to_string(sandbox.config_dir().join("monitor.yaml.orig")).unwrap(),
        "# mine\ndevice_id: pi-kitchen\nflapping_interval: 60\n"
    );
    assert!(sandbox.monitorctl(&["validate"]).status.success());

    // Settings that would not be valid here are not written, and say why.
    fs::write(&config_sh, "FLAPPING_INTERVAL=7200\nALERT_LOG_MAX_AGE=60\n").unwrap();
    let output = import_again(&["--merge-settings"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("shorter than flapping_interval"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fs::read_to_string(&settings_file).unwrap(), merged);

    // An explicit config.sh that is not there is an error.
    let output = sandbox.monitorctl(&[
        "import-mender",
        empty_mender.to_str().unwrap(),
        "--mender-config",
        sandbox.path("nope.sh").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot read"),
        "{}",
        stderr(&output)
    );
}
