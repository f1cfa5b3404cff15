//! The state folder on a disk that misbehaves: `tests/support/faultfs.rs` (a FUSE
//! pass-through with faults) tested on its own, then the agent with its `state_dir` on it.
//!
//! The agent's contract here: delivery never waits on an fsync (alerts go to Discord and to
//! `monitorctl alerts --follow` from memory), and a state folder that is full, failing or
//! read-only is reported as the agent's own CRITICAL `monitor state_dir` while alerts keep
//! flowing, then recorded once the disk takes writes again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::delivery::with_discord;
use crate::discord_standin::{Behaviour, DiscordStandIn};
use crate::faultfs::FaultFs;
use crate::harness::{append, describe_check, eventually, stdout, AlertFollower, Sandbox};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;
const EROFS: i32 = 30;
const COLOR_CRITICAL: u64 = 0xFF0000;
const COLOR_OK: u64 = 0x2ECC71;
const STATE_ALERT: &str = "Monitor state folder not writable";
/// What the agent may take to get an alert out while its disk stalls.
const DELIVERY_BOUND: Duration = Duration::from_secs(1);

/// A mount over a fresh backing folder; the file system goes before the folders.
struct Mounted {
    fs: FaultFs,
    dir: tempfile::TempDir,
}

impl Mounted {
    fn new() -> Option<Mounted> {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir(dir.path().join("backing")).unwrap();
        fs::create_dir(dir.path().join("mount")).unwrap();
        let fs = FaultFs::mount_or_skip(&dir.path().join("backing"), &dir.path().join("mount"))?;
        Some(Mounted { fs, dir })
    }

    fn root(&self) -> &Path {
        self.fs.mountpoint()
    }

    fn backing(&self, relative: &str) -> std::path::PathBuf {
        self.dir.path().join("backing").join(relative)
    }
}

fn is_mounted(mountpoint: &Path) -> bool {
    let mountpoint = mountpoint.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(mountpoint))
}

#[track_caller]
fn assert_errno<T: std::fmt::Debug>(result: io::Result<T>, errno: i32) {
    match result {
        Err(error) => assert_eq!(error.raw_os_error(), Some(errno), "{error}"),
        Ok(value) => panic!("expected errno {errno}, got {value:?}"),
    }
}

