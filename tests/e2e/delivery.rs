//! Delivery end to end: the agent's outbox, a Discord stand-in that enforces Discord's
//! documented limits and rate limits, and a devicemonitor stand-in that can go away.

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::devicemonitor_standin::{DeviceMonitorStandIn, DEFAULT_TOKEN, MENDER_DETAILS_KEYS};
use crate::discord_standin::{Behaviour, DiscordStandIn, Scripted};
use crate::harness::{append, eventually, stdout, Sandbox};
use crate::mender_auth_standin::MenderAuthStandIn;
use crate::services::install_failure_handler;
use crate::user_manager::UserManager;

const WEBHOOK_ID: &str = "112233445566778899";
const WEBHOOK_TOKEN: &str = "secret-webhook-token-do-not-log";

pub fn with_discord(sandbox: &mut Sandbox, discord: &DiscordStandIn, extra_settings: &str) {
    sandbox.env.push((
        "TEST_DISCORD_WEBHOOK".into(),
        discord.url(WEBHOOK_ID, WEBHOOK_TOKEN),
    ));
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!("{extra_settings}delivery:\n  discord:\n    - webhook_url_env: TEST_DISCORD_WEBHOOK\n      username: systemd\n"),
    )
    .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Seed 000: `OnFailure=` runs a handler that reports the failed unit; here the shipped
/// `monitor-failure@.service`, through the running agent, to Discord as "systemd".
#[test]
fn seed_000_a_failing_user_service_posts_a_red_embed_as_systemd() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    let discord = DiscordStandIn::start(Behaviour::default());
    let mut sandbox = Sandbox::new();
    sandbox.env.extend(manager.env());
    with_discord(&mut sandbox, &discord, "systemd:\n  bus: user\n");
    install_failure_handler(&manager, &sandbox);
    manager.install_unit(
        "justfail.service",
        "[Unit]\nDescription=This will just fail\nOnFailure=monitor-failure@%n.service\n[Service]\nExecStart=sh -c 'echo fail; exit 1'\n",
    );
    let agent = sandbox.start_agent();
    manager.systemctl(&["start", "justfail"]);

    eventually("Discord got the embed", || !discord.embeds().is_empty());
    let embeds = discord.embeds();
    assert_eq!(embeds.len(), 1, "{embeds:#?}");
    let failed = &embeds[0];
    assert_eq!(failed["title"], "Service justfail not running");
    assert_eq!(failed["color"], 0xFF0000);
    let description = failed["description"].as_str().unwrap();
    assert!(
        description.contains("justfail.service - This will just fail"),
        "{description}"
    );
    assert!(
        description.contains("failed (Result: exit-code)"),
        "{description}"
    );
    let message = &discord.messages()[0];
    assert_eq!(message["username"], "systemd");
    assert_eq!(
        message["allowed_mentions"],
        serde_json::json!({"parse": []})
    );
    // The webhook URL is a secret: not in the agent's log, nor in what monitorctl prints.
    assert!(!agent.log().contains(WEBHOOK_TOKEN), "{}", agent.log());
    let pending = sandbox.monitorctl(&["alerts", "--pending"]);
    let shown = stdout(&pending);
    assert!(shown.contains(&format!("discord:{WEBHOOK_ID}")), "{shown}");
    assert!(!shown.contains(WEBHOOK_TOKEN), "{shown}");
}

