//! The check directory against real temporary directories, files and symlinks.

use super::*;
use crate::kind::{CheckKind, DbusDefinition, LogDefinition, ServiceDefinition, ServiceKind};
use crate::watch::LogSource;
use monitor_wire::duration::Expiration;
use std::time::Duration;

fn temp_dir() -> (tempfile::TempDir, CheckDir) {
    let dir = tempfile::tempdir().unwrap();
    let checks = CheckDir::new(dir.path());
    (dir, checks)
}

fn id(subsystem: Subsystem, name: &str) -> CheckId {
    CheckId::new(subsystem, name)
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Problems as users see them, with the temporary root shown as `DIR`.
fn shown(checks: &CheckDir, problems: &[Problem]) -> Vec<String> {
    let root = checks.root().display().to_string();
    problems
        .iter()
        .map(|problem| problem.to_string().replace(&root, "DIR"))
        .collect()
}

fn error_text(checks: &CheckDir, error: StoreError) -> String {
    error
        .to_string()
        .replace(&checks.root().display().to_string(), "DIR")
}

fn crasher_log() -> CheckDefinition {
    CheckDefinition::Log(LogDefinition::new(
        "ERROR",
        "/root/crasher.log",
        Some(Expiration::After(Duration::from_secs(5))),
    ))
}

#[test]
fn create_enable_disable_delete_round_trip() {
    let (_dir, checks) = temp_dir();
    let crasher = id(Subsystem::Log, "crasher_app");

    let file = checks.create(&crasher, &crasher_log()).unwrap();
    assert_eq!(file, checks.available_dir().join("log_crasher_app.yaml"));
    assert!(checks.enabled_dir().is_dir(), "create makes enabled/ too");
    assert_eq!(checks.find(&crasher).unwrap(), Some(file.clone()));
    let loaded = checks.load();
    assert_eq!(loaded.problems, []);
    assert_eq!(loaded.checks.len(), 1);
    assert!(!loaded.checks[0].enabled);

    checks.enable(&crasher).unwrap();
    let link = checks.enabled_dir().join("log_crasher_app.yaml");
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("../available/log_crasher_app.yaml"),
        "links are relative, so the directory can move"
    );
    assert_eq!(
        fs::canonicalize(&link).unwrap(),
        fs::canonicalize(&file).unwrap()
    );
    checks.enable(&crasher).unwrap(); // already enabled is fine
    let loaded = checks.load();
    assert_eq!(loaded.problems, []);
    let check = &loaded.checks[0];
    assert!(check.enabled);
    assert_eq!(check.id, crasher);
    assert_eq!(check.format, CheckFormat::Yaml);
    let CheckKind::Log(log) = &check.kind else {
        panic!("not a log check: {check:?}");
    };
    assert_eq!(log.source, LogSource::File("/root/crasher.log".into()));
    assert_eq!(
        log.expiration,
        Some(Expiration::After(Duration::from_secs(5)))
    );

    checks.disable(&crasher).unwrap();
    assert!(fs::symlink_metadata(&link).is_err());
    assert!(file.exists(), "disable keeps the check");
    checks.disable(&crasher).unwrap(); // not enabled is fine
    assert!(!checks.load().checks[0].enabled);

    checks.enable(&crasher).unwrap();
    checks.delete(&crasher).unwrap();
    assert!(fs::symlink_metadata(&link).is_err());
    assert!(!file.exists());
    assert_eq!(checks.find(&crasher).unwrap(), None);
    let loaded = checks.load();
    assert!(loaded.checks.is_empty() && loaded.problems.is_empty());
    let leftovers: Vec<_> = fs::read_dir(checks.available_dir()).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
}

