//! `@command` sources against real child processes: real shells, real pipes, real signals
//! and process groups. Every wait is for an observed event or state, with a deadline.
//!
//! The tests run one at a time (and each builds its runtime only once it holds the lock)
//! because some of them measure the whole test process: its open fds and its memory.

use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use monitor_logwatch::{
    BackoffSettings, CommandEvent, CommandWatchConfig, LogMatch, PatternSpec, ReadFrom,
    WatchedCommand,
};
use monitor_wire::{CheckId, LogLine, Subsystem};
use regex::bytes::Regex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial_test<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    let _guard = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(test());
}

struct Harness {
    configs: mpsc::Sender<CommandWatchConfig>,
    events: mpsc::Receiver<CommandEvent>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    generation: u64,
}

impl Harness {
    fn start(backoff: BackoffSettings, event_capacity: usize) -> Harness {
        let (config_sender, config_receiver) = mpsc::channel(4);
        let (event_sender, event_receiver) = mpsc::channel(event_capacity);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                monitor_logwatch::run_commands_with(
                    config_receiver,
                    event_sender,
                    shutdown,
                    backoff,
                )
                .await
                .expect("command sources run");
            }
        });
        Harness {
            configs: config_sender,
            events: event_receiver,
            shutdown,
            task,
            generation: 0,
        }
    }

    /// Apply a config and wait for it to be applied; events before that are returned.
    async fn run(&mut self, commands: Vec<WatchedCommand>) -> Vec<CommandEvent> {
        self.generation += 1;
        let generation = self.generation;
        self.configs
            .send(CommandWatchConfig {
                generation,
                commands,
            })
            .await
            .unwrap();
        let mut before = Vec::new();
        loop {
            match self.next_event().await {
                CommandEvent::Applied {
                    generation: applied,
                } if applied == generation => return before,
                event => before.push(event),
            }
        }
    }

    async fn next_event(&mut self) -> CommandEvent {
        tokio::time::timeout(DEADLINE, self.events.recv())
            .await
            .expect("an event before the deadline")
            .expect("command sources still running")
    }

    /// The next event that is not `Applied`.
    async fn next_command_event(&mut self, pending: &mut Vec<CommandEvent>) -> CommandEvent {
        if !pending.is_empty() {
            return pending.remove(0);
        }
        loop {
            match self.next_event().await {
                CommandEvent::Applied { .. } => {}
                event => return event,
            }
        }
    }

    async fn stop(self) -> Duration {
        let started = Instant::now();
        self.shutdown.cancel();
        drop(self.events);
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("stopped before the deadline")
            .unwrap();
        started.elapsed()
    }
}

fn check(name: &str, pattern: &str, lines_before: usize, lines_after: usize) -> PatternSpec {
    PatternSpec {
        check: CheckId::new(Subsystem::Log, name),
        regex: Regex::new(pattern).unwrap(),
        lines_before,
        lines_after,
        details: Default::default(),
        from: ReadFrom::Start,
    }
}

fn command(text: &str, checks: Vec<PatternSpec>) -> WatchedCommand {
    WatchedCommand {
        command: text.to_string(),
        checks,
        reported_down: false,
    }
}

fn line(line_number: u64, data: &str) -> LogLine {
    LogLine {
        line_number,
        data: data.to_string(),
    }
}

