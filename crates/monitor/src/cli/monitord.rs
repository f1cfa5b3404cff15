//! `monitord`'s command line.

use clap::Parser;

use crate::FolderArgs;

/// The device monitoring agent: watches log files, command output, systemd services,
/// containers and D-Bus signals, and raises CRITICAL / OK alerts.
#[derive(Debug, Parser)]
#[command(
    name = "monitord",
    version,
    after_help = "Examples:\n  monitord --config-dir /etc/monitor\n  MONITOR_STATE_DIR=/tmp/state monitord --config-dir examples/config\n\nLog verbosity: RUST_LOG=debug monitord"
)]
pub struct Args {
    #[command(flatten)]
    pub folders: FolderArgs,
}