#[test]
fn faultfs_passes_through_what_the_agent_does_in_its_state_folder() {
    let Some(mounted) = Mounted::new() else {
        return;
    };
    let root = mounted.root();

    // The history: appended by two handles, fsynced, under a flock.
    let history = root.join("alerts.jsonl");
    let mut first = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&history)
        .unwrap();
    first.write_all(b"one\n").unwrap();
    first.sync_data().unwrap();
    let mut second = OpenOptions::new().append(true).open(&history).unwrap();
    second.write_all(b"two\n").unwrap();
    assert_eq!(fs::read_to_string(&history).unwrap(), "one\ntwo\n");
    assert_eq!(
        fs::read_to_string(mounted.backing("alerts.jsonl")).unwrap(),
        "one\ntwo\n"
    );
    first.lock().unwrap();
    assert!(
        matches!(second.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        "a flock holds against another open file"
    );
    first.unlock().unwrap();
    second.try_lock().unwrap();
    second.unlock().unwrap();

    // write_atomically: a temporary file, fsync, rename over the old one, fsync the folder.
    fs::create_dir(root.join("outbox")).unwrap();
    let progress = root.join("outbox/progress.json");
    fs::write(&progress, "old").unwrap();
    let temporary = root.join("outbox/progress.json.tmp");
    let mut file = File::create(&temporary).unwrap();
    file.write_all(b"new").unwrap();
    file.sync_all().unwrap();
    fs::rename(&temporary, &progress).unwrap();
    File::open(root.join("outbox")).unwrap().sync_all().unwrap();
    assert_eq!(fs::read_to_string(&progress).unwrap(), "new");
    let names: Vec<String> = fs::read_dir(root.join("outbox"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["progress.json"]);

    // chmod, truncate (cutting a torn record), unlink.
    fs::set_permissions(
        &history,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&history).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    first.set_len(4).unwrap();
    assert_eq!(fs::read_to_string(&history).unwrap(), "one\n");
    assert_eq!(fs::metadata(&history).unwrap().len(), 4);
    drop((first, second));
    fs::remove_file(&history).unwrap();
    assert!(!history.exists());
    assert!(!mounted.backing("alerts.jsonl").exists());

    let counters = mounted.fs.counters();
    assert_eq!(
        (
            counters.writes,
            counters.bytes_written,
            counters.fsyncs,
            counters.fsyncdirs,
            counters.renames,
            counters.creates,
            counters.mkdirs,
            counters.unlinks,
            counters.refused,
        ),
        (4, 14, 2, 1, 1, 3, 1, 1, 0),
        "{counters:?}"
    );
}

#[test]
fn each_fault_of_faultfs_refuses_what_it_says_until_healed() {
    let Some(mounted) = Mounted::new() else {
        return;
    };
    let root = mounted.root();
    let existing = root.join("existing");
    fs::write(&existing, "kept\n").unwrap();
    let mut open = OpenOptions::new().append(true).open(&existing).unwrap();

    mounted.fs.no_space();
    assert_errno(open.write_all(b"x"), ENOSPC);
    assert_errno(File::create(root.join("new")), ENOSPC);
    assert_errno(fs::create_dir(root.join("folder")), ENOSPC);
    assert_errno(fs::rename(&existing, root.join("renamed")), ENOSPC);
    open.sync_all().expect("a full disk still flushes");
    mounted.fs.heal();
    open.write_all(b"after ENOSPC\n").unwrap();

    mounted.fs.io_error();
    assert_errno(open.write_all(b"x"), EIO);
    assert_errno(open.sync_all(), EIO);
    assert_eq!(
        fs::read_to_string(&existing).unwrap(),
        "kept\nafter ENOSPC\n"
    );
    mounted.fs.heal();
    open.write_all(b"after EIO\n").unwrap();
    open.sync_all().unwrap();

    mounted.fs.read_only();
    assert_errno(open.write_all(b"x"), EROFS);
    assert_errno(File::create(root.join("new")), EROFS);
    assert_errno(OpenOptions::new().append(true).open(&existing), EROFS);
    assert_errno(fs::rename(&existing, root.join("renamed")), EROFS);
    assert_errno(fs::remove_file(&existing), EROFS);
    assert_errno(fs::create_dir(root.join("folder")), EROFS);
    assert_errno(
        fs::set_permissions(
            &existing,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        ),
        EROFS,
    );
    assert_eq!(
        fs::read_to_string(&existing).unwrap(),
        "kept\nafter ENOSPC\nafter EIO\n",
        "reads work on a read-only disk"
    );
    assert_eq!(mounted.fs.counters().refused, 13);

    mounted.fs.heal();
    open.write_all(b"healed\n").unwrap();
    fs::rename(&existing, root.join("renamed")).unwrap();
    fs::create_dir(root.join("folder")).unwrap();
    fs::remove_file(root.join("renamed")).unwrap();
    assert_eq!(mounted.fs.counters().refused, 13);
}

#[test]
fn a_stalled_fsync_of_faultfs_blocks_neither_writes_nor_stats_and_heal_or_kill_ends_it() {
    let Some(mounted) = Mounted::new() else {
        return;
    };
    let root = mounted.root().to_owned();
    let checkpoint = root.join("checkpoint.json");
    let history = root.join("alerts.jsonl");
    fs::write(&checkpoint, "{}").unwrap();
    fs::write(&history, "").unwrap();

    // A short stall lasts as long as it says.
    let short = Duration::from_millis(300);
    mounted.fs.stall_fsync(short);
    let started = Instant::now();
    File::open(&checkpoint).unwrap().sync_all().unwrap();
    assert!(started.elapsed() >= short, "{:?}", started.elapsed());

    // A long one: everything else goes on meanwhile.
    let long = Duration::from_secs(60);
    mounted.fs.stall_fsync(long);
    let syncing = checkpoint.clone();
    let fsync = thread::spawn(move || {
        let started = Instant::now();
        File::open(&syncing).unwrap().sync_all().unwrap();
        started.elapsed()
    });
    eventually("the fsync waits out its stall", || {
        mounted.fs.stalled_fsyncs() == 1
    });
    let during = Instant::now();
    append(&history, "written meanwhile\n");
    assert_eq!(fs::metadata(&checkpoint).unwrap().len(), 2);
    assert_eq!(fs::read_dir(&root).unwrap().count(), 2);
    assert_eq!(fs::read_to_string(&history).unwrap(), "written meanwhile\n");
    assert!(
        during.elapsed() < Duration::from_secs(1),
        "a write, a stat and a listing took {:?} during a stalled fsync",
        during.elapsed()
    );
    assert!(!fsync.is_finished(), "the fsync is still stalled");

    mounted.fs.heal();
    let took = fsync.join().unwrap();
    assert!(took < long, "heal ended the stall after {took:?}");
    assert_eq!(mounted.fs.stalled_fsyncs(), 0);

    // A program killed in a stalled fsync dies without waiting for the stall to end.
    mounted.fs.stall_fsync(long);
    let mut syncing = Command::new("sync").arg(&checkpoint).spawn().unwrap();
    eventually("sync waits out its stall", || {
        mounted.fs.stalled_fsyncs() == 1
    });
    let killed = Instant::now();
    syncing.kill().unwrap();
    syncing.wait().unwrap();
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "kill -9 took {:?} to end a program in a stalled fsync",
        killed.elapsed()
    );
    eventually("the stall ends with its caller", || {
        mounted.fs.stalled_fsyncs() == 0
    });
}

