//! `power` checks on a Raspberry Pi: under-voltage, ARM frequency capping, throttling and
//! the soft temperature limit, now or since boot, as the firmware reports them (its
//! throttled bits, through raspberrypi-hwmon's `in0_lcrit_alarm` or the firmware driver's
//! `get_throttled`: see `monitor_health::power`). CRITICAL while one of the watched
//! conditions holds. Sampled by the agent (see [`sampled`](super::sampled)); on a board
//! that is not a Pi the check shows a problem, never an alert. Not a Mender subsystem:
//! YAML only.
//!
//! ```yaml
//! conditions: [under_voltage, throttled]   # the default; also frequency_capped,
//!                                          # soft_temperature_limit, and each *_since_boot
//! ```

use std::path::Path;

use monitor_health::power::{PowerCondition, PowerProbe};
use monitor_health::Probe;
use monitor_wire::Subsystem;
use serde::{Deserialize, Serialize};

use super::sampled::{SampledCheck, SampledDefinition, SampledTexts};
use crate::create::{CreateArgument, CreateCommand, CreateValues};
use crate::problem::Problem;

/// A `power` check file's own keys (besides `interval` and `for`; the firmware's bits are
/// judged as they are, without a threshold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerDefinition {
    /// The conditions that make it CRITICAL; default `[under_voltage, throttled]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<String>>,
}

/// A validated `power` check.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerCheck {
    pub conditions: Vec<PowerCondition>,
    pub sampled: SampledCheck,
}

impl SampledDefinition<PowerDefinition> {
    /// Validates the check file: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<PowerCheck, Vec<Problem>> {
        let mut problems = Vec::new();
        let conditions = match &self.kind.conditions {
            None => PowerProbe::default_conditions().to_vec(),
            Some(names) => match parse_conditions(names.iter().map(String::as_str)) {
                Ok(conditions) => conditions,
                Err(message) => {
                    problems.push(Problem::at_field(file, "conditions", message));
                    Vec::new()
                }
            },
        };
        let sampling = self
            .shared
            .resolve(file, None)
            .map_err(|more| problems.extend(more))
            .ok();
        let (Some(sampling), true) = (sampling, problems.is_empty()) else {
            return Err(problems);
        };
        let probe = PowerProbe::new(conditions);
        let watched: Vec<&str> = probe
            .watched
            .iter()
            .map(|condition| condition.description())
            .collect();
        let texts = SampledTexts::new(
            "power",
            "board",
            format!("Raspberry Pi power or heat: {}", watched.join(" or ")),
            "POWER_PROBLEM",
            "POWER_PROBLEM",
        );
        Ok(PowerCheck {
            conditions: probe.watched.clone(),
            sampled: SampledCheck::new(Probe::Power(probe), sampling, texts),
        })
    }
}

/// The conditions named, or what is wrong and what to write.
fn parse_conditions<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<PowerCondition>, String> {
    let mut conditions = Vec::new();
    for name in names {
        let name = name.trim();
        match PowerCondition::from_name(name) {
            Some(condition) => conditions.push(condition),
            None => {
                return Err(format!(
                    "\"{name}\" is not a condition: use {}",
                    every_name()
                ))
            }
        }
    }
    if conditions.is_empty() {
        return Err(format!(
            "no condition: name at least one of {}",
            every_name()
        ));
    }
    Ok(conditions)
}

fn every_name() -> String {
    let names: Vec<&str> = PowerCondition::ALL
        .iter()
        .map(|condition| condition.name())
        .collect();
    names.join(", ")
}

impl PowerDefinition {
    /// `monitorctl create power <check> [conditions]`.
    pub(crate) const CREATE: CreateCommand = CreateCommand {
        subsystem: Subsystem::Power,
        about: "Raspberry Pi under-voltage and throttling, from the firmware",
        examples: "Examples:\n  monitorctl create power pi_power\n  monitorctl create power supply under_voltage,under_voltage_since_boot",
        arguments: &[
            CreateArgument::text("check", "CHECK", None),
            CreateArgument {
                name: "conditions",
                value_name: "CONDITIONS",
                help: Some("Comma-separated: under_voltage, frequency_capped, throttled, soft_temperature_limit, each also *_since_boot (default under_voltage,throttled)"),
                required: false,
                check: Some(check_conditions),
            },
        ],
    };

    /// The check's name and definition from [`PowerDefinition::CREATE`]'s arguments.
    pub(crate) fn from_create(
        values: CreateValues,
    ) -> Result<(String, SampledDefinition<PowerDefinition>), String> {
        let text = values.text(1);
        let conditions = if text.is_empty() {
            None
        } else {
            let names: Vec<String> = text.split(',').map(|name| name.trim().to_owned()).collect();
            parse_conditions(names.iter().map(String::as_str))?;
            Some(names)
        };
        Ok((
            values.text(0),
            SampledDefinition::new(PowerDefinition { conditions }),
        ))
    }
}

fn check_conditions(text: &str) -> Result<(), String> {
    parse_conditions(text.split(',')).map(|_| ())
}

impl PowerCheck {
    /// What `monitorctl list` shows as its source: `under_voltage, throttled (every 30s)`.
    pub fn describe_source(&self) -> String {
        let names: Vec<&str> = self
            .conditions
            .iter()
            .map(|condition| condition.name())
            .collect();
        format!(
            "{} ({})",
            names.join(", "),
            self.sampled.describe_sampling()
        )
    }
}
