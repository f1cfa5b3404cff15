//! Real processes started and killed by the tests, found through the real `/proc`; and a
//! procfs root written by a test, to show every read goes through [`Roots`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// How long a process may take to show up as gone (a daemon that is not our child).
const DEADLINE: Duration = Duration::from_secs(10);
/// Between two looks while waiting for a state the test cannot be told about.
const POLL: Duration = Duration::from_millis(20);

/// `/bin/sleep` copied under `name`, so the kernel's name for it (`comm`) is ours alone.
fn renamed_sleep(directory: &Path, name: &str) -> PathBuf {
    let path = directory.join(name);
    std::fs::copy("/bin/sleep", &path).expect("copy /bin/sleep");
    path
}

/// A name no other process on the machine has.
fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 100_000)
}

/// A test's process, killed and reaped when dropped, so a failing test leaves none behind.
struct Running(Child);

impl Running {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &Path, arguments: &[&str]) -> Running {
    Running(
        Command::new(program)
            .args(arguments)
            .stdin(Stdio::null())
            .spawn()
            .expect("start a test process"),
    )
}

fn kill_and_reap(mut running: Running) {
    running.0.kill().expect("kill the test process");
    running.0.wait().expect("reap the test process");
}

/// A process this test started but cannot reap (a daemon, a child of init): SIGKILL when
/// dropped, so a failing test leaves none behind.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal, to the daemon this test started.
        unsafe {
            libc::kill(self.0 as i32, libc::SIGKILL);
        }
    }
}

/// `spawn` returns once the kernel lets the parent go on, which is before it renames the
/// child (`comm`): for a moment the child is still a copy of this test. Samples until the
/// probe sees it run.
async fn sample_until_running(probe: &ProcessProbe) -> Reading {
    sample_until(probe, |reading| !is_bad(reading)).await
}

fn is_bad(reading: &Reading) -> bool {
    matches!(reading, Reading::Verdict { bad: true, .. })
}

fn text(reading: &Reading) -> &str {
    match reading {
        Reading::Verdict { text, .. } => text,
        other => panic!("expected a verdict, got {other:?}"),
    }
}

