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
    Enable {
        subsystem: Subsystem,
        check: String,
        #[command(flatten)]
        extra: ExtraArguments,
    },
    /// Disable a check: the agent stops watching it (a CRITICAL check sends its OK)
    #[command(after_help = "Example:\n  monitorctl disable service crasher")]
    Disable {
        subsystem: Subsystem,
        check: String,
        #[command(flatten)]
        extra: ExtraArguments,
    },
    /// Delete a check's file (and its enabled link)
    #[command(after_help = "Example:\n  monitorctl delete log crasher_app")]
    Delete {
        subsystem: Subsystem,
        check: String,
        #[command(flatten)]
        extra: ExtraArguments,
    },
    /// List every check, with its live state when the agent runs
    #[command(
        after_help = "Examples:\n  monitorctl list --json\n  monitorctl list dockerevents\n  monitorctl list service getty@tty1"
    )]
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        /// Print control characters and bidi overrides as they are, instead of as visible
        /// escapes (`\x1b`, `\r`, `\u{202e}`); only for a terminal you trust the log with
        #[arg(long, conflicts_with = "json")]
        raw: bool,
        /// Only the checks of this subsystem (dockerevents also lists log checks over docker events)
        subsystem: Option<Subsystem>,
        /// Only this check
        check: Option<String>,
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
        /// Print control characters and bidi overrides as they are, instead of as visible
        /// escapes (`\x1b`, `\r`, `\u{202e}`); only for a terminal you trust the log with
        #[arg(long, conflicts_with = "json")]
        raw: bool,
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
        /// Print control characters and bidi overrides as they are, instead of as visible
        /// escapes (`\x1b`, `\r`, `\u{202e}`); only for a terminal you trust the log with
        #[arg(long, conflicts_with = "json")]
        raw: bool,
    },
    /// Clear a CRITICAL pattern check by hand (sends its OK); for checks without expiration
    #[command(
        after_help = "Examples:\n  monitorctl clear log kernel_oops\n  monitorctl clear monitor disk_root    (a subject raised by monitorctl raise)"
    )]
    Clear {
        #[arg(value_parser = clear_subsystem)]
        subsystem: Subsystem,
        check: String,
        #[command(flatten)]
        extra: ExtraArguments,
    },
    /// Raise a script's own alert (Mender's monitor_send_alert): CRITICAL once, until OK
    #[command(
        after_help = "Examples:\n  monitorctl raise CRITICAL disk_root --name 'Disk / above 90%' --details \"$(df -h /)\"\n  monitorctl raise OK disk_root\n\nThe running agent sends it through its engine to the history and every destination:\none CRITICAL however often it is raised, until `raise OK` (or `monitorctl clear monitor\n<subject>`); an OK for a subject that is not CRITICAL sends nothing. The state survives\nrestarts. When monitord is not running nothing is sent and monitorctl exits 1."
    )]
    Raise {
        /// CRITICAL or OK
        #[arg(value_enum, ignore_case = true)]
        level: RaiseLevel,
        /// What the alert is about (subject.name); one CRITICAL per subject at a time
        subject: String,
        /// The alert's name, Mender's "alert_description" [default: <subject> raised by a script]
        #[arg(long)]
        name: Option<String>,
        /// The alert's description text, Mender's "alert_details"
        #[arg(long)]
        details: Option<String>,
        /// subject.status [default: raised for CRITICAL, cleared for OK]
        #[arg(long)]
        status: Option<String>,
        /// subject.type [default: script]
        #[arg(long = "type", value_name = "TYPE")]
        subject_type: Option<String>,
    },
    /// Convert a Mender Monitor installation's check files and settings into this agent's
    #[command(
        after_help = "Examples:\n  monitorctl import-mender /etc/mender-monitor/monitor.d\n  monitorctl import-mender --mender-config /backup/config.sh --merge-settings\n\nThe settings of Mender's config.sh are written to CONFIG_DIR/monitor.yaml when there is\nnone yet; an existing monitor.yaml is left as it is and the lines to add are printed,\nunless --merge-settings sets them in it (its old text is kept as monitor.yaml.orig)."
    )]
    ImportMender {
        /// Mender's monitor.d folder (with available/ and enabled/)
        #[arg(default_value = "/etc/mender-monitor/monitor.d")]
        from: PathBuf,
        /// Mender's settings file [default: /usr/share/mender-monitor/config/config.sh, skipped when missing]
        #[arg(long, value_name = "FILE")]
        mender_config: Option<PathBuf>,
        /// Set the imported settings in an existing monitor.yaml (other keys are kept, comments are not)
        #[arg(long)]
        merge_settings: bool,
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
    /// Send a test alert through one destination of monitor.yaml and print what came of it
    #[command(
        after_help = "Examples:\n  monitorctl test-destination discord[0]\n  monitorctl test-destination email\n  monitorctl test-destination\n\nThe destination is planned from monitor.yaml as monitord plans it and sent one CRITICAL\nalert, marked as a test, past its min_level and checks; the outbox is not touched.\nIt prints `sent`, or the destination's answer and what to do (exit code 1). Without a\nname, or with an unknown one, it lists the destinations and their names. The backend\nis never sent a test alert: the server would record it as a real alert of the device."
    )]
    TestDestination {
        /// Its setting (discord[0], email[1], backend), its kind when there is one of it
        /// (discord), or its name in the outbox (discord:<webhook id>)
        name: Option<String>,
    },
    /// Print the version
    Version,
}