#[test]
fn created_files_are_short_yaml() {
    let (_dir, checks) = temp_dir();
    let cases = [
        (id(Subsystem::Log, "crasher_app"), crasher_log(),
         "# log check crasher_app\npattern: ERROR\nsource: /root/crasher.log\nexpiration: 5s\n"),
        (id(Subsystem::Log, "auth"),
         CheckDefinition::Log(LogDefinition::new("session opened for user [a-z0-9]* by", "@journalctl -f", Some(Expiration::Never))),
         "# log check auth\npattern: session opened for user [a-z0-9]* by\nsource: '@journalctl -f'\nexpiration: never\n"),
        (id(Subsystem::Service, "crasher"), CheckDefinition::Service(ServiceDefinition::new("crasher", ServiceKind::SysV)),
         "# service check crasher\nname: crasher\ntype: sysV\n"),
        (id(Subsystem::Dockerevents, "web_die"),
         CheckDefinition::Log(LogDefinition::docker_events("web", "die", Some(Expiration::After(Duration::from_secs(90))))),
         "# dockerevents check web_die\npattern: .*container die.*name=web.*\nsource: '@docker events'\nexpiration: 1m30s\nalert:\n  name: Docker container web die\n  description: Alert was raised due to:%line_matching\n  status: DOCKEREVENTS_CONTAINER_EVENT\n  type: docker_event\n"),
        (id(Subsystem::Dbus, "jwt"),
         CheckDefinition::Dbus(DbusDefinition::new("io.mender.AuthenticationManager", "JwtTokenStateChange", "type='signal',interface='io.mender.Authentication1'", None)),
         "# dbus check jwt\nbus_name: io.mender.AuthenticationManager\npattern: JwtTokenStateChange\nwatch_expression: type='signal',interface='io.mender.Authentication1'\n"),
    ];
    for (check_id, definition, expected) in cases {
        let file = checks.create(&check_id, &definition).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), expected, "{check_id}");
    }
    let loaded = checks.load();
    assert_eq!(loaded.problems, []);
    let ids: Vec<String> = loaded
        .checks
        .iter()
        .map(|check| check.id.to_string())
        .collect();
    assert_eq!(
        ids,
        [
            "log auth",
            "log crasher_app",
            "log web_die",
            "service crasher",
            "dbus jwt",
        ],
        "sorted by id; a dockerevents check is a log check, as in Mender"
    );
}

#[test]
fn create_refuses_duplicates_in_either_format() {
    let (_dir, checks) = temp_dir();
    let crasher = id(Subsystem::Log, "crasher_app");
    checks.create(&crasher, &crasher_log()).unwrap();
    let error = checks.create(&crasher, &crasher_log()).unwrap_err();
    assert_eq!(
        error_text(&checks, error),
        "check \"log crasher_app\" already exists (DIR/available/log_crasher_app.yaml): delete it first or pick another name"
    );

    write(
        &checks.available_dir().join("service_cron.sh"),
        "SERVICE_NAME=cron\nSERVICE_TYPE=systemd\n",
    );
    let error = checks
        .create(
            &id(Subsystem::Service, "cron"),
            &CheckDefinition::Service(ServiceDefinition::new("cron", ServiceKind::Systemd)),
        )
        .unwrap_err();
    assert_eq!(
        error_text(&checks, error),
        "check \"service cron\" already exists (DIR/available/service_cron.sh): delete it first or pick another name"
    );
}

#[test]
fn create_validates_before_writing() {
    let (_dir, checks) = temp_dir();
    let app = id(Subsystem::Log, "app");
    let error = checks
        .create(
            &app,
            &CheckDefinition::Log(LogDefinition::new("(unclosed", "var/log/app.log", None)),
        )
        .unwrap_err();
    assert_eq!(
        error_text(&checks, error),
        "DIR/available/log_app.yaml: pattern: regex parse error: unclosed group at column 1 of \"(unclosed\" — fix the pattern; DIR/available/log_app.yaml: source: relative path \"var/log/app.log\": use an absolute path (starting with /), or @command to read a command's output"
    );
    assert_eq!(checks.find(&app).unwrap(), None, "nothing written");

    let error = checks
        .create(&id(Subsystem::Log, "../../etc/passwd"), &crasher_log())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid check name \"../../etc/passwd\": use at most 200 ASCII letters, digits and '.', '_', '-', '@', '\\', ':', '+', not starting with '.' or '-'"
    );

    let error = checks
        .create(&id(Subsystem::Service, "app"), &crasher_log())
        .unwrap_err();
    assert_eq!(
        error_text(&checks, error),
        "DIR/available/service_app.yaml: a log check cannot be stored as a service check: create it as log app"
    );
    assert!(
        !checks.available_dir().exists(),
        "nothing created on refusal"
    );
}

