//! Temperature: a thermal zone (`/sys/class/thermal/thermal_zone*/`) or a hwmon sensor
//! (`/sys/class/hwmon/hwmon*/`), the Raspberry Pi's SoC by default.
//!
//! Thermal zones (drivers/thermal/thermal_sysfs.c; Documentation/driver-api/thermal/
//! sysfs-api.rst): `type` is the zone's name (`sprintf("%s\n")`), `temp` the temperature in
//! millidegrees Celsius (`sprintf("%d\n")`). On a Raspberry Pi 3, 4 or 5 with a current
//! kernel the SoC's zone is the device tree's `cpu-thermal` (drivers `bcm2835_thermal`,
//! `bcm2711_thermal`, and the Pi 5's), `thermal_zone0`; Pi kernels before the device tree
//! named it (4.1-era Raspbian) called it `bcm2835_thermal`.
//!
//! hwmon (Documentation/hwmon/sysfs-interface.rst): `name` is the chip, `temp<N>_input`
//! millidegrees Celsius. The thermal core also registers each zone as a hwmon chip named
//! after the zone with `-` as `_` (`cpu_thermal`); other sensors (an I2C or 1-Wire board,
//! a PMIC) exist only as hwmon chips.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::kernel_file;
use crate::{read_blocking, Reading, Roots, Unit};

/// Zone types of a board's main SoC sensor, the default sensor: the Pi's (device tree and
/// older downstream kernels), common names on other boards, and Intel's package sensor.
const SOC_ZONE_TYPES: &[&str] = &[
    "cpu-thermal",
    "bcm2835_thermal",
    "cpu_thermal",
    "soc-thermal",
    "soc_thermal",
    "x86_pkg_temp",
];

/// Which sensor a temperature check reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TemperatureSensor {
    /// The SoC: the first thermal zone whose type is one of the known SoC sensors.
    Soc,
    /// A thermal zone by its `type` (`cpu-thermal`) or its folder (`thermal_zone1`).
    Zone(String),
    /// A hwmon chip by its `name`, and one of its temperature inputs (`temp1`).
    Hwmon { chip: String, input: String },
}

/// Samples one temperature sensor.
#[derive(Debug, Clone)]
pub struct TemperatureProbe {
    pub sensor: TemperatureSensor,
    /// Set while a read runs: a sensor that hangs costs one blocked thread, not one per
    /// sample.
    busy: Arc<AtomicBool>,
}

impl PartialEq for TemperatureProbe {
    fn eq(&self, other: &Self) -> bool {
        self.sensor == other.sensor
    }
}

impl TemperatureProbe {
    pub fn new(sensor: TemperatureSensor) -> Self {
        TemperatureProbe {
            sensor,
            busy: Arc::default(),
        }
    }

    /// One sample, on tokio's blocking pool: a thermal zone is a register read, but a
    /// hwmon input may be a bus transaction (an I2C sensor, a 1-Wire DS18B20 converts for
    /// 750 ms per read).
    pub async fn sample(&self, roots: &Roots) -> Reading {
        let probe = self.clone();
        let roots = roots.clone();
        let stalled = format!("the {} sensor", self.sensor_name());
        read_blocking(&self.busy, &stalled, move || probe.read(&roots)).await
    }

    fn sensor_name(&self) -> String {
        match &self.sensor {
            TemperatureSensor::Soc => "SoC".to_owned(),
            TemperatureSensor::Zone(zone) => zone.clone(),
            TemperatureSensor::Hwmon { chip, input } => format!("{chip} {input}"),
        }
    }

    /// Reads the sensor, blocking as long as its driver does.
    pub fn read(&self, roots: &Roots) -> Reading {
        let (path, what) = match self.find(roots) {
            Ok(found) => found,
            Err(message) => return Reading::Unavailable(message),
        };
        let text = match kernel_file::read_text(&path) {
            Ok(text) => text,
            // A zone's driver may fail one read (-ENODATA, -EAGAIN while the sensor
            // converts): the check's problem until the next sample reads again.
            Err(error) => return Reading::Unavailable(kernel_file::describe(&path, &error)),
        };
        match text.parse::<i64>() {
            Ok(millidegrees) => Reading::Value {
                value: millidegrees as f64 / 1000.0,
                unit: Unit::Celsius,
                what,
            },
            Err(_) => Reading::Unavailable(format!(
                "{} holds {text:?}, not a temperature in millidegrees: is sysfs_root a sysfs?",
                path.display()
            )),
        }
    }

