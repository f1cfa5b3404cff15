//! The watcher's interface: what it is given (the files and commands, each with its checks'
//! patterns) and what it sends back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use monitor_source::FilePosition;
use monitor_wire::{CheckId, Details, LogLine};
use regex::bytes::Regex;

/// One check's pattern on a file.
#[derive(Debug, Clone)]
pub struct PatternSpec {
    pub check: CheckId,
    pub regex: Regex,
    pub lines_before: usize,
    pub lines_after: usize,
    /// What the check's alerts say about a match besides its lines.
    pub details: Arc<MatchDetails>,
    /// Where the check begins on a file it has not read yet (`@command` output is a
    /// stream: always from when the command starts).
    pub from: ReadFrom,
}

/// Where a check begins reading a file it has never read: the file's position covers the
/// checks that read it already, and only those skip what came before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadFrom {
    /// What the file already holds (its last [`LogWatchConfig::first_read_limit`] bytes,
    /// from the first whole line in them), then every line written after.
    #[default]
    Start,
    /// Only the lines written from now on.
    End,
}

/// What a check's alert says about a match besides its lines: where the line was read
/// (field `path` or `command`) and the check's description template (Mender's
/// `LOG_ALERT_DETAILS`: `details.description`, with `%line_matching` replaced by the line).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchDetails {
    /// `("path", "/var/log/app.log")` or `("command", "docker events")`.
    pub source: Option<(&'static str, String)>,
    pub template: Option<String>,
}

impl MatchDetails {
    /// For a check reading the file at `path`.
    pub fn file(path: &Path, template: Option<String>) -> MatchDetails {
        MatchDetails {
            source: Some(("path", path.display().to_string())),
            template,
        }
    }

    /// For a check reading the output of `command`.
    pub fn command(command: &str, template: Option<String>) -> MatchDetails {
        MatchDetails {
            source: Some(("command", command.to_owned())),
            template,
        }
    }
}

/// One file to follow and the checks that read it.
#[derive(Debug, Clone)]
pub struct WatchedFile {
    pub path: PathBuf,
    pub checks: Vec<PatternSpec>,
    /// Where to begin if the file is not followed yet: a checkpointed position, or `None`
    /// for the file's end (each check then reads what is before it as its
    /// [`PatternSpec::from`] says).
    pub resume: Option<FilePosition>,
    /// The checks that read every line before `resume` already: the others read what is
    /// before it as their [`PatternSpec::from`] says. Ignored without `resume`.
    pub seen_by: BTreeSet<CheckId>,
}

/// The whole set of files to follow; files missing from a new config are let go.
#[derive(Debug, Clone)]
pub struct LogWatchConfig {
    /// Echoed in [`LogEvent::CaughtUp`], so the sender knows which config is live.
    pub generation: u64,
    pub files: Vec<WatchedFile>,
    /// How far back a check new to a file reads what the file holds ([`ReadFrom::Start`]):
    /// at most this many bytes before where the file is read to.
    pub first_read_limit: u64,
    /// How long to wait after the kernel reports a change before reading, so that the
    /// writes landing meanwhile are read in the same pass: fewer wake-ups under a steady
    /// write load, each match that much later. Zero (the default) reads at once.
    pub coalesce: Duration,
}

/// 1 MiB, as the settings' `log_first_read_limit`.
pub const DEFAULT_FIRST_READ_LIMIT: u64 = 1024 * 1024;

impl Default for LogWatchConfig {
    fn default() -> Self {
        LogWatchConfig {
            generation: 0,
            files: Vec::new(),
            first_read_limit: DEFAULT_FIRST_READ_LIMIT,
            coalesce: Duration::ZERO,
        }
    }
}

/// A line that matched a check's pattern, with its context.
#[derive(Debug, Clone, PartialEq)]
pub struct LogMatch {
    pub check: CheckId,
    pub line: LogLine,
    /// Up to `lines_before` lines that came before it (fewer right after a start or rotation).
    pub before: Vec<LogLine>,
    /// Up to `lines_after` lines that followed it in the same read: the alert is not held
    /// back waiting for more.
    pub after: Vec<LogLine>,
    /// The check's [`MatchDetails`].
    pub details: Arc<MatchDetails>,
}