#[test]
fn unknown_checks_are_errors_that_say_how_to_create_them() {
    let (_dir, checks) = temp_dir();
    let missing = id(Subsystem::Log, "foo");
    for error in [
        checks.enable(&missing).unwrap_err(),
        checks.disable(&missing).unwrap_err(),
        checks.delete(&missing).unwrap_err(),
    ] {
        assert_eq!(
            error_text(&checks, error),
            "no check \"log foo\" in DIR/available: create it first with monitorctl create log ..."
        );
    }
}

#[test]
fn io_errors_read_as_one_lowercase_line() {
    let error = StoreError::Io {
        action: "read",
        path: PathBuf::from("/etc/monitor"),
        error: io::Error::from_raw_os_error(13),
    };
    assert_eq!(
        error.to_string(),
        "cannot read /etc/monitor: permission denied (os error 13)"
    );
    assert!(
        std::error::Error::source(&error).is_none(),
        "not printed twice by {{:#}}"
    );
}

#[test]
fn a_bad_file_never_hides_the_good_ones() {
    let (_dir, checks) = temp_dir();
    let available = checks.available_dir();
    write(
        &available.join("log_good.yaml"),
        "pattern: ERROR\nsource: /var/log/app.log\n",
    );
    write(
        &available.join("log_regex.yaml"),
        "pattern: '(unclosed'\nsource: /var/log/app.log\n",
    );
    write(
        &available.join("service_typo.yaml"),
        "name: cron\ntype: systemd\nrestart: always\n",
    );
    let loaded = checks.load();
    assert_eq!(loaded.checks.len(), 1);
    assert_eq!(loaded.checks[0].id, id(Subsystem::Log, "good"));
    assert_eq!(
        shown(&checks, &loaded.problems),
        [
            "DIR/available/log_regex.yaml: pattern: regex parse error: unclosed group at column 1 of \"(unclosed\" — fix the pattern",
            "DIR/available/service_typo.yaml: restart: unknown key: use one of name, type, on_failure",
        ]
    );
}

#[test]
fn file_names_decide_subsystem_and_name() {
    let (_dir, checks) = temp_dir();
    let available = checks.available_dir();
    let good = "pattern: x\nsource: /var/log/x\n";
    write(&available.join("log_app.yaml"), good);
    // Not check files: ignored without a word.
    for ignored in [
        "log_app.yaml~",
        "log_app.yaml.bak",
        ".log_app.yaml.swp",
        "README",
        "#log_x.yaml#",
    ] {
        write(&available.join(ignored), "garbage: [");
    }
    write(&available.join("files_app.yaml"), good);
    write(&available.join("logapp.yaml"), good);
    write(&available.join("log_-app.yaml"), good);
    write(&available.join("log_other.yml"), good);
    let loaded = checks.load();
    assert_eq!(loaded.checks.len(), 1);
    // Every kind, in `Subsystem::ALL`'s order (log, service, dbus, dockerevents, ...).
    let kinds: Vec<&str> = Subsystem::ALL.iter().map(|kind| kind.as_str()).collect();
    let kinds = kinds.join(", ");
    assert!(kinds.starts_with("log, service, dbus, dockerevents"));
    assert_eq!(
        shown(&checks, &loaded.problems),
        [
            format!("DIR/available/files_app.yaml: unknown subsystem \"files\": rename the file to <subsystem>_<check>.yaml with subsystem one of {kinds}"),
            "DIR/available/log_-app.yaml: invalid check name \"-app\": rename the file, use at most 200 ASCII letters, digits and '.', '_', '-', '@', '\\', ':', '+', not starting with '.' or '-'".to_owned(),
            "DIR/available/log_other.yml: check files end in .yaml: rename the file to log_other.yaml".to_owned(),
            format!("DIR/available/logapp.yaml: no subsystem in the file name: rename the file to <subsystem>_<check>.yaml with subsystem one of {kinds}"),
        ]
    );
}

