//! `memory` checks: memory available for new programs (the kernel's `MemAvailable`), in
//! percent of the memory (the default) or in bytes, or swap in use, in percent. Sampled by
//! the agent from `/proc/meminfo` (see [`sampled`](super::sampled) and
//! `monitor_health::memory`). Not a Mender subsystem: YAML only.
//!
//! ```yaml
//! metric: available    # available (%, the default), available_bytes, or swap (% used)
//! threshold: 10        # available: CRITICAL at or below 10% (default), OK above 15%
//! ```

use std::path::Path;

use monitor_health::memory::{MemoryMeasure, MemoryProbe};
use monitor_health::text::format_value;
use monitor_health::threshold::Direction;
use monitor_health::{Probe, Unit};
use monitor_wire::Subsystem;
use serde::{Deserialize, Serialize};

use super::sampled::{Quantity, SampledCheck, SampledDefinition, SampledTexts, ThresholdRule};
use crate::create::{CreateArgument, CreateCommand, CreateValues};
use crate::problem::Problem;

/// A `memory` check file's own keys (besides `interval`, `threshold`, `clear_threshold`
/// and `for`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryDefinition {
    /// `available` (percent of the memory available, the default; bad below the
    /// threshold), `available_bytes` (bad below the threshold, which the file must set) or
    /// `swap` (percent of the swap used; bad above the threshold).
    #[serde(default, skip_serializing_if = "MemoryMetric::is_available")]
    pub metric: MemoryMetric,
}

/// What a `memory` check measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryMetric {
    /// `MemAvailable` in percent of `MemTotal`. Default threshold 10%, clear 5 points above.
    #[default]
    Available,
    /// `MemAvailable` in bytes; the file sets the threshold, clear 10% above it.
    AvailableBytes,
    /// Swap used, in percent. Default threshold 80%, clear 10 points below.
    Swap,
}

impl MemoryMetric {
    fn is_available(&self) -> bool {
        *self == MemoryMetric::Available
    }

    fn as_str(self) -> &'static str {
        match self {
            MemoryMetric::Available => "available",
            MemoryMetric::AvailableBytes => "available_bytes",
            MemoryMetric::Swap => "swap",
        }
    }

    fn parse(text: &str) -> Result<MemoryMetric, String> {
        match text {
            "available" => Ok(MemoryMetric::Available),
            "available_bytes" => Ok(MemoryMetric::AvailableBytes),
            "swap" => Ok(MemoryMetric::Swap),
            other => Err(format!(
                "\"{other}\" is not a memory metric: write available, available_bytes or swap"
            )),
        }
    }

    fn rule(self) -> ThresholdRule {
        match self {
            MemoryMetric::Available => ThresholdRule {
                unit: Unit::Percent,
                direction: Direction::Below,
                default_threshold: Some(10.0),
                default_clear: |raise| (raise + 5.0).min(100.0),
            },
            MemoryMetric::AvailableBytes => ThresholdRule {
                unit: Unit::Bytes,
                direction: Direction::Below,
                default_threshold: None,
                default_clear: |raise| raise * 1.1,
            },
            MemoryMetric::Swap => ThresholdRule {
                unit: Unit::Percent,
                direction: Direction::Above,
                default_threshold: Some(80.0),
                default_clear: |raise| (raise - 10.0).max(0.0),
            },
        }
    }
}

/// A validated `memory` check.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryCheck {
    pub metric: MemoryMetric,
    pub sampled: SampledCheck,
}

impl SampledDefinition<MemoryDefinition> {
    /// Validates the check file: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<MemoryCheck, Vec<Problem>> {
        let metric = self.kind.metric;
        let rule = metric.rule();
        let sampling = self.shared.resolve(file, Some(rule))?;
        let raise = sampling.threshold.map_or(0.0, |threshold| threshold.raise);
        let limit = format_value(raise, rule.unit);
        let texts = match metric {
            MemoryMetric::Available | MemoryMetric::AvailableBytes => SampledTexts::new(
                "memory",
                "memory",
                format!("Memory available has fallen to {limit} or less"),
                "MEMORY_LOW",
                "MEMORY_LOW",
            ),
            MemoryMetric::Swap => SampledTexts::new(
                "memory",
                "swap",
                format!("Swap use has grown to {limit} or more"),
                "SWAP_HIGH",
                "SWAP_HIGH",
            ),
        };
        let probe = Probe::Memory(MemoryProbe::new(match metric {
            MemoryMetric::Available => MemoryMeasure::AvailablePercent,
            MemoryMetric::AvailableBytes => MemoryMeasure::AvailableBytes,
            MemoryMetric::Swap => MemoryMeasure::SwapUsedPercent,
        }));
        Ok(MemoryCheck {
            metric,
            sampled: SampledCheck::new(probe, sampling, texts),
        })
    }
}

impl MemoryDefinition {
    /// `monitorctl create memory <check> [metric] [threshold]`.
    pub(crate) const CREATE: CreateCommand = CreateCommand {
        subsystem: Subsystem::Memory,
        about: "Memory available (or swap used) on the device",
        examples: "Examples:\n  monitorctl create memory low_memory available 10\n  monitorctl create memory swapping swap 50",
        arguments: &[
            CreateArgument::text("check", "CHECK", None),
            CreateArgument {
                name: "metric",
                value_name: "METRIC",
                help: Some("available (percent of the memory, the default), available_bytes, or swap (percent used)"),
                required: false,
                check: Some(check_metric),
            },
            CreateArgument {
                name: "threshold",
                value_name: "THRESHOLD",
                help: Some("CRITICAL at or below this much available (default 10%), or at or above this much swap used (default 80%)"),
                required: false,
                check: None,
            },
        ],
    };

    /// The check's name and definition from [`MemoryDefinition::CREATE`]'s arguments.
    pub(crate) fn from_create(
        values: CreateValues,
    ) -> Result<(String, SampledDefinition<MemoryDefinition>), String> {
        let metric = match values.text(1).as_str() {
            "" => MemoryMetric::Available,
            text => MemoryMetric::parse(text)?,
        };
        let mut definition = SampledDefinition::new(MemoryDefinition { metric });
        let threshold = values.text(2);
        if !threshold.is_empty() {
            Quantity(threshold.clone()).value(metric.rule().unit)?;
            definition.shared.threshold = Some(Quantity(threshold));
        }
        Ok((values.text(0), definition))
    }
}

fn check_metric(text: &str) -> Result<(), String> {
    MemoryMetric::parse(text).map(|_| ())
}

impl MemoryCheck {
    /// What `monitorctl list` shows as its source: `available (every 30s, threshold 10%, clear 15%)`.
    pub fn describe_source(&self) -> String {
        format!(
            "{} ({})",
            self.metric.as_str(),
            self.sampled.describe_sampling()
        )
    }
}
