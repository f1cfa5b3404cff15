//! dbus checks end to end: a real private `dbus-daemon`, signals sent by a real peer
//! (`dbus-send`), the agent's alert with Mender's name, and its expiry.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::Sandbox;

/// A `dbus-daemon` of our own; killed on drop.
struct PrivateBus {
    _directory: tempfile::TempDir,
    address: String,
    daemon: Child,
}

impl PrivateBus {
    fn start() -> Option<PrivateBus> {
        let directory = tempfile::tempdir().unwrap();
        let address = format!("unix:path={}", directory.path().join("bus").display());
        let spawned = Command::new("dbus-daemon")
            .args([
                "--session",
                "--nofork",
                "--print-address",
                &format!("--address={address}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut daemon = match spawned {
            Ok(daemon) => daemon,
            Err(error) => {
                let reason =
                    format!("dbus-daemon cannot run ({error}): install the dbus-daemon package");
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true: {reason}"
                );
                eprintln!("skipping: {reason}");
                return None;
            }
        };
        // Ready once it prints its address.
        let mut line = String::new();
        BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("unix:"), "dbus-daemon said {line:?}");
        Some(PrivateBus {
            _directory: directory,
            address,
            daemon,
        })
    }

    fn send(&self, member: &str, text: &str) {
        let status = Command::new("dbus-send")
            .args([
                &format!("--bus={}", self.address),
                "--type=signal",
                "/org/example/Sensor",
                &format!("org.example.Sensor.{member}"),
                &format!("string:{text}"),
            ])
            .status()
            .expect("dbus-send runs");
        assert!(status.success());
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn a_dbus_signal_check_fires_once_and_expires() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!("dbus:\n  bus: \"{}\"\n", bus.address),
    )
    .unwrap();
    sandbox.monitorctl_quietly(&[
        "create",
        "dbus",
        "sensor",
        "",
        "overheat",
        "type='signal',interface='org.example.Sensor'",
        "2",
    ]);
    sandbox.monitorctl_quietly(&["enable", "dbus", "sensor"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    // Subscribed once the watcher says so.
    crate::harness::eventually("the agent listens for signals", || {
        agent.log().contains("listening for D-Bus signals")
    });

    bus.send("Alarm", "all fine");
    for _ in 0..20 {
        bus.send("Alarm", "overheat on cpu0");
    }
    let (_, critical) = alerts.expect("CRITICAL", "dbus sensor");
    assert_eq!(
        critical["name"],
        "D-Bus signal arrived on bus type=signal,interface=org.example.Sensor"
    );
    assert_eq!(critical["subject"]["type"], "dbus");
    let description = critical["subject"]["details"]["description"]
        .as_str()
        .unwrap();
    assert!(
        description.contains("overheat on cpu0") && description.contains("member=Alarm"),
        "{description}"
    );
    // Twenty signals, one CRITICAL; two seconds after the last, the OK.
    let (_, ok) = alerts.expect("OK", "dbus sensor");
    assert_eq!(ok["subject"]["details"]["reason"], "no match for 2s");
    alerts.assert_quiet_for(Duration::from_millis(300));
}
