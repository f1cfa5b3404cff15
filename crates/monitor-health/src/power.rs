//! Power on a Raspberry Pi: under-voltage, ARM frequency capping, throttling and the soft
//! temperature limit, now and since boot, as the VideoCore firmware reports them.
//!
//! The firmware's mailbox property GET_THROTTLED (0x00030046, include/soc/bcm2835/
//! raspberrypi-firmware.h) answers a 32-bit word: the low 16 bits are the state now, the
//! high 16 bits the same conditions "has occurred" (sticky). Bits (the Raspberry Pi
//! documentation of `vcgencmd get_throttled`): 0 under-voltage, 1 ARM frequency capped,
//! 2 currently throttled, 3 soft temperature limit active; 16-19 the same since boot.
//! Linux shows it in two places:
//!
//! - `/sys/devices/platform/soc/soc:firmware/get_throttled` (raspberrypi/linux,
//!   drivers/firmware/raspberrypi.c, `get_throttled_show`: `sprintf("%x\n")`, hex without
//!   `0x`; added by "firmware/raspberrypi: Add a get_throttled sysfs file", 2018): the whole
//!   word, as last fetched by the kernel, which the hwmon driver below does every 2 s.
//!   Current Pi kernels mark it deprecated: its first read after boot logs one
//!   "deprecated, use hwmon sysfs instead" warning (`WARN_ONCE`) in the kernel log. The
//!   device's folder depends on the device tree (`soc:firmware` on the Pi 3 and 4), so the
//!   probe also looks through the driver's devices, `/sys/bus/platform/drivers/
//!   raspberrypi-firmware/*/`.
//! - The hwmon chip `rpi_volt` (drivers/hwmon/raspberrypi-hwmon.c; Documentation/hwmon/
//!   raspberrypi-hwmon.rst): `in0_lcrit_alarm`, `1` when the under-voltage bit was set at
//!   its last 2 s poll. Under-voltage only, the interface the kernel recommends.
//!
//! raspberrypi-hwmon asks the firmware to clear the sticky bits at each poll (request value
//! `0xffff`), so with that driver bits 16-19 may span only the last poll, not the boot.
//!
//! So a check of under-voltage alone reads the hwmon alarm, and one that needs another bit
//! reads `get_throttled`. Neither exists on other boards, in a container without the Pi's
//! /sys, or on Pi kernels before 2018: the reading says so, with the fix.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::kernel_file;
use crate::{read_blocking, Reading, Roots};

/// A condition the firmware reports, one bit of its throttled word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PowerCondition {
    UnderVoltage,
    FrequencyCapped,
    Throttled,
    SoftTemperatureLimit,
    UnderVoltageSinceBoot,
    FrequencyCappedSinceBoot,
    ThrottledSinceBoot,
    SoftTemperatureLimitSinceBoot,
}

impl PowerCondition {
    pub const ALL: [PowerCondition; 8] = [
        PowerCondition::UnderVoltage,
        PowerCondition::FrequencyCapped,
        PowerCondition::Throttled,
        PowerCondition::SoftTemperatureLimit,
        PowerCondition::UnderVoltageSinceBoot,
        PowerCondition::FrequencyCappedSinceBoot,
        PowerCondition::ThrottledSinceBoot,
        PowerCondition::SoftTemperatureLimitSinceBoot,
    ];

    /// The bit of the firmware's word.
    pub fn bit(self) -> u32 {
        match self {
            PowerCondition::UnderVoltage => 0,
            PowerCondition::FrequencyCapped => 1,
            PowerCondition::Throttled => 2,
            PowerCondition::SoftTemperatureLimit => 3,
            PowerCondition::UnderVoltageSinceBoot => 16,
            PowerCondition::FrequencyCappedSinceBoot => 17,
            PowerCondition::ThrottledSinceBoot => 18,
            PowerCondition::SoftTemperatureLimitSinceBoot => 19,
        }
    }

