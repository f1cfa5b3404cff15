//! What the agent asks of systemd beyond watching: a unit's last journal lines for an
//! alert, and a restart (`on_failure: restart`). Both are subprocesses with deadlines, run
//! off the agent's loop.
//!
//! A unit name never reaches a command line where it could be read as an option: it comes
//! from check files, but also from D-Bus and from `notify-failure --from-env`, and `-.mount`
//! is a real unit. `systemctl` gets it after `--`, `journalctl` inside `--unit=`.

use std::time::Duration;

use crate::Bus;

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
const JOURNAL_LINES: &str = "10";
const JOURNAL_DEADLINE: Duration = Duration::from_millis(300);
const RESTART_DEADLINE: Duration = Duration::from_secs(30);

/// The unit's last journal lines, when journald runs: what a person reads first. Bounded
/// in time so a slow journal never holds an alert back for long; without journald (or
/// `journalctl`) there are none, at no cost.
pub async fn recent_journal(unit: &str, bus: Bus) -> Vec<String> {
    if !std::path::Path::new(JOURNAL_SOCKET).exists() {
        return Vec::new();
    }
    let mut command = tokio::process::Command::new("journalctl");
    command
        .args(journal_arguments(unit, bus))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(JOURNAL_DEADLINE, command.output()).await {
        Ok(Ok(output)) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// `journalctl`'s arguments for `unit`'s last lines; the name is the value of `--unit=`.
fn journal_arguments(unit: &str, bus: Bus) -> Vec<String> {
    let mut arguments = Vec::new();
    if bus == Bus::Session {
        arguments.push("--user".to_owned());
    }
    arguments.push(format!("--unit={unit}"));
    arguments.extend(
        [
            "--lines",
            JOURNAL_LINES,
            "--output",
            "short-iso",
            "--no-pager",
            "--quiet",
        ]
        .map(str::to_owned),
    );
    arguments
}

/// `restart` on a task of its own (it returns once the job is queued); failures are logged.
pub fn restart_unit(unit: String, bus: Bus) {
    tokio::spawn(async move {
        if let Err(error) = restart(&unit, bus).await {
            tracing::error!(%unit, "{error}");
        }
    });
}

/// `systemctl restart --no-block -- <unit>`: done once systemd has queued the job. The error
/// says what failed, with systemctl's own words.
pub async fn restart(unit: &str, bus: Bus) -> Result<(), String> {
    let mut command = tokio::process::Command::new("systemctl");
    if bus == Bus::Session {
        command.arg("--user");
    }
    command
        .args(["restart", "--no-block", "--", unit])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(RESTART_DEADLINE, command.output()).await {
        Ok(Ok(output)) if output.status.success() => Ok(()),
        Ok(Ok(output)) => Err(format!(
            "systemctl restart failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(Err(error)) => Err(format!("cannot run systemctl to restart the unit: {error}")),
        Err(_) => Err("systemctl restart took longer than 30 s".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_named_like_an_option_is_the_value_of_unit() {
        let arguments = journal_arguments("--since=2000-01-01", Bus::Session);
        assert_eq!(arguments[..2], ["--user", "--unit=--since=2000-01-01"]);
        assert!(!arguments
            .iter()
            .any(|argument| argument == "--since=2000-01-01"));
    }
}
