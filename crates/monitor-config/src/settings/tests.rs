//! Settings: defaults, every problem at once, and the files they name.

use super::*;

fn write_settings(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(SETTINGS_FILE_NAME);
    fs::write(&file, text).unwrap();
    (dir, file)
}

#[test]
fn missing_and_empty_files_give_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load_settings(dir.path()), Ok(Settings::default()));
    let (dir, _) = write_settings("");
    assert_eq!(load_settings(dir.path()), Ok(Settings::default()));
    let (dir, _) = write_settings("# nothing set yet\n");
    assert_eq!(load_settings(dir.path()), Ok(Settings::default()));
}

#[test]
fn defaults_are_documented_values() {
    let settings = Settings::default();
    assert_eq!(settings.device_id, None);
    assert_eq!(settings.state_dir, Path::new("/var/lib/monitor"));
    assert_eq!(settings.runtime_dir, Path::new("/run/monitor"));
    assert_eq!(settings.flapping_interval, Duration::from_secs(600));
    assert_eq!(settings.flapping_count_threshold, 5);
    assert_eq!(settings.alert_log_max_age, Duration::from_secs(3600));
    // Mender: a log alert with no expiration "will remain unless a manual alert cleaning
    // is performed"; D-Bus alerts have their own default.
    assert_eq!(settings.default_log_pattern_expiration, Expiration::Never);
    assert_eq!(settings.default_dbus_alert_expiration, Expiration::Never);
    assert_eq!(settings.pattern_expiration(None), Expiration::Never);
    assert_eq!(settings.expire_seconds(None), None);
    assert_eq!(settings.log_lines_before, 30);
    assert_eq!(settings.log_lines_after, 30);
    assert_eq!(settings.alert_history_max_bytes, 1024 * 1024);
    assert_eq!(
        settings.alert_history_path(),
        Path::new("/var/lib/monitor/alerts.jsonl")
    );
    assert!(settings.validate(Path::new("monitor.yaml")).is_empty());
}

#[test]
fn durations_accept_seconds_and_units() {
    let (dir, _) = write_settings(
        "device_id: pi-kitchen\nflapping_interval: 5m\nflapping_count_threshold: 3\nalert_log_max_age: 7200\ndefault_log_pattern_expiration: never\ndefault_dbus_alert_expiration: 90\nlog_lines_before: 5\n",
    );
    let settings = load_settings(dir.path()).unwrap();
    assert_eq!(settings.device_id.as_deref(), Some("pi-kitchen"));
    assert_eq!(settings.flapping_interval, Duration::from_secs(300));
    assert_eq!(settings.flapping_count_threshold, 3);
    assert_eq!(settings.alert_log_max_age, Duration::from_secs(7200));
    assert_eq!(settings.default_log_pattern_expiration, Expiration::Never);
    assert_eq!(
        settings.default_dbus_alert_expiration,
        Expiration::After(Duration::from_secs(90))
    );
    // Each kind falls back on its own default; a check's own expiration wins.
    assert_eq!(
        settings.dbus_alert_expiration(None),
        Expiration::After(Duration::from_secs(90))
    );
    assert_eq!(settings.pattern_expiration(None), Expiration::Never);
    assert_eq!(
        settings.dbus_alert_expiration(Some(Expiration::After(Duration::from_secs(5)))),
        Expiration::After(Duration::from_secs(5))
    );
    assert_eq!(settings.dbus_expire_seconds(None), Some(90));
    assert_eq!(settings.log_lines_before, 5);
    assert_eq!(settings.log_lines_after, 30);
}

#[test]
fn every_problem_is_reported_with_file_and_key() {
    let (dir, file) = write_settings(
        "flaping_interval: 5m\nflapping_count_threshold: many\nalert_log_max_age: 1x\nstate_dir: var/lib\nlog_lines_after: 5000\n",
    );
    let problems = load_settings(dir.path()).unwrap_err();
    let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let file = file.display();
    assert_eq!(
        messages,
        [
            format!("{file}: flaping_interval: unknown key: use one of device_id, state_dir, runtime_dir, flapping_interval, flapping_count_threshold, alert_log_max_age, default_log_pattern_expiration, default_dbus_alert_expiration, log_lines_before, log_lines_after, log_first_read_limit, log_coalesce, alert_history_max_bytes, checkpoint_interval, default_checks, systemd, delivery, dbus, sysfs_root, procfs_root"),
            format!("{file}: flapping_count_threshold: invalid type: string \"many\", expected u32"),
            format!("{file}: alert_log_max_age: invalid duration \"1x\": unknown unit \"x\", use ms, s, m, h or d (for example 30s, 5m, 2h30m)"),
        ]
    );
}