/// Trailing arguments that Mender's `mender-monitorctl` tolerates and ignores, as in its
/// own tutorial's `mender-monitorctl delete service countdown systemd`: accepted, so that
/// Mender's commands and scripts work unchanged, and named on stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ExtraArguments {
    #[arg(hide = true, num_args = 0..)]
    pub ignored: Vec<String>,
}

/// The level of `monitorctl raise`, as Mender writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RaiseLevel {
    #[value(name = "CRITICAL")]
    Critical,
    #[value(name = "OK")]
    Ok,
}

/// `clear`'s subsystem: a check file's, or `monitor` for a subject raised by `raise`.
fn clear_subsystem(text: &str) -> Result<Subsystem, String> {
    match text {
        "monitor" => Ok(Subsystem::Monitor),
        text => text
            .parse()
            .map_err(|error: monitor_wire::UnknownSubsystem| {
                format!("{error}, or monitor for a subject raised by monitorctl raise")
            }),
    }
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

/// `text` as a terminal can show it without obeying it: every control character (C0 such as
/// ESC, CR, BS and newline; DEL; C1) and every bidi override or isolate becomes a visible
/// escape (`\x1b`, `\r`, `\u{202e}`). Log lines, names and details come from whatever wrote
/// the log, so printed raw, `ESC [2K CR` could erase a CRITICAL and draw a fake OK on the
/// reader's terminal. Backslashes are left as they are: the text stays readable, and
/// `--json` is there for exact bytes.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        match character {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            character if (character as u32) < 0x80 && needs_escape(character) => {
                escaped.push_str(&format!("\\x{:02x}", character as u32))
            }
            character if needs_escape(character) => {
                escaped.push_str(&format!("\\u{{{:x}}}", character as u32))
            }
            character => escaped.push(character),
        }
    }
    std::borrow::Cow::Owned(escaped)
}

/// JSON text with the characters JSON itself leaves raw (DEL, C1 controls, bidi overrides:
/// serde_json escapes only C0) written as `\u` escapes, so `--json` read on a terminal is as
/// harmless as the text output; the value it parses to is unchanged. Outside strings JSON
/// is plain ASCII (its C0 characters are whitespace between values, which stays), so every
/// such character is inside a string.
pub fn escape_json_controls(json: &str) -> std::borrow::Cow<'_, str> {
    let left_raw_by_json = |character: char| character >= '\u{7f}' && needs_escape(character);
    if !json.chars().any(left_raw_by_json) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut escaped = String::with_capacity(json.len() + 8);
    for character in json.chars() {
        if left_raw_by_json(character) {
            // Every such character is in the Basic Multilingual Plane: one `\uXXXX`.
            escaped.push_str(&format!("\\u{:04x}", character as u32));
        } else {
            escaped.push(character);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

/// Controls (C0, DEL, C1) and the bidi formatting characters that reorder what follows them
/// (LRM, RLM, ALM, the embeddings and overrides U+202A..U+202E, the isolates U+2066..U+2069).
fn needs_escape(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_and_bidi_overrides_become_visible_escapes() {
        assert_eq!(
            escape_controls("\u{1b}[2K\rOK\u{8}\u{7f}\u{9b}31m\u{202e}txt.exe\tend\n"),
            "\\x1b[2K\\rOK\\x08\\x7f\\u{9b}31m\\u{202e}txt.exe\\tend\\n"
        );
        assert_eq!(
            escape_controls("plain text, ünïcode, C:\\x"),
            "plain text, ünïcode, C:\\x"
        );
        assert!(matches!(
            escape_controls("nothing to do"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn json_keeps_its_value_and_loses_what_a_terminal_would_obey() {
        let value = serde_json::json!({ "line": "\u{1b}[2K\r\u{9b}2K\u{202e}OK\u{7f}" });
        let json = serde_json::to_string_pretty(&value).unwrap();
        let escaped = escape_json_controls(&json);
        assert!(
            !escaped
                .chars()
                .any(|character| (character.is_control() && character != '\n')
                    || ('\u{202a}'..='\u{202e}').contains(&character)),
            "{escaped}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&escaped).unwrap(),
            value
        );
    }
}