    /// The name in a check's YAML (`conditions: [under_voltage, throttled]`).
    pub fn name(self) -> &'static str {
        match self {
            PowerCondition::UnderVoltage => "under_voltage",
            PowerCondition::FrequencyCapped => "frequency_capped",
            PowerCondition::Throttled => "throttled",
            PowerCondition::SoftTemperatureLimit => "soft_temperature_limit",
            PowerCondition::UnderVoltageSinceBoot => "under_voltage_since_boot",
            PowerCondition::FrequencyCappedSinceBoot => "frequency_capped_since_boot",
            PowerCondition::ThrottledSinceBoot => "throttled_since_boot",
            PowerCondition::SoftTemperatureLimitSinceBoot => "soft_temperature_limit_since_boot",
        }
    }

    pub fn from_name(name: &str) -> Option<PowerCondition> {
        PowerCondition::ALL
            .into_iter()
            .find(|condition| condition.name() == name)
    }

    /// For a person, in the alert's details.
    pub fn description(self) -> &'static str {
        match self {
            PowerCondition::UnderVoltage => "under-voltage now",
            PowerCondition::FrequencyCapped => "ARM frequency capped now",
            PowerCondition::Throttled => "throttled now",
            PowerCondition::SoftTemperatureLimit => "soft temperature limit now",
            PowerCondition::UnderVoltageSinceBoot => "under-voltage since boot",
            PowerCondition::FrequencyCappedSinceBoot => "ARM frequency capped since boot",
            PowerCondition::ThrottledSinceBoot => "throttled since boot",
            PowerCondition::SoftTemperatureLimitSinceBoot => "soft temperature limit since boot",
        }
    }
}

/// Samples the firmware's throttled bits and judges them: bad while any watched condition
/// holds.
#[derive(Debug, Clone)]
pub struct PowerProbe {
    /// The conditions that make the check CRITICAL (sorted, without repeats).
    pub watched: Vec<PowerCondition>,
    /// Set while a read runs (see [`PowerProbe::sample`]).
    busy: Arc<AtomicBool>,
}

impl PartialEq for PowerProbe {
    fn eq(&self, other: &Self) -> bool {
        self.watched == other.watched
    }
}

/// The file `get_throttled`, relative to the sysfs root, on the Pi 3 and 4.
const GET_THROTTLED: &str = "devices/platform/soc/soc:firmware/get_throttled";
/// The firmware driver's devices, whatever the device tree calls them.
const FIRMWARE_DRIVER: &str = "bus/platform/drivers/raspberrypi-firmware";
/// The hwmon chip of raspberrypi-hwmon.
const RPI_VOLT: &str = "rpi_volt";

impl PowerProbe {
    /// Watches `conditions` (the default set is under-voltage and throttling now).
    pub fn new(conditions: impl IntoIterator<Item = PowerCondition>) -> Self {
        let mut watched: Vec<PowerCondition> = conditions.into_iter().collect();
        watched.sort();
        watched.dedup();
        PowerProbe {
            watched,
            busy: Arc::default(),
        }
    }

    /// What the issue calls "under-voltage and throttling": the default check.
    pub fn default_conditions() -> [PowerCondition; 2] {
        [PowerCondition::UnderVoltage, PowerCondition::Throttled]
    }

    /// One sample, on tokio's blocking pool: current kernels answer from the word their
    /// 2 s poll fetched, but the 2018 version of `get_throttled` asked the firmware on each
    /// read, through the mailbox, which may take up to its 1 s timeout.
    pub async fn sample(&self, roots: &Roots) -> Reading {
        let probe = self.clone();
        let roots = roots.clone();
        read_blocking(&self.busy, "the firmware's throttled bits", move || {
            probe.read(&roots)
        })
        .await
    }

