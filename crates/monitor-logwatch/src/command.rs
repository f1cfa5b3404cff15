//! Running `@command` sources: one task per distinct command text, each running
//! `sh -c '<command>'` (`exec`ing a simple command) in its own process group, matching its
//! stdout line by line and restarting it with capped exponential backoff when it exits.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use monitor_wire::backoff::Backoff;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::interface::{
    BackoffSettings, CommandEvent, CommandWatchConfig, LogMatch, LogWatchError, PatternSpec,
    WatchedCommand,
};
use crate::matching::{scan_chunk, ContextRing, LineSplitter, MatchCollector, Prefilter};
use crate::shell_script::shell_script;

/// Bytes read from a command's stdout at a time: with the partial line (at most
/// `MAX_LINE_BYTES`) this is all the memory a command's output takes, whatever its rate.
const STDOUT_BUFFER_BYTES: usize = 64 * 1024;
const STDERR_BUFFER_BYTES: usize = 4 * 1024;
/// A flood of matching lines is sent in events of at most this many matches, so one event
/// (and the bounded channel holding a few of them) stays small.
const MAX_MATCHES_PER_EVENT: usize = 64;
/// After SIGTERM, how long the process group has before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// While stopping: how often to look whether the rest of a group has ended.
const GROUP_EXIT_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// stderr is for the operator's eyes only; a chatty command must not flood the log.
const STDERR_LINES_LOGGED_PER_SECOND: u32 = 5;
/// Longest stderr line kept (and quoted in a death's reason).
const STDERR_LINE_BYTES: usize = 512;
/// After the shell exits, at most this much of what is still in its stdout pipe is read
/// (a leftover grandchild may go on writing forever).
const DRAIN_AFTER_EXIT_BYTES: usize = 1024 * 1024;

/// A command that is running (or restarting), as seen by [`run_commands_with`].
struct RunningCommand {
    stop: CancellationToken,
    checks: watch::Sender<Arc<Vec<PatternSpec>>>,
    task: tokio::task::Id,
}

pub(crate) async fn run_commands_with(
    mut configs: mpsc::Receiver<CommandWatchConfig>,
    events: mpsc::Sender<CommandEvent>,
    shutdown: CancellationToken,
    backoff: BackoffSettings,
) -> Result<(), LogWatchError> {
    let mut running: HashMap<String, RunningCommand> = HashMap::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    'config: loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                if let Err(error) = joined {
                    // The child went with the task (kill_on_drop); the next config starts it again.
                    tracing::error!(%error, "command source task failed");
                    running.retain(|_, command| command.task != error.id());
                }
            }
            config = configs.recv() => {
                let Some(config) = config else { break };
                let started = apply_config(config.commands, &mut running, &mut tasks, &events, &shutdown, backoff);
                for started in started {
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'config,
                        // A task that ended already has nothing left to start.
                        _ = started => {}
                    }
                }
                let applied = CommandEvent::Applied { generation: config.generation };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    sent = events.send(applied) => if sent.is_err() { break },
                }
            }
        }
    }
    // Every task stops its process group (SIGTERM, SIGKILL after the grace) and reaps it.
    for command in running.values() {
        command.stop.cancel();
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined {
            tracing::error!(%error, "command source task failed");
        }
    }
    Ok(())
}

