//! `monitorctl`'s command line.

use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{Arg, ArgAction, ArgMatches, FromArgMatches, Parser, Subcommand};
use monitor_config::{CreateCommand, CREATE_COMMANDS};
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
        after_help = "Examples:\n  monitorctl alerts --last 20\n  monitorctl alerts --follow --json\n  monitorctl alerts --rejected"
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
        /// Alerts a destination refused even on their own (400, 413), with its reason
        /// (state_dir/rejected.jsonl); they are never sent again
        #[arg(long, conflicts_with_all = ["follow", "last", "pending"])]
        rejected: bool,
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

/// `monitorctl create <subsystem> ...`. The subcommands are the kinds' own
/// ([`CREATE_COMMANDS`]: Mender's argument order, help and examples), so a new kind of check
/// brings its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    pub subsystem: Subsystem,
    /// By position, as the subsystem's [`CreateCommand`] lists its arguments; `None` for an
    /// optional one left out.
    pub values: Vec<Option<String>>,
}

impl FromArgMatches for Create {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, matches)) = matches.subcommand() else {
            return Err(clap::Error::new(ErrorKind::MissingSubcommand));
        };
        let Some(command) = create_command(name) else {
            return Err(clap::Error::raw(
                ErrorKind::InvalidSubcommand,
                format!("unrecognized subcommand '{name}'"),
            ));
        };
        let values = command
            .arguments
            .iter()
            .map(|argument| matches.get_one::<String>(argument.name).cloned())
            .collect();
        Ok(Create {
            subsystem: command.subsystem,
            values,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Create::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for Create {
    fn augment_subcommands(command: clap::Command) -> clap::Command {
        CREATE_COMMANDS.iter().fold(command, |command, create| {
            command.subcommand(subcommand(create))
        })
    }

    fn augment_subcommands_for_update(command: clap::Command) -> clap::Command {
        Create::augment_subcommands(command)
    }

    fn has_subcommand(name: &str) -> bool {
        create_command(name).is_some()
    }
}

fn create_command(name: &str) -> Option<&'static CreateCommand> {
    CREATE_COMMANDS
        .iter()
        .find(|command| command.subsystem.as_str() == name)
}

/// What clap's derive would make of the same subcommand written as a struct.
fn subcommand(create: &CreateCommand) -> clap::Command {
    let command = clap::Command::new(create.subsystem.as_str())
        .about(create.about)
        .long_about(None)
        .after_help(create.examples);
    create.arguments.iter().fold(command, |command, argument| {
        let mut arg = Arg::new(argument.name)
            .value_name(argument.value_name)
            .required(argument.required)
            .action(ArgAction::Set);
        if let Some(help) = argument.help {
            arg = arg.help(help).long_help(None);
        }
        arg = match argument.check {
            Some(check) => {
                arg.value_parser(move |text: &str| check(text).map(|()| text.to_owned()))
            }
            None => arg.value_parser(clap::value_parser!(String)),
        };
        command.arg(arg)
    })
}
