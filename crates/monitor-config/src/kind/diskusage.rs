//! `diskusage` checks: how full a file system is, by a path on it (its mount point): space
//! used in percent (the default, as `df` shows it), space left in bytes, or inodes used in
//! percent. Sampled by the agent (see [`sampled`](super::sampled)).
//!
//! Mender ships this kind as a demo subsystem (`diskusage.sh`, "Writing new Subsystems" in
//! its advanced monitoring docs) with the check `diskusage_root_space.sh`:
//! `DISKUSAGE_NAME="/"` and `DISKUSAGE_THRESHOLD=75` (1-100, default 80), alerting with
//! "Disk storage has grown to fill more than 75% of the disk '/'". Its check files are
//! read here as they are. Its script raises above the threshold (`-gt` on `df`'s whole
//! percent); this agent raises at it (reached or passed), as every sampled kind does.

use std::path::{Path, PathBuf};

use monitor_health::disk::{DiskMetric, DiskProbe};
use monitor_health::text::format_value;
use monitor_health::threshold::Direction;
use monitor_health::{Probe, Unit};
use monitor_wire::Subsystem;
use serde::{Deserialize, Serialize};

use super::sampled::{Quantity, SampledCheck, SampledDefinition, SampledTexts, ThresholdRule};
use crate::create::{CreateArgument, CreateCommand, CreateValues};
use crate::mender::MenderValues;
use crate::problem::Problem;

/// A `diskusage` check file's own keys (besides `interval`, `threshold`, `clear_threshold`
/// and `for`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskusageDefinition {
    /// A path on the file system, its mount point usually (Mender's `DISKUSAGE_NAME`).
    pub path: String,
    /// `used` (percent of space, the default), `free` (bytes left; bad below the
    /// threshold) or `inodes` (percent of inodes used).
    #[serde(default, skip_serializing_if = "DiskusageMetric::is_used")]
    pub metric: DiskusageMetric,
}

/// What a `diskusage` check measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskusageMetric {
    /// Space used, in percent. Default threshold 80% (Mender's), clear 5 points below.
    #[default]
    Used,
    /// Space left to non-root users, in bytes; bad below the threshold (which the file
    /// must set), clear 10% above it.
    Free,
    /// Inodes used, in percent. Default threshold 90%, clear 5 points below.
    Inodes,
}

impl DiskusageMetric {
    fn is_used(&self) -> bool {
        *self == DiskusageMetric::Used
    }

    fn as_str(self) -> &'static str {
        match self {
            DiskusageMetric::Used => "used",
            DiskusageMetric::Free => "free",
            DiskusageMetric::Inodes => "inodes",
        }
    }

    fn rule(self) -> ThresholdRule {
        let percent = |default| ThresholdRule {
            unit: Unit::Percent,
            direction: Direction::Above,
            default_threshold: Some(default),
            default_clear: |raise| (raise - 5.0).max(0.0),
        };
        match self {
            DiskusageMetric::Used => percent(80.0),
            DiskusageMetric::Inodes => percent(90.0),
            DiskusageMetric::Free => ThresholdRule {
                unit: Unit::Bytes,
                direction: Direction::Below,
                default_threshold: None,
                default_clear: |raise| raise * 1.1,
            },
        }
    }
}

/// A validated `diskusage` check.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskusageCheck {
    pub path: PathBuf,
    pub metric: DiskusageMetric,
    pub sampled: SampledCheck,
}