/// Wait for a condition on the outside world, with a deadline.
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn read_pids(pid_file: &Path, count: usize) -> Vec<u32> {
    let mut pids = Vec::new();
    wait_until("the command to write its pids", || {
        pids = std::fs::read_to_string(pid_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect();
        pids.len() >= count
    })
    .await;
    pids
}

/// The process state letter (`R`, `S`, `Z`, …), or `None` when the pid is gone.
fn process_state(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn quick_restarts() -> BackoffSettings {
    BackoffSettings {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(40),
        healthy_after: Duration::from_secs(10),
    }
}

#[test]
fn lines_a_command_prints_are_matched_with_context_and_line_numbers() {
    serial_test(|| async {
        let mut harness = Harness::start(BackoffSettings::default(), 16);
        let mut pending = harness
            .run(vec![command(
                "printf 'a\\nERROR x\\nb\\n'; sleep 1000",
                vec![check("errors", "ERROR", 1, 1)],
            )])
            .await;
        let event = harness.next_command_event(&mut pending).await;
        assert_eq!(
            event,
            CommandEvent::Matched {
                command: "printf 'a\\nERROR x\\nb\\n'; sleep 1000".to_string(),
                matches: vec![LogMatch {
                    check: CheckId::new(Subsystem::Log, "errors"),
                    line: line(2, "ERROR x"),
                    before: vec![line(1, "a")],
                    after: vec![line(3, "b")],
                    details: Default::default(),
                }],
            }
        );
        let stopped_in = harness.stop().await;
        assert!(stopped_in < Duration::from_secs(2), "{stopped_in:?}");
    });
}

#[test]
fn one_command_used_by_two_checks_runs_once_and_feeds_both() {
    serial_test(|| async {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pids");
        let text = format!(
            "echo $$ >> '{}'; echo 'ERROR disk'; sleep 1000",
            pid_file.display()
        );
        let mut harness = Harness::start(BackoffSettings::default(), 16);
        let mut pending = harness
            .run(vec![
                command(&text, vec![check("a", "ERROR", 0, 0)]),
                command(&text, vec![check("b", "disk", 0, 0)]),
            ])
            .await;
        let CommandEvent::Matched { matches, .. } = harness.next_command_event(&mut pending).await
        else {
            panic!("expected a match");
        };
        let checks: Vec<&str> = matches
            .iter()
            .map(|found| found.check.name.as_str())
            .collect();
        assert_eq!(checks, vec!["a", "b"]);
        assert_eq!(read_pids(&pid_file, 1).await.len(), 1);
        harness.stop().await;
    });
}

#[test]
fn a_crash_loop_is_reported_once_and_restarted_with_growing_delays() {
    serial_test(|| async {
        let text = "echo ERROR once; exit 3";
        let mut harness = Harness::start(BackoffSettings::default(), 16);
        let mut pending = harness
            .run(vec![command(text, vec![check("errors", "ERROR", 0, 0)])])
            .await;
        let mut match_times = Vec::new();
        let mut deaths = Vec::new();
        while match_times.len() < 4 {
            match harness.next_command_event(&mut pending).await {
                CommandEvent::Matched { matches, .. } => {
                    assert_eq!(matches.len(), 1);
                    // Line numbers start again with every run.
                    assert_eq!(matches[0].line, line(1, "ERROR once"));
                    match_times.push(Instant::now());
                }
                CommandEvent::Died {
                    reason, retry_in, ..
                } => deaths.push((reason, retry_in)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            deaths,
            vec![("exited with status 3".to_string(), Duration::from_secs(1))],
            "one Died for the whole streak"
        );
        let gaps: Vec<Duration> = match_times
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .collect();
        assert!(gaps[0] >= Duration::from_millis(900), "{gaps:?}");
        assert!(gaps[1] >= gaps[0] + Duration::from_millis(500), "{gaps:?}");
        assert!(gaps[2] >= gaps[1] + Duration::from_millis(1500), "{gaps:?}");
        harness.stop().await;
    });
}

#[test]
fn a_command_that_cannot_start_dies_with_the_shells_reason() {
    serial_test(|| async {
        let mut harness = Harness::start(BackoffSettings::default(), 16);
        let mut pending = harness
            .run(vec![command(
                "/nonexistent/binary",
                vec![check("errors", "ERROR", 0, 0)],
            )])
            .await;
        let CommandEvent::Died {
            command,
            reason,
            retry_in,
        } = harness.next_command_event(&mut pending).await
        else {
            panic!("expected Died");
        };
        assert_eq!(command, "/nonexistent/binary");
        assert!(
            reason.starts_with("exited with status 127"),
            "reason: {reason}"
        );
        assert!(reason.contains("not found"), "reason: {reason}");
        assert_eq!(retry_in, Duration::from_secs(1));
        harness.stop().await;
    });
}

/// Our children named `name`, from /proc (each test holds the lock: they are its own).
fn children_named(name: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            comm.trim_end() == name && matches!(process_state(*pid), Some((state, parent)) if parent == me && state != 'Z')
        })
        .collect()
}

#[test]
fn a_simple_command_is_the_process_itself_and_its_death_is_its_own() {
    serial_test(|| async {
        let mut harness = Harness::start(quick_restarts(), 16);
        let mut pending = harness.run(vec![command("sleep 1000", vec![])]).await;
        // The shell execs it: `sleep` is our child and leads its own process group.
        let mut sleeps = Vec::new();
        wait_until("sleep runs as our child", || {
            sleeps = children_named("sleep");
            sleeps.len() == 1
        })
        .await;
        assert!(children_named("sh").is_empty());
        let first = sleeps[0];
        // SAFETY: getpgid only reads.
        assert_eq!(unsafe { libc::getpgid(first as i32) }, first as i32);

        // SAFETY: kill only sends a signal to the child found above.
        assert_eq!(unsafe { libc::kill(first as i32, libc::SIGKILL) }, 0);
        let died = harness.next_command_event(&mut pending).await;
        assert!(
            matches!(&died, CommandEvent::Died { reason, .. } if reason == "killed by signal 9"),
            "{died:?}"
        );
        wait_until("sleep is restarted", || {
            sleeps = children_named("sleep");
            sleeps.len() == 1 && sleeps[0] != first
        })
        .await;
        assert_eq!(process_state(first), None, "the first run was reaped");
        harness.stop().await;
        assert!(children_named("sleep").is_empty(), "stopped and reaped");
    });
}

#[test]
fn a_command_that_stays_up_after_dying_is_recovered() {
    serial_test(|| async {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("second-run");
        let text = format!(
            "if [ -e '{0}' ]; then sleep 1000; else touch '{0}'; exit 1; fi",
            flag.display()
        );
        let mut harness = Harness::start(
            BackoffSettings {
                initial: Duration::from_millis(50),
                max: Duration::from_secs(1),
                healthy_after: Duration::from_millis(300),
            },
            16,
        );
        let mut pending = harness.run(vec![command(&text, vec![])]).await;
        let died = harness.next_command_event(&mut pending).await;
        assert!(
            matches!(&died, CommandEvent::Died { reason, .. } if reason == "exited with status 1"),
            "{died:?}"
        );
        assert_eq!(
            harness.next_command_event(&mut pending).await,
            CommandEvent::Recovered { command: text }
        );
        harness.stop().await;
    });
}

#[test]
fn a_command_removed_from_the_config_is_stopped_with_its_whole_group_and_reaped() {
    serial_test(|| async {
        let dir = tempfile::tempdir().unwrap();
        let polite = dir.path().join("polite");
        let stubborn = dir.path().join("stubborn");
        let mut harness = Harness::start(BackoffSettings::default(), 16);
        harness
            .run(vec![
                command(
                    &format!(
                        "echo $$ > '{0}'; sleep 1000 & echo $! >> '{0}'; sleep 1000",
                        polite.display()
                    ),
                    vec![],
                ),
                // Ignores SIGTERM: only the SIGKILL after the grace ends it.
                command(
                    &format!(
                        "trap '' TERM; echo $$ > '{0}'; sleep 1000 & echo $! >> '{0}'; while :; do sleep 1; done",
                        stubborn.display()
                    ),
                    vec![],
                ),
            ])
            .await;
        let mut pids = read_pids(&polite, 2).await;
        pids.extend(read_pids(&stubborn, 2).await);
        let shells = [pids[0], pids[2]];
        for pid in &pids {
            assert!(process_state(*pid).is_some(), "{pid} runs");
        }

        let removed_at = Instant::now();
        harness.run(vec![]).await;
        let me = std::process::id();
        wait_until("every process of both groups to end", || {
            pids.iter().all(|pid| match process_state(*pid) {
                None => true,
                // Dead; an orphan waits for init (which may not reap in a container), never for us.
                Some(('Z', parent)) => parent != me && !shells.contains(pid),
                Some(_) => false,
            })
        })
        .await;
        // The shells were our children: reaped, not zombies.
        for shell in shells {
            assert_eq!(process_state(shell), None, "shell {shell} was reaped");
        }
        let took = removed_at.elapsed();
        assert!(
            took >= Duration::from_millis(1900),
            "the grace was given: {took:?}"
        );
        harness.stop().await;
    });
}

#[test]
fn restarting_many_times_leaks_no_file_descriptors() {
    serial_test(|| async {
        // The runtime opens its signal pipe with the first child of the process.
        tokio::process::Command::new("true").status().await.unwrap();
        let before = open_fds();
        let mut harness = Harness::start(quick_restarts(), 16);
        let mut pending = harness
            .run(vec![command(
                "echo ERROR; exit 1",
                vec![check("errors", "ERROR", 0, 0)],
            )])
            .await;
        let mut runs = 0;
        while runs < 30 {
            if let CommandEvent::Matched { .. } = harness.next_command_event(&mut pending).await {
                runs += 1;
            }
        }
        harness.stop().await;
        let after = open_fds();
        eprintln!("open fds: {before} before, {after} after 30 restarts");
        assert!(
            after.abs_diff(before) <= 2,
            "open fds: {before} before, {after} after 30 restarts"
        );
    });
}

#[test]
fn a_flood_of_output_to_a_slow_consumer_does_not_grow_memory() {
    serial_test(|| async {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let before = resident_kib();
        let mut harness = Harness::start(BackoffSettings::default(), 8);
        let mut pending = harness
            .run(vec![command(
                &format!("echo $$ > '{}'; exec yes ERROR-flood", pid_file.display()),
                vec![check("errors", "ERROR", 2, 2)],
            )])
            .await;
        let flood = read_pids(&pid_file, 1).await[0];

        // Nobody reads events: the channel fills, the watcher stops reading, the pipe fills
        // and `yes` blocks in write, using no more CPU.
        let mut last = cpu_ticks(flood);
        let mut stable_for = 0;
        wait_until("the flooding command to block on its full pipe", || {
            let now = cpu_ticks(flood);
            stable_for = if now == last { stable_for + 1 } else { 0 };
            last = now;
            stable_for >= 10
        })
        .await;
        let blocked = resident_kib();
        assert!(
            blocked.saturating_sub(before) < 50 * 1024,
            "RSS grew from {before} KiB to {blocked} KiB while the consumer was away"
        );

        // Reading again: the flood flows, line numbers in order, memory still flat.
        let mut last_line = 0;
        let mut lines = 0;
        while lines < 200_000 {
            if let CommandEvent::Matched { matches, .. } =
                harness.next_command_event(&mut pending).await
            {
                assert!(
                    matches.len() <= 64,
                    "{} matches in one event",
                    matches.len()
                );
                for found in matches {
                    assert!(found.line.line_number > last_line);
                    last_line = found.line.line_number;
                    lines += 1;
                }
            }
        }
        let flowing = resident_kib();
        eprintln!("RSS: {before} KiB before, {blocked} KiB with the consumer away, {flowing} KiB after reading {lines} matches");
        assert!(
            flowing.saturating_sub(before) < 50 * 1024,
            "RSS grew from {before} KiB to {flowing} KiB while reading the flood"
        );
        harness.stop().await;
        wait_until("the flooding command to be gone", || {
            process_state(flood).is_none()
        })
        .await;
    });
}