#[test]
fn enabled_entries_links_files_and_dangling_links() {
    let (_dir, checks) = temp_dir();
    let available = checks.available_dir();
    let enabled = checks.enabled_dir();
    write(
        &available.join("service_cron.yaml"),
        "name: cron\ntype: systemd\n",
    );
    fs::create_dir_all(&enabled).unwrap();
    // A link written by hand with an absolute target counts.
    symlink(
        available.join("service_cron.yaml"),
        enabled.join("service_cron.yaml"),
    )
    .unwrap();
    // A regular file in enabled/ is a check of its own, enabled.
    write(
        &enabled.join("service_ssh.yaml"),
        "name: ssh\ntype: systemd\n",
    );
    // A link to nothing is a problem and enables nothing.
    symlink("../available/log_gone.yaml", enabled.join("log_gone.yaml")).unwrap();

    let loaded = checks.load();
    let states: Vec<(String, bool)> = loaded
        .checks
        .iter()
        .map(|check| (check.id.to_string(), check.enabled))
        .collect();
    assert_eq!(
        states,
        [
            ("service cron".to_owned(), true),
            ("service ssh".to_owned(), true)
        ]
    );
    assert_eq!(loaded.checks[1].file, enabled.join("service_ssh.yaml"));
    assert_eq!(
        shown(&checks, &loaded.problems),
        ["DIR/enabled/log_gone.yaml: dangling link to ../available/log_gone.yaml: restore the check file, or remove the link with monitorctl disable log gone"]
    );

    assert_eq!(loaded.enabled().count(), 2);
    checks.enable(&id(Subsystem::Service, "ssh")).unwrap(); // enabled already, by hand

    // The fix the message gives works although the check file is gone.
    checks.disable(&id(Subsystem::Log, "gone")).unwrap();
    assert_eq!(checks.load().problems, []);

    // Disabling a check that only lives in enabled/ moves it to available/ instead of losing it.
    checks.disable(&id(Subsystem::Service, "ssh")).unwrap();
    assert_eq!(
        fs::read_to_string(available.join("service_ssh.yaml")).unwrap(),
        "name: ssh\ntype: systemd\n"
    );
    let loaded = checks.load();
    assert_eq!(loaded.problems, []);
    assert!(!loaded.checks[1].enabled);
}

#[test]
fn enable_replaces_a_dangling_link() {
    let (_dir, checks) = temp_dir();
    let crasher = id(Subsystem::Log, "crasher_app");
    checks.create(&crasher, &crasher_log()).unwrap();
    let link = checks.enabled_dir().join("log_crasher_app.yaml");
    symlink("/nowhere/log_crasher_app.yaml", &link).unwrap();
    checks.enable(&crasher).unwrap();
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("../available/log_crasher_app.yaml")
    );
}

#[test]
fn the_same_id_in_both_formats_is_a_problem() {
    let (_dir, checks) = temp_dir();
    let available = checks.available_dir();
    write(
        &available.join("service_cron.yaml"),
        "name: cron\ntype: systemd\n",
    );
    write(
        &available.join("service_cron.sh"),
        "SERVICE_NAME=cron\nSERVICE_TYPE=systemd\n",
    );
    let loaded = checks.load();
    assert!(loaded.checks.is_empty());
    assert_eq!(
        shown(&checks, &loaded.problems),
        ["DIR/available/service_cron.sh: check \"service cron\" is defined twice (DIR/available/service_cron.sh and DIR/available/service_cron.yaml): delete one of the files"]
    );
    let error = checks.enable(&id(Subsystem::Service, "cron")).unwrap_err();
    assert_eq!(
        error_text(&checks, error),
        "check \"service cron\" is defined twice (DIR/available/service_cron.yaml and DIR/available/service_cron.sh): delete one of the files"
    );
    // delete removes both, which resolves it.
    checks.delete(&id(Subsystem::Service, "cron")).unwrap();
    assert_eq!(fs::read_dir(&available).unwrap().count(), 0);
}

