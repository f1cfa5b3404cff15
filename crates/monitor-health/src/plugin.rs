//! A Nagios / Monitoring Plugins compatible command (`check_disk`, `check_ntp_time`, a
//! script of one's own), run once per sample: its exit status is its state (0 OK,
//! 1 WARNING, 2 CRITICAL, 3 UNKNOWN, anything else UNKNOWN, as the Monitoring Plugins
//! development guidelines define them) and the first line of its output, before the
//! performance data (`|`), says why.
//!
//! It runs as `sh -c '<command>'` (as the agent's `@command` sources and Mender run
//! commands) in a process group of its own: a plugin that outlives its timeout is killed
//! with everything it started, and nothing a plugin leaves behind runs on after it exits.
//! The wire knows OK and CRITICAL only: each check says what WARNING and UNKNOWN become.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::Instant;

use crate::{Reading, Roots};

/// Output kept per stream; the rest is read and dropped, so a chatty plugin never blocks
/// on a full pipe nor grows the agent. (Nagios 3 kept 8 KiB of a plugin's output.)
const OUTPUT_KEPT_BYTES: usize = 8 * 1024;
/// Longest text taken from the output into the alert.
const TEXT_CHARS: usize = 300;
/// After the shell exits, how long what it started has to close the pipes (they are killed
/// at once; only a process that left the group can hold them longer).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// A plugin's state, from its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginState {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl PluginState {
    /// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; any other status (126 not executable, 127
    /// not found) is UNKNOWN too.
    pub fn from_exit_code(code: i32) -> Self {
        match code {
            0 => PluginState::Ok,
            1 => PluginState::Warning,
            2 => PluginState::Critical,
            _ => PluginState::Unknown,
        }
    }
}

impl fmt::Display for PluginState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            PluginState::Ok => "OK",
            PluginState::Warning => "WARNING",
            PluginState::Critical => "CRITICAL",
            PluginState::Unknown => "UNKNOWN",
        })
    }
}

/// What a plugin's WARNING or UNKNOWN becomes on the wire, which knows OK and CRITICAL only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappedState {
    /// Not an alert.
    Ok,
    /// An alert.
    Critical,
}

/// Runs a plugin. Bad when its state (after the mapping) is CRITICAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginProbe {
    /// Given to `sh -c`.
    pub command: String,
    /// The plugin, and all it started, is killed after this long: CRITICAL, as Nagios's
    /// `service_check_timeout_state` defaults to.
    pub timeout: Duration,
    pub warning: MappedState,
    pub unknown: MappedState,
}

impl PluginProbe {
    /// A [`Reading::Verdict`] with the first line of the plugin's output; `Unavailable`
    /// only when `sh` cannot be started.
    pub async fn sample(&self, _roots: &Roots) -> Reading {
        let run = match run(&self.command, self.timeout).await {
            Ok(run) => run,
            Err(error) => {
                return Reading::Unavailable(format!(
                    "cannot start `sh -c` for the plugin: {error}: check that /bin/sh exists"
                ));
            }
        };
        let (state, text) = match run.ended {
            Ended::TimedOut => (
                PluginState::Critical,
                format!(
                    "timed out after {}; the plugin and what it started were killed",
                    describe_duration(self.timeout)
                ),
            ),
            Ended::Exited(status) => judge(status, &run.stdout, &run.stderr),
        };
        let bad = match state {
            PluginState::Ok => false,
            PluginState::Critical => true,
            PluginState::Warning => self.warning == MappedState::Critical,
            PluginState::Unknown => self.unknown == MappedState::Critical,
        };
        Reading::Verdict { bad, text }
    }
}

/// The state and the text of a plugin that ended by itself.
fn judge(status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> (PluginState, String) {
    let line = first_line(stdout);
    let Some(code) = status.code() else {
        let signal = status.signal().unwrap_or(0);
        let mut text = format!("UNKNOWN: the plugin was killed by signal {signal}");
        if !line.is_empty() {
            text = format!("{text} ({line})");
        }
        return (PluginState::Unknown, text);
    };
    let state = PluginState::from_exit_code(code);
    let text = if (0..=3).contains(&code) {
        if line.is_empty() {
            let error = first_line(stderr);
            if error.is_empty() {
                format!("{state} (exit status {code}) and no output")
            } else {
                format!("{state} (exit status {code}): {error}")
            }
        } else {
            line
        }
    } else {
        // Not a plugin's answer: the shell's (127: not found, 126: not executable).
        let error = first_line(stderr);
        let said = if error.is_empty() { line } else { error };
        if said.is_empty() {
            format!("UNKNOWN: exit status {code} is not a plugin's state (0 to 3)")
        } else {
            format!("UNKNOWN: exit status {code} is not a plugin's state (0 to 3): {said}")
        }
    };
    (state, text)
}

/// The first non-empty line, without the performance data after `|`, trimmed and cut to
/// [`TEXT_CHARS`].
fn first_line(output: &[u8]) -> String {
    let output = String::from_utf8_lossy(output);
    let line = output
        .lines()
        .map(|line| line.split('|').next().unwrap_or("").trim())
        .find(|line| !line.is_empty())
        .unwrap_or("");
    match line.char_indices().nth(TEXT_CHARS) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_owned(),
    }
}

