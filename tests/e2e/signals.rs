//! dbus checks end to end: a real private `dbus-daemon`, signals sent by a real peer
//! (`dbus-send`), the agent's alert with Mender's name, and its expiry.

use std::time::Duration;

use crate::harness::Sandbox;
use crate::private_bus::PrivateBus;

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

    bus.send("org.example.Sensor", "Alarm", "all fine");
    for _ in 0..20 {
        bus.send("org.example.Sensor", "Alarm", "overheat on cpu0");
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

/// Mender's `test_dbus_pattern_match` writes `DBUS_NAME=test` by hand: a label ("the name of
/// the watcher"), so the check watches the whole bus and alerts on a signal from anybody,
/// named `D-Bus signal arrived on bus system bus`. Only our YAML `sender:` filters by sender.
#[test]
fn dbus_name_is_a_label_and_sender_filters() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    let config = sandbox.config_dir();
    std::fs::write(
        config.join("monitor.yaml"),
        format!("dbus:\n  bus: \"{}\"\n", bus.address),
    )
    .unwrap();
    let available = config.join("available");
    let enabled = config.join("enabled");
    std::fs::create_dir_all(&available).unwrap();
    std::fs::create_dir_all(&enabled).unwrap();
    let sensor = "type='signal',interface='org.example.Sensor'";
    for (file, text) in [
        ("dbus_test.sh", "DBUS_NAME=test\n".to_owned()),
        // Nobody owns this name: its check never alerts.
        (
            "dbus_nobody.yaml",
            format!("bus_name: nobody\nsender: org.example.Nobody\nwatch_expression: \"{sensor}\"\n"),
        ),
        // The bus itself announces every client that connects, dbus-send included.
        (
            "dbus_driver.yaml",
            "bus_name: driver\nsender: org.freedesktop.DBus\nwatch_expression: \"type='signal',member='NameOwnerChanged'\"\n".to_owned(),
        ),
        // Read after the signal `nobody` would alert on: once it alerted, that one is done.
        (
            "dbus_sentinel.yaml",
            format!("bus_name: sentinel\npattern: sentinel\nwatch_expression: \"{sensor}\"\n"),
        ),
    ] {
        std::fs::write(available.join(file), text).unwrap();
        std::os::unix::fs::symlink(format!("../available/{file}"), enabled.join(file)).unwrap();
    }
    let validate = sandbox.monitorctl(&["validate"]);
    assert!(
        validate.status.success(),
        "{}",
        crate::harness::stderr(&validate)
    );
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    crate::harness::eventually("the agent listens for signals", || {
        agent.log().contains("listening for D-Bus signals")
    });

    bus.send("org.example.Sensor", "Alarm", "overheat on cpu0");
    bus.send("org.example.Sensor", "Alarm", "sentinel");
    let mut critical = std::collections::BTreeMap::new();
    while critical.len() < 3 {
        let (_, alert) = alerts.expect_level("CRITICAL");
        let check = crate::harness::describe_check(&alert);
        assert_ne!(
            check, "dbus nobody",
            "a sender filter let through {alert:#}"
        );
        assert!(
            critical.insert(check, alert).is_none(),
            "one CRITICAL per check"
        );
    }
    let test = &critical["dbus test"];
    assert_eq!(test["name"], "D-Bus signal arrived on bus system bus");
    assert_eq!(test["subject"]["name"], "test");
    assert_eq!(test["subject"]["type"], "dbus");
    let driver = &critical["dbus driver"];
    assert_eq!(
        driver["subject"]["details"]["sender"],
        "org.freedesktop.DBus"
    );
    assert!(critical.contains_key("dbus sentinel"));
}