#[test]
fn mender_files_load_in_place_and_problems_name_mender_keys() {
    let (_dir, checks) = temp_dir();
    let available = checks.available_dir();
    write(
        &available.join("log_auth_root_session.sh"),
        "# This file was autogenerated by Monitoring Utilities based on the configuration\nSERVICE_NAME=\"auth_root_session\"\nLOG_PATTERN=\"session opened for user root\"\nLOG_FILE=\"/var/log/auth.log\"\nLOG_PATTERN_EXPIRATION=\"300\"\n",
    );
    write(
        &available.join("log_broken.sh"),
        "LOG_PATTERN=\"[a-\"\nLOG_FILE=\"auth.log\"\nCOLOUR=red\n",
    );
    checks
        .enable(&id(Subsystem::Log, "auth_root_session"))
        .unwrap();
    assert_eq!(
        fs::read_link(checks.enabled_dir().join("log_auth_root_session.sh")).unwrap(),
        Path::new("../available/log_auth_root_session.sh")
    );
    let loaded = checks.load();
    assert_eq!(loaded.checks.len(), 1);
    let check = &loaded.checks[0];
    assert_eq!(check.format, CheckFormat::MenderShell);
    assert!(check.enabled);
    assert_eq!(
        shown(&checks, &loaded.problems),
        [
            "DIR/available/log_broken.sh: COLOUR: line 3: unknown key for a log check, ignored: Mender ignores it too; remove it, or use one of SERVICE_NAME, LOG_PATTERN, LOG_FILE, LOG_PATTERN_EXPIRATION, LOG_ALERT_LEVEL, LOG_ALERT_DESCRIPTION, LOG_ALERT_DETAILS, LOG_ALERT_STATUS, LOG_ALERT_TYPE, DEFAULT_LOG_LINES_BEFORE, DEFAULT_LOG_LINES_AFTER, LOG_LINES_BEFORE, LOG_LINES_AFTER",
            "DIR/available/log_broken.sh: LOG_PATTERN: regex parse error: unclosed character class at column 1 of \"[a-\" — fix the pattern",
            "DIR/available/log_broken.sh: LOG_FILE: relative path \"auth.log\": use an absolute path (starting with /), or @command to read a command's output",
        ]
    );
    // An unknown key alone is a warning: the check is loaded, as Mender would run it.
    fs::write(
        available.join("log_broken.sh"),
        "LOG_PATTERN=\"x\"\nLOG_FILE=\"/var/log/auth.log\"\nCOLOUR=red\n",
    )
    .unwrap();
    let loaded = checks.load();
    assert_eq!(loaded.checks.len(), 2);
    assert_eq!(loaded.problems.len(), 1);
    assert!(loaded.problems[0].is_warning(), "{:?}", loaded.problems);
    fs::write(
        available.join("log_broken.sh"),
        "LOG_PATTERN=\"[a-\"\nLOG_FILE=\"auth.log\"\n",
    )
    .unwrap();
    assert_eq!(
        shown(&checks, &checks.load().problems),
        [
            "DIR/available/log_broken.sh: LOG_PATTERN: regex parse error: unclosed character class at column 1 of \"[a-\" — fix the pattern",
            "DIR/available/log_broken.sh: LOG_FILE: relative path \"auth.log\": use an absolute path (starting with /), or @command to read a command's output",
        ]
    );
}