    /// Reads the hwmon alarm or `get_throttled`, blocking as long as the kernel does.
    pub fn read(&self, roots: &Roots) -> Reading {
        let only_under_voltage = self
            .watched
            .iter()
            .all(|condition| *condition == PowerCondition::UnderVoltage);
        let alarm = under_voltage_alarm(roots);
        if only_under_voltage {
            if let Some(path) = &alarm {
                return self.judge_alarm(path);
            }
        }
        if let Some(path) = get_throttled(roots) {
            return self.judge_word(&path);
        }
        if let Some(path) = &alarm {
            if self.watched.contains(&PowerCondition::UnderVoltage) {
                // No word, only the alarm: judge what can be judged, and say what cannot.
                return match self.judge_alarm(path) {
                    Reading::Verdict { bad, text } => Reading::Verdict {
                        bad,
                        text: format!(
                            "{text}; the other conditions are unknown: no {} (a kernel \
                             without the firmware's get_throttled file)",
                            roots.sys(GET_THROTTLED).display()
                        ),
                    },
                    other => other,
                };
            }
        }
        Reading::Unavailable(format!(
            "no Raspberry Pi firmware throttled bits: neither {} nor a hwmon chip named \
             {RPI_VOLT} in {} exists; this is not a Raspberry Pi, its kernel lacks \
             raspberrypi-hwmon (CONFIG_SENSORS_RASPBERRYPI_HWMON), or sysfs_root is not its \
             /sys: delete this check, or disable it",
            roots.sys(GET_THROTTLED).display(),
            roots.sys("class/hwmon").display()
        ))
    }

    fn judge_alarm(&self, path: &std::path::Path) -> Reading {
        let text = match kernel_file::read_text(path) {
            Ok(text) => text,
            Err(error) => return Reading::Unavailable(kernel_file::describe(path, &error)),
        };
        match text.as_str() {
            "0" => Reading::Verdict {
                bad: false,
                text: "no under-voltage (raspberrypi-hwmon in0_lcrit_alarm 0)".to_owned(),
            },
            "1" => Reading::Verdict {
                bad: true,
                text: "under-voltage now (raspberrypi-hwmon in0_lcrit_alarm 1): use a power \
                       supply that gives 5.1 V under load, and a shorter, thicker cable"
                    .to_owned(),
            },
            other => Reading::Unavailable(format!(
                "{} holds {other:?}, not 0 or 1: is sysfs_root a sysfs?",
                path.display()
            )),
        }
    }

    fn judge_word(&self, path: &std::path::Path) -> Reading {
        let text = match kernel_file::read_text(path) {
            Ok(text) => text,
            Err(error) => return Reading::Unavailable(kernel_file::describe(path, &error)),
        };
        let digits = text.strip_prefix("0x").unwrap_or(&text);
        let Ok(word) = u32::from_str_radix(digits, 16) else {
            return Reading::Unavailable(format!(
                "{} holds {text:?}, not the firmware's hex word: is sysfs_root a sysfs?",
                path.display()
            ));
        };
        let held: Vec<&str> = self
            .watched
            .iter()
            .filter(|condition| word & (1 << condition.bit()) != 0)
            .map(|condition| condition.description())
            .collect();
        if held.is_empty() {
            let watched: Vec<&str> = self
                .watched
                .iter()
                .map(|condition| condition.description())
                .collect();
            return Reading::Verdict {
                bad: false,
                text: format!("none of: {} (get_throttled 0x{word:x})", watched.join(", ")),
            };
        }
        Reading::Verdict {
            bad: true,
            text: format!(
                "{} (get_throttled 0x{word:x}){}",
                held.join(", "),
                advice(word)
            ),
        }
    }
}

/// The fix for what the word shows: power for under-voltage, cooling for heat.
fn advice(word: u32) -> &'static str {
    const UNDER_VOLTAGE_NOW_OR_SINCE_BOOT: u32 = 1 | 1 << 16;
    if word & UNDER_VOLTAGE_NOW_OR_SINCE_BOOT != 0 {
        ": use a power supply that gives 5.1 V under load, and a shorter, thicker cable"
    } else {
        ": cool the Pi (a heatsink, a fan, airflow around the case)"
    }
}

