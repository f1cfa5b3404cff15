//! `temperature`, `power` and `memory` checks on a Raspberry Pi's kernel files: the test
//! writes them into folders the agent reads as `sysfs_root` and `procfs_root` (the file
//! formats are those of real Pi 3/4 kernels: see crates/monitor-health/testdata/README.md),
//! and changes them as a Pi heating up or losing power would.
//!
//! "Once" is shown by a sentinel: another sampled check of the same agent that changes
//! next, sampled on the same timer, must be the next alert.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{eventually, Sandbox};

/// A Pi's /sys and /proc, as folders the test writes.
struct FakeKernel {
    sys: PathBuf,
    proc: PathBuf,
}

impl FakeKernel {
    /// Empty roots, named in the sandbox's monitor.yaml.
    fn new(sandbox: &Sandbox) -> FakeKernel {
        let kernel = FakeKernel {
            sys: sandbox.path("sys"),
            proc: sandbox.path("proc"),
        };
        fs::create_dir_all(&kernel.sys).unwrap();
        fs::create_dir_all(&kernel.proc).unwrap();
        fs::write(
            sandbox.config_dir().join("monitor.yaml"),
            format!(
                "sysfs_root: {}\nprocfs_root: {}\n",
                kernel.sys.display(),
                kernel.proc.display()
            ),
        )
        .unwrap();
        kernel
    }

    /// Writes `text` to `relative` under `root` as the kernel shows a new value: the reader
    /// sees the old text or the new, never half of it (a rename, as sysfs reads are whole).
    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let staged = path.with_extension("staged");
        fs::write(&staged, text).unwrap();
        fs::rename(&staged, &path).unwrap();
    }

    fn sys(&self, relative: &str, text: &str) {
        FakeKernel::write(&self.sys, relative, text);
    }

    fn proc(&self, relative: &str, text: &str) {
        FakeKernel::write(&self.proc, relative, text);
    }

    /// The Pi 4's SoC zone at `millidegrees`.
    fn soc_temperature(&self, millidegrees: i64) {
        self.sys("class/thermal/thermal_zone0/type", "cpu-thermal\n");
        self.sys(
            "class/thermal/thermal_zone0/temp",
            &format!("{millidegrees}\n"),
        );
    }

    /// The firmware's throttled word, as drivers/firmware/raspberrypi.c prints it.
    fn throttled(&self, word: u32) {
        self.sys(
            "devices/platform/soc/soc:firmware/get_throttled",
            &format!("{word:x}\n"),
        );
    }

    /// /proc/meminfo of a 1 GB Pi 3 (rpicheck pull request 107) with `available_kib`.
    fn meminfo(&self, available_kib: u64) {
        self.proc(
            "meminfo",
            &format!(
                "MemTotal:         949328 kB\nMemFree:           49512 kB\n\
                 MemAvailable:   {available_kib:>8} kB\nBuffers:          437356 kB\n\
                 Cached:           411156 kB\nSwapCached:            0 kB\n\
                 SwapTotal:        102396 kB\nSwapFree:         102392 kB\n"
            ),
        );
    }
}

/// Creates `<kind> <name>` with `arguments`, sampled every second, and enables it.
fn create_sampled_every_second(sandbox: &Sandbox, kind: &str, name: &str, arguments: &[&str]) {
    let mut create = vec!["create", kind, name];
    create.extend_from_slice(arguments);
    sandbox.monitorctl_quietly(&create);
    let file = sandbox
        .config_dir()
        .join(format!("available/{kind}_{name}.yaml"));
    let mut definition = fs::read_to_string(&file).unwrap();
    definition.push_str("interval: 1s\n");
    fs::write(&file, definition).unwrap();
    sandbox.monitorctl_quietly(&["enable", kind, name]);
}

/// The `status --json` entry of `<kind> <name>`.
fn status_of(sandbox: &Sandbox, kind: &str, name: &str) -> Value {
    let output = sandbox.monitorctl(&["status", "--json"]);
    assert!(output.status.success(), "monitorctl status: {output:?}");
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["check"]["subsystem"] == kind && check["check"]["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no check {kind} {name} in {status:#}"))
}

