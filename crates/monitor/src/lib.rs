//! What `monitord` and `monitorctl` share: where the configuration, the state and the
//! control socket live, and how to reach a running agent.
//!
//! The agent itself is in `src/bin/monitord`, the command line in `src/bin/monitorctl`; the
//! logic they wire together lives in the `monitor-*` library crates.

pub mod cli;
pub mod destinations;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use monitor_config::Settings;
use monitor_wire::control::{Request, Response, SOCKET_FILE_NAME};

/// The folders both binaries take; flags win over the environment, which wins over
/// `monitor.yaml`, which wins over the defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct FolderArgs {
    /// Folder with monitor.yaml, available/ and enabled/
    #[arg(
        long,
        env = "MONITOR_CONFIG_DIR",
        default_value = "/etc/monitor",
        global = true
    )]
    pub config_dir: PathBuf,
    /// Where the agent keeps offsets, alert state and the alert history [default: state_dir in monitor.yaml, else /var/lib/monitor]
    #[arg(long, env = "MONITOR_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// Where the agent's control socket lives [default: runtime_dir in monitor.yaml, else /run/monitor]
    #[arg(long, env = "MONITOR_RUNTIME_DIR", global = true)]
    pub runtime_dir: Option<PathBuf>,
    /// Whether the built-in default checks run [default: default_checks in monitor.yaml, else true]
    #[arg(
        long,
        env = "MONITOR_DEFAULT_CHECKS",
        global = true,
        value_name = "BOOL"
    )]
    pub default_checks: Option<bool>,
}

impl FolderArgs {
    /// Apply the flag and environment overrides to settings read from `monitor.yaml`.
    pub fn apply(&self, settings: &mut Settings) {
        if let Some(state_dir) = &self.state_dir {
            settings.state_dir = state_dir.clone();
        }
        if let Some(runtime_dir) = &self.runtime_dir {
            settings.runtime_dir = runtime_dir.clone();
        }
        if let Some(default_checks) = self.default_checks {
            settings.default_checks = default_checks;
        }
    }
}

/// The control socket's path in `runtime_dir`.
pub fn socket_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(SOCKET_FILE_NAME)
}

/// Ask a running agent; `Ok(None)` when no agent listens there.
pub fn ask_agent(runtime_dir: &Path, request: &Request) -> anyhow::Result<Option<Response>> {
    let path = socket_path(runtime_dir);
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot reach monitord at {}", path.display()))
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .with_context(|| format!("cannot talk to monitord at {}", path.display()))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .with_context(|| format!("monitord at {} did not answer", path.display()))?;
    let response = serde_json::from_str(&answer).with_context(|| {
        format!(
            "monitord at {} answered something unreadable",
            path.display()
        )
    })?;
    Ok(Some(response))
}