/// A Mender `monitor.d` as `mender-monitorctl` leaves it: absolute enabled links (which no
/// longer resolve in a copy), a disabled check, one broken file.
fn mender_folder(root: &Path) {
    let available = root.join("available");
    let enabled = root.join("enabled");
    write(
        &available.join("log_auth_root_session.sh"),
        "# This file was autogenerated by Monitoring Utilities based on the configuration\nSERVICE_NAME=\"auth_root_session\"\nLOG_PATTERN=\"session opened for user root\"\nLOG_FILE=\"/var/log/auth.log\"\nLOG_PATTERN_EXPIRATION=\"300\"\n",
    );
    write(
        &available.join("service_mender-connect.sh"),
        "# This file was autogenerated by Monitoring Utilities based on the configuration\nSERVICE_NAME=\"mender-connect\"\nSERVICE_TYPE=\"systemd\"\n",
    );
    write(
        &available.join("log_web_die.sh"),
        "SERVICE_NAME=\"web_die\"\nLOG_PATTERN=\".*container die.*name=web.*\"\nLOG_FILE=\"@docker events\"\nLOG_PATTERN_EXPIRATION=\"60\"\nLOG_ALERT_DESCRIPTION=\"Docker container web die\"\nLOG_ALERT_TYPE=\"docker_event\"\n",
    );
    write(
        &available.join("log_broken.sh"),
        "LOG_PATTERN=\"(\"\nLOG_FILE=\"/var/log/x\"\n",
    );
    fs::create_dir_all(&enabled).unwrap();
    for name in [
        "log_auth_root_session.sh",
        "service_mender-connect.sh",
        "log_broken.sh",
    ] {
        symlink(
            Path::new("/etc/mender-monitor/monitor.d/available").join(name),
            enabled.join(name),
        )
        .unwrap();
    }
}