#[test]
fn semantic_problems_are_reported_together() {
    let (dir, file) = write_settings(
        "state_dir: var/lib\nflapping_interval: 2h\nflapping_count_threshold: 0\nlog_lines_after: 5000\nlog_coalesce: 2s\n",
    );
    let messages: Vec<String> = load_settings(dir.path())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let file = file.display();
    assert_eq!(
        messages,
        [
            format!("{file}: state_dir: relative path \"var/lib\": use an absolute path such as /var/lib/monitor"),
            format!("{file}: flapping_count_threshold: must be at least 1: write a number of state changes such as 5"),
            format!("{file}: alert_log_max_age: 1h is shorter than flapping_interval (2h): flaps would be forgotten before they are counted, make it at least as long"),
            format!("{file}: log_lines_after: 5000 lines is too many: use at most 1000"),
            format!("{file}: log_coalesce: 2s is too long: every log alert may wait that long, use at most 1s (such as 10ms)"),
        ]
    );
}

#[test]
fn yaml_syntax_errors_name_the_file() {
    let (dir, file) = write_settings("device_id: [unclosed\n");
    let problems = load_settings(dir.path()).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].file, file);
    assert!(
        problems[0].message.starts_with("invalid YAML: "),
        "{}",
        problems[0]
    );
    assert!(problems[0].message.ends_with(": fix the syntax"));
}

#[test]
fn a_list_instead_of_keys_is_one_clear_problem() {
    let (dir, file) = write_settings("- a\n- b\n");
    let problems = load_settings(dir.path()).unwrap_err();
    assert_eq!(
        problems,
        [Problem::in_file(
            &file,
            "expected `key: value` lines, found a list: write one key per line"
        )]
    );
}

#[test]
fn webhooks_and_ntfy_topics_read_with_their_defaults() {
    let file = Path::new("/etc/monitor/monitor.yaml");
    let text = "delivery:\n  webhook:\n    - url: https://hooks.example/in\n      secret_env: HOOK_SECRET\n      headers: {X-Team: ops}\n      template: '{\"text\": \"{{title}}\"}'\n  ntfy:\n    - url: http://127.0.0.1:8080/pi\n      token_file: /etc/monitor/ntfy-token\n      priority: {CRITICAL: 5}\n      tags: [pi]\n      min_level: CRITICAL\n";
    let settings = Settings::from_yaml(text, file).unwrap();
    let webhook = &settings.delivery.webhook[0];
    assert_eq!(webhook.headers["X-Team"], "ops");
    assert!(!webhook.allow_insecure);
    let ntfy = &settings.delivery.ntfy[0];
    assert_eq!(ntfy.priority.critical, NtfyPriority::Number(5));
    assert_eq!(ntfy.priority.ok, NtfyPriority::Name("default".into()));
    assert_eq!(ntfy.min_level, MinLevel::Critical);
}

#[test]
fn webhook_and_ntfy_mistakes_name_their_field_and_fix() {
    let file = Path::new("/etc/monitor/monitor.yaml");
    let text = "delivery:\n  webhook:\n    - url: http://hooks.example/in\n      template: '{\"text\": {{title}}}'\n      headers: {Host: x}\n    - url: https://hooks.example/in\n      template: '{\"text\": \"{{tittle}}\"}'\n  ntfy:\n    - url: http://ntfy.lan/pi\n      username: me\n      priority: {OK: loud}\n";
    let problems: Vec<String> = Settings::from_yaml(text, file)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        vec![
            "/etc/monitor/monitor.yaml: delivery.webhook[0].url: http://hooks.example sends alerts unencrypted: use https, or set allow_insecure: true for a receiver on a network you trust",
            "/etc/monitor/monitor.yaml: delivery.webhook[0].template: not JSON once its placeholders are filled (expected value at line 1 column 10): put each placeholder inside a string, for example {\"message\": \"{{title}}\"}",
            "/etc/monitor/monitor.yaml: delivery.webhook[0].headers: Host is set by the agent itself: remove it",
            "/etc/monitor/monitor.yaml: delivery.webhook[1].template: unknown placeholder {{tittle}}: use {{device}}, {{level}}, {{check}}, {{subject}}, {{status}}, {{title}}, {{text}}, {{timestamp}}",
            "/etc/monitor/monitor.yaml: delivery.ntfy[0].url: http://ntfy.lan sends alerts unencrypted: use https, or set allow_insecure: true for a receiver on a network you trust",
            "/etc/monitor/monitor.yaml: delivery.ntfy[0]: basic auth needs both username and one of password_file and password_env",
            "/etc/monitor/monitor.yaml: delivery.ntfy[0].priority.OK: \"loud\" is not a priority: use 1 to 5, or min, low, default, high or max",
        ]
    );
}

