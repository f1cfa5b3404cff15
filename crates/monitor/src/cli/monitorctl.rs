//! `monitorctl`'s command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use monitor_config::ServiceKind;
use monitor_wire::duration::Expiration;
use monitor_wire::Subsystem;

use crate::FolderArgs;

#[derive(Debug, Parser)]
#[command(
    name = "monitorctl",
    version,
    about = "Manage the checks of monitord and look at what it sees",
    after_help = "Examples:\n  monitorctl create log crasher_app ERROR /root/crasher.log 5\n  monitorctl enable log crasher_app\n  monitorctl list\n  monitorctl alerts --follow\n\nCheck files live in CONFIG_DIR/available/<subsystem>_<check>.yaml; enabled checks are symlinked from CONFIG_DIR/enabled/."
)]
pub struct Args {
    #[command(flatten)]
    pub folders: FolderArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a check (disabled until `enable`)
    #[command(subcommand)]
    Create(Create),
    /// Enable a check: the agent starts watching it within a second
    #[command(after_help = "Example:\n  monitorctl enable log crasher_app")]
    Enable { subsystem: Subsystem, check: String },
    /// Disable a check: the agent stops watching it (a CRITICAL check sends its OK)
    #[command(after_help = "Example:\n  monitorctl disable service crasher")]
    Disable { subsystem: Subsystem, check: String },
    /// Delete a check's file (and its enabled link)
    #[command(after_help = "Example:\n  monitorctl delete log crasher_app")]
    Delete { subsystem: Subsystem, check: String },
    /// List every check, with its live state when the agent runs
    #[command(after_help = "Example:\n  monitorctl list --json")]
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Check monitor.yaml and every check file; print every problem at once
    #[command(after_help = "Example:\n  monitorctl --config-dir /etc/monitor validate")]
    Validate,
    /// Show the alert history (state_dir/alerts.jsonl)
    #[command(
        after_help = "Examples:\n  monitorctl alerts --last 20\n  monitorctl alerts --follow --json"
    )]
    Alerts {
        /// Keep printing new alerts as they are recorded
        #[arg(long, short)]
        follow: bool,
        /// Print JSON lines (the Mender alert with seq and check) instead of text
        #[arg(long)]
        json: bool,
        /// Only the newest N alerts
        #[arg(long, short = 'n', value_name = "N")]
        last: Option<usize>,
        /// What each delivery destination has not taken yet, and why
        #[arg(long, conflicts_with_all = ["follow", "last"])]
        pending: bool,
    },
    /// Live state of every check, from the running agent
    #[command(after_help = "Example:\n  monitorctl status")]
    Status {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Clear a CRITICAL pattern check by hand (sends its OK); for checks without expiration
    #[command(after_help = "Example:\n  monitorctl clear log kernel_oops")]
    Clear { subsystem: Subsystem, check: String },
    /// Convert a Mender Monitor installation's check files into this agent's
    #[command(after_help = "Example:\n  monitorctl import-mender /etc/mender-monitor/monitor.d")]
    ImportMender {
        /// Mender's monitor.d folder (with available/ and enabled/)
        #[arg(default_value = "/etc/mender-monitor/monitor.d")]
        from: PathBuf,
    },
    /// Report a failed unit: for `OnFailure=monitor-failure@%n.service` and `ExecStopPost=`
    #[command(
        after_help = "Examples:\n  monitorctl notify-failure crasher.service\n  ExecStopPost=/usr/bin/monitorctl notify-failure --from-env %n\n\nThe alert is recorded by the running agent (or, when the agent is down, straight in\nthe alert history). With --from-env a successful stop ($SERVICE_RESULT=success) is not\nreported."
    )]
    NotifyFailure {
        /// The unit that failed (%n in a unit file)
        unit: String,
        /// Read the result from $SERVICE_RESULT, $EXIT_CODE and $EXIT_STATUS (ExecStopPost=)
        #[arg(long)]
        from_env: bool,
        /// The bus of the unit's manager [default: systemd.bus in monitor.yaml]
        #[arg(long, value_enum)]
        bus: Option<BusArg>,
    },
    /// Print the version
    Version,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BusArg {
    System,
    User,
}

#[derive(Debug, Subcommand)]
pub enum Create {
    /// A regex over a log file, or over a command's output with @command
    #[command(
        after_help = "Examples:\n  monitorctl create log crasher_app ERROR /root/crasher.log 5\n  monitorctl create log kernel 'Out of memory' '@journalctl -kf'"
    )]
    Log {
        check: String,
        /// Regular expression matched against each line
        pattern: String,
        /// Absolute path of a log file, or @command whose output is read
        source: String,
        /// Seconds (or 30s, 5m) without a match before the OK; 0 or never: until cleared
        expiration: Option<Expiration>,
    },
    /// A systemd or SysV service (the check is named after the service)
    #[command(after_help = "Example:\n  monitorctl create service crasher systemd")]
    Service {
        name: String,
        /// systemd or sysV
        kind: ServiceKind,
    },
    /// A container event from `docker events`
    #[command(
        after_help = "Example:\n  monitorctl create dockerevents crasher crasher-container die 15"
    )]
    Dockerevents {
        check: String,
        container: String,
        /// die, oom, kill, restart, ...
        action: String,
        expiration: Option<Expiration>,
    },
    /// A D-Bus signal
    #[command(
        after_help = "Example:\n  monitorctl create dbus upower org.freedesktop.UPower '' \"type='signal'\""
    )]
    Dbus {
        check: String,
        dbus_name: String,
        /// Regular expression matched against the signal's text; empty: every signal
        pattern: String,
        watch_expression: String,
        expiration: Option<Expiration>,
    },
}
