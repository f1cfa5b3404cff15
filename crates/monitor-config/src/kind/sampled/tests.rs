//! The keys every sampled kind shares: parsing, defaults, and what is wrong with them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use monitor_health::threshold::{Direction, Threshold};
use monitor_health::{Reading, Unit};

use super::*;
use crate::problem::parse_yaml;

fn file() -> PathBuf {
    PathBuf::from("/etc/monitor/available/diskusage_root.yaml")
}

/// A stand-in for a kind's own keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Own {
    path: String,
}

fn read(text: &str) -> Result<SampledDefinition<Own>, Vec<Problem>> {
    SampledDefinition::from_yaml(parse_yaml(text, &file()).unwrap(), &file())
}

const PERCENT_ABOVE: ThresholdRule = ThresholdRule {
    unit: Unit::Percent,
    direction: Direction::Above,
    default_threshold: Some(80.0),
    default_clear: |raise| raise - 5.0,
};

fn texts(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

#[test]
fn shared_keys_are_read_next_to_the_kinds_own_and_written_back_flat() {
    let definition =
        read("path: /\ninterval: 1m\nthreshold: 90%\nclear_threshold: 85\nfor: 2m\n").unwrap();
    assert_eq!(definition.kind.path, "/");
    let sampling = definition
        .shared
        .resolve(&file(), Some(PERCENT_ABOVE))
        .unwrap();
    assert_eq!(sampling.interval, Duration::from_secs(60));
    assert_eq!(
        sampling.threshold,
        Some(Threshold {
            raise: 90.0,
            clear: 85.0,
            direction: Direction::Above
        })
    );
    // Two minutes of one-minute samples.
    assert_eq!(sampling.debounce, 2);
    let yaml = serde_norway::to_string(&definition).unwrap();
    assert_eq!(
        yaml,
        "path: /\ninterval: 1m\nthreshold: 90%\nclear_threshold: 85\nfor: 2m\n"
    );
    assert_eq!(read(&yaml).unwrap(), definition);
}

#[test]
fn defaults_are_the_kinds_and_a_duration_rounds_up_to_whole_samples() {
    let definition = read("path: /\nfor: 45s\n").unwrap();
    let sampling = definition
        .shared
        .resolve(&file(), Some(PERCENT_ABOVE))
        .unwrap();
    assert_eq!(sampling.interval, DEFAULT_INTERVAL);
    assert_eq!(
        sampling.threshold.map(|t| (t.raise, t.clear)),
        Some((80.0, 75.0))
    );
    assert_eq!(sampling.debounce, 2);
    let counted = read("path: /\nfor: 3\n").unwrap();
    assert_eq!(
        counted
            .shared
            .resolve(&file(), Some(PERCENT_ABOVE))
            .unwrap()
            .debounce,
        3
    );
}

#[test]
fn every_wrong_key_is_reported_with_its_fix() {
    let problems = read("path: /\ninterval: soon\nthreshhold: 90\nfor: -1\n").unwrap_err();
    let messages = texts(&problems);
    assert!(
        messages.iter().any(|m| m.ends_with(
            "threshhold: unknown key: use one of path, interval, threshold, clear_threshold, for"
        )),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("interval: invalid duration \"soon\"")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("for: -1 samples: write 1 or more samples")),
        "{messages:#?}"
    );

    let definition = read("path: /\ninterval: 0\nthreshold: 120\nfor: 0\n").unwrap();
    let messages = texts(
        &definition
            .shared
            .resolve(&file(), Some(PERCENT_ABOVE))
            .unwrap_err(),
    );
    assert_eq!(
        messages,
        [
            "/etc/monitor/available/diskusage_root.yaml: interval: 0s is too short: sample at most once a second (interval: 1s or more)",
            "/etc/monitor/available/diskusage_root.yaml: for: 0 samples: write 1 or more samples (for: 3), or a duration (for: 2m)",
            "/etc/monitor/available/diskusage_root.yaml: threshold: 120 is over 100%: write a percentage from 0 to 100, for example 90",
        ]
    );
}

#[test]
fn a_clear_threshold_on_the_wrong_side_could_never_clear() {
    let definition = read("path: /\nthreshold: 90\nclear_threshold: 95\n").unwrap();
    let messages = texts(
        &definition
            .shared
            .resolve(&file(), Some(PERCENT_ABOVE))
            .unwrap_err(),
    );
    assert_eq!(
        messages,
        ["/etc/monitor/available/diskusage_root.yaml: clear_threshold: 95% is above the threshold 90%: the condition could never clear; set it at or below the threshold"]
    );
    // A kind that judges by itself takes no threshold.
    let messages = texts(&definition.shared.resolve(&file(), None).unwrap_err());
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[0].ends_with(
        "threshold: this check judges by itself and takes no threshold: remove the line"
    ));
}

#[test]
fn sizes_read_with_binary_prefixes() {
    let gib = 1024.0 * 1024.0 * 1024.0;
    assert_eq!(Quantity("1.5G".into()).value(Unit::Bytes), Ok(1.5 * gib));
    assert_eq!(
        Quantity("512 MiB".into()).value(Unit::Bytes),
        Ok(512.0 * 1024.0 * 1024.0)
    );
    assert_eq!(Quantity("1000".into()).value(Unit::Bytes), Ok(1000.0));
    assert_eq!(
        Quantity("lots".into()).value(Unit::Bytes),
        Err("\"lots\" is not a size: write bytes or a size such as 500M or 1.5G".to_owned())
    );
    assert_eq!(Quantity("80°C".into()).value(Unit::Celsius), Ok(80.0));
}

#[test]
fn details_carry_the_value_the_threshold_and_the_unit() {
    let sampling = Sampling {
        interval: DEFAULT_INTERVAL,
        threshold: Some(Threshold {
            raise: 90.0,
            clear: 85.0,
            direction: Direction::Above,
        }),
        unit: Some(Unit::Percent),
        debounce: 1,
    };
    let check = SampledCheck::new(
        monitor_health::Probe::Disk(monitor_health::disk::DiskProbe::new(
            Path::new("/"),
            monitor_health::disk::DiskMetric::UsedPercent,
        )),
        sampling,
        SampledTexts::new("diskusage", "/", "Disk / full", "FULL", "FULL"),
    );
    let details = check.details(&Reading::Value {
        value: 93.0,
        unit: Unit::Percent,
        what: "Disk / {value} used".into(),
    });
    assert_eq!(
        details.description.as_deref(),
        Some("Disk / 93% used (threshold 90%)")
    );
    assert_eq!(details.fields["value"], 93.0);
    assert_eq!(details.fields["threshold"], 90.0);
    assert_eq!(details.fields["clear_threshold"], 85.0);
    assert_eq!(details.fields["unit"], "%");
    assert_eq!(
        check.describe_sampling(),
        "every 30s, threshold 90%, clear 85%"
    );
}
