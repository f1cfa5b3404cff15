//! Condition checks of kinds other than services, old `service` snapshots, and the alerts
//! about a pattern check's source.

use super::*;

fn state_dir_id() -> CheckId {
    CheckId::new(Subsystem::Monitor, "state_dir")
}

/// The agent's own check of its state folder, as a condition without flapping.
fn state_dir_spec() -> ConditionCheck {
    let text = |status: &str| AlertText {
        name: "Monitor state folder not writable".into(),
        status: status.into(),
    };
    ConditionCheck {
        subject_name: "state_dir".into(),
        subject_type: "monitor".into(),
        critical: text("NOT_WRITABLE"),
        ok: text("WRITABLE"),
        flapping: None,
    }
}

fn described(message: &str) -> Details {
    Details {
        description: Some(message.into()),
        ..Details::default()
    }
}

fn writable(writable: bool, message: &str) -> Observation {
    Observation::Condition {
        holds: !writable,
        details: described(message),
    }
}

fn command_spec() -> PatternCheck {
    let text = |status: &str| AlertText {
        name: "Log source @journalctl -f stopped".into(),
        status: status.into(),
    };
    PatternCheck {
        source: Some(SourceAlerts {
            subject_type: "log".into(),
            down: text("SOURCE_DOWN"),
            up: text("SOURCE_UP"),
        }),
        ..pattern_spec(after(30))
    }
}

fn down(message: &str) -> Observation {
    Observation::SourceDown {
        message: message.into(),
    }
}

fn up(message: &str) -> Observation {
    Observation::SourceUp {
        message: message.into(),
    }
}

fn engine_with_command() -> Engine {
    let mut engine = Engine::new(EngineSettings::default());
    let emitted = engine.configure(log_id(), CheckSpec::Pattern(command_spec()), at(0));
    assert!(emitted.is_empty());
    engine
}

#[test]
fn a_condition_without_flapping_says_every_change_with_its_own_texts() {
    let mut engine = Engine::new(small_flapping_settings());
    engine.configure(
        state_dir_id(),
        CheckSpec::Condition(state_dir_spec()),
        at(0),
    );
    assert!(engine
        .observe(&state_dir_id(), writable(true, "fine"), at(1))
        .is_empty());
    let mut seen = Vec::new();
    for second in 2..12 {
        let message = format!("change {second}");
        let emitted = engine.observe(
            &state_dir_id(),
            writable(second % 2 == 1, &message),
            at(second),
        );
        assert_eq!(emitted.len(), 1, "every change is said, it never flaps");
        let alert = &emitted[0].alert;
        assert_eq!(alert.name, "Monitor state folder not writable");
        assert_eq!(alert.subject.name, "state_dir");
        assert_eq!(alert.subject.kind, "monitor");
        assert_eq!(alert.subject.details, described(&message));
        seen.push((alert.level, alert.subject.status.clone()));
    }
    assert_eq!(
        seen[..2],
        [
            (Level::Critical, "NOT_WRITABLE".to_owned()),
            (Level::Ok, "WRITABLE".to_owned())
        ]
    );
    assert_eq!(engine.next_deadline(), None);
    assert_eq!(
        engine.view(&state_dir_id(), at(12)).unwrap().state,
        CheckState::Ok
    );
}

#[test]
fn a_condition_holding_at_its_first_report_is_critical_and_closes_with_an_ok() {
    let mut engine = Engine::new(EngineSettings::default());
    engine.configure(
        state_dir_id(),
        CheckSpec::Condition(state_dir_spec()),
        at(0),
    );
    let emitted = engine.observe(&state_dir_id(), writable(false, "disk full"), at(1));
    assert_eq!(emitted[0].alert.level, Level::Critical);
    let emitted = engine.remove(&state_dir_id(), at(2));
    assert_eq!(emitted[0].alert.level, Level::Ok);
    assert_eq!(emitted[0].alert.subject.status, "NOT_WRITABLE");
    assert_eq!(reason(&emitted[0]), Some("check disabled"));
}

#[test]
fn other_conditions_are_snapshotted_as_conditions_and_restore() {
    let mut engine = Engine::new(EngineSettings::default());
    engine.configure(
        state_dir_id(),
        CheckSpec::Condition(state_dir_spec()),
        at(0),
    );
    engine.observe(&state_dir_id(), writable(false, "disk full"), at(10));
    let json = serde_json::to_string(&engine.snapshot(at(20), Some(BOOT_ID))).unwrap();
    assert!(
        json.contains(concat!(
            r#""kind":"condition","spec":{"subject_name":"state_dir","subject_type":"monitor","#,
            r#""critical":{"name":"Monitor state folder not writable","status":"NOT_WRITABLE"},"#,
            r#""ok":{"name":"Monitor state folder not writable","status":"WRITABLE"},"flapping":null},"#,
            r#""state":{"holds":true,"details":{"description":"disk full"},"changes":[],"flapping":false,"since":1010000}"#
        )),
        "{json}"
    );
    for boot_id in [BOOT_ID, OTHER_BOOT_ID] {
        let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
        let mut restored =
            Engine::restore(EngineSettings::default(), snapshot, at(20), Some(boot_id));
        assert_eq!(
            restored.view(&state_dir_id(), at(20)),
            engine.view(&state_dir_id(), at(20))
        );
        let emitted = restored.observe(&state_dir_id(), writable(true, "fine"), at(30));
        assert_eq!(
            summary(&emitted),
            vec![(
                "Monitor state folder not writable".to_owned(),
                Level::Ok,
                "WRITABLE".to_owned()
            )]
        );
    }
}

