//! `temperature` checks: a thermal zone (`/sys/class/thermal`) or a hwmon sensor
//! (`/sys/class/hwmon`), the Raspberry Pi's SoC by default. Sampled by the agent (see
//! [`sampled`](super::sampled) and `monitor_health::temperature`). Not a Mender
//! subsystem: YAML only.
//!
//! ```yaml
//! # no zone or chip: the SoC (cpu-thermal on a Raspberry Pi)
//! zone: cpu-thermal    # a thermal zone, by its type or its folder (thermal_zone1)
//! chip: cpu_thermal    # or a hwmon chip, by its name ...
//! input: temp1         # ... and its input (default temp1)
//! threshold: 80        # CRITICAL at 80 °C (default), OK below 75 °C
//! ```

use std::path::Path;

use monitor_health::temperature::{TemperatureProbe, TemperatureSensor};
use monitor_health::text::format_value;
use monitor_health::threshold::Direction;
use monitor_health::{Probe, Unit};
use monitor_wire::Subsystem;
use serde::{Deserialize, Serialize};

use super::sampled::{Quantity, SampledCheck, SampledDefinition, SampledTexts, ThresholdRule};
use crate::create::{CreateArgument, CreateCommand, CreateValues};
use crate::problem::Problem;

/// The threshold of a check that sets none: the Pi's firmware starts throttling at 80 °C
/// (85 °C on a Pi 4 with recent firmware), so this warns as throttling begins.
const DEFAULT_THRESHOLD: f64 = 80.0;

/// A `temperature` check file's own keys (besides `interval`, `threshold`,
/// `clear_threshold` and `for`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureDefinition {
    /// A thermal zone by its type (`cpu-thermal`) or folder (`thermal_zone1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// A hwmon chip by its name (`cpu_thermal`, `ds18b20`...), instead of a zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip: Option<String>,
    /// The chip's input (`temp1`, the default; `temp2_input` reads the same as `temp2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

const RULE: ThresholdRule = ThresholdRule {
    unit: Unit::Celsius,
    direction: Direction::Above,
    default_threshold: Some(DEFAULT_THRESHOLD),
    default_clear: |raise| raise - 5.0,
};

/// A validated `temperature` check.
#[derive(Debug, Clone, PartialEq)]
pub struct TemperatureCheck {
    pub sensor: TemperatureSensor,
    pub sampled: SampledCheck,
}

impl SampledDefinition<TemperatureDefinition> {
    /// Validates the check file: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<TemperatureCheck, Vec<Problem>> {
        let mut problems = Vec::new();
        let named = |field: &str, value: &Option<String>, problems: &mut Vec<Problem>| {
            let value = value.as_deref().map(str::trim)?;
            if value.is_empty() || value.contains('/') {
                problems.push(Problem::at_field(
                    file,
                    field,
                    format!("\"{value}\" is not a sensor name: write a name as its folder shows it, for example cpu-thermal"),
                ));
                return None;
            }
            Some(value.to_owned())
        };
        let zone = named("zone", &self.kind.zone, &mut problems);
        let chip = named("chip", &self.kind.chip, &mut problems);
        let input = named("input", &self.kind.input, &mut problems);
        let sensor = match (zone, chip) {
            (Some(_), Some(_)) => {
                problems.push(Problem::at_field(
                    file,
                    "chip",
                    "set either zone (a thermal zone) or chip (a hwmon sensor), not both",
                ));
                None
            }
            (Some(zone), None) => Some(TemperatureSensor::Zone(zone)),
            (None, Some(chip)) => Some(TemperatureSensor::Hwmon {
                chip,
                input: input.clone().unwrap_or_else(|| "temp1".to_owned()),
            }),
            (None, None) => Some(TemperatureSensor::Soc),
        };
        if input.is_some() && self.kind.chip.is_none() {
            problems.push(Problem::at_field(
                file,
                "input",
                "input is a hwmon chip's: set chip too, or remove input",
            ));
        }
        let sampling = self
            .shared
            .resolve(file, Some(RULE))
            .map_err(|more| problems.extend(more))
            .ok();
        let (Some(sampling), Some(sensor), true) = (sampling, sensor, problems.is_empty()) else {
            return Err(problems);
        };
        let subject = subject_name(&sensor);
        let limit = format_value(
            sampling
                .threshold
                .map_or(DEFAULT_THRESHOLD, |threshold| threshold.raise),
            Unit::Celsius,
        );
        let texts = SampledTexts::new(
            "temperature",
            subject.clone(),
            format!("Temperature of {subject} has reached {limit}"),
            "TEMPERATURE_HIGH",
            "TEMPERATURE_HIGH",
        );
        Ok(TemperatureCheck {
            sensor: sensor.clone(),
            sampled: SampledCheck::new(
                Probe::Temperature(TemperatureProbe::new(sensor)),
                sampling,
                texts,
            ),
        })
    }
}

/// The alert's subject name: `soc`, the zone, or `chip/input`.
fn subject_name(sensor: &TemperatureSensor) -> String {
    match sensor {
        TemperatureSensor::Soc => "soc".to_owned(),
        TemperatureSensor::Zone(zone) => zone.clone(),
        TemperatureSensor::Hwmon { chip, input } => format!("{chip}/{input}"),
    }
}

impl TemperatureDefinition {
    /// `monitorctl create temperature <check> [threshold] [sensor]`.
    pub(crate) const CREATE: CreateCommand = CreateCommand {
        subsystem: Subsystem::Temperature,
        about: "A temperature sensor (the SoC's by default)",
        examples: "Examples:\n  monitorctl create temperature soc_heat 80\n  monitorctl create temperature board 60 cpu_thermal/temp1",
        arguments: &[
            CreateArgument::text("check", "CHECK", None),
            CreateArgument {
                name: "threshold",
                value_name: "THRESHOLD",
                help: Some("Degrees Celsius at which it turns CRITICAL (default 80); it clears 5 °C below"),
                required: false,
                check: Some(check_celsius),
            },
            CreateArgument {
                name: "sensor",
                value_name: "SENSOR",
                help: Some("A thermal zone (cpu-thermal, thermal_zone1) or a hwmon chip/input (cpu_thermal/temp1); default: the SoC"),
                required: false,
                check: None,
            },
        ],
    };

    /// The check's name and definition from [`TemperatureDefinition::CREATE`]'s arguments.
    pub(crate) fn from_create(
        values: CreateValues,
    ) -> Result<(String, SampledDefinition<TemperatureDefinition>), String> {
        let sensor = values.text(2);
        let kind = match sensor.split_once('/') {
            _ if sensor.is_empty() => TemperatureDefinition::default(),
            Some((chip, input)) => TemperatureDefinition {
                zone: None,
                chip: Some(chip.to_owned()),
                input: Some(input.to_owned()),
            },
            None => TemperatureDefinition {
                zone: Some(sensor),
                chip: None,
                input: None,
            },
        };
        let mut definition = SampledDefinition::new(kind);
        let threshold = values.text(1);
        if !threshold.is_empty() {
            check_celsius(&threshold)?;
            definition.shared.threshold = Some(Quantity(threshold));
        }
        Ok((values.text(0), definition))
    }
}

fn check_celsius(text: &str) -> Result<(), String> {
    Quantity(text.to_owned()).value(Unit::Celsius).map(|_| ())
}

impl TemperatureCheck {
    /// What `monitorctl list` shows as its source: `soc (every 30s, threshold 80 °C, clear 75 °C)`.
    pub fn describe_source(&self) -> String {
        format!(
            "{} ({})",
            subject_name(&self.sensor),
            self.sampled.describe_sampling()
        )
    }
}
