//! Whether a process runs, for daemons that are not systemd units (seed 002's forking
//! Telldus daemon): found by its name, by a regular expression on its command line, or
//! through the pid file it writes.
//!
//! Everything is read from `<procfs root>/<pid>/{comm,cmdline,stat}`. A zombie (state `Z`,
//! or `X`) has exited and is not running: a daemon killed while its parent (often init in
//! a container) has not reaped it yet must still count as down.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use regex::Regex;

use crate::{Reading, Roots};

/// How many pids the text of a running check lists.
const PIDS_SHOWN: usize = 5;
/// The kernel keeps the first 15 bytes of a process's name (`TASK_COMM_LEN` is 16 with
/// the NUL): a longer configured name is compared on those.
const COMM_BYTES: usize = 15;

/// Which process a check looks for.
#[derive(Debug, Clone)]
pub enum ProcessSelector {
    /// Its name as the kernel keeps it (`/proc/<pid>/comm`, what `ps -e` and `pgrep` show):
    /// the executable's file name, at most 15 bytes.
    Name(String),
    /// A regular expression searched in its command line (the arguments joined with
    /// spaces, like `pgrep -f`). Kernel threads, whose command line is empty, never match.
    CommandLine(Regex),
    /// The pid in the first line of a pid file; with `name`, that pid's name must match too,
    /// so a stale file whose pid went to another process does not count as running.
    PidFile { path: PathBuf, name: Option<String> },
}

impl PartialEq for ProcessSelector {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Name(a), Self::Name(b)) => a == b,
            (Self::CommandLine(a), Self::CommandLine(b)) => a.as_str() == b.as_str(),
            (
                Self::PidFile { path, name },
                Self::PidFile {
                    path: other_path,
                    name: other_name,
                },
            ) => path == other_path && name == other_name,
            _ => false,
        }
    }
}

impl fmt::Display for ProcessSelector {
    /// What the check watches, for the alert's subject: `telldusd`, `/telldusd -d/`,
    /// `/var/run/telldusd.pid`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => formatter.write_str(name),
            Self::CommandLine(regex) => write!(formatter, "/{}/", regex.as_str()),
            Self::PidFile { path, .. } => write!(formatter, "{}", path.display()),
        }
    }
}

/// Looks whether a process runs. Bad when none does.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessProbe {
    pub selector: ProcessSelector,
}

impl ProcessProbe {
    pub fn new(selector: ProcessSelector) -> Self {
        ProcessProbe { selector }
    }

    /// A [`Reading::Verdict`]: bad when no such process runs. `Unavailable` only when the
    /// procfs root itself cannot be read.
    pub async fn sample(&self, roots: &Roots) -> Reading {
        let selector = self.selector.clone();
        let proc_root = roots.proc.clone();
        // Listing /proc reads a file per process: off the runtime's threads.
        tokio::task::spawn_blocking(move || sample_blocking(&selector, &proc_root))
            .await
            .unwrap_or_else(|error| {
                Reading::Unavailable(format!("the process probe failed: {error}"))
            })
    }
}

fn sample_blocking(selector: &ProcessSelector, proc_root: &Path) -> Reading {
    match selector {
        ProcessSelector::Name(name) => {
            let matches =
                |pid: u32| read_comm(proc_root, pid).is_some_and(|comm| names_match(&comm, name));
            match find(proc_root, matches) {
                Ok(pids) => verdict_for(&pids, &format!("process named {name}"), name),
                Err(reading) => reading,
            }
        }
        ProcessSelector::CommandLine(regex) => {
            let matches = |pid: u32| {
                read_command_line(proc_root, pid)
                    .is_some_and(|line| !line.is_empty() && regex.is_match(&line))
            };
            let shown = format!("/{}/", regex.as_str());
            match find(proc_root, matches) {
                Ok(pids) => verdict_for(&pids, &format!("process matching {shown}"), &shown),
                Err(reading) => reading,
            }
        }
        ProcessSelector::PidFile { path, name } => {
            pid_file_verdict(proc_root, path, name.as_deref())
        }
    }
}