    /// The file to read and the words for the value, or what is missing and the fix.
    fn find(&self, roots: &Roots) -> Result<(PathBuf, String), String> {
        match &self.sensor {
            TemperatureSensor::Soc => {
                let zones = thermal_zones(roots)?;
                SOC_ZONE_TYPES
                    .iter()
                    .find_map(|soc| zones.iter().find(|zone| zone.kind == *soc))
                    .map(|zone| (zone.folder.join("temp"), "SoC temperature".to_owned()))
                    .ok_or_else(|| {
                        format!(
                            "no SoC thermal zone (type {}) in {}{}",
                            SOC_ZONE_TYPES.join(", "),
                            roots.sys("class/thermal").display(),
                            found_zones_and_fix(&zones)
                        )
                    })
            }
            TemperatureSensor::Zone(wanted) => {
                let zones = thermal_zones(roots)?;
                zones
                    .iter()
                    .find(|zone| zone.kind == *wanted || zone.folder_name() == *wanted)
                    .map(|zone| {
                        (
                            zone.folder.join("temp"),
                            format!("{} temperature", zone.kind),
                        )
                    })
                    .ok_or_else(|| {
                        format!(
                            "no thermal zone of type or folder {wanted} in {}{}",
                            roots.sys("class/thermal").display(),
                            found_zones_and_fix(&zones)
                        )
                    })
            }
            TemperatureSensor::Hwmon { chip, input } => {
                let class = roots.sys("class/hwmon");
                let input = input.strip_suffix("_input").unwrap_or(input);
                let folders = kernel_file::numbered_entries(&class, "hwmon")
                    .map_err(|error| kernel_file::describe(&class, &error))?;
                let mut chips = Vec::new();
                for folder in folders {
                    let Ok(name) = kernel_file::read_text(&folder.join("name")) else {
                        continue;
                    };
                    if name == *chip {
                        let path = folder.join(format!("{input}_input"));
                        if path.exists() {
                            return Ok((path, format!("{chip} {input} temperature")));
                        }
                        return Err(format!(
                            "hwmon chip {chip} ({}) has no {input}_input: name one of its \
                             temp<N>_input files in `input:`",
                            folder.display()
                        ));
                    }
                    chips.push(name);
                }
                Err(format!(
                    "no hwmon chip named {chip} in {}: {}",
                    class.display(),
                    if chips.is_empty() {
                        "there is none (is the sensor's driver loaded, and sysfs_root right?)"
                            .to_owned()
                    } else {
                        format!("set `chip:` to one of {}", chips.join(", "))
                    }
                ))
            }
        }
    }
}

struct Zone {
    folder: PathBuf,
    kind: String,
}

impl Zone {
    fn folder_name(&self) -> &str {
        self.folder
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
    }
}

fn thermal_zones(roots: &Roots) -> Result<Vec<Zone>, String> {
    let class = roots.sys("class/thermal");
    let folders = kernel_file::numbered_entries(&class, "thermal_zone")
        .map_err(|error| kernel_file::describe(&class, &error))?;
    Ok(folders
        .into_iter()
        .filter_map(|folder| {
            let kind = kernel_file::read_text(&folder.join("type")).ok()?;
            Some(Zone { folder, kind })
        })
        .collect())
}