#[test]
fn dropping_faultfs_unmounts_it_even_in_a_panic_or_with_a_file_open() {
    let dir = tempfile::tempdir().unwrap();
    let (backing, mountpoint) = (dir.path().join("backing"), dir.path().join("mount"));
    fs::create_dir(&backing).unwrap();
    fs::create_dir(&mountpoint).unwrap();
    let Some(mounted) = FaultFs::mount_or_skip(&backing, &mountpoint) else {
        return;
    };
    fs::write(mountpoint.join("kept"), "on the backing folder").unwrap();
    assert!(is_mounted(&mountpoint));
    drop(mounted);
    assert!(!is_mounted(&mountpoint));
    assert_eq!(
        fs::read_to_string(backing.join("kept")).unwrap(),
        "on the backing folder"
    );

    let panicked = std::panic::catch_unwind(|| {
        let _mounted = FaultFs::mount(&backing, &mountpoint).unwrap();
        assert!(is_mounted(&mountpoint));
        panic!("a test fails with the file system mounted");
    });
    assert!(panicked.is_err());
    assert!(!is_mounted(&mountpoint));

    let mounted = FaultFs::mount(&backing, &mountpoint).unwrap();
    let still_open = File::open(mountpoint.join("kept")).unwrap();
    drop(mounted);
    assert!(!is_mounted(&mountpoint), "a busy mount is detached");
    drop(still_open);
}

// ---- The agent with its state folder on faultfs ----

/// The sandbox's `state` folder becomes a faultfs mount over `state-backing`. Declared after
/// the sandbox (and before the agent), it is unmounted after the agent stops and before the
/// sandbox's folders go.
fn state_dir_on_faultfs(sandbox: &Sandbox) -> Option<FaultFs> {
    let backing = sandbox.path("state-backing");
    fs::create_dir(&backing).unwrap();
    FaultFs::mount_or_skip(&backing, &sandbox.state_dir())
}

/// Discord's own limit (5 requests per 2 s) would make the agent wait on purpose; these
/// tests measure how long it waits for its disk.
fn discord_without_rate_limit() -> DiscordStandIn {
    DiscordStandIn::start(Behaviour {
        limit: 1000,
        ..Behaviour::default()
    })
}