impl SampledDefinition<DiskusageDefinition> {
    /// Validates the check file: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<DiskusageCheck, Vec<Problem>> {
        let metric = self.kind.metric;
        let mut problems = Vec::new();
        let path = self.kind.path.trim();
        if !path.starts_with('/') {
            problems.push(Problem::at_field(
                file,
                "path",
                format!(
                    "\"{path}\" is not an absolute path: write the file system's mount point, for example /"
                ),
            ));
        }
        let sampling = self
            .shared
            .resolve(file, Some(metric.rule()))
            .map_err(|more| problems.extend(more))
            .ok();
        let (Some(sampling), true) = (sampling, problems.is_empty()) else {
            return Err(problems);
        };
        let path = PathBuf::from(path);
        let raise = sampling.threshold.map_or(0.0, |threshold| threshold.raise);
        let shown = path.display();
        let texts = match metric {
            // Mender's demo's texts.
            DiskusageMetric::Used => SampledTexts::new(
                "diskusage",
                shown.to_string(),
                format!(
                    "Disk storage has grown to fill more than {} of the disk '{shown}'",
                    format_value(raise, Unit::Percent)
                ),
                "DISKUSAGE_USAGE_WARNING",
                "DISKUSAGE_USAGE_WARNING",
            ),
            DiskusageMetric::Free => SampledTexts::new(
                "diskusage",
                shown.to_string(),
                format!(
                    "Disk '{shown}' has less than {} free",
                    format_value(raise, Unit::Bytes)
                ),
                "DISKUSAGE_FREE_WARNING",
                "DISKUSAGE_FREE_WARNING",
            ),
            DiskusageMetric::Inodes => SampledTexts::new(
                "diskusage",
                shown.to_string(),
                format!(
                    "Disk '{shown}' has used more than {} of its inodes",
                    format_value(raise, Unit::Percent)
                ),
                "DISKUSAGE_INODES_WARNING",
                "DISKUSAGE_INODES_WARNING",
            ),
        };
        let probe = Probe::Disk(DiskProbe::new(
            path.clone(),
            match metric {
                DiskusageMetric::Used => DiskMetric::UsedPercent,
                DiskusageMetric::Free => DiskMetric::FreeBytes,
                DiskusageMetric::Inodes => DiskMetric::InodesUsedPercent,
            },
        ));
        Ok(DiskusageCheck {
            path,
            metric,
            sampled: SampledCheck::new(probe, sampling, texts),
        })
    }
}

/// The keys a Mender `diskusage` check file may set.
pub const MENDER_DISKUSAGE_KEYS: [&str; 2] = ["DISKUSAGE_NAME", "DISKUSAGE_THRESHOLD"];

impl DiskusageDefinition {
    /// Converts a Mender `diskusage` check file's values; problems name Mender's keys.
    pub(crate) fn from_mender(
        values: &mut MenderValues,
    ) -> Option<SampledDefinition<DiskusageDefinition>> {
        let path = values.required("DISKUSAGE_NAME", "/")?;
        let mut definition = SampledDefinition::new(DiskusageDefinition {
            path,
            metric: DiskusageMetric::Used,
        });
        // Absent: Mender's default, 80, which is ours too.
        definition.shared.threshold = values.optional("DISKUSAGE_THRESHOLD").map(Quantity);
        Some(definition)
    }

    /// The Mender key one of our fields came from.
    pub(crate) fn mender_key(field: &str) -> Option<&'static str> {
        match field {
            "path" => Some("DISKUSAGE_NAME"),
            "threshold" => Some("DISKUSAGE_THRESHOLD"),
            _ => None,
        }
    }

    /// `monitorctl create diskusage <check> <path> [threshold]`, as Mender's demo names it.
    pub(crate) const CREATE: CreateCommand = CreateCommand {
        subsystem: Subsystem::Diskusage,
        about: "How full a file system is (percent used of a mount point)",
        examples: "Example:\n  monitorctl create diskusage root_space / 90",
        arguments: &[
            CreateArgument::text("check", "CHECK", None),
            CreateArgument::text(
                "path",
                "PATH",
                Some("The file system's mount point (Mender's DISKUSAGE_NAME), for example /"),
            ),
            CreateArgument {
                name: "threshold",
                value_name: "THRESHOLD",
                help: Some("Percent used at which it turns CRITICAL (default 80); it clears 5 points below"),
                required: false,
                check: Some(check_percent),
            },
        ],
    };

    /// The check's name and definition from [`DiskusageDefinition::CREATE`]'s arguments.
    pub(crate) fn from_create(
        values: CreateValues,
    ) -> Result<(String, SampledDefinition<DiskusageDefinition>), String> {
        let mut definition = SampledDefinition::new(DiskusageDefinition {
            path: values.text(1),
            metric: DiskusageMetric::Used,
        });
        let threshold = values.text(2);
        if !threshold.is_empty() {
            check_percent(&threshold)?;
            definition.shared.threshold = Some(Quantity(threshold));
        }
        Ok((values.text(0), definition))
    }
}

fn check_percent(text: &str) -> Result<(), String> {
    Quantity(text.to_owned()).value(Unit::Percent).map(|_| ())
}

impl DiskusageCheck {
    /// What `monitorctl list` shows as its source: `/ used (every 30s, threshold 90%, clear 85%)`.
    pub fn describe_source(&self) -> String {
        format!(
            "{} {} ({})",
            self.path.display(),
            self.metric.as_str(),
            self.sampled.describe_sampling()
        )
    }
}

#[cfg(test)]
mod tests;