fn found_zones_and_fix(zones: &[Zone]) -> String {
    if zones.is_empty() {
        return ": this device has no thermal zone (not a Raspberry Pi, or a container \
                without /sys: set sysfs_root); delete this check or name a hwmon sensor"
            .to_owned();
    }
    let names: Vec<String> = zones
        .iter()
        .map(|zone| format!("{} ({})", zone.kind, zone.folder_name()))
        .collect();
    format!("; set `zone:` to one of {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_file::fixture_roots;

    fn celsius(reading: Reading) -> (f64, String) {
        match reading {
            Reading::Value {
                value,
                unit: Unit::Celsius,
                what,
            } => (value, what),
            other => panic!("expected degrees, got {other:?}"),
        }
    }

    fn unavailable(reading: Reading) -> String {
        match reading {
            Reading::Unavailable(message) => message,
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    #[test]
    fn the_soc_of_a_pi_4_and_of_an_old_pi_3() {
        let probe = TemperatureProbe::new(TemperatureSensor::Soc);
        assert_eq!(
            celsius(probe.read(&fixture_roots("pi4-bookworm"))),
            (49.66, "SoC temperature".to_owned())
        );
        assert_eq!(
            celsius(probe.read(&fixture_roots("pi3-raspbian"))),
            (44.388, "SoC temperature".to_owned())
        );
    }

    #[tokio::test]
    async fn a_sample_through_probe_reads_on_the_blocking_pool() {
        let probe = crate::Probe::Temperature(TemperatureProbe::new(TemperatureSensor::Soc));
        assert_eq!(
            celsius(probe.sample(&fixture_roots("pi4-bookworm")).await),
            (49.66, "SoC temperature".to_owned())
        );
    }

    #[test]
    fn a_zone_by_type_or_folder_and_a_hwmon_input() {
        let roots = fixture_roots("pi4-bookworm");
        for wanted in ["cpu-thermal", "thermal_zone0"] {
            let probe = TemperatureProbe::new(TemperatureSensor::Zone(wanted.to_owned()));
            assert_eq!(
                celsius(probe.read(&roots)),
                (49.66, "cpu-thermal temperature".to_owned())
            );
        }
        for input in ["temp1", "temp1_input"] {
            let probe = TemperatureProbe::new(TemperatureSensor::Hwmon {
                chip: "cpu_thermal".to_owned(),
                input: input.to_owned(),
            });
            assert_eq!(
                celsius(probe.read(&roots)),
                (49.66, "cpu_thermal temp1 temperature".to_owned())
            );
        }
    }

    #[test]
    fn below_zero_and_a_garbled_value() {
        let dir = tempfile::tempdir().unwrap();
        let zone = dir.path().join("class/thermal/thermal_zone0");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(zone.join("type"), "cpu-thermal\n").unwrap();
        std::fs::write(zone.join("temp"), "-5500\n").unwrap();
        let roots = Roots {
            sys: dir.path().to_owned(),
            proc: dir.path().join("proc"),
        };
        let probe = TemperatureProbe::new(TemperatureSensor::Soc);
        assert_eq!(celsius(probe.read(&roots)).0, -5.5);
        std::fs::write(zone.join("temp"), "hot\n").unwrap();
        assert_eq!(
            unavailable(probe.read(&roots)),
            format!(
                "{}/temp holds \"hot\", not a temperature in millidegrees: is sysfs_root a sysfs?",
                zone.display()
            )
        );
    }

    #[test]
    fn no_sensor_says_what_is_missing_and_the_fix() {
        let empty = tempfile::tempdir().unwrap();
        let roots = Roots {
            sys: empty.path().to_owned(),
            proc: empty.path().join("proc"),
        };
        assert_eq!(
            unavailable(TemperatureProbe::new(TemperatureSensor::Soc).read(&roots)),
            format!(
                "no SoC thermal zone (type cpu-thermal, bcm2835_thermal, cpu_thermal, \
                 soc-thermal, soc_thermal, x86_pkg_temp) in {}/class/thermal: this device has \
                 no thermal zone (not a Raspberry Pi, or a container without /sys: set \
                 sysfs_root); delete this check or name a hwmon sensor",
                empty.path().display()
            )
        );

        let pi4 = fixture_roots("pi4-bookworm");
        let message = unavailable(
            TemperatureProbe::new(TemperatureSensor::Zone("gpu".to_owned())).read(&pi4),
        );
        assert!(
            message.ends_with("; set `zone:` to one of cpu-thermal (thermal_zone0)"),
            "{message}"
        );
        let message = unavailable(
            TemperatureProbe::new(TemperatureSensor::Hwmon {
                chip: "ds18b20".to_owned(),
                input: "temp1".to_owned(),
            })
            .read(&pi4),
        );
        assert!(
            message.ends_with(": set `chip:` to one of cpu_thermal, rpi_volt"),
            "{message}"
        );
        let message = unavailable(
            TemperatureProbe::new(TemperatureSensor::Hwmon {
                chip: "rpi_volt".to_owned(),
                input: "temp1".to_owned(),
            })
            .read(&pi4),
        );
        assert!(message.contains("has no temp1_input"), "{message}");
    }
}
