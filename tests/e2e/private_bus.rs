//! A private `dbus-daemon` for the D-Bus tests, and a real peer (`dbus-send`) on it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `dbus-daemon` of our own; killed on drop.
pub struct PrivateBus {
    _directory: tempfile::TempDir,
    /// Its address, for `dbus: {bus: ...}` in monitor.yaml.
    pub address: String,
    daemon: Child,
}

impl PrivateBus {
    pub fn start() -> Option<PrivateBus> {
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

    /// `dbus-send` a signal `interface.member` with one string argument.
    pub fn send(&self, interface: &str, member: &str, text: &str) {
        let status = Command::new("dbus-send")
            .args([
                &format!("--bus={}", self.address),
                "--type=signal",
                "/org/example/Watched",
                &format!("{interface}.{member}"),
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
