//! `memory`, `load`, `temperature` and `power` checks: YAML, `monitorctl create`,
//! validation, and what their alerts say.

use std::path::PathBuf;

use monitor_engine::CheckSpec;
use monitor_health::power::PowerCondition;
use monitor_health::temperature::TemperatureSensor;
use monitor_health::threshold::Direction;
use monitor_wire::Subsystem;

use crate::kind::{CheckDefinition, CheckKind};

fn file(subsystem: Subsystem) -> PathBuf {
    PathBuf::from(format!("/etc/monitor/available/{subsystem}_vital.yaml"))
}

fn resolve(subsystem: Subsystem, text: &str) -> Result<CheckKind, Vec<String>> {
    let file = file(subsystem);
    let definition = CheckDefinition::from_yaml(subsystem, text, &file)
        .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    definition
        .resolve(&file)
        .map_err(|problems| problems.iter().map(ToString::to_string).collect())
}

fn created(subsystem: Subsystem, arguments: &[&str]) -> (String, CheckKind) {
    let values: Vec<Option<String>> = arguments.iter().map(|a| Some((*a).to_owned())).collect();
    let (id, definition) = CheckDefinition::from_create(subsystem, &values).unwrap();
    let yaml = definition.to_yaml(&id).unwrap();
    let read = CheckDefinition::from_yaml(subsystem, &yaml, &file(subsystem)).unwrap();
    assert_eq!(read, definition, "{yaml}");
    (yaml, read.resolve(&file(subsystem)).unwrap())
}

fn condition_of(kind: &CheckKind) -> monitor_engine::ConditionCheck {
    match kind.sampled().expect("a sampled kind").engine_spec() {
        CheckSpec::Condition(condition) => condition,
        other => panic!("not a condition: {other:?}"),
    }
}

#[test]
fn memory_available_by_default_with_its_hysteresis() {
    let kind = resolve(Subsystem::Memory, "").unwrap();
    let sampled = kind.sampled().unwrap();
    let threshold = sampled.threshold.unwrap();
    assert_eq!(
        (threshold.raise, threshold.clear, threshold.direction),
        (10.0, 15.0, Direction::Below)
    );
    let memory = condition_of(&kind);
    assert_eq!(
        (memory.subject_type.as_str(), memory.subject_name.as_str()),
        ("memory", "memory")
    );
    assert_eq!(
        memory.critical.name,
        "Memory available has fallen to 10% or less"
    );
    assert_eq!(
        kind.describe_source(),
        "available (every 30s, threshold 10%, clear 15%)"
    );

    let kind = resolve(Subsystem::Memory, "metric: swap\nthreshold: 50%\n").unwrap();
    let threshold = kind.sampled().unwrap().threshold.unwrap();
    assert_eq!((threshold.raise, threshold.clear), (50.0, 40.0));
    assert_eq!(condition_of(&kind).subject_name, "swap");

    assert_eq!(
        resolve(Subsystem::Memory, "metric: available_bytes\n").unwrap_err(),
        ["/etc/monitor/available/memory_vital.yaml: threshold: missing: add a `threshold:` line, for example threshold: 1G"]
    );
    let kind = resolve(
        Subsystem::Memory,
        "metric: available_bytes\nthreshold: 100M\n",
    )
    .unwrap();
    assert_eq!(
        condition_of(&kind).critical.name,
        "Memory available has fallen to 100 MiB or less"
    );
}

#[test]
fn memory_by_monitorctl_create() {
    let (yaml, kind) = created(Subsystem::Memory, &["low_memory", "available", "5"]);
    assert_eq!(yaml, "# memory check low_memory\nthreshold: 5\n");
    assert_eq!(kind.sampled().unwrap().threshold.unwrap().raise, 5.0);
    let (yaml, _) = created(Subsystem::Memory, &["swapping", "swap"]);
    assert_eq!(yaml, "# memory check swapping\nmetric: swap\n");
    let bad = [Some("x".to_owned()), Some("ram".to_owned())];
    assert_eq!(
        CheckDefinition::from_create(Subsystem::Memory, &bad).unwrap_err(),
        "\"ram\" is not a memory metric: write available, available_bytes or swap"
    );
}

#[test]
fn load_per_core_and_cpu_use() {
    let kind = resolve(Subsystem::Load, "").unwrap();
    let threshold = kind.sampled().unwrap().threshold.unwrap();
    assert_eq!((threshold.raise, threshold.clear), (1.0, 0.8));
    assert_eq!(
        condition_of(&kind).critical.name,
        "Load per core has reached 1"
    );
    assert_eq!(
        kind.describe_source(),
        "load5 (every 30s, threshold 1, clear 0.8)"
    );

    let (yaml, kind) = created(Subsystem::Load, &["cpu_use", "cpu", "95"]);
    assert_eq!(yaml, "# load check cpu_use\nmetric: cpu\nthreshold: 95\n");
    let condition = condition_of(&kind);
    assert_eq!(
        (
            condition.subject_name.as_str(),
            condition.critical.name.as_str()
        ),
        ("cpu", "CPU use has reached 95%")
    );
    assert_eq!(
        resolve(Subsystem::Load, "metric: load2\n").unwrap_err(),
        ["/etc/monitor/available/load_vital.yaml: metric: unknown variant `load2`, expected one of `load1`, `load5`, `load15`, `cpu`"]
    );
}