/// The backend goes away, alerts are made, the agent is killed with SIGKILL and started
/// again, then the backend comes back: every alert arrives once, in order, with the time
/// it was first observed.
#[test]
fn a_backend_outage_and_a_kill_9_lose_and_repeat_no_alert() {
    let backend = DeviceMonitorStandIn::start();
    backend.set_down(true);
    let sandbox = Sandbox::new();
    fs::write(sandbox.path("token"), DEFAULT_TOKEN).unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "delivery:\n  backend:\n    url: {}\n    auth: token\n    token_file: {}\n",
            backend.url(),
            sandbox.path("token").display()
        ),
    )
    .unwrap();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    for event in 1..=6 {
        let (name, pattern) = (format!("event{event}"), format!("^event-{event}$"));
        sandbox.monitorctl_quietly(&[
            "create",
            "log",
            &name,
            &pattern,
            log.to_str().unwrap(),
            "never",
        ]);
        sandbox.monitorctl_quietly(&["enable", "log", &name]);
    }
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let mut local = Vec::new();
    for event in 1..=3 {
        append(&log, &format!("event-{event}\n"));
        local.push(alerts.expect_level("CRITICAL").1);
    }
    let pending = stdout(&sandbox.monitorctl(&["alerts", "--pending"]));
    assert!(pending.contains("backend"), "{pending}");
    eventually("the backend's failure is shown", || {
        let pending = stdout(&sandbox.monitorctl(&["alerts", "--pending"]));
        pending.contains("backend      3") && pending.contains("503")
    });
    // Killed once the three are on disk (they reach the follower from memory before):
    // a kill before then may send them again, which this test is not about.
    eventually("the three alerts are in alerts.jsonl", || {
        fs::read_to_string(sandbox.state_dir().join("alerts.jsonl"))
            .is_ok_and(|text| text.lines().count() == 3)
    });
    agent.kill_hard();
    for event in 4..=6 {
        append(&log, &format!("event-{event}\n"));
    }
    let _agent = sandbox.start_agent();
    for _ in 4..=6 {
        local.push(alerts.expect_level("CRITICAL").1);
    }

    backend.set_down(false);
    let delivered = runtime().block_on(backend.wait_for_alerts(6, Duration::from_secs(60)));
    assert_eq!(delivered.len(), 6, "{delivered:#?}");
    for (arrived, recorded) in delivered.iter().zip(&local) {
        assert_eq!(arrived["subject"]["name"], recorded["check"]["name"]);
        assert_eq!(
            arrived["timestamp"], recorded["timestamp"],
            "the time it was first observed"
        );
        assert_eq!(arrived["name"], recorded["name"]);
    }
    alerts.assert_quiet_for(Duration::from_millis(500));
    assert_eq!(backend.alerts().len(), 6, "nothing arrived twice");
    // The check configuration was pushed once the backend was back.
    let configs = runtime().block_on(backend.wait_for_configs(1, Duration::from_secs(60)));
    let pushed = configs.last().unwrap().as_array().unwrap().clone();
    assert_eq!(pushed.len(), 6, "{pushed:#?}");
    assert_eq!(pushed[0]["name"], "event1.sh");
    assert_eq!(pushed[0]["type"], "log");
    assert_eq!(pushed[0]["status"], "enabled");
    assert_eq!(pushed[0]["log"]["pattern"], "^event-1$");
}

