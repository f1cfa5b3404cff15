//! A sandbox per test (config, state and runtime folders in a temp dir), the binaries, and
//! waiting for alerts through `monitorctl alerts --follow --json`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Generous: right after a build the disk is busy writing binaries, and every alert waits
/// for two fsyncs (checkpoint, then history) before a follower can see it.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn monitord_binary() -> &'static str {
    env!("CARGO_BIN_EXE_monitord")
}

pub fn monitorctl_binary() -> &'static str {
    env!("CARGO_BIN_EXE_monitorctl")
}

/// The repository's root, for the examples.
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// How a sandbox starts `monitord` and `monitorctl`: the binaries cargo built, or
/// cross-built ones under an emulator (`qemu-arm-static -L … dist/…/monitord`).
#[derive(Debug, Clone)]
pub struct Binaries {
    /// Program and leading arguments, before the binary's own arguments.
    pub monitord: Vec<String>,
    pub monitorctl: Vec<String>,
}

impl Binaries {
    pub fn built() -> Binaries {
        Binaries {
            monitord: vec![monitord_binary().to_owned()],
            monitorctl: vec![monitorctl_binary().to_owned()],
        }
    }

    /// The binaries in `folder`, each run as `runner… binary`.
    pub fn emulated(runner: &[&str], folder: &Path) -> Binaries {
        let with_runner = |name: &str| {
            let mut command: Vec<String> = runner.iter().map(|&part| part.to_owned()).collect();
            command.push(folder.join(name).display().to_string());
            command
        };
        Binaries {
            monitord: with_runner("monitord"),
            monitorctl: with_runner("monitorctl"),
        }
    }

    pub fn monitord(&self) -> Command {
        command_of(&self.monitord)
    }

    pub fn monitorctl(&self) -> Command {
        command_of(&self.monitorctl)
    }
}

