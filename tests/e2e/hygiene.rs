//! The agent side of hygiene: what monitorctl prints cannot drive the reader's terminal, a
//! huge check file costs no memory, and secret files others can read are named with the fix.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::sync::mpsc;

use crate::harness::{append, eventually, stderr, stdout, Sandbox, DEADLINE};

/// Erase the line, go back to its start and write a fake OK: what a log line can do to a
/// terminal that prints it raw. Then a right-to-left override.
const FORGED: &str = "\u{1b}[2K\rOK all good\u{202e}";
const FORGED_ESCAPED: &str = "\\x1b[2K\\rOK all good\\u{202e}";

/// Whether `text` holds anything a terminal would obey rather than show.
fn has_terminal_controls(text: &str) -> bool {
    text.chars().any(|character| {
        (character.is_control() && character != '\n')
            || ('\u{202a}'..='\u{202e}').contains(&character)
    })
}

#[test]
fn alerts_status_and_list_escape_terminal_controls_unless_raw() {
    let sandbox = Sandbox::new();
    // The path holds the forgery too: it shows in list's SOURCE and in status's DETAIL.
    let folder = sandbox.path(&format!("logs{FORGED}"));
    fs::create_dir(&folder).unwrap();
    let log = folder.join("app.log");
    sandbox.monitorctl_quietly(&["create", "log", "app", "CRITICAL", log.to_str().unwrap()]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, &format!("CRITICAL disk failing {FORGED}\n"));
    let (_, critical) = alerts.expect("CRITICAL", "log app");
    assert_eq!(
        critical["subject"]["details"]["line_matching"]["data"],
        format!("CRITICAL disk failing {FORGED}"),
        "the alert itself keeps the line as written"
    );

    let text = stdout(&sandbox.monitorctl(&["alerts"]));
    assert!(
        text.contains(&format!("CRITICAL disk failing {FORGED_ESCAPED}")),
        "{text:?}"
    );
    assert!(!has_terminal_controls(&text), "{text:?}");
    let raw = stdout(&sandbox.monitorctl(&["alerts", "--raw"]));
    assert!(
        raw.contains(&format!("CRITICAL disk failing {FORGED}")),
        "{raw:?}"
    );

    // JSON escapes C0 by itself; the bidi override is escaped on top, the value unchanged.
    let json = stdout(&sandbox.monitorctl(&["alerts", "--json"]));
    assert!(!has_terminal_controls(&json), "{json:?}");
    let record: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(
        record["subject"]["details"]["line_matching"]["data"],
        format!("CRITICAL disk failing {FORGED}")
    );

    let followed = first_line_of(&sandbox, &["alerts", "--follow"]);
    assert!(followed.contains(FORGED_ESCAPED), "{followed:?}");
    assert!(!has_terminal_controls(&followed), "{followed:?}");

    // A refused alert's reason comes from the destination's answer. The dead-letter line is
    // the history record with the destination, the time and the reason.
    let mut rejected = record.clone();
    let object = rejected.as_object_mut().unwrap();
    object.insert("destination".into(), format!("backend{FORGED}").into());
    object.insert("rejected_at".into(), record["timestamp"].clone());
    object.insert("reason".into(), format!("400 {FORGED}").into());
    let line = format!("{rejected}\n");
    fs::write(sandbox.state_dir().join("rejected.jsonl"), line).unwrap();
    let refused = sandbox.monitorctl(&["alerts", "--rejected"]);
    let refused_text = stdout(&refused);
    assert!(refused.status.success(), "{}", stderr(&refused));
    assert!(
        refused_text.contains(&format!("reason: 400 {FORGED_ESCAPED}")),
        "{refused_text:?}"
    );
    assert!(!has_terminal_controls(&refused_text), "{refused_text:?}");
    let refused_raw = stdout(&sandbox.monitorctl(&["alerts", "--rejected", "--raw"]));
    assert!(
        refused_raw.contains(&format!("400 {FORGED}")),
        "{refused_raw:?}"
    );

    let status = stdout(&sandbox.monitorctl(&["status"]));
    assert!(
        status.contains(&format!("logs{FORGED_ESCAPED}/app.log")),
        "{status:?}"
    );
    assert!(!has_terminal_controls(&status), "{status:?}");
    let status_raw = stdout(&sandbox.monitorctl(&["status", "--raw"]));
    assert!(
        status_raw.contains(&format!("logs{FORGED}/app.log")),
        "{status_raw:?}"
    );
    let status_json = stdout(&sandbox.monitorctl(&["status", "--json"]));
    assert!(!has_terminal_controls(&status_json), "{status_json:?}");

    let list = stdout(&sandbox.monitorctl(&["list"]));
    assert!(
        list.contains(&format!("logs{FORGED_ESCAPED}/app.log")),
        "{list:?}"
    );
    assert!(!has_terminal_controls(&list), "{list:?}");
    let list_raw = stdout(&sandbox.monitorctl(&["list", "--raw"]));
    assert!(
        list_raw.contains(&format!("logs{FORGED}/app.log")),
        "{list_raw:?}"
    );
}

