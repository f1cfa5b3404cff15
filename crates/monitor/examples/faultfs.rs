//! The tests' fault-injecting FUSE pass-through (`tests/support/faultfs.rs`) in a process of
//! its own, for benchmarks that are not Rust (`bench/stalled_disk_latency.py`):
//!
//! ```sh
//! cargo build --release -p monitor --example faultfs
//! faultfs BACKING MOUNTPOINT [--stall-fsync 5s]
//! ```
//!
//! Mounts a pass-through of the folder BACKING on MOUNTPOINT (both must exist; as root, or
//! with `fusermount3`) and prints `mounted MOUNTPOINT` once it is usable. With
//! `--stall-fsync`, every fsync and fsyncdir waits that long from the start. Lines on stdin
//! change the faults while it runs, each answered by one line on stdout:
//!
//! - `stall 5s`: every fsync and fsyncdir from now on waits 5 s (`stalling 5s`);
//! - `heal`: no more stalls, and the fsyncs waiting now go on at once (`healed`);
//! - `counters`: what reached the backing folder so far (`counters fsyncs=.. ..`).
//!
//! It unmounts and exits on SIGTERM, SIGINT or the end of stdin (healing first, so that
//! nothing waits on a stall; a mount still busy is detached).

#[path = "../../../tests/support/faultfs.rs"]
mod faultfs;

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use faultfs::FaultFs;

const USAGE: &str = "usage: faultfs BACKING MOUNTPOINT [--stall-fsync DURATION]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("faultfs: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut arguments = std::env::args_os().skip(1);
    let backing = PathBuf::from(arguments.next().ok_or(USAGE)?);
    let mountpoint = PathBuf::from(arguments.next().ok_or(USAGE)?);
    let mut stall = None;
    while let Some(argument) = arguments.next() {
        match argument.to_str() {
            Some("--stall-fsync") => {
                let text = arguments.next().ok_or(USAGE)?;
                stall = Some(parse_duration(&text.to_string_lossy())?);
            }
            _ => return Err(format!("unexpected argument {argument:?}; {USAGE}")),
        }
    }

    // Blocked in every thread (the file system's threads are spawned after this and inherit
    // the mask), so that only `sigwait` below takes them.
    let signals = termination_signals();
    // SAFETY: `signals` is an initialised set; no other thread exists yet.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut()) };

    let mounted = FaultFs::mount(&backing, &mountpoint)?;
    if let Some(stall) = stall {
        mounted.stall_fsync(stall);
    }
    // Shared with the thread that reads commands, and taken back (so dropped, whatever
    // that thread is doing) at the end.
    let mounted = Arc::new(Mutex::new(Some(mounted)));
    println!("mounted {}", mountpoint.display());
    io::stdout().flush().map_err(|error| error.to_string())?;

    let commands = Arc::clone(&mounted);
    thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let answer = match &*lock(&commands) {
                Some(mounted) => answer(mounted, line.trim()),
                None => break,
            };
            let mut stdout = io::stdout().lock();
            let _ = writeln!(stdout, "{answer}").and_then(|()| stdout.flush());
        }
        // The end of stdin: end the process as a SIGTERM would.
        // SAFETY: kill(2) on our own process; SIGTERM is blocked and taken by sigwait.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    });

    let mut signal = 0;
    // SAFETY: `signals` is initialised and `signal` a valid place for the result.
    unsafe { libc::sigwait(&signals, &mut signal) };
    // Dropping it heals and unmounts.
    drop(lock(&mounted).take());
    Ok(())
}

fn lock(mounted: &Mutex<Option<FaultFs>>) -> MutexGuard<'_, Option<FaultFs>> {
    mounted
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn answer(mounted: &FaultFs, command: &str) -> String {
    match command.split_once(' ') {
        Some(("stall", duration)) => match parse_duration(duration) {
            Ok(stall) => {
                mounted.stall_fsync(stall);
                format!("stalling {duration}")
            }
            Err(problem) => format!("error {problem}"),
        },
        None if command == "heal" => {
            mounted.heal();
            "healed".into()
        }
        None if command == "counters" => {
            let counters = mounted.counters();
            format!(
                "counters fsyncs={} fsyncdirs={} writes={} bytes_written={} renames={} stalled_now={}",
                counters.fsyncs,
                counters.fsyncdirs,
                counters.writes,
                counters.bytes_written,
                counters.renames,
                mounted.stalled_fsyncs()
            )
        }
        _ => format!("error unknown command `{command}`: stall DURATION, heal or counters"),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|error| format!("bad duration `{text}`: {error} (e.g. 5s, 500ms)"))
}

fn termination_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}