/// Log checks that never expire, `name` matching exactly the line `name`.
fn log_checks(sandbox: &Sandbox, log: &Path, names: &[&str]) {
    fs::write(log, "").unwrap();
    for name in names {
        sandbox.monitorctl_quietly(&[
            "create",
            "log",
            name,
            &format!("^{name}$"),
            log.to_str().unwrap(),
            "never",
        ]);
        sandbox.monitorctl_quietly(&["enable", "log", name]);
    }
}

/// Every embed Discord accepted, with the time its request arrived.
fn arrivals(discord: &DiscordStandIn) -> Vec<(Instant, Value)> {
    discord
        .requests()
        .into_iter()
        .filter(|request| request.status < 300)
        .flat_map(|request| {
            let message: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let embeds = message["embeds"].as_array().cloned().unwrap_or_default();
            embeds.into_iter().map(move |embed| (request.at, embed))
        })
        .collect()
}

fn field<'a>(embed: &'a Value, name: &str) -> Option<&'a str> {
    embed["fields"]
        .as_array()?
        .iter()
        .find(|field| field["name"] == name)?["value"]
        .as_str()
}

/// The first embed for `check` ("log event1") in `color`, waiting for it.
fn discord_embed(discord: &DiscordStandIn, check: &str, color: u64) -> (Instant, Value) {
    let mut found = None;
    eventually(
        &format!("Discord gets an embed for {check} ({color:#x})"),
        || {
            found = arrivals(discord)
                .into_iter()
                .find(|(_, embed)| field(embed, "Check") == Some(check) && embed["color"] == color);
            found.is_some()
        },
    );
    found.unwrap()
}

/// Alerts from `alerts --follow` until one is `level` for `check`.
fn follow_until(alerts: &mut AlertFollower, level: &str, check: &str) -> (Instant, Value) {
    loop {
        let (at, alert) = alerts.next();
        if alert["level"] == level && describe_check(&alert) == check {
            return (at, alert);
        }
    }
}

/// `monitorctl alerts --json`: the history in `alerts.jsonl`.
fn history(sandbox: &Sandbox) -> Vec<Value> {
    let output = sandbox.monitorctl(&["alerts", "--json"]);
    stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("alerts --json prints JSON lines"))
        .collect()
}

fn recorded(history: &[Value], level: &str, check: &str) -> usize {
    history
        .iter()
        .filter(|alert| alert["level"] == level && describe_check(alert) == check)
        .count()
}

/// CPU time the process has used (user + system), from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("the agent runs");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let output = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    let per_second: u64 = stdout(&output).trim().parse().unwrap();
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