#[test]
fn an_unknown_webhook_key_is_named() {
    let file = Path::new("/etc/monitor/monitor.yaml");
    let text =
        "delivery:\n  webhook:\n    - url: https://hooks.example/in\n      secret: hunter2\n";
    let problems: Vec<String> = Settings::from_yaml(text, file)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("/etc/monitor/monitor.yaml: delivery")
            && problems[0].contains("unknown field `secret`")
            && problems[0].contains("secret_file"),
        "{problems:?}"
    );
    assert!(!problems[0].contains("hunter2"), "{problems:?}");
}

#[test]
fn slack_and_telegram_entries_read_secrets_from_files_or_variables() {
    let file = Path::new("/etc/monitor/monitor.yaml");
    let text = "delivery:\n  slack:\n    - webhook_url_file: /etc/monitor/slack-url\n      min_level: CRITICAL\n      checks: [log app]\n  telegram:\n    - bot_token_env: TELEGRAM_TOKEN\n      chat_id: -1001234567890\n    - bot_token_file: /etc/monitor/bot\n      chat_id: '@alerts_channel'\n      api_url: http://127.0.0.1:8081\n";
    let settings = Settings::from_yaml(text, file).unwrap();
    let delivery = &settings.delivery;
    assert_eq!(
        delivery.slack[0].webhook_url_file.as_deref(),
        Some(Path::new("/etc/monitor/slack-url"))
    );
    assert_eq!(delivery.slack[0].min_level, MinLevel::Critical);
    assert_eq!(delivery.slack[0].checks, ["log app"]);
    assert_eq!(
        delivery.telegram[0].chat_id.as_deref(),
        Some("-1001234567890")
    );
    assert_eq!(delivery.telegram[0].api_url, "https://api.telegram.org");
    assert_eq!(
        delivery.telegram[1].chat_id.as_deref(),
        Some("@alerts_channel")
    );
}

#[test]
fn slack_and_telegram_mistakes_name_their_field_and_fix() {
    let file = Path::new("/etc/monitor/monitor.yaml");
    let text = "delivery:\n  slack:\n    - webhook_url: http://example.com/services/T1/B2/secret-of-slack\n      checks: [files]\n    - webhook_url_env: A\n      webhook_url_file: /b\n  telegram:\n    - chat_id: 42\n    - bot_token: '1:x'\n      chat_id: 7\n      api_url: http://bot-api.lan:8081\n";
    let problems: Vec<String> = Settings::from_yaml(text, file)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        [
            "/etc/monitor/monitor.yaml: delivery.slack[0].webhook_url: http://example.com is not https://hooks.slack.com: the secret would go elsewhere; use https://hooks.slack.com, a relay on this machine, or set allow_insecure: true if you mean it",
            "/etc/monitor/monitor.yaml: delivery.slack[0].checks: \"files\": write <subsystem> or <subsystem> <check>, for example \"service crasher\"",
            "/etc/monitor/monitor.yaml: delivery.slack[1]: set exactly one of webhook_url, webhook_url_file and webhook_url_env (the Incoming Webhooks page of your Slack app shows the URL)",
            "/etc/monitor/monitor.yaml: delivery.telegram[0]: set exactly one of bot_token, bot_token_file and bot_token_env (@BotFather gives the token)",
            "/etc/monitor/monitor.yaml: delivery.telegram[1].api_url: http://bot-api.lan:8081 is plain http to another machine: the secret would cross the network in clear; use https, a server on this machine, or set allow_insecure: true if you mean it",
        ]
    );
    assert!(problems
        .iter()
        .all(|problem| !problem.contains("secret-of-slack")));
    // Loopback and allow_insecure are allowed; a missing chat is named.
    let text = "delivery:\n  slack:\n    - webhook_url: http://127.0.0.1:9/services/T1/B2/x\n    - webhook_url: http://relay.lan/services/T1/B2/x\n      allow_insecure: true\n  telegram:\n    - bot_token_env: T\n";
    let problems: Vec<String> = Settings::from_yaml(text, file)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        ["/etc/monitor/monitor.yaml: delivery.telegram[0].chat_id: missing: write the chat's number (-1001234567890 for a group) or @channelusername"]
    );
}

#[test]
fn an_unknown_key_of_a_chat_entry_is_named() {
    let file = Path::new("/etc/monitor/monitor.yaml");
    let text = "delivery:\n  telegram:\n    - bot_token_env: T\n      chat_id: 1\n      chat: 2\n";
    let problems: Vec<String> = Settings::from_yaml(text, file)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("/etc/monitor/monitor.yaml: delivery.telegram")
            && problems[0].contains("unknown field `chat`"),
        "{problems:?}"
    );
}