impl LogMatch {
    /// The match as an alert's details: the line and its context, where it was read, and
    /// the check's template filled in.
    pub fn into_details(self) -> Details {
        let mut details = Details {
            description: None,
            line_matching: Some(self.line),
            lines_before: self.before,
            lines_after: self.after,
            fields: Default::default(),
        };
        if let Some((field, value)) = &self.details.source {
            details
                .fields
                .insert((*field).to_owned(), value.clone().into());
        }
        if let (Some(template), Some(line)) = (&self.details.template, &details.line_matching) {
            details.description = Some(template.replace("%line_matching", &line.data));
        }
        details
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent {
    /// Lines were read from `path`; `position` is where a restart would resume, for the
    /// checks in `seen_by` (the others read the file as new to them).
    Read {
        path: PathBuf,
        position: Option<FilePosition>,
        seen_by: BTreeSet<CheckId>,
        matches: Vec<LogMatch>,
    },
    /// The config of this generation was applied and every file in it read to its
    /// current end.
    CaughtUp { generation: u64 },
    /// `path` is not followed: it is not a regular file (a FIFO, a device), a user who
    /// controls the path could not read the file it names themselves, or it cannot be
    /// opened. `message` names the path and the fix. Sent once per distinct problem (and
    /// again when the file's checks change), already logged.
    Problem { path: PathBuf, message: String },
    /// After a [`LogEvent::Problem`]: `path` is followed again (or names nothing yet).
    ProblemResolved { path: PathBuf },
}

/// One long-running command and the checks that read its stdout (Mender's `@command`
/// log source: `@docker events`, `@journalctl -f`, `@tail -F file`).
#[derive(Debug, Clone)]
pub struct WatchedCommand {
    /// The command as written after the `@`; run as `sh -c '<command>'`, like Mender does.
    pub command: String,
    pub checks: Vec<PatternSpec>,
    /// Reported down already (a `Died` before the agent restarted): the new run starts in
    /// a failure streak, so it sends `Recovered` once it stays up, and no second `Died`.
    pub reported_down: bool,
}

/// The whole set of commands to run; commands missing from a new config are stopped, and
/// a command kept from the previous config runs on with its new checks (no restart).
#[derive(Debug, Clone, Default)]
pub struct CommandWatchConfig {
    /// Echoed in [`CommandEvent::Applied`], so the sender knows which config is live.
    pub generation: u64,
    /// The same command text in several entries runs once and feeds all their checks.
    pub commands: Vec<WatchedCommand>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CommandEvent {
    /// Matches in what the command printed: context lines as for files (lines after are
    /// those already printed when the match was read); line numbers count the command's
    /// output lines since it (re)started.
    Matched {
        command: String,
        matches: Vec<LogMatch>,
    },
    /// The command could not start or exited; it is restarted after `retry_in`. Sent once
    /// per failure streak, not on every restart of a crash loop: the caller alerts once.
    Died {
        command: String,
        /// `exited with status 3`, `killed by signal 9`, `cannot start `sh -c`: …`, with
        /// the last line it wrote to stderr when there is one.
        reason: String,
        retry_in: Duration,
    },
    /// After a [`CommandEvent::Died`]: the command has now stayed up for
    /// [`BackoffSettings::healthy_after`], so the streak is over. A command that prints a
    /// line and dies again does not end its streak by printing.
    Recovered { command: String },
    /// Config `generation` applied: every command in it was started (or failed to start).
    Applied { generation: u64 },
}

/// How a command that keeps dying is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffSettings {
    /// Delay before the first restart; it doubles at every death in a row.
    pub initial: Duration,
    /// The delay never grows past this.
    pub max: Duration,
    /// A run this long resets the delay, and ends a failure streak with
    /// [`CommandEvent::Recovered`].
    pub healthy_after: Duration,
}

impl Default for BackoffSettings {
    /// 1 s doubling to 60 s; healthy after 10 s up.
    fn default() -> Self {
        BackoffSettings {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogWatchError {
    #[error("cannot start inotify: {0}; raise fs.inotify.max_user_instances")]
    Inotify(#[source] std::io::Error),
    #[error("cannot start the log watcher's thread: {0}; raise the process or memory limits")]
    Thread(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_wire::Subsystem;

    /// Mender's `LOG_ALERT_DETAILS` (`alert.description`) is the alert's description text,
    /// with `%line_matching` replaced by the line.
    #[test]
    fn the_template_is_the_description_with_the_line() {
        let line = LogLine {
            line_number: 3,
            data: "container restart 0a1b (image=alpine, name=mycontainer)".into(),
        };
        let found = LogMatch {
            check: CheckId::new(Subsystem::Log, "restart"),
            line: line.clone(),
            before: Vec::new(),
            after: Vec::new(),
            details: Arc::new(MatchDetails::command(
                "docker events",
                Some("Alert was raised due to:%line_matching".into()),
            )),
        };
        let details = found.into_details();
        assert_eq!(
            details.description.as_deref(),
            Some("Alert was raised due to:container restart 0a1b (image=alpine, name=mycontainer)")
        );
        assert_eq!(details.line_matching, Some(line));
        assert_eq!(
            details.fields.keys().collect::<Vec<_>>(),
            ["command"],
            "no non-Mender `message` field"
        );
    }
}