#[test]
fn a_service_snapshot_of_an_older_build_restores_as_a_condition_with_the_service_texts() {
    // As builds before condition checks wrote it: a service that is down and flapping.
    let json = concat!(
        r#"{"version":2,"taken":{"boot_id":"5d6f5bc3-4a4e-4d7c-9a6e-2c1b8f0e7a11","wall":1700000100000,"boot":1100000},"#,
        r#""checks":[{"check":{"subsystem":"service","name":"nginx"},"kind":"service","#,
        r#""spec":{"service_name":"nginx","subject_type":"sysv"},"#,
        r#""state":{"running":false,"details":{"state":"failed"},"changes":[1090000,1095000,1099000],"flapping":true,"since":1099000}}]}"#
    );
    let snapshot: Snapshot = serde_json::from_str(json).unwrap();
    assert_eq!(serde_json::to_string(&snapshot).unwrap(), json);
    let mut restored = Engine::restore(small_flapping_settings(), snapshot, at(100), Some(BOOT_ID));
    assert_eq!(
        restored.view(&service_id(), at(100)).unwrap().state,
        CheckState::Flapping
    );
    // Configured again with the service kind's spec: the same check, nothing to say.
    assert!(restored
        .configure(
            service_id(),
            CheckSpec::Condition(service_condition("nginx", "sysv")),
            at(100)
        )
        .is_empty());
    let emitted = restored.remove(&service_id(), at(101));
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Ok, "not-running")]
    );
    assert_eq!(emitted[0].alert.subject.kind, "sysv");
    assert_eq!(
        emitted[0].alert.subject.details.fields.get("state"),
        Some(&serde_json::Value::from("failed"))
    );
}

#[test]
fn a_stopped_source_raises_one_critical_per_stop_and_its_ok_after_it() {
    let mut engine = engine_with_command();
    assert!(
        engine.observe(&log_id(), up("runs"), at(1)).is_empty(),
        "no OK without a CRITICAL first"
    );
    let emitted = engine.observe(&log_id(), down("@journalctl -f stopped: exit 1"), at(2));
    assert_eq!(
        summary(&emitted),
        vec![(
            "Log source @journalctl -f stopped".to_owned(),
            Level::Critical,
            "SOURCE_DOWN".to_owned()
        )]
    );
    let alert = &emitted[0].alert;
    assert_eq!(alert.subject.name, "app");
    assert_eq!(alert.subject.kind, "log");
    assert_eq!(
        alert.subject.details,
        described("@journalctl -f stopped: exit 1")
    );
    assert!(
        engine.observe(&log_id(), down("again"), at(3)).is_empty(),
        "once per streak"
    );
    // The source's alerts leave the pattern's own alone.
    let emitted = engine.observe(&log_id(), matched("ERROR"), at(4));
    assert_eq!(emitted[0].alert.name, "Log file contains ERROR");

    let emitted = engine.observe(&log_id(), up("@journalctl -f runs again"), at(5));
    assert_eq!(
        summary(&emitted),
        vec![(
            "Log source @journalctl -f stopped".to_owned(),
            Level::Ok,
            "SOURCE_UP".to_owned()
        )]
    );
    assert_eq!(
        emitted[0].alert.subject.details,
        described("@journalctl -f runs again")
    );
    assert!(engine.observe(&log_id(), up("still"), at(6)).is_empty());
    assert_eq!(engine.observe(&log_id(), down("stopped"), at(7)).len(), 1);
}

#[test]
fn a_stopped_source_is_kept_in_the_snapshot() {
    let mut engine = engine_with_command();
    engine.observe(&log_id(), down("stopped"), at(2));
    let json = serde_json::to_string(&engine.snapshot(at(10), Some(BOOT_ID))).unwrap();
    assert!(json.contains(r#""source_down":true"#), "{json}");
    for boot_id in [BOOT_ID, OTHER_BOOT_ID] {
        let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
        let mut restored =
            Engine::restore(EngineSettings::default(), snapshot, at(10), Some(boot_id));
        assert!(restored.source_down(&log_id()));
        assert!(restored
            .observe(&log_id(), down("stopped"), at(11))
            .is_empty());
        let emitted = restored.observe(&log_id(), up("runs again"), at(12));
        assert_eq!(emitted[0].alert.subject.status, "SOURCE_UP");
        assert!(!restored.source_down(&log_id()));
    }
}

#[test]
fn a_source_is_only_watched_by_checks_that_say_how() {
    let mut engine = engine_with_pattern(after(30));
    assert!(engine.observe(&log_id(), down("stopped"), at(1)).is_empty());
    let json = serde_json::to_string(&engine.snapshot(at(2), Some(BOOT_ID))).unwrap();
    assert!(!json.contains("source"), "{json}");

    // A check moved to another source forgets that the old one stopped, without an OK.
    let mut engine = engine_with_command();
    engine.observe(&log_id(), down("stopped"), at(1));
    let mut other = command_spec();
    if let Some(source) = &mut other.source {
        source.down.name = "Log source @dmesg -w stopped".into();
        source.up.name = "Log source @dmesg -w stopped".into();
    }
    assert!(engine
        .configure(log_id(), CheckSpec::Pattern(other), at(2))
        .is_empty());
    assert!(engine.observe(&log_id(), up("runs"), at(3)).is_empty());
    // Nor does removing a check whose source is down send one: the agent never did.
    engine.observe(&log_id(), down("stopped"), at(4));
    assert!(engine.remove(&log_id(), at(5)).is_empty());
}