/// 100 checks match at once and clear a second later: 200 alerts, which Discord must get
/// all of, in messages of several embeds, without one 4xx and within its rate limit.
#[test]
fn a_burst_of_200_alerts_reaches_discord_within_its_limits() {
    let discord = DiscordStandIn::start(Behaviour::default());
    let mut sandbox = Sandbox::new();
    with_discord(&mut sandbox, &discord, "");
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    let config = sandbox.config_dir();
    fs::create_dir_all(config.join("available")).unwrap();
    fs::create_dir_all(config.join("enabled")).unwrap();
    for check in 0..100 {
        let file = format!("log_burst{check:03}.yaml");
        fs::write(
            config.join("available").join(&file),
            format!(
                "pattern: '^burst-{check:03} '\nsource: {}\nexpiration: 1s\n",
                log.display()
            ),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            format!("../available/{file}"),
            config.join("enabled").join(&file),
        )
        .unwrap();
    }
    let _agent = sandbox.start_agent();
    let burst: String = (0..100)
        .map(|check| format!("burst-{check:03} @everyone look\n"))
        .collect();
    append(&log, &burst);

    eventually("Discord got 200 embeds", || discord.embeds().len() >= 200);
    let embeds = discord.embeds();
    assert_eq!(embeds.len(), 200);
    let mut seen: Vec<(String, u64)> = embeds
        .iter()
        .map(|embed| {
            (
                embed["title"].as_str().unwrap().to_owned(),
                embed["color"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 200, "every alert once: 100 CRITICAL and 100 OK");
    let statuses = discord.statuses();
    assert!(statuses.iter().all(|status| *status < 400), "{statuses:?}");
    let requests = discord.requests();
    for (index, request) in requests.iter().enumerate() {
        let within_two_seconds = requests[index..]
            .iter()
            .take_while(|later| later.at.duration_since(request.at) < Duration::from_secs(2))
            .count();
        assert!(
            within_two_seconds <= 5,
            "{within_two_seconds} requests within 2 s"
        );
    }
    assert!(
        requests.len() <= 40,
        "{} requests for 200 alerts",
        requests.len()
    );
}

/// The agent is not running (it may be what failed): `monitor-failure@.service` still gets
/// the alert to Discord, by itself, and leaves nothing pending.
#[test]
fn on_failure_reaches_discord_with_the_agent_down() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    let discord = DiscordStandIn::start(Behaviour::default());
    let mut sandbox = Sandbox::new();
    sandbox.env.extend(manager.env());
    with_discord(&mut sandbox, &discord, "systemd:\n  bus: user\n");
    install_failure_handler(&manager, &sandbox);
    manager.install_unit(
        "discordbot.service",
        "[Unit]\nDescription=Discord bot\nOnFailure=monitor-failure@%n.service\n[Service]\nExecStart=sh -c 'exit 2'\n",
    );
    manager.systemctl(&["start", "discordbot"]);

    eventually("Discord got the embed", || !discord.embeds().is_empty());
    let embed = &discord.embeds()[0];
    assert_eq!(embed["title"], "Service discordbot not running");
    assert_eq!(embed["color"], 0xFF0000);
    let pending = sandbox.monitorctl(&["alerts", "--pending"]);
    let shown = stdout(&pending);
    assert!(
        shown.contains(&format!("discord:{WEBHOOK_ID}  0")),
        "{shown}"
    );
}

/// Writes `monitor.yaml` with a backend at `backend` in token mode (`extra` is YAML under
/// `backend:`, indented by four spaces).
fn with_backend(sandbox: &Sandbox, backend: &DeviceMonitorStandIn, extra: &str) {
    fs::write(sandbox.path("token"), DEFAULT_TOKEN).unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "delivery:\n  backend:\n    url: {}\n    auth: token\n    token_file: {}\n{extra}",
            backend.url(),
            sandbox.path("token").display()
        ),
    )
    .unwrap();
}

