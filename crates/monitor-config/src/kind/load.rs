//! `load` checks: the load average per core (`/proc/loadavg` over 1, 5 or 15 minutes,
//! divided by the cores `/proc/stat` lists), or the share of CPU time spent working
//! between two samples (`/proc/stat`: a window of the check's interval). Sampled by the
//! agent (see [`sampled`](super::sampled) and `monitor_health::load`). Not a Mender
//! subsystem: YAML only.
//!
//! ```yaml
//! metric: load5        # load1, load5 (the default), load15 (per core), or cpu (% busy)
//! threshold: 1         # load per core: CRITICAL at 1 (every core busy, default), OK below 0.8
//! interval: 1m         # for cpu: the window the use is measured over
//! ```

use std::path::Path;

use monitor_health::load::{LoadMeasure, LoadProbe, LoadWindow};
use monitor_health::text::format_value;
use monitor_health::threshold::Direction;
use monitor_health::{Probe, Unit};
use monitor_wire::Subsystem;
use serde::{Deserialize, Serialize};

use super::sampled::{Quantity, SampledCheck, SampledDefinition, SampledTexts, ThresholdRule};
use crate::create::{CreateArgument, CreateCommand, CreateValues};
use crate::problem::Problem;

/// A `load` check file's own keys (besides `interval`, `threshold`, `clear_threshold` and
/// `for`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadDefinition {
    /// `load1`, `load5` (the default) or `load15`: the load average over 1, 5 or 15
    /// minutes, per core; or `cpu`: percent of CPU time busy over the interval.
    #[serde(default, skip_serializing_if = "LoadMetric::is_load5")]
    pub metric: LoadMetric,
}

/// What a `load` check measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMetric {
    Load1,
    /// Default threshold 1 per core (every core busy or waiting), clear at 0.8 of it.
    #[default]
    Load5,
    Load15,
    /// Default threshold 90%, clear 10 points below.
    Cpu,
}

impl LoadMetric {
    fn is_load5(&self) -> bool {
        *self == LoadMetric::Load5
    }

    fn as_str(self) -> &'static str {
        match self {
            LoadMetric::Load1 => "load1",
            LoadMetric::Load5 => "load5",
            LoadMetric::Load15 => "load15",
            LoadMetric::Cpu => "cpu",
        }
    }

    fn parse(text: &str) -> Result<LoadMetric, String> {
        match text {
            "load1" => Ok(LoadMetric::Load1),
            "load5" => Ok(LoadMetric::Load5),
            "load15" => Ok(LoadMetric::Load15),
            "cpu" => Ok(LoadMetric::Cpu),
            other => Err(format!(
                "\"{other}\" is not a load metric: write load1, load5, load15 or cpu"
            )),
        }
    }

    fn rule(self) -> ThresholdRule {
        match self {
            LoadMetric::Cpu => ThresholdRule {
                unit: Unit::Percent,
                direction: Direction::Above,
                default_threshold: Some(90.0),
                default_clear: |raise| (raise - 10.0).max(0.0),
            },
            LoadMetric::Load1 | LoadMetric::Load5 | LoadMetric::Load15 => ThresholdRule {
                unit: Unit::Number,
                direction: Direction::Above,
                default_threshold: Some(1.0),
                default_clear: |raise| raise * 0.8,
            },
        }
    }

    fn measure(self) -> LoadMeasure {
        match self {
            LoadMetric::Load1 => LoadMeasure::LoadPerCore(LoadWindow::OneMinute),
            LoadMetric::Load5 => LoadMeasure::LoadPerCore(LoadWindow::FiveMinutes),
            LoadMetric::Load15 => LoadMeasure::LoadPerCore(LoadWindow::FifteenMinutes),
            LoadMetric::Cpu => LoadMeasure::CpuUse,
        }
    }
}

/// A validated `load` check.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadCheck {
    pub metric: LoadMetric,
    pub sampled: SampledCheck,
}

impl SampledDefinition<LoadDefinition> {
    /// Validates the check file: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<LoadCheck, Vec<Problem>> {
        let metric = self.kind.metric;
        let rule = metric.rule();
        let sampling = self.shared.resolve(file, Some(rule))?;
        let limit = format_value(
            sampling.threshold.map_or(0.0, |threshold| threshold.raise),
            rule.unit,
        );
        let texts = match metric {
            LoadMetric::Cpu => SampledTexts::new(
                "load",
                "cpu",
                format!("CPU use has reached {limit}"),
                "CPU_BUSY",
                "CPU_BUSY",
            ),
            LoadMetric::Load1 | LoadMetric::Load5 | LoadMetric::Load15 => SampledTexts::new(
                "load",
                "load",
                format!("Load per core has reached {limit}"),
                "LOAD_HIGH",
                "LOAD_HIGH",
            ),
        };
        Ok(LoadCheck {
            metric,
            sampled: SampledCheck::new(
                Probe::Load(LoadProbe::new(metric.measure())),
                sampling,
                texts,
            ),
        })
    }
}

impl LoadDefinition {
    /// `monitorctl create load <check> [metric] [threshold]`.
    pub(crate) const CREATE: CreateCommand = CreateCommand {
        subsystem: Subsystem::Load,
        about: "Load average per core, or CPU use over the interval",
        examples: "Examples:\n  monitorctl create load busy load5 1.5\n  monitorctl create load cpu_use cpu 95",
        arguments: &[
            CreateArgument::text("check", "CHECK", None),
            CreateArgument {
                name: "metric",
                value_name: "METRIC",
                help: Some("load1, load5 (the default) or load15: the load average per core; cpu: percent of CPU time busy"),
                required: false,
                check: Some(check_metric),
            },
            CreateArgument {
                name: "threshold",
                value_name: "THRESHOLD",
                help: Some("CRITICAL at or above this (default 1 per core, or 90% for cpu)"),
                required: false,
                check: None,
            },
        ],
    };

    /// The check's name and definition from [`LoadDefinition::CREATE`]'s arguments.
    pub(crate) fn from_create(
        values: CreateValues,
    ) -> Result<(String, SampledDefinition<LoadDefinition>), String> {
        let metric = match values.text(1).as_str() {
            "" => LoadMetric::Load5,
            text => LoadMetric::parse(text)?,
        };
        let mut definition = SampledDefinition::new(LoadDefinition { metric });
        let threshold = values.text(2);
        if !threshold.is_empty() {
            Quantity(threshold.clone()).value(metric.rule().unit)?;
            definition.shared.threshold = Some(Quantity(threshold));
        }
        Ok((values.text(0), definition))
    }
}

fn check_metric(text: &str) -> Result<(), String> {
    LoadMetric::parse(text).map(|_| ())
}

impl LoadCheck {
    /// What `monitorctl list` shows as its source: `load5 (every 30s, threshold 1, clear 0.8)`.
    pub fn describe_source(&self) -> String {
        format!(
            "{} ({})",
            self.metric.as_str(),
            self.sampled.describe_sampling()
        )
    }
}