/// Start what is new, stop what is gone, hand changed checks to what runs on. Returns one
/// receiver per started command, fired once it was spawned (or failed to be).
fn apply_config(
    commands: Vec<WatchedCommand>,
    running: &mut HashMap<String, RunningCommand>,
    tasks: &mut JoinSet<()>,
    events: &mpsc::Sender<CommandEvent>,
    shutdown: &CancellationToken,
    backoff: BackoffSettings,
) -> Vec<oneshot::Receiver<()>> {
    // The same command text in several checks runs once, feeding all of them.
    let mut wanted: Vec<(String, Vec<PatternSpec>, bool)> = Vec::new();
    for command in commands {
        match wanted
            .iter_mut()
            .find(|(text, _, _)| *text == command.command)
        {
            Some((_, checks, reported_down)) => {
                checks.extend(command.checks);
                *reported_down |= command.reported_down;
            }
            None => wanted.push((command.command, command.checks, command.reported_down)),
        }
    }
    running.retain(|text, command| {
        let keep = wanted.iter().any(|(wanted, _, _)| wanted == text);
        if !keep {
            tracing::debug!(command = %text, "stopping command source");
            command.stop.cancel();
        }
        keep
    });
    let mut started = Vec::new();
    for (text, checks, reported_down) in wanted {
        let checks = Arc::new(checks);
        if let Some(command) = running.get(&text) {
            command.checks.send_replace(checks);
            continue;
        }
        tracing::debug!(command = %text, "starting command source");
        let (checks_sender, checks_receiver) = watch::channel(checks);
        let (started_sender, started_receiver) = oneshot::channel();
        let stop = shutdown.child_token();
        let source = CommandSource {
            label: format!("@{text}"),
            command: text.clone(),
            checks: checks_receiver,
            events: events.clone(),
            stop: stop.clone(),
            backoff,
            reported_down,
        };
        let task = tasks.spawn(source.run(started_sender)).id();
        running.insert(
            text,
            RunningCommand {
                stop,
                checks: checks_sender,
                task,
            },
        );
        started.push(started_receiver);
    }
    started
}

/// One command and its restarts.
struct CommandSource {
    command: String,
    /// `@command`, for logs.
    label: String,
    checks: watch::Receiver<Arc<Vec<PatternSpec>>>,
    events: mpsc::Sender<CommandEvent>,
    stop: CancellationToken,
    backoff: BackoffSettings,
    /// The caller already reported it down (before a restart of the agent): it owes a
    /// `Recovered` once the command stays up.
    reported_down: bool,
}

/// How one run of the command ended.
enum Ended {
    /// Asked to stop: the group is gone and reaped.
    Stopped,
    Died {
        reason: String,
        uptime: Duration,
        /// The group of a command that exited, which may hold leftover processes.
        leftover_group: Option<i32>,
    },
}