/// Ports Mender's `test_monitorclient_send_configuration_data`: services crond and dbus and
/// log checks syslog and clientlogs, created and enabled with the CLI, are pushed as exactly
/// `crond.sh`, `dbus.sh` (service), `syslog.sh`, `clientlogs.sh` (log), all enabled; a
/// disabled check is not pushed (Mender pushes enabled checks only).
#[test]
fn the_config_push_names_enabled_checks_as_mender_does() {
    let backend = DeviceMonitorStandIn::start();
    let sandbox = Sandbox::new();
    with_backend(&sandbox, &backend, "");
    let syslog = sandbox.path("syslog");
    fs::write(&syslog, "").unwrap();
    for (kind, name, rest) in [
        ("service", "crond", vec!["systemd"]),
        ("service", "dbus", vec!["systemd"]),
        (
            "log",
            "syslog",
            vec!["root.*access", syslog.to_str().unwrap()],
        ),
        (
            "log",
            "clientlogs",
            vec!["[Ee]rror.*", "@journalctl -u mender-authd -f"],
        ),
        ("log", "unused", vec!["never", syslog.to_str().unwrap()]),
    ] {
        let mut create = vec!["create", kind, name];
        create.extend(rest);
        sandbox.monitorctl_quietly(&create);
        if name != "unused" {
            sandbox.monitorctl_quietly(&["enable", kind, name]);
        }
    }
    let _agent = sandbox.start_agent();

    let configs = runtime().block_on(backend.wait_for_configs(1, Duration::from_secs(30)));
    let mut pushed: Vec<(String, String, String)> = configs[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| {
            (
                check["name"].as_str().unwrap().to_owned(),
                check["type"].as_str().unwrap().to_owned(),
                check["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pushed.sort();
    let expected = [
        ("clientlogs.sh", "log"),
        ("crond.sh", "service"),
        ("dbus.sh", "service"),
        ("syslog.sh", "log"),
    ]
    .map(|(name, kind)| (name.to_owned(), kind.to_owned(), "enabled".to_owned()));
    assert_eq!(pushed, expected, "{configs:#?}");
}

/// Creates and enables log checks `name` on `log` with `pattern`, no expiration.
fn log_check(sandbox: &Sandbox, name: &str, pattern: &str, log: &std::path::Path) {
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        name,
        pattern,
        log.to_str().unwrap(),
        "never",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", name]);
}

/// The dead-letter file as `monitorctl alerts --rejected --json` prints it.
fn rejected_json(sandbox: &Sandbox) -> Vec<Value> {
    stdout(&sandbox.monitorctl(&["alerts", "--rejected", "--json"]))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Issue 16 item 13: Hosted Mender validates alerts against its public schema, whose
/// `subject.details` has `description`, `line_matching`, `lines_before` and `lines_after`
/// only. In `auth: mender` mode the agent's other details (here the log's `path`) are folded
/// into `description`, and a strict server takes the alert; in `auth: token` mode
/// (monitor-server) every field is sent as it is.
#[test]
fn mender_mode_sends_menders_detail_fields_only_and_token_mode_sends_them_all() {
    let backend = DeviceMonitorStandIn::start();
    backend.set_strict_details(true);
    let Some(auth) = MenderAuthStandIn::start(DEFAULT_TOKEN, &backend.url()) else {
        return;
    };
    let sandbox = Sandbox::new();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "delivery:\n  backend:\n    auth: mender\n    mender_bus: {}\n",
            auth.bus_address
        ),
    )
    .unwrap();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "ERROR", &log);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "ERROR the disk is full\n");
    let (_, local) = alerts.expect("CRITICAL", "log app");
    assert!(
        local["subject"]["details"]["path"].is_string(),
        "the history keeps every field: {local}"
    );

    let delivered = runtime().block_on(backend.wait_for_alerts(1, Duration::from_secs(30)));
    let details = delivered[0]["subject"]["details"].as_object().unwrap();
    for key in details.keys() {
        assert!(MENDER_DETAILS_KEYS.contains(&key.as_str()), "{details:#?}");
    }
    assert_eq!(details["line_matching"]["data"], "ERROR the disk is full");
    let description = details["description"].as_str().unwrap();
    assert!(
        description.contains(&format!("path: {}", log.display())),
        "{description}"
    );
    assert!(
        backend
            .requests()
            .iter()
            .all(|request| request.status < 400),
        "{:#?}",
        backend.requests()
    );
    agent.stop();

    // Token mode (monitor-server takes every field): the fields are sent as they are.
    let relaxed = DeviceMonitorStandIn::start();
    let sandbox = Sandbox::new();
    with_backend(&sandbox, &relaxed, "");
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    log_check(&sandbox, "app", "ERROR", &log);
    log_check(&sandbox, "warning", "WARNING", &log);
    let _agent = sandbox.start_agent();
    append(&log, "ERROR the disk is full\n");
    let delivered = runtime().block_on(relaxed.wait_for_alerts(1, Duration::from_secs(30)));
    assert_eq!(
        delivered[0]["subject"]["details"]["path"],
        log.to_str().unwrap(),
        "{delivered:#?}"
    );
    // The same stand-in, strict, refuses such an alert as Hosted Mender may: it is kept
    // aside with the server's reason.
    relaxed.set_strict_details(true);
    append(&log, "WARNING the disk is almost full\n");
    eventually("the refused alert is in the dead-letter file", || {
        !rejected_json(&sandbox).is_empty()
    });
    let reason = rejected_json(&sandbox)[0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("400")
            && reason.contains("subject.details.")
            && reason.contains("is not allowed"),
        "{reason}"
    );
}

/// Issue 16 item 14, and Mender's `test_monitorclient_alert_store_discard_http_400`: a batch
/// the backend refuses (400) for one bad alert is split until only that alert is left; every
/// other alert arrives, the bad one goes to the dead-letter file with the server's reason
/// (shown by `monitorctl alerts --rejected`), the outbox ends empty and later alerts still
/// arrive.
#[test]
fn a_batch_with_one_refused_alert_delivers_the_others_and_dead_letters_it() {
    let backend = DeviceMonitorStandIn::start();
    backend.set_down(true);
    backend.refuse_alerts_named(Some("BAD"));
    let sandbox = Sandbox::new();
    with_backend(&sandbox, &backend, "");
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    for event in 1..=7 {
        let pattern = if event == 4 {
            "^BAD-event-4$".to_owned()
        } else {
            format!("^event-{event}$")
        };
        log_check(&sandbox, &format!("event{event}"), &pattern, &log);
    }
    log_check(&sandbox, "later", "^later$", &log);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let lines: String = (1..=7)
        .map(|event| {
            if event == 4 {
                "BAD-event-4\n".to_owned()
            } else {
                format!("event-{event}\n")
            }
        })
        .collect();
    append(&log, &lines);
    for _ in 1..=7 {
        alerts.expect_level("CRITICAL");
    }
    eventually("the seven wait in the outbox", || {
        stdout(&sandbox.monitorctl(&["alerts", "--pending"])).contains("backend      7")
    });

    backend.set_down(false);
    let delivered = runtime().block_on(backend.wait_for_alerts(6, Duration::from_secs(60)));
    eventually("the refused alert is in the dead-letter file", || {
        !rejected_json(&sandbox).is_empty()
    });
    let mut names: Vec<&str> = delivered
        .iter()
        .map(|alert| alert["subject"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["event1", "event2", "event3", "event5", "event6", "event7"]
    );
    let rejected = rejected_json(&sandbox);
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert_eq!(rejected[0]["destination"], "backend");
    assert_eq!(rejected[0]["check"]["name"], "event4");
    assert_eq!(rejected[0]["level"], "CRITICAL");
    let reason = rejected[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("400") && reason.contains("is not accepted"),
        "{reason}"
    );
    assert!(!reason.contains(DEFAULT_TOKEN), "{reason}");
    let shown = stdout(&sandbox.monitorctl(&["alerts", "--rejected"]));
    assert!(
        shown.contains("backend")
            && shown.contains("log event4")
            && shown.contains("is not accepted"),
        "{shown}"
    );
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(sandbox.state_dir().join("rejected.jsonl"))
            .unwrap()
            .permissions()
            .mode()
    };
    assert_eq!(mode & 0o777, 0o600);
    eventually("the outbox is empty", || {
        stdout(&sandbox.monitorctl(&["alerts", "--pending"])).contains("backend      0")
    });

    // Later alerts still arrive, and nothing refused is sent again.
    let refused_requests = backend
        .requests()
        .iter()
        .filter(|request| request.status == 400)
        .count();
    append(&log, "later\n");
    let delivered = runtime().block_on(backend.wait_for_alerts(7, Duration::from_secs(30)));
    assert_eq!(delivered[6]["subject"]["name"], "later");
    assert_eq!(
        backend
            .requests()
            .iter()
            .filter(|request| request.status == 400)
            .count(),
        refused_requests
    );
    assert_eq!(rejected_json(&sandbox).len(), 1);
}

/// Issue 16 item 14: long lines of control characters (six bytes each in JSON), kept as 30
/// lines of context before each match, make a batch over the server's 1 MiB body limit; it
/// is split (413) until the parts fit, and the CRITICAL among them arrives. An alert too big
/// on its own is dead-lettered as too large.
#[test]
fn a_batch_over_the_body_limit_is_split_and_its_critical_arrives() {
    let backend = DeviceMonitorStandIn::start();
    backend.set_down(true);
    backend.set_body_limit(Some(1 << 20));
    let sandbox = Sandbox::new();
    with_backend(&sandbox, &backend, "");
    let settings = fs::read_to_string(sandbox.config_dir().join("monitor.yaml")).unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!("log_lines_before: 30\nlog_lines_after: 0\n{settings}"),
    )
    .unwrap();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    for noise in 1..=2 {
        log_check(
            &sandbox,
            &format!("noise{noise}"),
            &format!("^noise-{noise} "),
            &log,
        );
    }
    log_check(&sandbox, "important", "^disk failing$", &log);
    log_check(&sandbox, "huge", "^huge ", &log);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let control = "\u{1}".repeat(8 * 1024);
    let mut lines: String = (1..=30)
        .map(|filler| format!("filler-{filler} {control}\n"))
        .collect();
    for noise in 1..=2 {
        lines.push_str(&format!("noise-{noise} {control}\n"));
    }
    lines.push_str("disk failing\n");
    append(&log, &lines);
    for _ in 1..=3 {
        alerts.expect_level("CRITICAL");
    }
    eventually("the three wait in the outbox", || {
        stdout(&sandbox.monitorctl(&["alerts", "--pending"])).contains("backend      3")
    });

    backend.set_down(false);
    let delivered = runtime().block_on(backend.wait_for_alerts(3, Duration::from_secs(60)));
    let names: Vec<&str> = delivered
        .iter()
        .map(|alert| alert["subject"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["noise1", "noise2", "important"], "in order");
    let important = delivered
        .iter()
        .find(|alert| alert["subject"]["name"] == "important")
        .unwrap();
    assert_eq!(important["level"], "CRITICAL");
    let requests = backend.requests();
    let sizes: Vec<(u16, usize)> = requests
        .iter()
        .map(|request| (request.status, request.body.len()))
        .collect();
    assert!(
        sizes
            .iter()
            .any(|(status, size)| *status == 413 && *size > 1 << 20),
        "the whole batch was over 1 MiB and refused: {sizes:?}"
    );
    assert!(rejected_json(&sandbox).is_empty());

    // Under a smaller limit one such alert is too big on its own: it is kept aside.
    backend.set_body_limit(Some(100_000));
    append(&log, &format!("huge {control}\n"));
    alerts.expect("CRITICAL", "log huge");
    eventually("the alert too big alone is in the dead-letter file", || {
        !rejected_json(&sandbox).is_empty()
    });
    let rejected = rejected_json(&sandbox);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["check"]["name"], "huge");
    let reason = rejected[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("413") && reason.contains("too large"),
        "{reason}"
    );
    assert_eq!(rejected[0]["shortened"], true, "kept bounded");
    assert_eq!(backend.alerts().len(), 3);
}

