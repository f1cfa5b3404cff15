//! Mender's own client against monitor-server: the real `mender` 3.4 daemon from Debian
//! (`apt-get install mender-client`) on a private system bus asks to join over
//! `auth_requests` with its own RSA key, waits as pending until a user accepts it, sends its
//! inventory and polls for deployments; then `monitord` in `auth: mender` mode takes the
//! JWT and server URL from the client over D-Bus and its alerts land in monitor-server.
//!
//! The client reads `/etc/mender` and `/usr/share/mender/identity` at fixed paths: it runs
//! in a private mount namespace (`unshare --mount`) where the test's folders are bound
//! there, so the machine's own files are never touched.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::harness::{append, eventually, Sandbox};
use crate::monitor_server::{ServerDatabase, ServerProcess};
use crate::server::{server_binary, Management, EMAIL, PASSWORD};

const MENDER: &str = "/usr/bin/mender";
const MAC: &str = "dc:a6:32:0e:2e:01";

fn missing_component() -> Option<String> {
    for (program, package) in [
        (MENDER, "mender-client"),
        ("/usr/bin/dbus-daemon", "dbus-daemon"),
        ("/usr/bin/unshare", "util-linux"),
    ] {
        if !Path::new(program).exists() {
            return Some(format!("{program} is missing (apt-get install {package})"));
        }
    }
    None
}

/// A process stopped (and reaped) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A system-type bus of the test's own, where anyone may own any name.
fn private_system_bus(directory: &Path) -> (Running, String) {
    let socket = directory.join("system_bus_socket");
    let config = directory.join("bus.conf");
    fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_type="method_call"/>
    <allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>"#,
            socket.display()
        ),
    )
    .unwrap();
    let bus = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .arg("--nofork")
        .stdout(Stdio::null())
        .spawn()
        .expect("start dbus-daemon");
    eventually("the private system bus listens", || socket.exists());
    (Running(bus), format!("unix:path={}", socket.display()))
}

/// The Mender client's files, and the daemon in its own mount namespace.
fn start_mender_client(
    directory: &Path,
    server_url: &str,
    bus: &str,
) -> (Running, std::path::PathBuf) {
    let etc = directory.join("etc");
    let identity = directory.join("identity");
    let inventory = directory.join("inventory");
    let data = directory.join("data");
    for folder in [&etc, &identity, &inventory, &data] {
        fs::create_dir_all(folder).unwrap();
    }
    fs::write(
        etc.join("mender.conf"),
        json!({
            "ServerURL": server_url,
            "DeviceTypeFile": data.join("device_type"),
            "UpdatePollIntervalSeconds": 2,
            "InventoryPollIntervalSeconds": 2,
            "RetryPollIntervalSeconds": 1,
            "DBus": {"Enabled": true}
        })
        .to_string(),
    )
    .unwrap();
    fs::write(etc.join("artifact_info"), "artifact_name=release-1\n").unwrap();
    fs::write(data.join("device_type"), "device_type=raspberrypi4\n").unwrap();
    let script = identity.join("mender-device-identity");
    fs::write(&script, format!("#!/bin/sh\necho mac={MAC}\n")).unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let log = directory.join("mender.log");
    let daemon = Command::new("unshare")
        .args(["--mount", "--", "sh", "-c"])
        .arg(format!(
            "mount --bind {etc} /etc/mender && mount --bind {identity} /usr/share/mender/identity \
             && mount --bind {inventory} /usr/share/mender/inventory \
             && exec {MENDER} --no-syslog --data {data} --log-level info daemon",
            etc = etc.display(),
            identity = identity.display(),
            inventory = inventory.display(),
            data = data.display()
        ))
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .stdout(fs::File::create(&log).unwrap())
        .stderr(Stdio::from(
            fs::File::options().append(true).open(&log).unwrap(),
        ))
        .spawn()
        .expect("start the Mender client");
    (Running(daemon), log)
}