#[test]
fn temperature_of_the_soc_a_zone_or_a_hwmon_input() {
    let kind = resolve(Subsystem::Temperature, "").unwrap();
    let CheckKind::Temperature(check) = &kind else {
        panic!("{kind:?}")
    };
    assert_eq!(check.sensor, TemperatureSensor::Soc);
    let threshold = kind.sampled().unwrap().threshold.unwrap();
    assert_eq!((threshold.raise, threshold.clear), (80.0, 75.0));
    let soc = condition_of(&kind);
    assert_eq!(
        (
            soc.subject_type.as_str(),
            soc.subject_name.as_str(),
            soc.critical.name.as_str()
        ),
        ("temperature", "soc", "Temperature of soc has reached 80 °C")
    );

    let (yaml, kind) = created(
        Subsystem::Temperature,
        &["board", "60", "cpu_thermal/temp2"],
    );
    assert_eq!(
        yaml,
        "# temperature check board\nchip: cpu_thermal\ninput: temp2\nthreshold: 60\n"
    );
    assert_eq!(condition_of(&kind).subject_name, "cpu_thermal/temp2");
    let (yaml, kind) = created(Subsystem::Temperature, &["gpu", "70", "thermal_zone1"]);
    assert_eq!(
        yaml,
        "# temperature check gpu\nzone: thermal_zone1\nthreshold: 70\n"
    );
    assert_eq!(
        kind.describe_source(),
        "thermal_zone1 (every 30s, threshold 70 °C, clear 65 °C)"
    );

    assert_eq!(
        resolve(
            Subsystem::Temperature,
            "zone: cpu-thermal\nchip: cpu_thermal\nthreshold: 70\nclear_threshold: 75\n"
        )
        .unwrap_err(),
        [
            "/etc/monitor/available/temperature_vital.yaml: chip: set either zone (a thermal zone) or chip (a hwmon sensor), not both",
            "/etc/monitor/available/temperature_vital.yaml: clear_threshold: 75 °C is above the threshold 70 °C: the condition could never clear; set it at or below the threshold",
        ]
    );
    assert_eq!(
        resolve(Subsystem::Temperature, "input: temp1\n").unwrap_err(),
        ["/etc/monitor/available/temperature_vital.yaml: input: input is a hwmon chip's: set chip too, or remove input"]
    );
}

#[test]
fn power_watches_under_voltage_and_throttling_by_default() {
    let kind = resolve(Subsystem::Power, "").unwrap();
    let CheckKind::Power(check) = &kind else {
        panic!("{kind:?}")
    };
    assert_eq!(
        check.conditions,
        [PowerCondition::UnderVoltage, PowerCondition::Throttled]
    );
    assert_eq!(kind.sampled().unwrap().threshold, None);
    let power = condition_of(&kind);
    assert_eq!(
        (
            power.subject_type.as_str(),
            power.subject_name.as_str(),
            power.critical.name.as_str()
        ),
        (
            "power",
            "board",
            "Raspberry Pi power or heat: under-voltage now or throttled now"
        )
    );
    assert_eq!(
        kind.describe_source(),
        "under_voltage, throttled (every 30s)"
    );

    // Every key at its default: an empty file (not `{}`), which a hand-added line extends.
    let (yaml, _) = created(Subsystem::Power, &["pi_power"]);
    assert_eq!(yaml, "# power check pi_power\n");
    let extended = format!("{yaml}interval: 1s\n");
    assert!(resolve(Subsystem::Power, &extended).is_ok());

    let (yaml, kind) = created(
        Subsystem::Power,
        &["supply", "under_voltage_since_boot,under_voltage"],
    );
    assert_eq!(
        yaml,
        "# power check supply\nconditions:\n- under_voltage_since_boot\n- under_voltage\n"
    );
    let CheckKind::Power(check) = &kind else {
        panic!("{kind:?}")
    };
    assert_eq!(
        check.conditions,
        [
            PowerCondition::UnderVoltage,
            PowerCondition::UnderVoltageSinceBoot
        ]
    );

    assert_eq!(
        resolve(Subsystem::Power, "conditions: [brownout]\nthreshold: 1\n").unwrap_err(),
        [
            "/etc/monitor/available/power_vital.yaml: conditions: \"brownout\" is not a condition: use under_voltage, frequency_capped, throttled, soft_temperature_limit, under_voltage_since_boot, frequency_capped_since_boot, throttled_since_boot, soft_temperature_limit_since_boot",
            "/etc/monitor/available/power_vital.yaml: threshold: this check judges by itself and takes no threshold: remove the line",
        ]
    );
    let bad = [
        Some("x".to_owned()),
        Some("throttled,overclocked".to_owned()),
    ];
    assert_eq!(
        CheckDefinition::from_create(Subsystem::Power, &bad).unwrap_err(),
        "\"overclocked\" is not a condition: use under_voltage, frequency_capped, throttled, soft_temperature_limit, under_voltage_since_boot, frequency_capped_since_boot, throttled_since_boot, soft_temperature_limit_since_boot"
    );
}