/// The first line a long-running monitorctl prints, within the deadline; then it is killed.
fn first_line_of(sandbox: &Sandbox, args: &[&str]) -> String {
    let mut child = sandbox
        .binaries
        .monitorctl()
        .envs(sandbox.environment())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("monitorctl starts");
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = receiver.recv_timeout(DEADLINE);
    let _ = child.kill();
    let _ = child.wait();
    line.unwrap_or_else(|_| panic!("monitorctl {args:?} printed no line within {DEADLINE:?}"))
}

/// Resident memory of a process, in KiB (`VmRSS` in /proc/<pid>/status).
fn resident_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("the process runs");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

#[test]
fn a_check_file_over_one_mebibyte_is_a_problem_and_is_never_read() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    sandbox.monitorctl_quietly(&["create", "log", "app", "ERROR", log.to_str().unwrap()]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    // 113 MB of text in an enabled check's file: a log copied over it by mistake.
    let huge = sandbox.config_dir().join("available/log_huge.yaml");
    {
        let file = fs::File::create(&huge).unwrap();
        let block = "pattern: x\n".repeat(100_000).into_bytes();
        let mut writer = std::io::BufWriter::new(file);
        use std::io::Write;
        while writer.get_ref().metadata().unwrap().len() < 113_000_000 {
            writer.write_all(&block).unwrap();
            writer.flush().unwrap();
        }
    }
    let size = fs::metadata(&huge).unwrap().len();
    assert!(size > 100_000_000);
    std::os::unix::fs::symlink(
        "../available/log_huge.yaml",
        sandbox.config_dir().join("enabled/log_huge.yaml"),
    )
    .unwrap();

    let validate = sandbox.monitorctl(&["validate"]);
    assert_eq!(validate.status.code(), Some(1), "{}", stderr(&validate));
    assert!(
        stderr(&validate).contains(&format!(
            "log_huge.yaml: {size} bytes is more than the 1 MiB a configuration file may hold, so it is not read"
        )),
        "{}",
        stderr(&validate)
    );

    let mut agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR the other check still works\n");
    alerts.expect("CRITICAL", "log app");
    // Reloads read the folder again: each would cost the file's size if it were read.
    sandbox.monitorctl_quietly(&["disable", "log", "app"]);
    alerts.expect("OK", "log app");
    agent.assert_alive();
    let resident = resident_kib(agent.pid());
    println!("monitord VmRSS with a {size}-byte check file enabled: {resident} KiB");
    assert!(
        resident < 60 * 1024,
        "monitord holds {resident} KiB with a {size}-byte check file"
    );
    assert!(agent.log().contains("log_huge.yaml"), "{}", agent.log());

    // The same bound for monitor.yaml.
    let settings = sandbox.config_dir().join("monitor.yaml");
    fs::write(&settings, format!("# {}\n", "x".repeat(2 * 1024 * 1024))).unwrap();
    let validate = sandbox.monitorctl(&["validate"]);
    assert!(
        stderr(&validate).contains("monitor.yaml: 2097155 bytes is more than the 1 MiB"),
        "{}",
        stderr(&validate)
    );
}

#[test]
fn secret_files_others_can_read_are_named_with_the_fix_and_still_used() {
    let sandbox = Sandbox::new();
    let token = sandbox.path("token");
    fs::write(&token, "secret-token-value\n").unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o644)).unwrap();
    let webhook = sandbox.path("webhook");
    fs::write(
        &webhook,
        "https://discord.com/api/webhooks/123456789/secret-webhook-token\n",
    )
    .unwrap();
    fs::set_permissions(&webhook, fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "delivery:\n  backend:\n    url: http://127.0.0.1:9\n    auth: token\n    token_file: {}\n  discord:\n    - webhook_url_file: {}\n",
            token.display(),
            webhook.display()
        ),
    )
    .unwrap();

    let validate = sandbox.monitorctl(&["validate"]);
    let warnings = stderr(&validate);
    assert!(
        validate.status.success(),
        "a warning, not a refusal: {warnings}"
    );
    for (field, file, mode) in [
        ("delivery.backend.token_file", &token, "0644"),
        ("delivery.discord[0].webhook_url_file", &webhook, "0640"),
    ] {
        let expected = format!(
            "warning: {}: {field}: {} holds a secret and can be read by its group or others (mode {mode}): run chmod 600 {}",
            sandbox.config_dir().join("monitor.yaml").display(),
            file.display(),
            file.display()
        );
        assert!(warnings.contains(&expected), "{warnings}");
    }
    assert!(
        !warnings.contains("secret-"),
        "no secret in a warning: {warnings}"
    );

    let agent = sandbox.start_agent();
    eventually("monitord warns about both secret files", || {
        let log = agent.log();
        log.contains(&format!("run chmod 600 {}", token.display()))
            && log.contains(&format!("run chmod 600 {}", webhook.display()))
    });
    assert!(!agent.log().contains("secret-"), "{}", agent.log());
    // Still used: both destinations are planned.
    let pending = stdout(&sandbox.monitorctl(&["alerts", "--pending"]));
    assert!(
        pending.contains("backend") && pending.contains("discord:123456789"),
        "{pending}"
    );
    agent.stop();

    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(&webhook, fs::Permissions::from_mode(0o600)).unwrap();
    let validate = sandbox.monitorctl(&["validate"]);
    assert!(validate.status.success());
    assert!(
        !stderr(&validate).contains("chmod"),
        "{}",
        stderr(&validate)
    );
}