/// Issue 16 item 14, Discord: a 400 for a message is no longer the end of the alerts in it:
/// the batch is split and sent again in parts, so alerts that were fine all arrive, and
/// nothing is kept aside when no alert is refused on its own.
#[test]
fn a_discord_400_splits_the_batch_and_loses_no_alert() {
    let discord = DiscordStandIn::start(Behaviour::default());
    // A 503 first, so that the three wait together for the retry, which gets the 400.
    discord.script([
        Scripted::ServerError(503),
        Scripted::Json {
            status: 400,
            body: serde_json::json!({"message": "Invalid Form Body", "code": 50035}),
        },
    ]);
    let mut sandbox = Sandbox::new();
    with_discord(&mut sandbox, &discord, "");
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    for event in 1..=3 {
        log_check(
            &sandbox,
            &format!("event{event}"),
            &format!("^event-{event}$"),
            &log,
        );
    }
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "event-1\nevent-2\nevent-3\n");
    for _ in 1..=3 {
        alerts.expect_level("CRITICAL");
    }
    eventually("Discord got the three embeds", || {
        discord.embeds().len() >= 3
    });
    let mut titles: Vec<String> = discord
        .embeds()
        .iter()
        .map(|embed| embed["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert!(
        discord.statuses().contains(&400),
        "{:?}",
        discord.statuses()
    );
    assert!(rejected_json(&sandbox).is_empty());
}