fn get_throttled(roots: &Roots) -> Option<PathBuf> {
    let usual = roots.sys(GET_THROTTLED);
    if usual.exists() {
        return Some(usual);
    }
    let driver = roots.sys(FIRMWARE_DRIVER);
    let mut devices: Vec<PathBuf> = std::fs::read_dir(&driver)
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("get_throttled")))
        .filter(|path| path.exists())
        .collect();
    devices.sort();
    devices.into_iter().next()
}

fn under_voltage_alarm(roots: &Roots) -> Option<PathBuf> {
    let folders = kernel_file::numbered_entries(&roots.sys("class/hwmon"), "hwmon").ok()?;
    folders.into_iter().find_map(|folder| {
        let name = kernel_file::read_text(&folder.join("name")).ok()?;
        let alarm = folder.join("in0_lcrit_alarm");
        (name == RPI_VOLT && alarm.exists()).then_some(alarm)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_file::fixture_roots;

    fn verdict(reading: Reading) -> (bool, String) {
        match reading {
            Reading::Verdict { bad, text } => (bad, text),
            other => panic!("expected a verdict, got {other:?}"),
        }
    }

    /// A sysfs of `files` (path relative to the root, contents) in a fresh folder.
    fn sysfs(files: &[(&str, &str)]) -> (tempfile::TempDir, Roots) {
        let dir = tempfile::tempdir().unwrap();
        for (relative, contents) in files {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        let roots = Roots {
            sys: dir.path().to_owned(),
            proc: dir.path().join("proc"),
        };
        (dir, roots)
    }

    #[test]
    fn the_bits_are_the_firmware_documentation() {
        let bits: Vec<u32> = PowerCondition::ALL.iter().map(|c| c.bit()).collect();
        assert_eq!(bits, [0, 1, 2, 3, 16, 17, 18, 19]);
        for condition in PowerCondition::ALL {
            assert_eq!(PowerCondition::from_name(condition.name()), Some(condition));
        }
    }

    #[test]
    fn an_under_voltage_pi_4_by_its_word() {
        // 50005: under-voltage and throttled, now and since boot.
        let roots = fixture_roots("pi4-bookworm");
        let probe = PowerProbe::new(PowerProbe::default_conditions());
        assert_eq!(
            verdict(probe.read(&roots)),
            (
                true,
                "under-voltage now, throttled now (get_throttled 0x50005): use a power supply \
                 that gives 5.1 V under load, and a shorter, thicker cable"
                    .to_owned()
            )
        );
        let probe = PowerProbe::new([
            PowerCondition::FrequencyCapped,
            PowerCondition::SoftTemperatureLimitSinceBoot,
        ]);
        assert_eq!(
            verdict(probe.read(&roots)),
            (
                false,
                "none of: ARM frequency capped now, soft temperature limit since boot \
                 (get_throttled 0x50005)"
                    .to_owned()
            )
        );
    }

    #[tokio::test]
    async fn a_sample_through_probe_reads_on_the_blocking_pool() {
        let probe = crate::Probe::Power(PowerProbe::new(PowerProbe::default_conditions()));
        let (bad, text) = verdict(probe.sample(&fixture_roots("pi4-bookworm")).await);
        assert!(bad);
        assert!(text.starts_with("under-voltage now, throttled now (get_throttled 0x50005)"));
        // Memory and load read procfs in place.
        let memory = crate::Probe::Memory(crate::memory::MemoryProbe::new(
            crate::memory::MemoryMeasure::AvailablePercent,
        ));
        assert!(matches!(
            memory.sample(&fixture_roots("pi3-raspbian")).await,
            Reading::Value { .. }
        ));
    }

    #[test]
    fn under_voltage_alone_reads_the_hwmon_alarm() {
        // The Pi 4 fixture's rpi_volt alarm is 1; its get_throttled is not read (a read
        // logs the kernel's deprecation warning).
        let roots = fixture_roots("pi4-bookworm");
        let probe = PowerProbe::new([PowerCondition::UnderVoltage]);
        let (bad, text) = verdict(probe.read(&roots));
        assert!(bad);
        assert!(text.starts_with("under-voltage now (raspberrypi-hwmon in0_lcrit_alarm 1)"));
    }

    #[test]
    fn the_soft_temperature_limit_of_a_pi_3_b_plus() {
        // 80008, read from get_throttled on a Pi 3 B+ (sensor.rpi_power issue 6).
        let (_dir, roots) = sysfs(&[(GET_THROTTLED, "80008\n")]);
        let probe = PowerProbe::new([PowerCondition::SoftTemperatureLimit]);
        assert_eq!(
            verdict(probe.read(&roots)),
            (
                true,
                "soft temperature limit now (get_throttled 0x80008): cool the Pi (a heatsink, \
                 a fan, airflow around the case)"
                    .to_owned()
            )
        );
        let (_dir, roots) = sysfs(&[(GET_THROTTLED, "0\n")]);
        assert_eq!(
            verdict(PowerProbe::new(PowerProbe::default_conditions()).read(&roots)),
            (
                false,
                "none of: under-voltage now, throttled now (get_throttled 0x0)".to_owned()
            )
        );
    }

    #[test]
    fn the_word_is_found_through_the_firmware_driver() {
        // A device tree that names the firmware node otherwise: the driver's link.
        let (dir, roots) = sysfs(&[(
            "devices/platform/axi/soc@107c000000:firmware/get_throttled",
            "4\n",
        )]);
        let driver = dir.path().join(FIRMWARE_DRIVER);
        std::fs::create_dir_all(&driver).unwrap();
        std::os::unix::fs::symlink(
            dir.path()
                .join("devices/platform/axi/soc@107c000000:firmware"),
            driver.join("soc@107c000000:firmware"),
        )
        .unwrap();
        let (bad, text) = verdict(PowerProbe::new(PowerProbe::default_conditions()).read(&roots));
        assert!(bad);
        assert!(
            text.starts_with("throttled now (get_throttled 0x4)"),
            "{text}"
        );
    }

    #[test]
    fn only_the_alarm_judges_under_voltage_and_says_the_rest_is_unknown() {
        let (_dir, roots) = sysfs(&[
            ("class/hwmon/hwmon2/name", "rpi_volt\n"),
            ("class/hwmon/hwmon2/in0_lcrit_alarm", "0\n"),
        ]);
        let (bad, text) = verdict(PowerProbe::new(PowerProbe::default_conditions()).read(&roots));
        assert!(!bad);
        assert!(text.starts_with("no under-voltage (raspberrypi-hwmon in0_lcrit_alarm 0); the other conditions are unknown: no "), "{text}");

        let reading = PowerProbe::new([PowerCondition::Throttled]).read(&roots);
        assert!(matches!(reading, Reading::Unavailable(_)), "{reading:?}");
    }

    #[test]
    fn not_a_pi_is_unavailable_with_the_fix() {
        let roots = fixture_roots("pi3-raspbian");
        let reading = PowerProbe::new(PowerProbe::default_conditions()).read(&roots);
        let sys = roots.sys.display();
        assert_eq!(
            reading,
            Reading::Unavailable(format!(
                "no Raspberry Pi firmware throttled bits: neither \
                 {sys}/devices/platform/soc/soc:firmware/get_throttled nor a hwmon chip named \
                 rpi_volt in {sys}/class/hwmon exists; this is not a Raspberry Pi, its kernel \
                 lacks raspberrypi-hwmon (CONFIG_SENSORS_RASPBERRYPI_HWMON), or sysfs_root is \
                 not its /sys: delete this check, or disable it"
            ))
        );
    }

    #[test]
    fn a_garbled_word_is_unavailable() {
        let (dir, roots) = sysfs(&[(GET_THROTTLED, "zz\n")]);
        assert_eq!(
            PowerProbe::new(PowerProbe::default_conditions()).read(&roots),
            Reading::Unavailable(format!(
                "{}/{GET_THROTTLED} holds \"zz\", not the firmware's hex word: is sysfs_root a \
                 sysfs?",
                dir.path().display()
            ))
        );
    }
}