/// The SoC heats past 80 °C: CRITICAL with the value, the threshold and the unit; a value
/// between the clear threshold (75 °C) and the threshold changes nothing either way; below
/// 75 °C it is OK, once.
#[test]
fn a_soc_over_its_threshold_is_critical_until_it_cools_below_the_clear_threshold() {
    let sandbox = Sandbox::new();
    let kernel = FakeKernel::new(&sandbox);
    kernel.soc_temperature(49660);
    kernel.meminfo(884628);
    create_sampled_every_second(&sandbox, "temperature", "soc_heat", &["80"]);
    // The sentinel: memory, sampled by the same task.
    create_sampled_every_second(&sandbox, "memory", "low_memory", &["available", "10"]);
    let mut alerts = sandbox.follow_alerts();
    let mut agent = sandbox.start_agent();
    eventually("status shows the SoC OK", || {
        let status = status_of(&sandbox, "temperature", "soc_heat");
        status["state"] == "ok"
            && status["detail"] == "sampled every 1s, threshold 80 °C, clear 75 °C"
    });

    kernel.soc_temperature(82300);
    let (_, critical) = alerts.expect("CRITICAL", "temperature soc_heat");
    let subject = &critical["subject"];
    assert_eq!(subject["type"], "temperature");
    assert_eq!(subject["name"], "soc");
    assert_eq!(critical["name"], "Temperature of soc has reached 80 °C");
    let details = &subject["details"];
    assert_eq!(
        details["description"], "SoC temperature 82.3 °C (threshold 80 °C)",
        "{critical:#}"
    );
    assert_eq!(details["value"], 82.3);
    assert_eq!(details["unit"], "°C");
    assert_eq!(details["threshold"], 80.0);
    assert_eq!(details["clear_threshold"], 75.0);

    // Cooler, but not below the clear threshold: still CRITICAL. The sentinel (memory
    // running low, sampled on the same timer) is the next alert, not an OK.
    kernel.soc_temperature(77000);
    kernel.meminfo(60000);
    alerts.expect("CRITICAL", "memory low_memory");

    kernel.soc_temperature(70000);
    let (_, ok) = alerts.expect("OK", "temperature soc_heat");
    assert_eq!(
        ok["subject"]["details"]["description"],
        "SoC temperature 70 °C (threshold 80 °C)"
    );

    // Warmer again, under the threshold: still OK; the next alert is the sentinel's.
    kernel.soc_temperature(79000);
    kernel.meminfo(884628);
    let (_, memory_ok) = alerts.expect("OK", "memory low_memory");
    assert_eq!(
        memory_ok["subject"]["details"]["description"],
        "Memory 93.2% available (threshold 10%)"
    );
    agent.assert_alive();
}

/// A Pi that is not a Pi yet (no firmware files) shows the check's problem, with its fix,
/// and no alert; once the firmware's word appears, the under-voltage bit makes it
/// CRITICAL, and clearing it (the since-boot bits stay) OK, once.
#[test]
fn under_voltage_from_the_firmwares_bits_is_critical_until_it_clears() {
    let sandbox = Sandbox::new();
    let kernel = FakeKernel::new(&sandbox);
    kernel.soc_temperature(49660);
    create_sampled_every_second(&sandbox, "power", "pi_power", &[]);
    // The sentinel: the SoC's temperature, sampled by the same task.
    create_sampled_every_second(&sandbox, "temperature", "soc_heat", &["80"]);
    let mut alerts = sandbox.follow_alerts();
    let mut agent = sandbox.start_agent();

    eventually("status shows that this is not a Raspberry Pi", || {
        let status = status_of(&sandbox, "power", "pi_power");
        status["state"] == "error"
            && status["detail"].as_str().is_some_and(|detail| {
                detail.contains("no Raspberry Pi firmware throttled bits")
                    && detail.ends_with("delete this check, or disable it")
            })
    });

    kernel.throttled(0);
    eventually("status shows the power OK", || {
        let status = status_of(&sandbox, "power", "pi_power");
        status["state"] == "ok" && status["detail"] == "sampled every 1s"
    });

    // Under-voltage and throttled, now and since boot: what the kernel logs as
    // "Under-voltage detected! (0x00050005)".
    kernel.throttled(0x50005);
    let (_, critical) = alerts.expect("CRITICAL", "power pi_power");
    let subject = &critical["subject"];
    assert_eq!(subject["type"], "power");
    assert_eq!(subject["name"], "board");
    assert_eq!(
        critical["name"],
        "Raspberry Pi power or heat: under-voltage now or throttled now"
    );
    assert_eq!(
        subject["details"]["description"],
        "under-voltage now, throttled now (get_throttled 0x50005): use a power supply that \
         gives 5.1 V under load, and a shorter, thicker cable"
    );

    // The supply recovers; the sticky bits say it happened since boot, which this check
    // does not watch.
    kernel.throttled(0x50000);
    let (_, ok) = alerts.expect("OK", "power pi_power");
    assert_eq!(
        ok["subject"]["details"]["description"],
        "none of: under-voltage now, throttled now (get_throttled 0x50000)"
    );

    // Once: the next alert is the sentinel's.
    kernel.soc_temperature(85000);
    alerts.expect("CRITICAL", "temperature soc_heat");
    agent.assert_alive();
}

