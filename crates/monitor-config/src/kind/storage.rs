//! `storage` checks: whether a file system's storage is failing, by its mount point:
//! `watch: read_only` (the default: mounted or turned read-only, as the kernel does to ext4
//! after errors and to a failing SD card), `errors` (ext4's error count; CRITICAL from 1
//! error by default) or `wear` (an eMMC's life used, in percent; CRITICAL from 80% by
//! default). Sampled by the agent (see [`sampled`](super::sampled)); what the device lacks
//! (an SD card's wear, a vfat file system's errors) is the check's problem, not an alert.
//! Mender has no such kind.

use std::fmt;
use std::path::{Path, PathBuf};

use monitor_health::storage::{StorageProbe, StorageWatch};
use monitor_health::text::format_value;
use monitor_health::threshold::Direction;
use monitor_health::{Probe, Unit};
use monitor_wire::Subsystem;
use serde::{Deserialize, Serialize};

use super::sampled::{SampledCheck, SampledDefinition, SampledTexts, ThresholdRule};
use crate::create::{CreateArgument, CreateCommand, CreateValues};
use crate::problem::Problem;

/// A `storage` check file's own keys (besides `interval`, `threshold`, `clear_threshold`
/// and `for`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageDefinition {
    /// The file system's mount point. Default `/`.
    #[serde(default = "root")]
    pub path: String,
    /// `read_only` (the default), `errors` or `wear`.
    #[serde(default, skip_serializing_if = "StorageAspect::is_read_only")]
    pub watch: StorageAspect,
}

fn root() -> String {
    "/".to_owned()
}

/// What a `storage` check watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageAspect {
    /// Mounted or turned read-only: no threshold.
    #[default]
    ReadOnly,
    /// ext4's error count. Default threshold 1; clears once fsck reset the count.
    Errors,
    /// An eMMC's wear (the worst of its life time estimates and its reserved blocks used),
    /// in percent. Default threshold 80%.
    Wear,
}

impl StorageAspect {
    fn is_read_only(&self) -> bool {
        *self == StorageAspect::ReadOnly
    }

    fn rule(self) -> Option<ThresholdRule> {
        // Neither errors nor wear go back down by themselves: no clear band.
        match self {
            StorageAspect::ReadOnly => None,
            StorageAspect::Errors => Some(ThresholdRule {
                unit: Unit::Number,
                direction: Direction::Above,
                default_threshold: Some(1.0),
                default_clear: |raise| raise,
            }),
            StorageAspect::Wear => Some(ThresholdRule {
                unit: Unit::Percent,
                direction: Direction::Above,
                default_threshold: Some(80.0),
                default_clear: |raise| raise,
            }),
        }
    }
}

impl fmt::Display for StorageAspect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageAspect::ReadOnly => "read_only",
            StorageAspect::Errors => "errors",
            StorageAspect::Wear => "wear",
        })
    }
}

/// A validated `storage` check.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageCheck {
    pub path: PathBuf,
    pub watch: StorageAspect,
    pub sampled: SampledCheck,
}

impl SampledDefinition<StorageDefinition> {
    /// Validates the check file: every problem, each naming `file` and its field.
    pub fn resolve(&self, file: &Path) -> Result<StorageCheck, Vec<Problem>> {
        let watch = self.kind.watch;
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
            .resolve(file, watch.rule())
            .map_err(|more| problems.extend(more))
            .ok();
        let (Some(sampling), true) = (sampling, problems.is_empty()) else {
            return Err(problems);
        };
        let path = PathBuf::from(path);
        let shown = path.display().to_string();
        let raise = sampling.threshold.map_or(0.0, |threshold| threshold.raise);
        let texts = match watch {
            StorageAspect::ReadOnly => SampledTexts::new(
                "storage",
                &shown,
                format!("File system {shown} is read-only"),
                "read-only",
                "writable",
            ),
            StorageAspect::Errors => SampledTexts::new(
                "storage",
                &shown,
                format!(
                    "File system {shown} has {} ext4 error{} or more",
                    format_value(raise, Unit::Number),
                    if raise == 1.0 { "" } else { "s" }
                ),
                "errors",
                "no-errors",
            ),
            StorageAspect::Wear => SampledTexts::new(
                "storage",
                &shown,
                format!(
                    "Storage of {shown} is {} worn",
                    format_value(raise, Unit::Percent)
                ),
                "worn",
                "healthy",
            ),
        };
        let probe = Probe::Storage(StorageProbe::new(
            path.clone(),
            match watch {
                StorageAspect::ReadOnly => StorageWatch::ReadOnly,
                StorageAspect::Errors => StorageWatch::Ext4Errors,
                StorageAspect::Wear => StorageWatch::Wear,
            },
        ));
        Ok(StorageCheck {
            path,
            watch,
            sampled: SampledCheck::new(probe, sampling, texts),
        })
    }
}

impl StorageDefinition {
    /// `monitorctl create storage <check> <path> [read_only|errors|wear]`.
    pub(crate) const CREATE: CreateCommand = CreateCommand {
        subsystem: Subsystem::Storage,
        about: "A file system turned read-only, its ext4 errors, or its eMMC's wear",
        examples: "Examples:\n  monitorctl create storage root_ro /\n  monitorctl create storage root_errors / errors\n  monitorctl create storage emmc_wear / wear",
        arguments: &[
            CreateArgument::text("check", "CHECK", None),
            CreateArgument::text(
                "path",
                "PATH",
                Some("The file system's mount point, for example /"),
            ),
            CreateArgument {
                name: "watch",
                value_name: "WATCH",
                help: Some("read_only (default), errors (ext4's error count) or wear (eMMC)"),
                required: false,
                check: Some(check_watch),
            },
        ],
    };

    /// The check's name and definition from [`StorageDefinition::CREATE`]'s arguments.
    pub(crate) fn from_create(
        values: CreateValues,
    ) -> Result<(String, SampledDefinition<StorageDefinition>), String> {
        let watch = match values.text(2).as_str() {
            "" => StorageAspect::ReadOnly,
            text => parse_watch(text)?,
        };
        let definition = SampledDefinition::new(StorageDefinition {
            path: values.text(1),
            watch,
        });
        Ok((values.text(0), definition))
    }
}

fn parse_watch(text: &str) -> Result<StorageAspect, String> {
    match text.trim() {
        "read_only" => Ok(StorageAspect::ReadOnly),
        "errors" => Ok(StorageAspect::Errors),
        "wear" => Ok(StorageAspect::Wear),
        other => Err(format!(
            "unknown storage watch \"{other}\": use read_only, errors or wear"
        )),
    }
}

fn check_watch(text: &str) -> Result<(), String> {
    parse_watch(text).map(|_| ())
}

impl StorageCheck {
    /// What `monitorctl list` shows as its source: `/ read_only (every 30s)`.
    pub fn describe_source(&self) -> String {
        format!(
            "{} {} ({})",
            self.path.display(),
            self.watch,
            self.sampled.describe_sampling()
        )
    }
}

#[cfg(test)]
mod tests;
