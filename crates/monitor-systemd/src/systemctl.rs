//! What the agent asks of systemd beyond watching: a unit's last journal lines for an
//! alert, and a restart (`on_failure: restart`). Both are subprocesses with deadlines, run
//! off the agent's loop.

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
    if bus == Bus::Session {
        command.arg("--user");
    }
    command
        .args([
            "--unit",
            unit,
            "--lines",
            JOURNAL_LINES,
            "--output",
            "short-iso",
            "--no-pager",
            "--quiet",
        ])
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

/// `systemctl restart --no-block <unit>` on a task of its own (it returns once the job is
/// queued); failures are logged.
pub fn restart_unit(unit: String, bus: Bus) {
    tokio::spawn(async move {
        let mut command = tokio::process::Command::new("systemctl");
        if bus == Bus::Session {
            command.arg("--user");
        }
        command
            .args(["restart", "--no-block", &unit])
            .kill_on_drop(true);
        match tokio::time::timeout(RESTART_DEADLINE, command.output()).await {
            Ok(Ok(output)) if output.status.success() => {}
            Ok(Ok(output)) => {
                tracing::error!(%unit, "systemctl restart failed: {}", String::from_utf8_lossy(&output.stderr).trim())
            }
            Ok(Err(error)) => {
                tracing::error!(%unit, %error, "cannot run systemctl to restart the unit")
            }
            Err(_) => tracing::error!(%unit, "systemctl restart took longer than 30 s"),
        }
    });
}
