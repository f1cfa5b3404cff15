//! `process` checks: a process that is not a systemd unit (seed 002's forking Telldus
//! daemon) runs, found by its name, a regular expression on its command line, or its pid
//! file. Sampled by the agent (see [`sampled`](super::sampled)); down and up go through
//! the same flapping as services ("Process telldusd going up and down").
//!
//! ```yaml
//! name: telldusd                       # its name, as `ps -e` shows it
//! # or: command_line: 'python3 .*/cherrytelldus'   (a regex, as `pgrep -f`)
//! # or: pid_file: /var/run/telldusd.pid (with `name:` too, the pid must be that process)
//! interval: 10s
//! for: 2                               # missing in 2 samples in a row before CRITICAL
//! ```

use std::path::{Path, PathBuf};

use monitor_engine::AlertText;
use monitor_health::process::{ProcessProbe, ProcessSelector};
use monitor_health::Probe;
use monitor_wire::Subsystem;
use serde::{Deserialize, Serialize};

use super::sampled::{SampledCheck, SampledDefinition, SampledTexts};
use crate::create::{CreateArgument, CreateCommand, CreateValues};
use crate::pattern::compile_text_pattern;
use crate::problem::Problem;

/// A `process` check file's own keys (besides `interval` and `for`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessDefinition {
    /// The process's name as the kernel keeps it (`/proc/<pid>/comm`: the executable's
    /// file name, at most 15 characters compared). With `pid_file`: the name the pid's
    /// process must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A regular expression searched in the command line (arguments joined with spaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    /// The pid file the daemon writes (its first line is the pid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<String>,
}

/// A validated `process` check.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessCheck {
    pub selector: ProcessSelector,
    pub sampled: SampledCheck,
}

impl SampledDefinition<ProcessDefinition> {
    /// Validates the check file: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<ProcessCheck, Vec<Problem>> {
        let mut problems = Vec::new();
        let selector = self.kind.selector(file, &mut problems);
        let sampling = self
            .shared
            .resolve(file, None)
            .map_err(|more| problems.extend(more))
            .ok();
        let (Some(selector), Some(sampling), true) = (selector, sampling, problems.is_empty())
        else {
            return Err(problems);
        };
        let subject = match &selector {
            ProcessSelector::PidFile {
                name: Some(name), ..
            } => name.clone(),
            selector => selector.to_string(),
        };
        let mut texts = SampledTexts::new(
            "process",
            subject.clone(),
            format!("Process {subject} not running"),
            "not-running",
            "running",
        );
        texts.flapping = Some(AlertText {
            name: format!("Process {subject} going up and down"),
            status: "flapping".to_owned(),
        });
        let probe = Probe::Process(ProcessProbe::new(selector.clone()));
        Ok(ProcessCheck {
            selector,
            sampled: SampledCheck::new(probe, sampling, texts),
        })
    }
}

impl ProcessDefinition {
    fn selector(&self, file: &Path, problems: &mut Vec<Problem>) -> Option<ProcessSelector> {
        let name = self.name.as_deref().map(str::trim);
        if name == Some("") || name.is_some_and(|name| name.contains('/')) {
            problems.push(Problem::at_field(
                file,
                "name",
                format!(
                    "{:?} is not a process name: write the executable's file name as `ps -e` shows it, for example telldusd",
                    self.name.as_deref().unwrap_or_default()
                ),
            ));
            return None;
        }
        match (name, &self.command_line, &self.pid_file) {
            (Some(name), None, None) => Some(ProcessSelector::Name(name.to_owned())),
            (None, Some(pattern), None) => match compile_text_pattern(pattern) {
                Ok(regex) => Some(ProcessSelector::CommandLine(regex)),
                Err(message) => {
                    problems.push(Problem::at_field(file, "command_line", message));
                    None
                }
            },
            (name, None, Some(pid_file)) => {
                if !pid_file.starts_with('/') {
                    problems.push(Problem::at_field(
                        file,
                        "pid_file",
                        format!("\"{pid_file}\" is not an absolute path: write the pid file's path, for example /var/run/telldusd.pid"),
                    ));
                    return None;
                }
                Some(ProcessSelector::PidFile {
                    path: PathBuf::from(pid_file),
                    name: name.map(str::to_owned),
                })
            }
            (None, None, None) => {
                problems.push(Problem::in_file(
                    file,
                    "no process to look for: add `name:` (as `ps -e` shows it), `command_line:` (a regular expression) or `pid_file:`",
                ));
                None
            }
            (_, Some(_), _) => {
                problems.push(Problem::at_field(
                    file,
                    "command_line",
                    "give one way to find the process: `command_line:` alone, or `name:`, or `pid_file:` (with `name:` if you like)",
                ));
                None
            }
        }
    }

    /// `monitorctl create process <check> <name|command_line|pid_file> <value>`.
    pub(crate) const CREATE: CreateCommand = CreateCommand {
        subsystem: Subsystem::Process,
        about: "A process that is not a systemd unit runs (by name, command line or pid file)",
        examples: "Examples:\n  monitorctl create process telldusd name telldusd\n  monitorctl create process telldusd pid_file /var/run/telldusd.pid\n  monitorctl create process web command_line 'python3 .*cherrytelldus'",
        arguments: &[
            CreateArgument::text("check", "CHECK", None),
            CreateArgument {
                name: "by",
                value_name: "BY",
                help: Some("How to find it: name, command_line or pid_file"),
                required: true,
                check: Some(check_by),
            },
            CreateArgument::text(
                "value",
                "VALUE",
                Some("The name (as `ps -e` shows it), the regular expression, or the pid file's path"),
            ),
        ],
    };

    /// The check's name and definition from [`ProcessDefinition::CREATE`]'s arguments.
    pub(crate) fn from_create(
        values: CreateValues,
    ) -> Result<(String, SampledDefinition<ProcessDefinition>), String> {
        let value = values.text(2);
        let mut definition = ProcessDefinition::default();
        match values.text(1).as_str() {
            "name" => definition.name = Some(value),
            "command_line" => {
                compile_text_pattern(&value)?;
                definition.command_line = Some(value);
            }
            "pid_file" => definition.pid_file = Some(value),
            other => return Err(by_message(other)),
        }
        Ok((values.text(0), SampledDefinition::new(definition)))
    }
}

fn check_by(text: &str) -> Result<(), String> {
    match text {
        "name" | "command_line" | "pid_file" => Ok(()),
        other => Err(by_message(other)),
    }
}

fn by_message(text: &str) -> String {
    format!("\"{text}\" is not a way to find a process: write name, command_line or pid_file")
}

impl ProcessCheck {
    /// What `monitorctl list` shows as its source: `name telldusd (every 30s)`.
    pub fn describe_source(&self) -> String {
        let what = match &self.selector {
            ProcessSelector::Name(name) => format!("name {name}"),
            ProcessSelector::CommandLine(regex) => format!("command line /{}/", regex.as_str()),
            ProcessSelector::PidFile { path, name } => match name {
                Some(name) => format!("pid file {} ({name})", path.display()),
                None => format!("pid file {}", path.display()),
            },
        };
        format!("{what} ({})", self.sampled.describe_sampling())
    }
}

#[cfg(test)]
mod tests;
