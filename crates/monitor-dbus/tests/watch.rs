//! The watcher against a real private `dbus-daemon` per test, with peers emitting real
//! signals. Every wait is for an observed event with a deadline; "nothing arrives" is a
//! quiet window on the event channel.

#[path = "../../../tests/support/watcher.rs"]
mod watcher;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use monitor_dbus::{run, DbusWatchError, SignalBus, SignalEvent, SignalWatchConfig, WatchedSignal};
use monitor_wire::{CheckId, Details, Subsystem};
use watcher::WatcherUnderTest;
use zbus::Connection;

const EVENT_DEADLINE: Duration = Duration::from_secs(15);
/// How long "nothing else arrives" is watched for.
const QUIET_WINDOW: Duration = Duration::from_millis(400);
const DAEMON_START_DEADLINE: Duration = Duration::from_secs(10);

const SENSOR: &str = "org.example.Sensor";
const SENSOR_PATH: &str = "/org/example/Sensor";
const SENSOR_RULE: &str = "type='signal',interface='org.example.Sensor'";

/// A private `dbus-daemon` on a socket in a temporary directory.
struct PrivateBus {
    directory: tempfile::TempDir,
    address: String,
    daemon: Child,
}

impl PrivateBus {
    /// Starts one, or returns `None` (saying why) when `dbus-daemon` is missing, unless
    /// `CI=true`, where that fails the test.
    fn start() -> Option<PrivateBus> {
        let available = Command::new("dbus-daemon")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !available {
            let reason =
                "dbus-daemon is not installed (install the dbus-daemon or dbus-bin package)";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but the D-Bus watcher tests cannot run: {reason}");
            }
            eprintln!("skipping: the D-Bus watcher tests cannot run: {reason}");
            return None;
        }
        let directory = tempfile::tempdir().expect("create a directory for the bus");
        let address = format!("unix:path={}", directory.path().join("bus").display());
        let daemon = start_daemon(&address, &directory.path().join("dbus-daemon.log"));
        Some(PrivateBus {
            directory,
            address,
            daemon,
        })
    }

    /// Kills the daemon (every connection drops) and starts a new one at the same address.
    fn restart(&mut self) {
        self.stop_daemon();
        let _ = std::fs::remove_file(self.directory.path().join("bus"));
        self.daemon = start_daemon(
            &self.address,
            &self.directory.path().join("dbus-daemon.log"),
        );
    }

    fn stop_daemon(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }

    /// A peer connection, owning `name` if given.
    async fn peer(&self, name: Option<&str>) -> Connection {
        let mut builder = zbus::connection::Builder::address(self.address.as_str()).unwrap();
        if let Some(name) = name {
            builder = builder.name(name.to_owned()).unwrap();
        }
        tokio::time::timeout(EVENT_DEADLINE, builder.build())
            .await
            .expect("the peer connects in time")
            .expect("the peer connects")
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        self.stop_daemon();
    }
}