/// `/proc/stat` of a four-core Pi 4 whose `cpu` line has `busy` and `idle` ticks (the
/// counters split as user and idle; fs/proc/stat.c's format).
fn stat_with(busy: u64, idle: u64) -> String {
    let mut text = format!("cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\n");
    for core in 0..4 {
        text.push_str(&format!(
            "cpu{core} {} 0 0 {} 0 0 0 0 0 0\n",
            busy / 4,
            idle / 4
        ));
    }
    text.push_str(
        "ctxt 11302934\nbtime 1733131200\nprocesses 9836\nprocs_running 2\nprocs_blocked 0\n",
    );
    text
}

/// The 5-minute load average over one per core (4 cores) is CRITICAL until it falls below
/// 0.8 per core; CPU use is measured between two samples, so a burst of work after an idle
/// boot is seen at the next sample (and is the sentinel that nothing else followed).
#[test]
fn load_per_core_and_cpu_use_over_the_interval() {
    let sandbox = Sandbox::new();
    let kernel = FakeKernel::new(&sandbox);
    kernel.proc("loadavg", "0.50 0.40 0.30 1/312 1822\n");
    kernel.proc("stat", &stat_with(1_000, 99_000));
    create_sampled_every_second(&sandbox, "load", "busy", &["load5", "1"]);
    create_sampled_every_second(&sandbox, "load", "cpu_use", &["cpu", "90"]);
    let mut alerts = sandbox.follow_alerts();
    let mut agent = sandbox.start_agent();
    eventually("status shows the load OK", || {
        let status = status_of(&sandbox, "load", "busy");
        status["state"] == "ok" && status["detail"] == "sampled every 1s, threshold 1, clear 0.8"
    });

    kernel.proc("loadavg", "6.10 4.40 2.00 7/312 1822\n");
    let (_, critical) = alerts.expect("CRITICAL", "load busy");
    assert_eq!(critical["name"], "Load per core has reached 1");
    assert_eq!(
        critical["subject"]["details"]["description"],
        "Load per core (5 min) 1.1 (threshold 1)"
    );

    // 3.6 per core over 4 cores is 0.9: under the threshold, not under the clear one.
    // The sentinel comes next: every core busy since the last sample.
    kernel.proc("loadavg", "4.00 3.60 2.10 5/312 1822\n");
    kernel.proc("stat", &stat_with(1_400, 99_000));
    let (_, cpu) = alerts.expect("CRITICAL", "load cpu_use");
    assert_eq!(
        cpu["subject"]["details"]["description"],
        "CPU use 100% (threshold 90%)"
    );

    kernel.proc("loadavg", "1.00 0.80 0.60 1/312 1822\n");
    let (_, ok) = alerts.expect("OK", "load busy");
    assert_eq!(
        ok["subject"]["details"]["description"],
        "Load per core (5 min) 0.2 (threshold 1)"
    );
    agent.assert_alive();
}