#[test]
fn import_mender_converts_files_and_enabled_links() {
    let mender = tempfile::tempdir().unwrap();
    mender_folder(mender.path());
    let (_dir, checks) = temp_dir();
    // An id that exists already is left alone.
    checks
        .create(
            &id(Subsystem::Service, "mender-connect"),
            &CheckDefinition::Service(ServiceDefinition::new(
                "mender-connect.service",
                ServiceKind::Systemd,
            )),
        )
        .unwrap();

    let report = import_mender(mender.path(), &checks).unwrap();
    let imported: Vec<(String, bool, Option<&str>)> = report
        .imported
        .iter()
        .map(|check| {
            (
                check.id.to_string(),
                check.enabled,
                check.command.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        imported,
        [
            ("log auth_root_session".to_owned(), true, None),
            ("log web_die".to_owned(), false, Some("docker events"))
        ],
        "a command source is named, so that import-mender can say what monitord will run"
    );
    assert_eq!(
        report.skipped,
        [SkippedCheck {
            id: id(Subsystem::Service, "mender-connect"),
            existing: checks.available_dir().join("service_mender-connect.yaml"),
        }]
    );
    let mender_root = mender.path().display().to_string();
    let problems: Vec<String> = report
        .problems
        .iter()
        .map(|problem| problem.to_string().replace(&mender_root, "MENDER"))
        .collect();
    assert_eq!(
        problems,
        ["MENDER/available/log_broken.sh: LOG_PATTERN: regex parse error: unclosed group at column 1 of \"(\" — fix the pattern"]
    );

    assert_eq!(
        fs::read_to_string(checks.available_dir().join("log_auth_root_session.yaml")).unwrap(),
        "# log check auth_root_session\npattern: session opened for user root\nsource: /var/log/auth.log\nexpiration: 5m\n"
    );
    assert_eq!(
        fs::read_to_string(checks.available_dir().join("log_web_die.yaml")).unwrap(),
        "# log check web_die\npattern: .*container die.*name=web.*\nsource: '@docker events'\nexpiration: 1m\nalert:\n  name: Docker container web die\n  type: docker_event\n"
    );
    assert_eq!(
        fs::read_link(checks.enabled_dir().join("log_auth_root_session.yaml")).unwrap(),
        Path::new("../available/log_auth_root_session.yaml")
    );
    let loaded = checks.load();
    assert_eq!(loaded.problems, []);
    assert_eq!(loaded.checks.len(), 3);

    // Importing again skips everything that was imported.
    let again = import_mender(mender.path(), &checks).unwrap();
    assert!(again.imported.is_empty());
    assert_eq!(again.skipped.len(), 3);
}

#[test]
fn import_mender_needs_an_available_folder() {
    let (_dir, checks) = temp_dir();
    let empty = tempfile::tempdir().unwrap();
    let error = import_mender(empty.path(), &checks).unwrap_err();
    assert_eq!(
        error.to_string().replace(&empty.path().display().to_string(), "FROM"),
        "FROM has no available/ folder: point to Mender's monitor.d folder (usually /etc/mender-monitor/monitor.d)"
    );
}

#[test]
fn unreadable_directories_are_problems_not_panics() {
    let (_dir, checks) = temp_dir();
    // available/ is a file: reading it as a directory fails.
    write(&checks.available_dir(), "not a directory");
    let loaded = checks.load();
    assert!(loaded.checks.is_empty());
    assert_eq!(loaded.problems.len(), 1);
    assert_eq!(loaded.problems[0].file, checks.available_dir());
    assert!(
        loaded.problems[0]
            .message
            .starts_with("cannot read: not a directory"),
        "{}",
        loaded.problems[0]
    );
}

#[test]
fn check_names() {
    let longest = "a".repeat(200);
    for good in [
        "crasher_app",
        "mender-connect",
        "a",
        "9lives",
        "cron.timer",
        "_x",
        "getty@tty1",
        "foo\\x2dbar",
        "sys-devices-platform-serial8250-tty-ttyS0.device",
        "dev-disk-by\\x2duuid-1234.swap",
        "systemd-fsck@dev-disk-by\\x2dlabel-boot.service",
        "user@1000.service",
        "a:b+c",
        &longest,
    ] {
        assert!(is_valid_check_name(good), "{good}");
    }
    let too_long = "a".repeat(201);
    for bad in [
        "",
        "-x",
        ".hidden",
        "..",
        "a b",
        "a\tb",
        "a\nb",
        "a\u{1b}[31m",
        "a/b",
        "../x",
        "a\0b",
        "é",
        "a*b",
        "$(x)",
        "a'b",
        &too_long,
    ] {
        assert!(!is_valid_check_name(bad), "{bad:?}");
    }
}

#[test]
fn dockerevents_checks_are_stored_and_addressed_as_log_checks_like_mender() {
    let (_dir, checks) = temp_dir();
    let docker = id(Subsystem::Dockerevents, "container_web_restart");
    let log = id(Subsystem::Log, "container_web_restart");
    let definition = CheckDefinition::Log(LogDefinition::docker_events("web", "restart", None));

    let file = checks.create(&docker, &definition).unwrap();
    assert_eq!(
        file,
        checks
            .available_dir()
            .join("log_container_web_restart.yaml")
    );
    assert_eq!(checks.resolve(&docker).unwrap(), log);
    assert_eq!(checks.resolve(&log).unwrap(), log);
    for taken in [&docker, &log] {
        let error = checks.create(taken, &definition).unwrap_err();
        assert!(matches!(error, StoreError::AlreadyExists { .. }), "{error}");
    }

    checks.enable(&docker).unwrap();
    let link = checks.enabled_dir().join("log_container_web_restart.yaml");
    assert!(fs::metadata(&link).is_ok());
    let loaded = checks.load();
    assert_eq!(loaded.problems, []);
    assert_eq!(loaded.checks.len(), 1);
    let check = &loaded.checks[0];
    assert_eq!(check.id, log, "its id in alerts, status and config push");
    assert!(check.enabled);
    assert!(check.is_in(Subsystem::Dockerevents) && check.is_in(Subsystem::Log));
    assert!(!check.is_in(Subsystem::Service));

    checks.disable(&log).unwrap();
    assert!(fs::symlink_metadata(&link).is_err());
    checks.enable(&log).unwrap();
    checks.disable(&docker).unwrap();
    assert!(fs::symlink_metadata(&link).is_err());
    checks.delete(&docker).unwrap();
    assert!(!file.exists());
    assert!(matches!(
        checks.enable(&docker).unwrap_err(),
        StoreError::UnknownCheck { .. }
    ));
}

#[test]
fn mender_and_older_dockerevents_files_answer_to_dockerevents() {
    let (_dir, checks) = temp_dir();
    let available = checks.available_dir();
    // As Mender's ctl-lib.sh writes it.
    write(
        &available.join("log_mender_made.sh"),
        "SERVICE_NAME=\"mender_made\"\nLOG_PATTERN=\".*container die.*name=web.*\"\nLOG_FILE=\"@docker events\"\nLOG_ALERT_DESCRIPTION=\"Docker container web die\"\nLOG_ALERT_TYPE=docker_event\n",
    );
    write(
        &available.join("log_plain.sh"),
        "LOG_PATTERN=\"ERROR\"\nLOG_FILE=\"/var/log/app.log\"\n",
    );
    // Made by `create dockerevents` before it wrote log checks.
    write(
        &available.join("dockerevents_older.yaml"),
        "pattern: .*container die.*name=db.*\nsource: '@docker events'\nalert:\n  type: docker_event\n",
    );

    checks
        .enable(&id(Subsystem::Dockerevents, "mender_made"))
        .unwrap();
    assert!(fs::metadata(checks.enabled_dir().join("log_mender_made.sh")).is_ok());

    let older = id(Subsystem::Dockerevents, "older");
    assert_eq!(checks.resolve(&older).unwrap(), older);
    // One name in Mender (and in the config push): `create log older` is refused.
    let error = checks
        .create(&id(Subsystem::Log, "older"), &crasher_log())
        .unwrap_err();
    assert_eq!(
        error_text(&checks, error),
        "check \"dockerevents older\" already exists (DIR/available/dockerevents_older.yaml): delete it first or pick another name"
    );
    checks.enable(&older).unwrap();
    assert!(fs::metadata(checks.enabled_dir().join("dockerevents_older.yaml")).is_ok());

    let error = checks
        .enable(&id(Subsystem::Dockerevents, "plain"))
        .unwrap_err();
    assert_eq!(
        error_text(&checks, error),
        "DIR/available/log_plain.sh is a log check but not over docker events (its alert type is not docker_event): address it as log plain"
    );

    let loaded = checks.load();
    assert_eq!(loaded.problems, []);
    let ids: Vec<String> = loaded
        .checks
        .iter()
        .map(|check| check.id.to_string())
        .collect();
    assert_eq!(ids, ["log mender_made", "log plain", "dockerevents older"]);
    let docker: Vec<String> = loaded
        .checks
        .iter()
        .filter(|check| check.is_in(Subsystem::Dockerevents))
        .map(|check| check.id.to_string())
        .collect();
    assert_eq!(docker, ["log mender_made", "dockerevents older"]);
}

#[test]
fn systemd_unit_names_survive_file_name_id_and_enable_link() {
    let (_dir, checks) = temp_dir();
    for name in [
        "getty@tty1",
        "foo\\x2dbar",
        "systemd-fsck@dev-disk-by\\x2dlabel-boot.service",
        "sys-devices-platform-serial8250-tty-ttyS0.device",
    ] {
        let service = id(Subsystem::Service, name);
        let definition =
            CheckDefinition::Service(ServiceDefinition::new(name, ServiceKind::Systemd));
        let file = checks.create(&service, &definition).unwrap();
        assert_eq!(
            file,
            checks.available_dir().join(format!("service_{name}.yaml"))
        );
        checks.enable(&service).unwrap();
    }
    let loaded = checks.load();
    assert_eq!(loaded.problems, []);
    let names: Vec<(&str, bool, String)> = loaded
        .checks
        .iter()
        .map(|check| {
            (
                check.id.name.as_str(),
                check.enabled,
                check.kind.describe_source(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (
                "foo\\x2dbar",
                true,
                "foo\\x2dbar.service (systemd)".to_owned()
            ),
            (
                "getty@tty1",
                true,
                "getty@tty1.service (systemd)".to_owned()
            ),
            (
                "sys-devices-platform-serial8250-tty-ttyS0.device",
                true,
                "sys-devices-platform-serial8250-tty-ttyS0.device (systemd)".to_owned()
            ),
            (
                "systemd-fsck@dev-disk-by\\x2dlabel-boot.service",
                true,
                "systemd-fsck@dev-disk-by\\x2dlabel-boot.service (systemd)".to_owned()
            ),
        ]
    );
    let error = checks
        .create(
            &id(Subsystem::Service, "../escape"),
            &CheckDefinition::Service(ServiceDefinition::new("x", ServiceKind::Systemd)),
        )
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidName { .. }), "{error}");
}