#[test]
fn menders_own_client_joins_and_monitord_reports_through_it() {
    if let Some(missing) = missing_component() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but the Mender client cannot run here: {missing}");
        }
        eprintln!("skipping: {missing}");
        return;
    }
    let server_binary = server_binary();
    let database = ServerDatabase::sqlite();
    database.admin_ok(
        &server_binary,
        &["user", "add", EMAIL, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let server = ServerProcess::start(&server_binary, &database, &[]);
    let management = Management::login(&server.url);
    let directory = tempfile::tempdir().unwrap();
    let (_bus, bus) = private_system_bus(directory.path());
    let (_client, client_log) = start_mender_client(directory.path(), &server.url, &bus);

    // The client asks with its RSA key; the device waits as pending.
    let pending = || -> Option<Value> {
        let (devices, _) = management.get("/devices?status=pending");
        devices
            .as_array()?
            .iter()
            .find(|device| device["name"] == MAC)
            .cloned()
    };
    eventually("the Mender client's device is pending", || {
        pending().is_some()
    });
    let id = pending().unwrap()["id"].as_str().unwrap().to_owned();
    // The README's line, run on the client's own key file, prints the fingerprint the
    // server shows for it.
    let key_file = directory.path().join("data").join("mender-agent.pem");
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl pkey -in '{}' -pubout -outform DER | sha256sum",
            key_file.display()
        ))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let on_the_device = String::from_utf8(output.stdout).unwrap();
    let on_the_device = on_the_device.split_whitespace().next().unwrap();
    assert_eq!(pending().unwrap()["key_sha256"], on_the_device);
    let log_before_accepting = fs::read_to_string(&client_log).unwrap().len();
    assert_eq!(
        management.put(
            &format!("/devices/{id}/status"),
            &json!({"status": "accepted"})
        ),
        204
    );

    // Accepted: the client gets its JWT, sends its inventory and polls for deployments,
    // and each answer is what it expects.
    eventually(
        "the client sent its inventory and checked for an update",
        || {
            let log = fs::read_to_string(&client_log).unwrap();
            let since = &log[log_before_accepting.min(log.len())..];
            since.contains("inventory-update [Sync] -> check-wait")
                && since.contains("update-check [Sync] -> check-wait")
        },
    );

    // monitord takes the token and the server URL from the client over D-Bus.
    let mut sandbox = Sandbox::new();
    sandbox
        .env
        .push(("DBUS_SYSTEM_BUS_ADDRESS".into(), bus.clone()));
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!("delivery:\n  backend:\n    auth: mender\n    mender_bus: {bus}\n"),
    )
    .unwrap();
    let app_log = sandbox.path("app.log");
    fs::write(&app_log, "").unwrap();
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "app",
        "Traceback",
        app_log.to_str().unwrap(),
        "never",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "app"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&app_log, "Traceback (most recent call last):\n");
    alerts.expect("CRITICAL", "log app");
    eventually(
        "the alert reached monitor-server through the Mender client's token",
        || {
            let (device, _) = management.get(&format!("/devices/{id}"));
            device["alert_count"] == 1
        },
    );
    let (latest, _) = management.get(&format!("/devices/{id}/alerts/latest"));
    assert_eq!(
        latest[0]["subject"]["details"]["line_matching"]["data"],
        "Traceback (most recent call last):"
    );

    // The inventory it sent is kept: the dashboard shows it on the device's page.
    let page = management.dashboard(&format!("/ui/devices/{id}"));
    assert!(
        page.contains("device_type") && page.contains("raspberrypi4"),
        "{page}"
    );
    assert!(
        page.contains("artifact_name") && page.contains("release-1"),
        "{page}"
    );
    let log = fs::read_to_string(&client_log).unwrap();
    let since = &log[log_before_accepting.min(log.len())..];
    // An auth request answered "pending" just before the accept may be logged just after
    // the length above was read: what counts starts with the client's first JWT.
    let authorized = since
        .find("successfully received new authorization data")
        .expect("the client logged its authorization");
    let since = &since[authorized..];
    for problem in ["HTTP 404", "HTTP 400", "HTTP 500", "level=error"] {
        assert!(
            !since.contains(problem),
            "the client saw `{problem}` once accepted:\n{since}"
        );
    }
    assert!(
        !agent.log().contains("eyJ"),
        "the JWT is not logged: {}",
        agent.log()
    );
}