/// Samples until `wanted` holds, for at most [`DEADLINE`].
async fn sample_until(probe: &ProcessProbe, wanted: impl Fn(&Reading) -> bool) -> Reading {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let reading = probe.sample(&Roots::default()).await;
        if wanted(&reading) || Instant::now() >= deadline {
            return reading;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn a_process_found_by_name_runs_until_it_is_killed() {
    let folder = tempfile::tempdir().unwrap();
    let name = unique_name("hp-name-");
    let program = renamed_sleep(folder.path(), &name);
    let probe = ProcessProbe::new(ProcessSelector::Name(name.clone()));

    let reading = probe.sample(&Roots::default()).await;
    assert_eq!(
        reading,
        Reading::Verdict {
            bad: true,
            text: format!("no process named {name} runs")
        }
    );

    let child = spawn(&program, &["3600"]);
    let pid = child.id();
    let reading = sample_until_running(&probe).await;
    assert_eq!(
        reading,
        Reading::Verdict {
            bad: false,
            text: format!("{name} runs (pid {pid})")
        }
    );

    let second = spawn(&program, &["3600"]);
    let reading = sample_until(&probe, |reading| {
        !is_bad(reading) && text(reading).contains("2 processes")
    })
    .await;
    assert!(text(&reading).contains("2 processes"), "{reading:?}");

    kill_and_reap(child);
    kill_and_reap(second);
    let reading = probe.sample(&Roots::default()).await;
    assert!(is_bad(&reading), "{reading:?}");
}

#[tokio::test]
async fn a_name_longer_than_the_kernel_keeps_still_matches() {
    let folder = tempfile::tempdir().unwrap();
    let name = unique_name("hp-a-very-long-daemon-name-");
    assert!(name.len() > COMM_BYTES);
    let program = renamed_sleep(folder.path(), &name);
    let child = spawn(&program, &["3600"]);

    let probe = ProcessProbe::new(ProcessSelector::Name(name));
    let reading = sample_until_running(&probe).await;
    kill_and_reap(child);
    assert!(!is_bad(&reading), "{reading:?}");
}

#[tokio::test]
async fn a_command_line_regex_finds_the_process_by_its_arguments() {
    let marker = format!("{}.{}", 3600, std::process::id());
    let regex = Regex::new(&format!(r"sleep {}$", regex::escape(&marker))).unwrap();
    let probe = ProcessProbe::new(ProcessSelector::CommandLine(regex));
    assert!(is_bad(&probe.sample(&Roots::default()).await));

    let child = spawn(Path::new("/bin/sleep"), &[&marker]);
    let pid = child.id();
    let reading = sample_until_running(&probe).await;
    assert_eq!(
        text(&reading),
        format!("/sleep {}$/ runs (pid {pid})", regex::escape(&marker))
    );

    kill_and_reap(child);
    let reading = probe.sample(&Roots::default()).await;
    assert!(
        text(&reading).starts_with("no process matching /sleep"),
        "{reading:?}"
    );
}

#[tokio::test]
async fn a_zombie_is_not_running() {
    let folder = tempfile::tempdir().unwrap();
    let name = unique_name("hp-zombie-");
    let program = renamed_sleep(folder.path(), &name);
    let mut running = spawn(&program, &["3600"]);
    let probe = ProcessProbe::new(ProcessSelector::Name(name));
    assert!(!is_bad(&sample_until_running(&probe).await));
    let child = &mut running.0;

    child.kill().unwrap();
    // Wait for it to exit without reaping it: it stays a zombie until `wait`.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes into `info`, which lives for the call.
    let waited = unsafe {
        libc::waitid(
            libc::P_PID,
            child.id(),
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(waited, 0, "waitid: {}", std::io::Error::last_os_error());
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
    assert!(stat.contains(") Z "), "not a zombie: {stat}");

    let reading = probe.sample(&Roots::default()).await;
    child.wait().unwrap();
    assert!(is_bad(&reading), "a zombie counted as running: {reading:?}");
}

/// Seed 002: a forking daemon (like telldusd with `Type=forking`) whose starter forks it
/// off, writes its pid file and exits; the daemon runs on, a child of init.
#[tokio::test]
async fn a_forking_daemon_is_watched_through_its_pid_file() {
    let folder = tempfile::tempdir().unwrap();
    let name = unique_name("hp-telldusd-");
    let daemon = renamed_sleep(folder.path(), &name);
    let pid_file = folder.path().join("telldusd.pid");
    let probe = ProcessProbe::new(ProcessSelector::PidFile {
        path: pid_file.clone(),
        name: Some(name.clone()),
    });
    let reading = probe.sample(&Roots::default()).await;
    assert!(text(&reading).contains("does not exist"), "{reading:?}");

    let started = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" 3600 </dev/null >/dev/null 2>&1 & echo $! > "$1""#)
        .arg(&daemon)
        .arg(&pid_file)
        .status()
        .expect("start the forking daemon");
    assert!(started.success());
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let daemon_guard = KillOnDrop(pid);

    // Its starter wrote the pid as it forked: the daemon may not be itself yet.
    let reading = sample_until_running(&probe).await;
    assert_eq!(
        reading,
        Reading::Verdict {
            bad: false,
            text: format!("{name} runs (pid {pid} from {})", pid_file.display())
        }
    );

    drop(daemon_guard);
    // Not our child: nothing tells us when it is gone (a zombie of init, or reaped).
    let reading = sample_until(&probe, is_bad).await;
    assert!(
        is_bad(&reading),
        "the killed daemon still counts as running: {reading:?}"
    );
    let text = text(&reading);
    assert!(
        text == format!("pid {pid} (from {}) is not running", pid_file.display())
            || text
                == format!(
                    "pid {pid} (from {}) has exited (a zombie)",
                    pid_file.display()
                ),
        "{text}"
    );
}

#[tokio::test]
async fn a_stale_or_broken_pid_file_is_not_running() {
    let folder = tempfile::tempdir().unwrap();
    let pid_file = folder.path().join("daemon.pid");
    let probe = ProcessProbe::new(ProcessSelector::PidFile {
        path: pid_file.clone(),
        name: Some("telldusd".to_owned()),
    });

    // The pid went to another process (this test).
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
    let reading = probe.sample(&Roots::default()).await;
    assert!(is_bad(&reading));
    assert!(
        text(&reading).ends_with("not telldusd: the pid file is stale"),
        "{reading:?}"
    );

    // Without a name, any live pid counts.
    let any = ProcessProbe::new(ProcessSelector::PidFile {
        path: pid_file.clone(),
        name: None,
    });
    assert!(!is_bad(&any.sample(&Roots::default()).await));

    std::fs::write(&pid_file, "garbage\n").unwrap();
    let reading = probe.sample(&Roots::default()).await;
    assert!(
        text(&reading).contains(r#"holds "garbage", not a pid"#),
        "{reading:?}"
    );
}

#[tokio::test]
async fn every_read_goes_through_the_procfs_root() {
    let root = tempfile::tempdir().unwrap();
    let write = |pid: u32, comm: &str, state: &str, cmdline: &[u8]| {
        let folder = root.path().join(pid.to_string());
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("comm"), format!("{comm}\n")).unwrap();
        // A real Raspberry Pi OS `stat` line, cut after the fields read here.
        std::fs::write(
            folder.join("stat"),
            format!("{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 312 0 0 0"),
        )
        .unwrap();
        std::fs::write(folder.join("cmdline"), cmdline).unwrap();
    };
    write(412, "telldusd", "S", b"/usr/sbin/telldusd\0--nodaemon\0");
    write(413, "crashed (old)", "Z", b"");
    std::fs::create_dir_all(root.path().join("self")).unwrap();
    let roots = Roots {
        sys: root.path().join("sys"),
        proc: root.path().to_owned(),
    };

    let by_name = ProcessProbe::new(ProcessSelector::Name("telldusd".to_owned()));
    assert_eq!(
        by_name.sample(&roots).await,
        Reading::Verdict {
            bad: false,
            text: "telldusd runs (pid 412)".to_owned()
        }
    );
    let by_line = ProcessProbe::new(ProcessSelector::CommandLine(
        Regex::new("telldusd --nodaemon").unwrap(),
    ));
    assert!(!is_bad(&by_line.sample(&roots).await));
    let zombie = ProcessProbe::new(ProcessSelector::Name("crashed (old)".to_owned()));
    assert!(is_bad(&zombie.sample(&roots).await));

    let missing = Roots {
        sys: root.path().join("sys"),
        proc: root.path().join("no-such-proc"),
    };
    let reading = by_name.sample(&missing).await;
    let Reading::Unavailable(problem) = reading else {
        panic!("expected unavailable, got {reading:?}");
    };
    assert!(problem.contains("set procfs_root"), "{problem}");
}