impl CommandSource {
    async fn run(mut self, started: oneshot::Sender<()>) {
        let mut started = Some(started);
        let mut backoff = Backoff::new(self.backoff.initial, self.backoff.max);
        // Whether `Died` was sent and no `Recovered` since: one alert per failure streak.
        let mut failing = self.reported_down;
        loop {
            let spawned = spawn(&self.command);
            if let Some(started) = started.take() {
                let _ = started.send(());
            }
            let ended = match spawned {
                Ok(child) => self.follow(child, &mut failing).await,
                Err(error) => Ended::Died {
                    reason: format!("cannot start `sh -c`: {error}"),
                    uptime: Duration::ZERO,
                    leftover_group: None,
                },
            };
            let Ended::Died {
                reason,
                uptime,
                leftover_group,
            } = ended
            else {
                return;
            };
            if uptime >= self.backoff.healthy_after {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            tracing::warn!(command = %self.label, %reason, retry_in = ?delay, "command source stopped; restarting it");
            let mut alive = true;
            if !failing {
                failing = true;
                let died = CommandEvent::Died {
                    command: self.command.clone(),
                    reason,
                    retry_in: delay,
                };
                alive = self.send(died).await;
            }
            if alive {
                tokio::select! {
                    _ = self.stop.cancelled() => alive = false,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            if let Some(group) = leftover_group {
                // They had SIGTERM when the shell died, and the whole backoff to go.
                signal_group(group, libc::SIGKILL);
            }
            if !alive {
                return;
            }
        }
    }

    /// Send an event unless asked to stop first; `false` when the source should stop.
    async fn send(&self, event: CommandEvent) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => false,
            sent = self.events.send(event) => sent.is_ok(),
        }
    }

    async fn send_matches(&self, matches: Vec<LogMatch>) -> bool {
        matches.is_empty()
            || self
                .send(CommandEvent::Matched {
                    command: self.command.clone(),
                    matches,
                })
                .await
    }

    /// Read one run of the command until it exits or is stopped.
    async fn follow(&mut self, mut child: Child, failing: &mut bool) -> Ended {
        let started_at = Instant::now();
        // Spawned children always have an id until they are reaped.
        let group = child.id().map_or(0, |pid| pid as i32);
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let mut output = OutputLines::new(self.checks.borrow().clone());
        let mut errors = StderrLog::new(&self.label);
        let mut stderr_buffer = vec![0; STDERR_BUFFER_BYTES];
        // Only polled during a failure streak: a healthy command costs no timer.
        let recovery = tokio::time::sleep_until(started_at + self.backoff.healthy_after);
        tokio::pin!(recovery);

        let status = loop {
            if output.has_pending() {
                let matches = output
                    .next_batch(&mut self.checks, &self.label, &mut stdout)
                    .await;
                if !self.send_matches(matches).await {
                    stop_group(&mut child, group).await;
                    return Ended::Stopped;
                }
                continue;
            }
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => {
                    stop_group(&mut child, group).await;
                    return Ended::Stopped;
                }
                read = read_some(&mut stdout, &mut output.buffer), if stdout.is_some() => {
                    match read {
                        Ok(count) if count > 0 => output.filled(count),
                        ended => {
                            if let Err(error) = ended {
                                tracing::warn!(command = %self.label, %error, "cannot read the command's output");
                            }
                            stdout = None;
                            let matches = output.flush(&self.label);
                            if !self.send_matches(matches).await {
                                stop_group(&mut child, group).await;
                                return Ended::Stopped;
                            }
                        }
                    }
                }
                read = read_some(&mut stderr, &mut stderr_buffer), if stderr.is_some() => {
                    match read {
                        Ok(count) if count > 0 => errors.feed(&stderr_buffer[..count]),
                        _ => stderr = None,
                    }
                }
                status = child.wait() => break status,
                _ = &mut recovery, if *failing => {
                    *failing = false;
                    tracing::info!(command = %self.label, "command source runs again");
                    let recovered = CommandEvent::Recovered { command: self.command.clone() };
                    if !self.send(recovered).await {
                        stop_group(&mut child, group).await;
                        return Ended::Stopped;
                    }
                }
            }
        };
        let uptime = started_at.elapsed();

        // What it printed before dying is in the pipes already: read it without waiting.
        let mut drained = 0;
        loop {
            if output.has_pending() {
                let matches = output
                    .next_batch(&mut self.checks, &self.label, &mut stdout)
                    .await;
                if !self.send_matches(matches).await {
                    signal_group(group, libc::SIGKILL);
                    return Ended::Stopped;
                }
                continue;
            }
            if drained >= DRAIN_AFTER_EXIT_BYTES {
                break;
            }
            match read_now(&mut stdout, &mut output.buffer).await {
                Some(Ok(count)) if count > 0 => {
                    drained += count;
                    output.filled(count);
                }
                _ => break,
            }
        }
        let matches = output.flush(&self.label);
        if !self.send_matches(matches).await {
            signal_group(group, libc::SIGKILL);
            return Ended::Stopped;
        }
        let mut drained = 0;
        while drained < DRAIN_AFTER_EXIT_BYTES {
            match read_now(&mut stderr, &mut stderr_buffer).await {
                Some(Ok(count)) if count > 0 => {
                    drained += count;
                    errors.feed(&stderr_buffer[..count]);
                }
                _ => break,
            }
        }
        errors.finish();
        // Processes the shell left behind would run on beside the restarted command.
        signal_group(group, libc::SIGTERM);
        let mut reason = match status {
            Ok(status) => describe(status),
            Err(error) => format!("cannot wait for the command: {error}"),
        };
        if !errors.last_line.is_empty() {
            reason = format!("{reason} (stderr: {})", errors.last_line);
        }
        Ended::Died {
            reason,
            uptime,
            leftover_group: Some(group),
        }
    }
}

