//! `plugin` checks: any Nagios / Monitoring Plugins compatible command (`check_disk`,
//! `check_ntp_time`, `check_http`, a script of one's own), run every interval with
//! `sh -c`. Exit 0 is OK, 2 CRITICAL; 1 (WARNING) and 3 (UNKNOWN, and any other status)
//! become what the check says, CRITICAL unless told otherwise. The first line of the
//! plugin's output (before its performance data) goes into the alert's details.
//!
//! ```yaml
//! command: /usr/lib/nagios/plugins/check_disk -w 20% -c 10% -p /
//! timeout: 10s          # then the plugin and all it started are killed: CRITICAL
//! warning: critical     # or ok: what exit status 1 becomes
//! unknown: critical     # or ok: what exit status 3 (or 126, 127...) becomes
//! interval: 1m
//! for: 2
//! ```

use std::path::Path;
use std::time::Duration;

use monitor_health::plugin::{MappedState, PluginProbe};
use monitor_health::Probe;
use monitor_wire::duration::format_duration;
use monitor_wire::Subsystem;
use serde::{Deserialize, Serialize};

use super::sampled::{SampleInterval, SampledCheck, SampledDefinition, SampledTexts};
use crate::create::{CreateArgument, CreateCommand, CreateValues};
use crate::problem::Problem;

/// How long a plugin may run when the check file does not say: the Monitoring Plugins'
/// own default timeout (`-t 10`).
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest timeout a check may set: Nagios's `service_check_timeout` default.
pub const MAX_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// A `plugin` check file's own keys (besides `interval` and `for`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginDefinition {
    /// Run with `sh -c`, in a process group of its own.
    pub command: String,
    /// How long it may run (seconds or a duration). Default 10s (the interval if shorter);
    /// at most 60s and at most the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<SampleInterval>,
    /// What a WARNING (exit status 1) becomes: `critical` (default) or `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<PluginMapping>,
    /// What an UNKNOWN (exit status 3, or any status but 0 to 2) becomes: `critical`
    /// (default) or `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<PluginMapping>,
}

/// `ok` or `critical`, for a plugin's WARNING or UNKNOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginMapping {
    Ok,
    Critical,
}

impl From<PluginMapping> for MappedState {
    fn from(mapping: PluginMapping) -> Self {
        match mapping {
            PluginMapping::Ok => MappedState::Ok,
            PluginMapping::Critical => MappedState::Critical,
        }
    }
}

/// A validated `plugin` check.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginCheck {
    pub probe: PluginProbe,
    pub sampled: SampledCheck,
}

impl SampledDefinition<PluginDefinition> {
    /// Validates the check file: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<PluginCheck, Vec<Problem>> {
        let mut problems = Vec::new();
        let command = self.kind.command.trim();
        if command.is_empty() {
            problems.push(Problem::at_field(
                file,
                "command",
                "empty: write the plugin's command line, for example /usr/lib/nagios/plugins/check_disk -w 20% -c 10% -p /",
            ));
        }
        let sampling = self
            .shared
            .resolve(file, None)
            .map_err(|more| problems.extend(more))
            .ok();
        let timeout = sampling.as_ref().and_then(|sampling| {
            resolve_timeout(self.kind.timeout, DEFAULT_PLUGIN_TIMEOUT, sampling.interval)
                .map_err(|message| problems.push(Problem::at_field(file, "timeout", message)))
                .ok()
        });
        let (Some(sampling), Some(timeout), true) = (sampling, timeout, problems.is_empty()) else {
            return Err(problems);
        };
        let probe = PluginProbe {
            command: command.to_owned(),
            timeout,
            warning: self.kind.warning.unwrap_or(PluginMapping::Critical).into(),
            unknown: self.kind.unknown.unwrap_or(PluginMapping::Critical).into(),
        };
        let program = program_name(command);
        let texts = SampledTexts::new(
            "plugin",
            command.to_owned(),
            format!("Plugin {program} reports a problem"),
            "CRITICAL",
            "OK",
        );
        Ok(PluginCheck {
            sampled: SampledCheck::new(Probe::Plugin(probe.clone()), sampling, texts),
            probe,
        })
    }
}

/// The timeout of a check sampled every `interval`: the one its file sets, or `default`
/// (shortened to the interval); `Err` says what is wrong with the one set.
pub(crate) fn resolve_timeout(
    set: Option<SampleInterval>,
    default: Duration,
    interval: Duration,
) -> Result<Duration, String> {
    let Some(SampleInterval(timeout)) = set else {
        return Ok(default.min(interval));
    };
    if timeout < Duration::from_millis(100) {
        Err(format!(
            "{} is too short: give it at least 100ms, for example timeout: 10s",
            format_duration(timeout)
        ))
    } else if timeout > MAX_PLUGIN_TIMEOUT {
        Err(format!(
            "{} is too long: at most {}",
            format_duration(timeout),
            format_duration(MAX_PLUGIN_TIMEOUT)
        ))
    } else if timeout > interval {
        Err(format!(
            "{} is longer than the interval ({}): shorten it, or sample less often",
            format_duration(timeout),
            format_duration(interval)
        ))
    } else {
        Ok(timeout)
    }
}

/// `check_disk` for `/usr/lib/nagios/plugins/check_disk -w 20%`.
fn program_name(command: &str) -> &str {
    let first = command.split_whitespace().next().unwrap_or(command);
    first.rsplit('/').next().unwrap_or(first)
}

impl PluginDefinition {
    /// `monitorctl create plugin <check> <command>`.
    pub(crate) const CREATE: CreateCommand = CreateCommand {
        subsystem: Subsystem::Plugin,
        about: "A Nagios / Monitoring Plugins compatible command, run every interval",
        examples: "Example:\n  monitorctl create plugin root_disk '/usr/lib/nagios/plugins/check_disk -w 20% -c 10% -p /'",
        arguments: &[
            CreateArgument::text("check", "CHECK", None),
            CreateArgument::text(
                "command",
                "COMMAND",
                Some("Run with sh -c: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (WARNING and UNKNOWN alert too)"),
            ),
        ],
    };

    /// The check's name and definition from [`PluginDefinition::CREATE`]'s arguments.
    pub(crate) fn from_create(
        values: CreateValues,
    ) -> Result<(String, SampledDefinition<PluginDefinition>), String> {
        let command = values.text(1);
        if command.trim().is_empty() {
            return Err("the command is empty: give the plugin's command line, for example '/usr/lib/nagios/plugins/check_disk -w 20% -c 10% -p /'".to_owned());
        }
        Ok((
            values.text(0),
            SampledDefinition::new(PluginDefinition {
                command,
                timeout: None,
                warning: None,
                unknown: None,
            }),
        ))
    }
}

impl PluginCheck {
    /// What `monitorctl list` shows as its source: the command and its sampling.
    pub fn describe_source(&self) -> String {
        format!(
            "{} ({}, timeout {})",
            self.probe.command,
            self.sampled.describe_sampling(),
            format_duration(self.probe.timeout)
        )
    }
}

#[cfg(test)]
mod tests;