/// Starts `dbus-daemon` at `address` and waits until it prints that it listens.
fn start_daemon(address: &str, log: &std::path::Path) -> Child {
    let log_file = std::fs::File::create(log).expect("create dbus-daemon.log");
    let mut daemon = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .arg(format!("--address={address}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("spawn dbus-daemon");
    let stdout = daemon.stdout.take().expect("dbus-daemon's stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    match receiver.recv_timeout(DAEMON_START_DEADLINE) {
        Ok(line) if !line.trim().is_empty() => daemon,
        outcome => {
            let _ = daemon.kill();
            let status = daemon.wait();
            panic!(
                "dbus-daemon did not start within {DAEMON_START_DEADLINE:?} ({outcome:?}, exit: {status:?}); its log: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

fn check(name: &str) -> CheckId {
    CheckId::new(Subsystem::Dbus, name)
}

/// A check; `sender` empty: from anybody.
fn signal(name: &str, sender: &str, pattern: &str, watch_expression: &str) -> WatchedSignal {
    WatchedSignal {
        check: check(name),
        sender: (!sender.is_empty()).then(|| sender.to_owned()),
        pattern: (!pattern.is_empty()).then(|| regex::bytes::Regex::new(pattern).unwrap()),
        watch_expression: watch_expression.to_owned(),
    }
}

watcher::watcher_under_test!(Watcher, SignalWatchConfig, SignalEvent, DbusWatchError);

impl Watcher {
    fn start(bus: &PrivateBus, signals: Vec<WatchedSignal>) -> Watcher {
        let config = SignalWatchConfig {
            bus: SignalBus::Address(bus.address.clone()),
            signals,
        };
        Watcher(WatcherUnderTest::start(config, 64, EVENT_DEADLINE, run))
    }

    async fn expect_connected(&mut self) {
        let event = self.next().await;
        assert_eq!(event, SignalEvent::Connected, "events: {:#?}", self.seen);
    }

    /// The next event, which must be a `Matched`: its check, text and details.
    async fn expect_matched(&mut self) -> (CheckId, String, Details) {
        match self.next().await {
            SignalEvent::Matched {
                check,
                text,
                details,
            } => (check, text, details),
            other => panic!("expected a match, got {other:?}; events: {:#?}", self.seen),
        }
    }

    /// Nothing arrives within [`QUIET_WINDOW`].
    async fn expect_quiet(&mut self) {
        self.0.expect_quiet(QUIET_WINDOW).await;
    }

    async fn stop(self) {
        let (ended, _) = self.0.stop().await;
        let outcome = ended.expect("the watcher does not panic");
        assert!(outcome.is_ok(), "the watcher failed: {outcome:?}");
    }
}

async fn emit(peer: &Connection, interface: &str, member: &str, text: &str) {
    peer.emit_signal(None::<&str>, SENSOR_PATH, interface, member, &text)
        .await
        .expect("emit a signal");
}

fn field<'a>(details: &'a Details, name: &str) -> &'a serde_json::Value {
    details
        .fields
        .get(name)
        .unwrap_or_else(|| panic!("no field `{name}` in {details:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_matching_rule_and_pattern_is_reported() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let mut watcher = Watcher::start(&bus, vec![signal("sensor", "", "overheat", SENSOR_RULE)]);
    watcher.expect_connected().await;
    let peer = bus.peer(None).await;
    emit(&peer, SENSOR, "Reading", "all fine").await;
    peer.emit_signal(
        None::<&str>,
        SENSOR_PATH,
        SENSOR,
        "Reading",
        &("overheat on cpu0", 42i32),
    )
    .await
    .unwrap();

    // Signals of one peer arrive in order: "all fine" was seen first and not reported.
    let (check_id, text, details) = watcher.expect_matched().await;
    assert_eq!(check_id, check("sensor"));
    let sender = peer.unique_name().unwrap().to_string();
    assert_eq!(
        text,
        format!(
            "signal sender={sender} path={SENSOR_PATH} interface={SENSOR} member=Reading args: string \"overheat on cpu0\" int32 42"
        )
    );
    assert_eq!(details.description.as_deref(), Some(text.as_str()));
    assert_eq!(field(&details, "member"), "Reading");
    assert_eq!(field(&details, "interface"), SENSOR);
    assert_eq!(field(&details, "path"), SENSOR_PATH);
    assert_eq!(field(&details, "sender"), sender.as_str());
    assert_eq!(
        field(&details, "args"),
        &serde_json::json!(["overheat on cpu0", 42])
    );
    assert!(!details.fields.contains_key("coalesced"));

    emit(&peer, SENSOR, "Reading", "all fine").await;
    watcher.expect_quiet().await;
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_pattern_every_signal_of_the_rule_matches() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let mut watcher = Watcher::start(&bus, vec![signal("sensor", "", "", SENSOR_RULE)]);
    watcher.expect_connected().await;
    let peer = bus.peer(None).await;
    emit(&peer, "org.example.Other", "Reading", "other interface").await;
    emit(&peer, SENSOR, "Reading", "first").await;
    emit(&peer, SENSOR, "Calibrated", "second").await;

    let (_, first, _) = watcher.expect_matched().await;
    assert!(first.contains("member=Reading"), "{first}");
    assert!(first.contains("\"first\""), "{first}");
    // The second is within the coalescing window: it comes when the window ends.
    let (_, second, details) = watcher.expect_matched().await;
    assert!(second.contains("member=Calibrated"), "{second}");
    assert!(!details.fields.contains_key("coalesced"), "{details:?}");
    watcher.expect_quiet().await;
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_restricts_the_check_to_that_bus_name() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    const NAME: &str = "org.example.SensorService";
    let mut watcher = Watcher::start(
        &bus,
        vec![
            signal("owned", NAME, "", SENSOR_RULE),
            signal("anyone", "", "", SENSOR_RULE),
        ],
    );
    watcher.expect_connected().await;
    let owner = bus.peer(Some(NAME)).await;
    let stranger = bus.peer(None).await;
    let owner_name = owner.unique_name().unwrap().to_string();
    let stranger_name = stranger.unique_name().unwrap().to_string();

    emit(&stranger, SENSOR, "Reading", "from the stranger").await;
    emit(&owner, SENSOR, "Reading", "from the owner").await;
    let mut matches = Vec::new();
    while matches.len() < 3 {
        let (check_id, text, details) = watcher.expect_matched().await;
        matches.push((check_id.name, field(&details, "sender").clone(), text));
    }
    watcher.expect_quiet().await;
    let owned: Vec<_> = matches
        .iter()
        .filter(|(name, ..)| name == "owned")
        .collect();
    assert_eq!(owned.len(), 1, "{matches:#?}");
    assert_eq!(owned[0].1, owner_name.as_str());
    let anyone: Vec<_> = matches
        .iter()
        .filter(|(name, ..)| name == "anyone")
        .map(|(_, sender, _)| sender.clone())
        .collect();
    assert!(anyone.contains(&serde_json::json!(stranger_name)));
    assert!(anyone.contains(&serde_json::json!(owner_name)));

    // The name changes hands: the new owner's signals count, the old owner's no longer.
    drop(owner);
    let new_owner = bus.peer(Some(NAME)).await;
    let new_owner_name = new_owner.unique_name().unwrap().to_string();
    emit(&new_owner, SENSOR, "Reading", "from the new owner").await;
    let mut owned_senders = Vec::new();
    for _ in 0..2 {
        let (check_id, _, details) = watcher.expect_matched().await;
        if check_id.name == "owned" {
            owned_senders.push(field(&details, "sender").clone());
        }
    }
    assert_eq!(owned_senders, vec![serde_json::json!(new_owner_name)]);
    watcher.expect_quiet().await;
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_coalesced_and_counted() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    const FLOOD: u64 = 1000;
    let mut watcher = Watcher::start(&bus, vec![signal("sensor", "", "", SENSOR_RULE)]);
    watcher.expect_connected().await;
    let peer = bus.peer(None).await;
    let started = Instant::now();
    for index in 0..FLOOD {
        emit(&peer, SENSOR, "Reading", &format!("reading {index}")).await;
    }
    let emitted_in = started.elapsed();

    let mut delivered = Vec::new();
    let mut total = 0;
    while total < FLOOD {
        let (_, text, details) = watcher.expect_matched().await;
        let coalesced = details
            .fields
            .get("coalesced")
            .map_or(0, |count| count.as_u64().expect("a count"));
        total += 1 + coalesced;
        delivered.push((text, coalesced));
    }
    watcher.expect_quiet().await;
    eprintln!(
        "{FLOOD} signals emitted in {emitted_in:?}, delivered as {} events in {:?}",
        delivered.len(),
        started.elapsed()
    );
    assert_eq!(total, FLOOD, "{delivered:#?}");
    assert!(delivered.len() <= 50, "{} events", delivered.len());
    let (last_text, last_coalesced) = delivered.last().unwrap();
    assert!(*last_coalesced > 0, "{delivered:#?}");
    assert!(
        last_text.contains(&format!("\"reading {}\"", FLOOD - 1)),
        "the last event carries the latest signal: {last_text}"
    );
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rule_is_a_problem_and_other_checks_still_fire() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let mut watcher = Watcher::start(
        &bus,
        vec![
            signal(
                "broken",
                "",
                "",
                "type='signal,interface='org.example.Sensor'",
            ),
            signal("unknown_key", "", "", "type='signal',colour='red'"),
            signal("sensor", "", "", SENSOR_RULE),
        ],
    );
    for expected in ["broken", "unknown_key"] {
        match watcher.next().await {
            SignalEvent::Problem { check: id, message } => {
                assert_eq!(id, check(expected));
                assert!(message.contains("watch expression"), "{message}");
            }
            other => panic!("expected a problem, got {other:?}"),
        }
    }
    watcher.expect_connected().await;
    let peer = bus.peer(None).await;
    emit(&peer, SENSOR, "Reading", "still watched").await;
    let (check_id, _, _) = watcher.expect_matched().await;
    assert_eq!(check_id, check("sensor"));
    watcher.expect_quiet().await;
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_bus_is_reconnected_and_rules_re_added() {
    let Some(mut bus) = PrivateBus::start() else {
        return;
    };
    let mut watcher = Watcher::start(&bus, vec![signal("sensor", "", "hot", SENSOR_RULE)]);
    watcher.expect_connected().await;
    let peer = bus.peer(None).await;
    emit(&peer, SENSOR, "Reading", "hot before").await;
    watcher.expect_matched().await;
    drop(peer);

    let restarted = Instant::now();
    bus.restart();
    match watcher.next().await {
        SignalEvent::Disconnected { reason } => assert!(!reason.is_empty()),
        other => panic!("expected a disconnection, got {other:?}"),
    }
    watcher.expect_connected().await;
    eprintln!("reconnected {:?} after the restart", restarted.elapsed());
    let peer = bus.peer(None).await;
    emit(&peer, SENSOR, "Reading", "hot after").await;
    let (_, text, _) = watcher.expect_matched().await;
    assert!(text.contains("\"hot after\""), "{text}");
    watcher.expect_quiet().await;
    watcher.stop().await;
}