/// `sh -c '<command>'`, as Mender runs it, in a process group of its own so that stopping
/// it reaches everything it started. A simple command is run as `exec <command>`: the shell
/// becomes the command rather than waiting for it (see `shell_script`).
fn spawn(command: &str) -> io::Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(&*shell_script(command))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Last resort when the task is dropped without stopping the group (a panic).
        .kill_on_drop(true)
        .spawn()
}

/// SIGTERM to the group; SIGKILL after the grace to whatever is left; reap the shell.
async fn stop_group(child: &mut Child, group: i32) {
    let deadline = Instant::now() + STOP_GRACE;
    signal_group(group, libc::SIGTERM);
    match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(_) => {
            // The shell is gone; the rest of its group has what is left of the grace. Its
            // members are not our children, so nothing tells us when they end: look a few
            // times (only while stopping, at most for the grace).
            while group_has_live_members(group) {
                if Instant::now() >= deadline {
                    signal_group(group, libc::SIGKILL);
                    break;
                }
                tokio::time::sleep(
                    GROUP_EXIT_CHECK_INTERVAL
                        .min(deadline.saturating_duration_since(Instant::now())),
                )
                .await;
            }
        }
        Err(_) => {
            signal_group(group, libc::SIGKILL);
            if let Err(error) = child.wait().await {
                tracing::warn!(%error, "cannot reap the command");
            }
        }
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

/// Whether any process of the group is still alive. Dead members may linger as zombies
/// until init reaps them (some container inits never do): those do not count.
fn group_has_live_members(group: i32) -> bool {
    if group <= 0 {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // SAFETY: signal 0 checks existence and permission only.
        return unsafe { libc::killpg(group, 0) } == 0;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(") ").map(|end| &stat[end + 2..]) else {
            return false;
        };
        let mut fields = rest.split(' ');
        let state = fields.next();
        let process_group = fields.nth(1).and_then(|field| field.parse::<i32>().ok());
        process_group == Some(group) && state != Some("Z") && state != Some("X")
    })
}

fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(signal) = status.signal() {
        let core = if status.core_dumped() {
            " (core dumped)"
        } else {
            ""
        };
        format!("killed by signal {signal}{core}")
    } else {
        format!("ended: {status}")
    }
}

/// Read into `buffer`; a closed stream never completes.
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut Option<R>,
    buffer: &mut [u8],
) -> io::Result<usize> {
    match reader {
        Some(reader) => reader.read(buffer).await,
        None => std::future::pending().await,
    }
}

/// Read what is there now, without waiting: `None` when nothing is.
async fn read_now<R: AsyncRead + Unpin>(
    reader: &mut Option<R>,
    buffer: &mut [u8],
) -> Option<io::Result<usize>> {
    let reader = reader.as_mut()?;
    tokio::select! {
        biased;
        read = reader.read(buffer) => Some(read),
        () = std::future::ready(()) => None,
    }
}

/// A command's stdout between reads: the bytes not yet matched, the line being assembled
/// and the context for the next match.
struct OutputLines {
    buffer: Vec<u8>,
    /// `buffer[start..end]` is read but not yet cut into lines.
    start: usize,
    end: usize,
    lines: LineSplitter,
    context: ContextRing,
    checks: Arc<Vec<PatternSpec>>,
    prefilter: Arc<Prefilter>,
}

impl OutputLines {
    fn new(checks: Arc<Vec<PatternSpec>>) -> Self {
        let mut context = ContextRing::default();
        context.fit_to(&checks);
        OutputLines {
            buffer: vec![0; STDOUT_BUFFER_BYTES],
            start: 0,
            end: 0,
            lines: LineSplitter::default(),
            context,
            prefilter: Arc::new(Prefilter::for_checks(&checks)),
            checks,
        }
    }

    fn has_pending(&self) -> bool {
        self.start < self.end
    }