#[test]
fn delivery_never_waits_on_an_fsync_of_the_state_folder() {
    let discord = discord_without_rate_limit();
    let mut sandbox = Sandbox::new();
    with_discord(&mut sandbox, &discord, "");
    let Some(state) = state_dir_on_faultfs(&sandbox) else {
        return;
    };
    let log = sandbox.path("app.log");
    let names: Vec<String> = (1..=10).map(|event| format!("event{event}")).collect();
    log_checks(
        &sandbox,
        &log,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let stall = Duration::from_secs(5);
    state.stall_fsync(stall);
    let before = state.counters();

    let mut to_discord = Vec::new();
    let mut to_follower = Vec::new();
    for name in &names {
        let check = format!("log {name}");
        let written = Instant::now();
        append(&log, &format!("{name}\n"));
        let (arrived, _) = discord_embed(&discord, &check, COLOR_CRITICAL);
        let took = arrived.duration_since(written);
        assert!(
            took < DELIVERY_BOUND,
            "{check} reached Discord {took:?} after its line, with every fsync stalled {stall:?}"
        );
        to_discord.push(took);
        let (shown, _) = follow_until(&mut alerts, "CRITICAL", &check);
        let took = shown.duration_since(written);
        assert!(
            took < DELIVERY_BOUND,
            "`monitorctl alerts --follow` showed {check} {took:?} after its line, with every fsync stalled {stall:?}"
        );
        to_follower.push(took);
        if to_follower.len() == 1 {
            // From here on the persist thread sits in a stalled fsync: the other alerts are
            // measured while it does (on a loaded machine it may get there only now).
            eventually("the agent's writes wait on a stalled fsync", || {
                state.stalled_fsyncs() > 0
            });
        }
    }
    for (what, mut delays) in [("Discord", to_discord), ("alerts --follow", to_follower)] {
        delays.sort();
        eprintln!(
            "line to {what} with fsyncs stalled {stall:?}: p50 {:?}, p99 {:?}, max {:?}",
            percentile(&delays, 0.5),
            percentile(&delays, 0.99),
            delays.last().unwrap()
        );
    }
    let after = state.counters();
    assert!(
        state.stalled_fsyncs() > 0
            || after.fsyncs + after.fsyncdirs > before.fsyncs + before.fsyncdirs,
        "the agent fsynced nothing: the test did not exercise the stall"
    );
}

#[derive(Debug, Clone, Copy)]
enum StateFault {
    Full,
    Failing,
    ReadOnly,
}

/// The agent starts on a healthy state folder, then `fault` strikes: alerts still reach
/// Discord, the agent reports `monitor state_dir` CRITICAL without spinning, and after the
/// disk heals it sends the OK and records what it could not.
fn a_failing_state_folder(fault: StateFault) {
    let discord = discord_without_rate_limit();
    let mut sandbox = Sandbox::new();
    with_discord(&mut sandbox, &discord, "");
    let Some(state) = state_dir_on_faultfs(&sandbox) else {
        return;
    };
    let log = sandbox.path("app.log");
    log_checks(&sandbox, &log, &["during"]);
    let mut agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    match fault {
        StateFault::Full => state.no_space(),
        StateFault::Failing => state.io_error(),
        StateFault::ReadOnly => state.read_only(),
    }
    append(&log, "during\n");
    discord_embed(&discord, "log during", COLOR_CRITICAL);
    let (_, state_critical) = discord_embed(&discord, "monitor state_dir", COLOR_CRITICAL);
    assert_eq!(state_critical["title"], STATE_ALERT, "{state_critical:#}");
    let (_, reported) = follow_until(&mut alerts, "CRITICAL", "monitor state_dir");
    assert_eq!(reported["name"], STATE_ALERT, "{reported:#}");
    assert_eq!(reported["subject"]["type"], "monitor", "{reported:#}");
    eventually(
        "`monitorctl status` shows monitor state_dir CRITICAL",
        || {
            let status: Value =
                serde_json::from_slice(&sandbox.monitorctl(&["status", "--json"]).stdout)
                    .unwrap_or_default();
            status["checks"].as_array().is_some_and(|checks| {
                checks.iter().any(|check| {
                    check["check"]["subsystem"] == "monitor"
                        && check["check"]["name"] == "state_dir"
                        && check["state"] == "critical"
                })
            })
        },
    );

    // No busy loop while the fault stays: over a few seconds of watching, next to nothing.
    let (cpu_before, watched_from) = (cpu_time(agent.pid()), Instant::now());
    let watch = Duration::from_secs(3);
    // An observation window, not a wait for an event: nothing is supposed to happen in it.
    while let Some(left) = watch.checked_sub(watched_from.elapsed()) {
        thread::park_timeout(left);
    }
    let used = cpu_time(agent.pid()).saturating_sub(cpu_before);
    eprintln!(
        "{fault:?}: the agent used {used:?} of CPU in {watch:?} with its state folder failing"
    );
    assert!(
        used < Duration::from_millis(300),
        "the agent used {used:?} of CPU in {watch:?} while its state folder failed"
    );
    agent.assert_alive();

    state.heal();
    discord_embed(&discord, "monitor state_dir", COLOR_OK);
    eventually(
        "the alert made during the fault is in `monitorctl alerts`",
        || recorded(&history(&sandbox), "CRITICAL", "log during") == 1,
    );
    let recorded_history = history(&sandbox);
    assert!(
        recorded(&recorded_history, "CRITICAL", "monitor state_dir") >= 1,
        "the state folder's own alert is recorded too: {recorded_history:#?}"
    );
    agent.assert_alive();
}

#[test]
fn a_full_state_folder_is_reported_and_alerts_still_reach_discord() {
    a_failing_state_folder(StateFault::Full);
}

#[test]
fn a_failing_state_folder_is_reported_and_alerts_still_reach_discord() {
    a_failing_state_folder(StateFault::Failing);
}

#[test]
fn a_read_only_state_folder_is_reported_and_alerts_still_reach_discord() {
    a_failing_state_folder(StateFault::ReadOnly);
}

/// The alert reached Discord while its fsyncs were stalled, then `kill -9`: after a restart
/// on a healed disk it is in the history (at least once: a resend is allowed, a loss is not).
#[test]
fn an_alert_delivered_during_stalled_fsyncs_survives_kill_9() {
    let discord = discord_without_rate_limit();
    let mut sandbox = Sandbox::new();
    with_discord(&mut sandbox, &discord, "");
    let Some(state) = state_dir_on_faultfs(&sandbox) else {
        return;
    };
    let log = sandbox.path("app.log");
    log_checks(&sandbox, &log, &["event"]);
    let agent = sandbox.start_agent();
    // Where the agent starts reading the log is saved at once (the file is new to it):
    // from then on, a crash reads the lines after it again.
    eventually("the log's starting offset is checkpointed", || {
        fs::read_to_string(sandbox.state_dir().join("checkpoint.json"))
            .is_ok_and(|text| text.contains(&log.display().to_string()))
    });
    // Stalled until healed: nothing the alert made is durable when the agent dies.
    state.stall_fsync(Duration::from_secs(600));
    append(&log, "event\n");
    discord_embed(&discord, "log event", COLOR_CRITICAL);
    agent.kill_hard();

    state.heal();
    let _agent = sandbox.start_agent();
    eventually(
        "the alert is in `monitorctl alerts` after the restart",
        || recorded(&history(&sandbox), "CRITICAL", "log event") >= 1,
    );
}

/// The state folder failed and the agent said so; it was fixed and the agent restarted
/// before it noticed: the OK it owes still comes, once.
#[test]
fn the_state_folder_alert_gets_its_ok_after_a_restart() {
    let discord = discord_without_rate_limit();
    let mut sandbox = Sandbox::new();
    with_discord(&mut sandbox, &discord, "");
    let Some(state) = state_dir_on_faultfs(&sandbox) else {
        return;
    };
    let log = sandbox.path("app.log");
    log_checks(&sandbox, &log, &["during", "after"]);
    let agent = sandbox.start_agent();
    state.no_space();
    append(&log, "during\n");
    discord_embed(&discord, "monitor state_dir", COLOR_CRITICAL);
    // Healed and stopped at once: the stop writes the checkpoint, still saying CRITICAL
    // unless a retry (after 1 s) got there first; either way exactly one OK follows.
    state.heal();
    agent.stop();
    let _agent = sandbox.start_agent();
    discord_embed(&discord, "monitor state_dir", COLOR_OK);
    // The sentinel: an alert after the OK, and nothing about the state folder in between.
    append(&log, "after\n");
    discord_embed(&discord, "log after", COLOR_CRITICAL);
    let about_state: Vec<&'static str> = arrivals(&discord)
        .iter()
        .filter(|(_, embed)| field(embed, "Check") == Some("monitor state_dir"))
        .map(|(_, embed)| {
            if embed["color"].as_u64() == Some(COLOR_OK) {
                "OK"
            } else {
                "CRITICAL"
            }
        })
        .collect();
    assert_eq!(about_state, ["CRITICAL", "OK"]);
}