/// `10s`, or `500ms` when not whole seconds.
pub(crate) fn describe_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

enum Ended {
    Exited(ExitStatus),
    TimedOut,
}

struct Run {
    ended: Ended,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `sh -c command` in a new process group, reading its output, until it exits or the
/// timeout; either way nothing of its group is left running.
async fn run(command: &str, timeout: Duration) -> std::io::Result<Run> {
    let deadline = Instant::now() + timeout;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Last resort when the sample is dropped midway (the agent stops, a probe timeout
        // of the caller): the shell at least does not run on.
        .kill_on_drop(true)
        .spawn()?;
    // A spawned child has an id until it is reaped.
    let group = child.id().map_or(0, |pid| pid as i32);
    let mut kill_group_on_drop = GroupGuard(group);
    let mut stdout = Capped::new(child.stdout.take());
    let mut stderr = Capped::new(child.stderr.take());

    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            () = stdout.read_some(), if stdout.is_open() => {}
            () = stderr.read_some(), if stderr.is_open() => {}
            () = tokio::time::sleep_until(deadline) => {
                signal_group(group, libc::SIGKILL);
                kill_group_on_drop.disarm();
                child.wait().await?;
                return Ok(Run { ended: Ended::TimedOut, stdout: stdout.kept, stderr: stderr.kept });
            }
        }
    };
    // The shell is gone; whatever it left in its group goes too (a plugin's work ends when
    // it exits), which closes the pipes they held.
    signal_group(group, libc::SIGKILL);
    kill_group_on_drop.disarm();
    let drained = Instant::now() + DRAIN_AFTER_EXIT;
    let drain_deadline = if drained < deadline {
        drained
    } else {
        deadline
    };
    while stdout.is_open() || stderr.is_open() {
        tokio::select! {
            () = stdout.read_some(), if stdout.is_open() => {}
            () = stderr.read_some(), if stderr.is_open() => {}
            () = tokio::time::sleep_until(drain_deadline) => break,
        }
    }
    Ok(Run {
        ended: Ended::Exited(status),
        stdout: stdout.kept,
        stderr: stderr.kept,
    })
}

/// A child's output stream: the first [`OUTPUT_KEPT_BYTES`] kept, the rest read and dropped.
struct Capped<R> {
    reader: Option<R>,
    kept: Vec<u8>,
    buffer: Box<[u8; 4096]>,
}

impl<R: AsyncRead + Unpin> Capped<R> {
    fn new(reader: Option<R>) -> Self {
        Capped {
            reader,
            kept: Vec::new(),
            buffer: Box::new([0; 4096]),
        }
    }

    fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    /// One read; the end of the stream (or an error) closes it.
    async fn read_some(&mut self) {
        let Some(reader) = self.reader.as_mut() else {
            return std::future::pending().await;
        };
        match reader.read(&mut self.buffer[..]).await {
            Ok(count) if count > 0 => {
                let room = OUTPUT_KEPT_BYTES.saturating_sub(self.kept.len());
                self.kept.extend_from_slice(&self.buffer[..count.min(room)]);
            }
            _ => self.reader = None,
        }
    }
}

/// Kills the process group when a sample ends early (its future dropped): no plugin or
/// child of one outlives the agent's interest in it.
struct GroupGuard(i32);

impl GroupGuard {
    /// The group was killed already: its id must not be signalled again (it may be reused).
    fn disarm(&mut self) {
        self.0 = 0;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, libc::SIGKILL);
    }
}

fn signal_group(group: i32, signal: i32) {
    if group <= 0 {
        return;
    }
    // SAFETY: killpg only sends a signal; a group that is gone gives ESRCH, which is fine.
    unsafe {
        libc::killpg(group, signal);
    }
}

#[cfg(test)]
mod tests;