    fn filled(&mut self, count: usize) {
        self.start = 0;
        self.end = count;
    }

    /// Match the pending bytes until [`MAX_MATCHES_PER_EVENT`]; when a match wants lines
    /// after it and the buffer ran dry, take what the pipe holds already (never waiting).
    async fn next_batch(
        &mut self,
        checks: &mut watch::Receiver<Arc<Vec<PatternSpec>>>,
        label: &str,
        stdout: &mut Option<ChildStdout>,
    ) -> Vec<LogMatch> {
        if checks.has_changed().unwrap_or(false) {
            self.checks = checks.borrow_and_update().clone();
            self.context.fit_to(&self.checks);
            self.prefilter = Arc::new(Prefilter::for_checks(&self.checks));
        }
        let current = self.checks.clone();
        let prefilter = self.prefilter.clone();
        let mut collector = MatchCollector::new(&current, &prefilter, &label);
        loop {
            let consumed = scan_chunk(
                &mut self.lines,
                &mut self.context,
                &mut collector,
                &self.buffer[self.start..self.end],
                &label,
                |_, collector| collector.match_count() < MAX_MATCHES_PER_EVENT,
            );
            self.start += consumed;
            if self.has_pending()
                || !collector.is_awaiting_after()
                || collector.match_count() >= MAX_MATCHES_PER_EVENT
            {
                break;
            }
            match read_now(stdout, &mut self.buffer).await {
                Some(Ok(count)) if count > 0 => self.filled(count),
                None => break,
                // The end of the output: the reader loop notices it again.
                Some(_) => break,
            }
        }
        collector.into_matches()
    }

    /// The output ended: its unfinished last line is a line.
    fn flush(&mut self, label: &str) -> Vec<LogMatch> {
        let current = self.checks.clone();
        let mut collector = MatchCollector::new(&current, &self.prefilter, &label);
        let context = &mut self.context;
        self.lines
            .flush(|number, line| collector.line(context, number, line));
        collector.into_matches()
    }
}

/// Logs a command's stderr at debug, a few lines a second at most; the rest is counted.
struct StderrLog<'a> {
    label: &'a str,
    partial: Vec<u8>,
    /// The last complete line, quoted when the command dies.
    last_line: String,
    window_start: Option<Instant>,
    logged_in_window: u32,
    suppressed: u64,
}

impl<'a> StderrLog<'a> {
    fn new(label: &'a str) -> Self {
        StderrLog {
            label,
            partial: Vec::new(),
            last_line: String::new(),
            window_start: None,
            logged_in_window: 0,
            suppressed: 0,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        let mut start = 0;
        for newline in memchr::memchr_iter(b'\n', chunk) {
            self.push(&chunk[start..newline]);
            self.line_done();
            start = newline + 1;
        }
        self.push(&chunk[start..]);
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = STDERR_LINE_BYTES.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn line_done(&mut self) {
        let line = self.partial.strip_suffix(b"\r").unwrap_or(&self.partial);
        if line.is_empty() {
            self.partial.clear();
            return;
        }
        self.last_line = String::from_utf8_lossy(line).into_owned();
        self.partial.clear();
        let now = Instant::now();
        let window_over = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= Duration::from_secs(1));
        if window_over {
            self.report_suppressed();
            self.window_start = Some(now);
            self.logged_in_window = 0;
        }
        if self.logged_in_window < STDERR_LINES_LOGGED_PER_SECOND {
            self.logged_in_window += 1;
            tracing::debug!(command = %self.label, line = %self.last_line, "command wrote to stderr");
        } else {
            self.suppressed += 1;
        }
    }

    fn report_suppressed(&mut self) {
        if self.suppressed > 0 {
            tracing::debug!(command = %self.label, lines = self.suppressed, "more stderr lines were not logged");
            self.suppressed = 0;
        }
    }

    fn finish(&mut self) {
        if !self.partial.is_empty() {
            self.line_done();
        }
        self.report_suppressed();
    }
}