/// Every live (not zombie) process for which `matches` holds, in pid order.
fn find(proc_root: &Path, matches: impl Fn(u32) -> bool) -> Result<Vec<u32>, Reading> {
    let entries = fs::read_dir(proc_root).map_err(|error| {
        Reading::Unavailable(format!(
            "cannot list {}: {error}: set procfs_root to where proc is mounted (default /proc)",
            proc_root.display()
        ))
    })?;
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        // A process may end between the listing and the reads: then a read fails and it
        // does not match.
        .filter(|&pid| matches(pid) && is_alive(proc_root, pid) == Some(true))
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

fn verdict_for(pids: &[u32], none_text: &str, shown: &str) -> Reading {
    match pids {
        [] => Reading::Verdict {
            bad: true,
            text: format!("no {none_text} runs"),
        },
        [pid] => Reading::Verdict {
            bad: false,
            text: format!("{shown} runs (pid {pid})"),
        },
        pids => {
            let mut listed: Vec<String> =
                pids.iter().take(PIDS_SHOWN).map(u32::to_string).collect();
            if pids.len() > PIDS_SHOWN {
                listed.push("…".to_owned());
            }
            Reading::Verdict {
                bad: false,
                text: format!(
                    "{shown} runs ({} processes: pids {})",
                    pids.len(),
                    listed.join(", ")
                ),
            }
        }
    }
}

fn pid_file_verdict(proc_root: &Path, path: &Path, name: Option<&str>) -> Reading {
    let bad = |text: String| Reading::Verdict { bad: true, text };
    let content = match fs::read_to_string(path) {
        Ok(content) => content,
        // Daemons remove their pid file when they stop: not running, not a problem of
        // the check.
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return bad(format!(
                "the pid file {} does not exist: the process is not running",
                path.display()
            ));
        }
        Err(error) => {
            return bad(format!(
                "cannot read the pid file {}: {error}",
                path.display()
            ));
        }
    };
    let first_line = content.lines().next().unwrap_or("").trim();
    let Some(pid) = first_line.parse::<u32>().ok().filter(|&pid| pid > 0) else {
        return bad(format!(
            "the pid file {} holds {first_line:?}, not a pid: the process is not running",
            path.display()
        ));
    };
    match is_alive(proc_root, pid) {
        None => {
            return bad(format!(
                "pid {pid} (from {}) is not running",
                path.display()
            ))
        }
        Some(false) => {
            return bad(format!(
                "pid {pid} (from {}) has exited (a zombie)",
                path.display()
            ));
        }
        Some(true) => {}
    }
    let comm = read_comm(proc_root, pid);
    if let Some(name) = name {
        match &comm {
            Some(comm) if names_match(comm, name) => {}
            Some(comm) => {
                return bad(format!(
                    "pid {pid} (from {}) is {comm}, not {name}: the pid file is stale",
                    path.display()
                ));
            }
            None => {
                return bad(format!(
                    "pid {pid} (from {}) is not running",
                    path.display()
                ))
            }
        }
    }
    let what = name
        .map(str::to_owned)
        .or(comm)
        .unwrap_or_else(|| "the process".to_owned());
    Reading::Verdict {
        bad: false,
        text: format!("{what} runs (pid {pid} from {})", path.display()),
    }
}

/// Whether a configured name matches the kernel's (possibly truncated) one.
fn names_match(comm: &str, name: &str) -> bool {
    if comm == name {
        return true;
    }
    name.len() > COMM_BYTES && name.as_bytes().get(..COMM_BYTES) == Some(comm.as_bytes())
}

fn read_comm(proc_root: &Path, pid: u32) -> Option<String> {
    let comm = fs::read_to_string(proc_root.join(pid.to_string()).join("comm")).ok()?;
    Some(comm.strip_suffix('\n').unwrap_or(&comm).to_owned())
}

/// The arguments joined with spaces (`cmdline` separates them with NULs).
fn read_command_line(proc_root: &Path, pid: u32) -> Option<String> {
    let bytes = fs::read(proc_root.join(pid.to_string()).join("cmdline")).ok()?;
    let line = String::from_utf8_lossy(&bytes).replace('\0', " ");
    Some(line.trim_end().to_owned())
}

/// `Some(true)` for a live process, `Some(false)` for a zombie (or dead) one, `None` when
/// there is no such process.
fn is_alive(proc_root: &Path, pid: u32) -> Option<bool> {
    let stat = fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // `pid (comm) state …`; comm may hold spaces and parentheses: the state follows the
    // last `) `.
    let state = stat
        .rfind(") ")
        .and_then(|end| stat[end + 2..].split(' ').next())?;
    Some(state != "Z" && state != "X" && state != "x")
}

#[cfg(test)]
mod tests;