fn command_of(program_and_arguments: &[String]) -> Command {
    let mut command = Command::new(&program_and_arguments[0]);
    command.args(&program_and_arguments[1..]);
    command
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// More variables for every process the sandbox starts (a user manager's bus).
    pub env: Vec<(String, String)>,
    pub binaries: Binaries,
    /// Whether the built-in default checks run. Off unless a test is about them, so that
    /// what each test sees is its own checks (MONITOR_DEFAULT_CHECKS=false, which wins
    /// over any monitor.yaml a test writes).
    pub default_checks: bool,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox::running(Binaries::built())
    }

    pub fn running(binaries: Binaries) -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        for folder in ["config", "state", "run"] {
            std::fs::create_dir(dir.path().join(folder)).unwrap();
        }
        Sandbox {
            dir,
            env: Vec::new(),
            binaries,
            default_checks: false,
        }
    }

    /// The variables every process of this sandbox gets: the folders, and `env`.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut variables = vec![
            (
                "MONITOR_CONFIG_DIR".to_owned(),
                self.config_dir().display().to_string(),
            ),
            (
                "MONITOR_STATE_DIR".to_owned(),
                self.state_dir().display().to_string(),
            ),
            (
                "MONITOR_RUNTIME_DIR".to_owned(),
                self.path("run").display().to_string(),
            ),
        ];
        if !self.default_checks {
            variables.push(("MONITOR_DEFAULT_CHECKS".to_owned(), "false".to_owned()));
        }
        variables.extend(self.env.iter().cloned());
        variables
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn config_dir(&self) -> PathBuf {
        self.path("config")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    fn command(&self, mut command: Command) -> Command {
        command
            .envs(self.environment())
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null());
        command
    }

    /// Run monitorctl to completion.
    pub fn monitorctl(&self, args: &[&str]) -> Output {
        self.command(self.binaries.monitorctl())
            .args(args)
            .output()
            .expect("monitorctl runs")
    }

    /// monitorctl with the sandbox's folders, to run as the test needs (its own stdout).
    pub fn monitorctl_command(&self, args: &[&str]) -> Command {
        let mut command = self.command(self.binaries.monitorctl());
        command.args(args);
        command
    }

    /// Run monitorctl and insist that it succeeds silently, as Mender's tool does.
    pub fn monitorctl_quietly(&self, args: &[&str]) {
        let output = self.monitorctl(args);
        assert!(
            output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
            "monitorctl {args:?}: {}\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn start_agent(&self) -> Agent {
        let log_path = self.path(&format!("monitord-{}.log", unique()));
        let log = File::create(&log_path).unwrap();
        self.start_agent_logging_to(log.into(), log_path)
    }

    /// An agent whose stderr is `stderr` (a pipe nobody reads, say); its `log()` is empty.
    pub fn start_agent_with_stderr(&self, stderr: Stdio) -> Agent {
        self.start_agent_logging_to(stderr, PathBuf::new())
    }

    /// An agent started, without waiting for it to answer (a test that waits for systemd's
    /// `READY=1` on its own `NOTIFY_SOCKET`).
    pub fn spawn_agent(&self) -> Agent {
        let log_path = self.path(&format!("monitord-{}.log", unique()));
        let log = File::create(&log_path).unwrap();
        self.spawn_agent_logging_to(log.into(), log_path)
    }

    fn spawn_agent_logging_to(&self, stderr: Stdio, log_path: PathBuf) -> Agent {
        let child = self
            .command(self.binaries.monitord())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("monitord starts");
        Agent { child, log_path }
    }

    fn start_agent_logging_to(&self, stderr: Stdio, log_path: PathBuf) -> Agent {
        let agent = self.spawn_agent_logging_to(stderr, log_path);
        // Ready once it answers on its control socket.
        eventually("monitord answers `monitorctl status`", || {
            self.monitorctl(&["status"]).status.success()
        });
        agent
    }

    /// Follow the alert history from its start.
    pub fn follow_alerts(&self) -> AlertFollower {
        let mut child = self
            .command(self.binaries.monitorctl())
            .args(["alerts", "--follow", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("monitorctl alerts --follow starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value =
                    serde_json::from_str(&line).expect("alerts --json prints JSON lines");
                if sender.send((Instant::now(), value)).is_err() {
                    break;
                }
            }
        });
        AlertFollower {
            child,
            receiver,
            seen: Vec::new(),
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub struct Agent {
    child: Child,
    log_path: PathBuf,
}

impl Agent {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Context switches of all the agent's threads so far: how often it woke up.
    pub fn wake_ups(&self) -> u64 {
        let tasks =
            std::fs::read_dir(format!("/proc/{}/task", self.pid())).expect("the agent runs");
        tasks
            .flatten()
            .map(|task| std::fs::read_to_string(task.path().join("status")).unwrap_or_default())
            .flat_map(|status| {
                status
                    .lines()
                    .filter(|line| line.contains("ctxt_switches"))
                    .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// Panics unless the agent still runs and has logged no panic.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("the agent's status") {
            panic!("monitord exited with {status}; log:\n{}", self.log());
        }
        let log = self.log();
        assert!(!log.contains("panicked"), "monitord panicked; log:\n{log}");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL: no chance to save anything.
    pub fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "monitord exited with {status}; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sandbox {
    /// A failed test shows what every agent it ran logged.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("monitord-"))
            })
            .collect();
        logs.sort();
        for log in logs {
            eprintln!(
                "--- {}:\n{}",
                log.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }
}

pub struct AlertFollower {
    child: Child,
    receiver: mpsc::Receiver<(Instant, Value)>,
    pub seen: Vec<(Instant, Value)>,
}

impl AlertFollower {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next alert, within the deadline.
    pub fn next(&mut self) -> (Instant, Value) {
        let alert = self.receiver.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!(
                "no alert within {DEADLINE:?}; seen so far: {:#?}",
                self.seen
            )
        });
        self.seen.push(alert.clone());
        alert
    }

    /// The next alert if one comes within `wait`.
    pub fn try_next(&mut self, wait: Duration) -> Option<(Instant, Value)> {
        let alert = self.receiver.recv_timeout(wait).ok()?;
        self.seen.push(alert.clone());
        Some(alert)
    }

    /// The next alert, which must be `level` for `check` (`"log app"`).
    pub fn expect(&mut self, level: &str, check: &str) -> (Instant, Value) {
        let (at, alert) = self.next();
        assert_eq!(
            (
                alert["level"].as_str().unwrap(),
                describe_check(&alert).as_str()
            ),
            (level, check),
            "unexpected alert: {alert:#}"
        );
        (at, alert)
    }

    /// The next alert, which must be of `level`, for any check.
    pub fn expect_level(&mut self, level: &str) -> (Instant, Value) {
        let (at, alert) = self.next();
        assert_eq!(
            alert["level"].as_str().unwrap(),
            level,
            "unexpected alert: {alert:#}"
        );
        (at, alert)
    }

    /// Nothing more arrives within `quiet` (used after the expected events, to catch extras).
    pub fn assert_quiet_for(&mut self, quiet: Duration) {
        if let Ok((_, alert)) = self.receiver.recv_timeout(quiet) {
            panic!("unexpected extra alert: {alert:#}");
        }
    }
}

impl Drop for AlertFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn describe_check(alert: &Value) -> String {
    format!(
        "{} {}",
        alert["check"]["subsystem"].as_str().unwrap_or("?"),
        alert["check"]["name"].as_str().unwrap_or("?")
    )
}

/// Retry a condition until it holds, failing at the deadline. For states that have no
/// event to wait on from outside the agent (is the socket up yet?).
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        std::thread::park_timeout(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// CPU time a process has used so far (user + system), in clock ticks (1/100 s here):
/// fields 14 and 15 of `/proc/<pid>/stat`, counted after the command name, which may hold
/// spaces and parentheses.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process runs");
    let after_name = &stat[stat.rfind(')').expect("a command name in parentheses") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

pub fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
