use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use monitor_wire::control::CheckState;
use monitor_wire::{Details, Level, LogLine, Subject, Subsystem, Timestamp};

use monitor_wire::duration::Expiration;

use super::*;

/// How long the device has been up at `at(0)`.
const UP_AT_START: u64 = 1_000;

/// `seconds` after a fixed start: the wall clock at `UNIX_EPOCH + 1_700_000_000 s +
/// seconds`, the boot clock at `UP_AT_START + seconds`. Both run together, as they do while
/// nobody sets the wall clock.
fn at(seconds: u64) -> Moment {
    Moment {
        wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds),
        boot: Duration::from_secs(UP_AT_START + seconds),
    }
}

fn log_id() -> CheckId {
    CheckId::new(Subsystem::Log, "app")
}

fn service_id() -> CheckId {
    CheckId::new(Subsystem::Service, "nginx")
}

fn pattern_spec(expiration: Expiration) -> PatternCheck {
    PatternCheck {
        alert_name: "Log file contains ERROR".into(),
        subject_name: "app".into(),
        subject_type: "log".into(),
        subject_status: "LOGCONTAINS".into(),
        description: Some("the app logged an error".into()),
        expiration,
        source: None,
    }
}

/// A condition check with a service's texts, as monitor-config's service kind makes them.
fn service_condition(service_name: &str, subject_type: &str) -> ConditionCheck {
    let text = |name: String, status: &str| AlertText {
        name,
        status: status.into(),
    };
    ConditionCheck {
        subject_name: service_name.into(),
        subject_type: subject_type.into(),
        critical: text(format!("Service {service_name} not running"), "not-running"),
        ok: text(format!("Service {service_name} not running"), "running"),
        flapping: Some(text(
            format!("Service {service_name} going up and down"),
            "flapping",
        )),
    }
}

fn service_spec() -> ConditionCheck {
    service_condition("nginx", "systemd")
}

fn after(seconds: u64) -> Expiration {
    Expiration::After(Duration::from_secs(seconds))
}

fn details_with(key: &str, value: &str) -> Details {
    Details {
        fields: BTreeMap::from([(key.to_owned(), serde_json::Value::from(value))]),
        ..Details::default()
    }
}

fn matched(line: &str) -> Observation {
    Observation::Matched {
        details: Details {
            line_matching: Some(LogLine {
                line_number: 7,
                data: line.into(),
            }),
            ..Details::default()
        },
    }
}

fn service(running: bool, state: &str) -> Observation {
    Observation::Condition {
        holds: !running,
        details: details_with("state", state),
    }
}

fn reason(emitted: &Emitted) -> Option<&str> {
    emitted
        .alert
        .subject
        .details
        .fields
        .get(REASON_FIELD)?
        .as_str()
}

/// Name, level and status: what tells alerts apart.
fn summary(emitted: &[Emitted]) -> Vec<(String, Level, String)> {
    emitted
        .iter()
        .map(|emitted| {
            (
                emitted.alert.name.clone(),
                emitted.alert.level,
                emitted.alert.subject.status.clone(),
            )
        })
        .collect()
}

fn engine_with_pattern(expiration: Expiration) -> Engine {
    let mut engine = Engine::new(EngineSettings::default());
    let emitted = engine.configure(
        log_id(),
        CheckSpec::Pattern(pattern_spec(expiration)),
        at(0),
    );
    assert!(emitted.is_empty());
    engine
}

fn engine_with_service(settings: EngineSettings) -> Engine {
    let mut engine = Engine::new(settings);
    let emitted = engine.configure(service_id(), CheckSpec::Condition(service_spec()), at(0));
    assert!(emitted.is_empty());
    engine
}

/// Threshold 3 in a 100 s window: the third change within 100 s is flapping.
fn small_flapping_settings() -> EngineSettings {
    EngineSettings {
        flapping_interval: Duration::from_secs(100),
        flapping_count_threshold: 3,
        alert_log_max_age: Duration::from_secs(1000),
    }
}

const NOT_RUNNING: &str = "Service nginx not running";
const GOING_UP_AND_DOWN: &str = "Service nginx going up and down";

fn not_running(level: Level, status: &str) -> (String, Level, String) {
    (NOT_RUNNING.to_owned(), level, status.to_owned())
}

fn flapping() -> (String, Level, String) {
    (
        GOING_UP_AND_DOWN.to_owned(),
        Level::Critical,
        "flapping".to_owned(),
    )
}

#[test]
fn default_settings_are_the_documented_ones() {
    let settings = EngineSettings::default();
    assert_eq!(settings.flapping_interval, Duration::from_secs(600));
    assert_eq!(settings.flapping_count_threshold, 5);
    assert_eq!(settings.alert_log_max_age, Duration::from_secs(3600));
}

// Pattern checks.

#[test]
fn first_match_emits_one_critical_with_the_spec_subject_and_description() {
    let mut engine = engine_with_pattern(after(30));
    let emitted = engine.observe(&log_id(), matched("ERROR: disk full"), at(10));
    assert_eq!(
        emitted,
        vec![Emitted {
            check: log_id(),
            alert: Alert {
                name: "Log file contains ERROR".into(),
                level: Level::Critical,
                timestamp: Timestamp(at(10).wall),
                subject: Subject {
                    name: "app".into(),
                    kind: "log".into(),
                    status: "LOGCONTAINS".into(),
                    details: Details {
                        description: Some("the app logged an error".into()),
                        line_matching: Some(LogLine {
                            line_number: 7,
                            data: "ERROR: disk full".into()
                        }),
                        ..Details::default()
                    },
                },
            },
        }]
    );
    assert_eq!(
        engine.view(&log_id(), at(0)),
        Some(CheckView {
            state: CheckState::Critical,
            since: Some(at(10).wall),
            expires: Some(at(40).wall),
        })
    );
}

#[test]
fn a_description_from_the_watcher_is_kept() {
    let mut engine = engine_with_pattern(after(30));
    let details = Details {
        description: Some("from the watcher".into()),
        ..Details::default()
    };
    let emitted = engine.observe(&log_id(), Observation::Matched { details }, at(10));
    assert_eq!(
        emitted[0].alert.subject.details.description.as_deref(),
        Some("from the watcher")
    );
}

#[test]
fn a_match_while_critical_emits_nothing_and_extends_the_expiry() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR 1"), at(10));
    assert!(engine
        .observe(&log_id(), matched("ERROR 2"), at(25))
        .is_empty());
    let view = engine.view(&log_id(), at(0)).unwrap();
    assert_eq!(view.since, Some(at(10).wall));
    assert_eq!(view.expires, Some(at(55).wall));
    assert_eq!(engine.next_deadline(), Some(at(55).boot));
    assert!(engine.advance(at(40)).is_empty());
}

#[test]
fn advance_at_the_expiry_emits_the_ok_with_a_reason() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    assert_eq!(engine.next_deadline(), Some(at(40).boot));
    assert!(engine.advance(at(39)).is_empty());

    let emitted = engine.advance(at(40));
    assert_eq!(emitted.len(), 1);
    let alert = &emitted[0].alert;
    assert_eq!(alert.name, "Log file contains ERROR");
    assert_eq!(alert.level, Level::Ok);
    assert_eq!(alert.timestamp, Timestamp(at(40).wall));
    assert_eq!(alert.subject.name, "app");
    assert_eq!(alert.subject.kind, "log");
    assert_eq!(alert.subject.status, "LOGCONTAINS");
    assert_eq!(
        alert.subject.details.description.as_deref(),
        Some("the app logged an error")
    );
    assert_eq!(alert.subject.details.line_matching, None);
    assert_eq!(reason(&emitted[0]), Some("no match for 30s"));

    assert_eq!(engine.next_deadline(), None);
    assert!(engine.advance(at(100)).is_empty());
    assert_eq!(
        engine.view(&log_id(), at(0)),
        Some(CheckView {
            state: CheckState::Ok,
            since: Some(at(40).wall),
            expires: None,
        })
    );
}

#[test]
fn a_late_advance_emits_the_ok_at_its_own_time() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    let emitted = engine.advance(at(500));
    assert_eq!(emitted[0].alert.timestamp, Timestamp(at(500).wall));
}

#[test]
fn a_match_after_a_missed_expiry_gives_the_ok_then_a_new_critical() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR 1"), at(10));
    let emitted = engine.observe(&log_id(), matched("ERROR 2"), at(40));
    let levels: Vec<Level> = emitted.iter().map(|emitted| emitted.alert.level).collect();
    assert_eq!(levels, vec![Level::Ok, Level::Critical]);
    assert_eq!(
        engine.view(&log_id(), at(0)).unwrap().expires,
        Some(at(70).wall)
    );
}

#[test]
fn a_never_expiring_critical_stays_until_cleared_by_hand() {
    let mut engine = engine_with_pattern(Expiration::Never);
    engine.observe(&log_id(), matched("ERROR"), at(10));
    assert_eq!(engine.next_deadline(), None);
    assert!(engine.advance(at(1_000_000)).is_empty());
    let view = engine.view(&log_id(), at(0)).unwrap();
    assert_eq!(view.state, CheckState::Critical);
    assert_eq!(view.expires, None);

    let emitted = engine.observe(&log_id(), Observation::Clear, at(2_000_000));
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].alert.level, Level::Ok);
    assert_eq!(emitted[0].alert.name, "Log file contains ERROR");
    assert_eq!(reason(&emitted[0]), Some("cleared by hand"));
    assert_eq!(engine.view(&log_id(), at(0)).unwrap().state, CheckState::Ok);
}

#[test]
fn clear_turns_an_expiring_critical_ok_too() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    let emitted = engine.observe(&log_id(), Observation::Clear, at(20));
    assert_eq!(reason(&emitted[0]), Some("cleared by hand"));
    assert_eq!(engine.next_deadline(), None);
    assert!(engine.advance(at(40)).is_empty());
}

#[test]
fn clear_while_ok_emits_nothing() {
    let mut engine = engine_with_pattern(Expiration::Never);
    assert!(engine
        .observe(&log_id(), Observation::Clear, at(10))
        .is_empty());
}

#[test]
fn a_shortened_expiration_is_due_at_the_next_advance_not_in_configure() {
    let mut engine = engine_with_pattern(after(300));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    engine.observe(&log_id(), matched("ERROR"), at(20));

    let emitted = engine.configure(log_id(), CheckSpec::Pattern(pattern_spec(after(5))), at(60));
    assert!(emitted.is_empty());
    // Counted from the last match, so already past.
    assert_eq!(engine.next_deadline(), Some(at(25).boot));
    assert_eq!(
        engine.view(&log_id(), at(0)).unwrap().state,
        CheckState::Critical
    );

    let emitted = engine.advance(at(60));
    assert_eq!(summary(&emitted).len(), 1);
    assert_eq!(emitted[0].alert.level, Level::Ok);
    assert_eq!(reason(&emitted[0]), Some("no match for 5s"));
}

#[test]
fn a_lengthened_expiration_delays_the_ok() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    engine.configure(
        log_id(),
        CheckSpec::Pattern(pattern_spec(after(100))),
        at(20),
    );
    assert_eq!(engine.next_deadline(), Some(at(110).boot));
    assert!(engine.advance(at(40)).is_empty());
    assert_eq!(engine.advance(at(110)).len(), 1);
}

#[test]
fn the_next_deadline_is_the_earliest_of_every_check_through_matches_removals_and_reconfiguration() {
    let check = |name: &str| CheckId::new(Subsystem::Log, name);
    let mut engine = Engine::new(EngineSettings::default());
    for (name, expiration) in [("a", after(10)), ("b", after(20)), ("c", Expiration::Never)] {
        engine.configure(
            check(name),
            CheckSpec::Pattern(pattern_spec(expiration)),
            at(0),
        );
    }
    assert_eq!(engine.next_deadline(), None);

    engine.observe(&check("b"), matched("ERROR"), at(0));
    engine.observe(&check("c"), matched("ERROR"), at(0));
    assert_eq!(engine.next_deadline(), Some(at(20).boot));
    engine.observe(&check("a"), matched("ERROR"), at(5));
    assert_eq!(engine.next_deadline(), Some(at(15).boot));
    // A later match moves a's deadline behind b's.
    engine.observe(&check("a"), matched("ERROR"), at(12));
    assert_eq!(engine.next_deadline(), Some(at(20).boot));
    engine.configure(
        check("b"),
        CheckSpec::Pattern(pattern_spec(after(100))),
        at(13),
    );
    assert_eq!(engine.next_deadline(), Some(at(22).boot));
    engine.remove(&check("a"), at(14));
    assert_eq!(engine.next_deadline(), Some(at(100).boot));

    let emitted = engine.advance(at(100));
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].check, check("b"));
    // c never expires: nothing is due any more.
    assert_eq!(engine.next_deadline(), None);

    // A restored engine knows its deadlines at once.
    engine.observe(&check("b"), matched("ERROR"), at(200));
    let restored = Engine::restore(
        EngineSettings::default(),
        engine.snapshot(at(201), Some("boot")),
        at(202),
        Some("boot"),
    );
    assert_eq!(restored.next_deadline(), Some(at(300).boot));
}

#[test]
fn reconfiguring_between_never_and_an_expiration_applies_to_a_critical() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    engine.configure(
        log_id(),
        CheckSpec::Pattern(pattern_spec(Expiration::Never)),
        at(20),
    );
    assert_eq!(engine.next_deadline(), None);
    assert!(engine.advance(at(1000)).is_empty());

    engine.configure(
        log_id(),
        CheckSpec::Pattern(pattern_spec(after(60))),
        at(2000),
    );
    assert_eq!(engine.next_deadline(), Some(at(70).boot));
    assert_eq!(engine.advance(at(2000)).len(), 1);
}

#[test]
fn a_reconfigured_pattern_check_keeps_its_state_and_uses_the_new_spec() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    let mut spec = pattern_spec(after(30));
    spec.description = Some("new description".into());
    assert!(engine
        .configure(log_id(), CheckSpec::Pattern(spec), at(20))
        .is_empty());
    assert_eq!(
        engine.view(&log_id(), at(0)).unwrap().since,
        Some(at(10).wall)
    );
    let emitted = engine.advance(at(40));
    assert_eq!(
        emitted[0].alert.subject.details.description.as_deref(),
        Some("new description")
    );
}

#[test]
fn configuring_the_other_kind_resets_with_an_ok_first() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    let emitted = engine.configure(log_id(), CheckSpec::Condition(service_spec()), at(20));
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].alert.name, "Log file contains ERROR");
    assert_eq!(emitted[0].alert.level, Level::Ok);
    assert_eq!(reason(&emitted[0]), Some("check reconfigured"));
    assert_eq!(
        engine.view(&log_id(), at(0)),
        Some(CheckView {
            state: CheckState::Unknown,
            since: Some(at(20).wall),
            expires: None,
        })
    );
    assert_eq!(engine.next_deadline(), None);
}

#[test]
fn configuring_the_other_kind_over_an_ok_check_emits_nothing() {
    let mut engine = engine_with_pattern(after(30));
    assert!(engine
        .configure(log_id(), CheckSpec::Condition(service_spec()), at(20))
        .is_empty());
}

#[test]
fn removing_a_critical_pattern_check_emits_an_ok_and_forgets_it() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    let emitted = engine.remove(&log_id(), at(20));
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].check, log_id());
    assert_eq!(emitted[0].alert.level, Level::Ok);
    assert_eq!(emitted[0].alert.subject.status, "LOGCONTAINS");
    assert_eq!(reason(&emitted[0]), Some("check disabled"));
    assert_eq!(engine.view(&log_id(), at(0)), None);
    assert_eq!(engine.check_ids().count(), 0);
    assert_eq!(engine.next_deadline(), None);
    assert!(engine.advance(at(100)).is_empty());
}

#[test]
fn removing_an_ok_or_unknown_check_emits_nothing() {
    let mut engine = engine_with_pattern(after(30));
    assert!(engine.remove(&log_id(), at(20)).is_empty());
    assert!(engine.remove(&log_id(), at(20)).is_empty());
}

#[test]
fn observing_an_unknown_check_emits_nothing() {
    let mut engine = engine_with_pattern(after(30));
    let unknown = CheckId::new(Subsystem::Log, "other");
    assert!(engine
        .observe(&unknown, matched("ERROR"), at(10))
        .is_empty());
    assert!(engine
        .observe(&unknown, service(false, "failed"), at(10))
        .is_empty());
    assert_eq!(engine.view(&unknown, at(0)), None);
}

#[test]
fn observations_of_the_wrong_kind_are_ignored() {
    let mut engine = engine_with_pattern(after(30));
    assert!(engine
        .observe(&log_id(), service(false, "failed"), at(10))
        .is_empty());
    let mut engine = engine_with_service(EngineSettings::default());
    assert!(engine
        .observe(&service_id(), matched("ERROR"), at(10))
        .is_empty());
    assert_eq!(
        engine.view(&service_id(), at(0)).unwrap().state,
        CheckState::Unknown
    );
}

// Service checks.

#[test]
fn a_service_first_seen_not_running_is_critical() {
    let mut engine = engine_with_service(EngineSettings::default());
    assert_eq!(
        engine.view(&service_id(), at(0)),
        Some(CheckView {
            state: CheckState::Unknown,
            since: Some(at(0).wall),
            expires: None,
        })
    );
    let emitted = engine.observe(&service_id(), service(false, "failed"), at(10));
    assert_eq!(
        emitted,
        vec![Emitted {
            check: service_id(),
            alert: Alert {
                name: NOT_RUNNING.into(),
                level: Level::Critical,
                timestamp: Timestamp(at(10).wall),
                subject: Subject {
                    name: "nginx".into(),
                    kind: "systemd".into(),
                    status: "not-running".into(),
                    details: details_with("state", "failed"),
                },
            },
        }]
    );
    assert_eq!(
        engine.view(&service_id(), at(0)),
        Some(CheckView {
            state: CheckState::Critical,
            since: Some(at(10).wall),
            expires: None,
        })
    );
}

#[test]
fn a_service_first_seen_running_emits_nothing() {
    let mut engine = engine_with_service(EngineSettings::default());
    assert!(engine
        .observe(&service_id(), service(true, "active"), at(10))
        .is_empty());
    let view = engine.view(&service_id(), at(0)).unwrap();
    assert_eq!(view.state, CheckState::Ok);
    assert_eq!(view.since, Some(at(10).wall));
}

#[test]
fn a_repeated_state_emits_nothing_but_updates_the_details() {
    let mut engine = engine_with_service(small_flapping_settings());
    engine.observe(&service_id(), service(false, "failed"), at(10));
    assert!(engine
        .observe(&service_id(), service(false, "activating"), at(20))
        .is_empty());
    assert_eq!(
        engine.view(&service_id(), at(0)).unwrap().since,
        Some(at(10).wall)
    );
    let emitted = engine.remove(&service_id(), at(30));
    assert_eq!(
        emitted[0].alert.subject.details.fields.get("state"),
        Some(&serde_json::Value::from("activating"))
    );
}

#[test]
fn changes_below_the_threshold_give_running_and_not_running_alerts() {
    let mut engine = engine_with_service(small_flapping_settings());
    engine.observe(&service_id(), service(true, "active"), at(0));
    let down = engine.observe(&service_id(), service(false, "failed"), at(10));
    assert_eq!(
        summary(&down),
        vec![not_running(Level::Critical, "not-running")]
    );
    let up = engine.observe(&service_id(), service(true, "active"), at(20));
    assert_eq!(summary(&up), vec![not_running(Level::Ok, "running")]);
    assert_eq!(up[0].alert.subject.name, "nginx");
    assert_eq!(up[0].alert.subject.kind, "systemd");
    assert_eq!(up[0].alert.subject.details, details_with("state", "active"));
}

#[test]
fn reaching_the_threshold_within_the_interval_is_flapping() {
    let mut engine = engine_with_service(small_flapping_settings());
    engine.observe(&service_id(), service(true, "active"), at(0));
    engine.observe(&service_id(), service(false, "failed"), at(10));
    engine.observe(&service_id(), service(true, "active"), at(20));
    // The third change in 100 s: the threshold is reached.
    let emitted = engine.observe(&service_id(), service(false, "failed"), at(30));
    assert_eq!(summary(&emitted), vec![flapping()]);
    assert_eq!(emitted[0].alert.subject.kind, "systemd");
    assert_eq!(
        engine.view(&service_id(), at(0)),
        Some(CheckView {
            state: CheckState::Flapping,
            since: Some(at(30).wall),
            expires: None,
        })
    );
}

#[test]
fn changes_outside_the_interval_do_not_count() {
    let mut engine = engine_with_service(small_flapping_settings());
    engine.observe(&service_id(), service(true, "active"), at(0));
    engine.observe(&service_id(), service(false, "failed"), at(10));
    engine.observe(&service_id(), service(true, "active"), at(20));
    // (10 s is out of (10 s, 110 s]: two changes in the window.
    let emitted = engine.observe(&service_id(), service(false, "failed"), at(110));
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Critical, "not-running")]
    );
}

#[test]
fn a_first_observation_is_not_a_flap() {
    let mut engine = engine_with_service(EngineSettings {
        flapping_count_threshold: 0,
        ..small_flapping_settings()
    });
    let emitted = engine.observe(&service_id(), service(false, "failed"), at(10));
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Critical, "not-running")]
    );
    // Threshold 0: the first real change already flaps.
    let emitted = engine.observe(&service_id(), service(true, "active"), at(20));
    assert_eq!(summary(&emitted), vec![flapping()]);
}

/// Changes at 10, 20, 30 (flapping from 30), then 40 and 50 while flapping.
fn flapping_engine() -> Engine {
    let mut engine = engine_with_service(small_flapping_settings());
    engine.observe(&service_id(), service(true, "active"), at(0));
    engine.observe(&service_id(), service(false, "failed"), at(10));
    engine.observe(&service_id(), service(true, "active"), at(20));
    assert_eq!(
        summary(&engine.observe(&service_id(), service(false, "failed"), at(30))),
        vec![flapping()]
    );
    engine
}

#[test]
fn nothing_is_sent_while_flapping() {
    let mut engine = flapping_engine();
    assert!(engine
        .observe(&service_id(), service(true, "active"), at(40))
        .is_empty());
    assert!(engine
        .observe(&service_id(), service(false, "failed"), at(50))
        .is_empty());
    assert!(engine
        .observe(&service_id(), service(false, "failed"), at(55))
        .is_empty());
    assert_eq!(
        engine.view(&service_id(), at(0)).unwrap().state,
        CheckState::Flapping
    );
}

#[test]
fn flapping_ends_exactly_when_the_count_drops_below_the_threshold() {
    let mut engine = flapping_engine();
    engine.observe(&service_id(), service(true, "active"), at(40));
    engine.observe(&service_id(), service(false, "failed"), at(50));
    engine.observe(&service_id(), service(true, "started again"), at(60));
    // Changes at 10..=60; three or more within (t - 100, t] until the change at 40 leaves.
    assert_eq!(engine.next_deadline(), Some(at(140).boot));
    assert!(engine.advance(at(139)).is_empty());
    assert_eq!(
        engine.view(&service_id(), at(0)).unwrap().state,
        CheckState::Flapping
    );

    let emitted = engine.advance(at(140));
    assert_eq!(summary(&emitted), vec![not_running(Level::Ok, "running")]);
    assert_eq!(
        emitted[0].alert.subject.details,
        details_with("state", "started again")
    );
    assert_eq!(
        engine.view(&service_id(), at(0)),
        Some(CheckView {
            state: CheckState::Ok,
            since: Some(at(140).wall),
            expires: None,
        })
    );
    assert_eq!(engine.next_deadline(), None);
}

#[test]
fn flapping_that_ends_down_is_critical_not_running() {
    let mut engine = flapping_engine();
    assert_eq!(engine.next_deadline(), Some(at(110).boot));
    let emitted = engine.advance(at(110));
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Critical, "not-running")]
    );
    assert_eq!(
        engine.view(&service_id(), at(0)).unwrap().state,
        CheckState::Critical
    );
}

#[test]
fn a_change_after_a_missed_flapping_end_settles_first() {
    let mut engine = flapping_engine();
    let emitted = engine.observe(&service_id(), service(true, "active"), at(200));
    assert_eq!(
        summary(&emitted),
        vec![
            not_running(Level::Critical, "not-running"),
            not_running(Level::Ok, "running")
        ]
    );
}

#[test]
fn a_new_episode_after_calm_is_alerted_again() {
    let mut engine = flapping_engine();
    engine.advance(at(110));
    engine.observe(&service_id(), service(true, "active"), at(300));
    engine.observe(&service_id(), service(false, "failed"), at(310));
    let emitted = engine.observe(&service_id(), service(true, "active"), at(320));
    assert_eq!(summary(&emitted), vec![flapping()]);
}

#[test]
fn raising_the_threshold_ends_flapping_at_the_next_advance() {
    let mut engine = flapping_engine();
    engine.set_settings(EngineSettings {
        flapping_count_threshold: 10,
        ..small_flapping_settings()
    });
    assert_eq!(engine.settings().flapping_count_threshold, 10);
    assert!(engine.next_deadline().unwrap() <= at(31).boot);
    let emitted = engine.advance(at(31));
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Critical, "not-running")]
    );
}

#[test]
fn a_short_alert_log_max_age_narrows_the_window() {
    let mut engine = engine_with_service(EngineSettings {
        alert_log_max_age: Duration::from_secs(15),
        ..small_flapping_settings()
    });
    engine.observe(&service_id(), service(true, "active"), at(0));
    engine.observe(&service_id(), service(false, "failed"), at(10));
    engine.observe(&service_id(), service(true, "active"), at(20));
    // The change at 10 is forgotten by 30, so only two changes count.
    let emitted = engine.observe(&service_id(), service(false, "failed"), at(30));
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Critical, "not-running")]
    );
    let emitted = engine.observe(&service_id(), service(true, "active"), at(31));
    assert_eq!(summary(&emitted), vec![flapping()]);
    // Changes at 20, 30, 31 in a 15 s window: calm once 20 is out.
    assert_eq!(engine.next_deadline(), Some(at(35).boot));
}

#[test]
fn remembered_changes_are_capped() {
    let settings = EngineSettings {
        flapping_interval: Duration::from_secs(1_000_000),
        flapping_count_threshold: 5000,
        alert_log_max_age: Duration::from_secs(1_000_000),
    };
    let mut state = condition::ConditionState::fresh(BootTime::of(at(0).boot));
    for second in 0..3000 {
        state.observe(
            &service_spec(),
            &settings,
            second % 2 == 0,
            Details::default(),
            at(second),
        );
    }
    let json = serde_json::to_value(&state).unwrap();
    let changes = json["changes"].as_array().unwrap();
    assert_eq!(changes.len(), condition::MAX_REMEMBERED_CHANGES);
    assert_eq!(
        changes.last().unwrap().as_u64(),
        Some((UP_AT_START + 2999) * 1000)
    );
}

#[test]
fn clear_on_a_service_emits_nothing() {
    let mut engine = engine_with_service(EngineSettings::default());
    engine.observe(&service_id(), service(false, "failed"), at(10));
    assert!(engine
        .observe(&service_id(), Observation::Clear, at(20))
        .is_empty());
    assert_eq!(
        engine.view(&service_id(), at(0)).unwrap().state,
        CheckState::Critical
    );
}

#[test]
fn removing_a_service_that_is_down_emits_an_ok() {
    let mut engine = engine_with_service(EngineSettings::default());
    engine.observe(&service_id(), service(false, "failed"), at(10));
    let emitted = engine.remove(&service_id(), at(20));
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Ok, "not-running")]
    );
    assert_eq!(reason(&emitted[0]), Some("check disabled"));
    assert_eq!(
        emitted[0].alert.subject.details.fields.get("state"),
        Some(&serde_json::Value::from("failed"))
    );
}

#[test]
fn removing_a_flapping_service_emits_an_ok() {
    let mut engine = flapping_engine();
    engine.observe(&service_id(), service(true, "active"), at(40));
    let emitted = engine.remove(&service_id(), at(50));
    assert_eq!(summary(&emitted), vec![not_running(Level::Ok, "running")]);
    assert_eq!(reason(&emitted[0]), Some("check disabled"));
    assert_eq!(engine.next_deadline(), None);
}

#[test]
fn removing_a_running_or_unobserved_service_emits_nothing() {
    let mut engine = engine_with_service(EngineSettings::default());
    assert!(engine.remove(&service_id(), at(10)).is_empty());
    let mut engine = engine_with_service(EngineSettings::default());
    engine.observe(&service_id(), service(true, "active"), at(10));
    assert!(engine.remove(&service_id(), at(20)).is_empty());
}

#[test]
fn reconfiguring_a_service_keeps_its_state_unless_it_is_another_service() {
    let mut engine = engine_with_service(EngineSettings::default());
    engine.observe(&service_id(), service(false, "failed"), at(10));
    let sysv = service_condition("nginx", "sysv");
    assert!(engine
        .configure(service_id(), CheckSpec::Condition(sysv), at(20))
        .is_empty());
    assert_eq!(
        engine.view(&service_id(), at(0)).unwrap().state,
        CheckState::Critical
    );
    let emitted = engine.observe(&service_id(), service(true, "active"), at(30));
    assert_eq!(emitted[0].alert.subject.kind, "sysv");

    engine.observe(&service_id(), service(false, "failed"), at(40));
    let other = service_condition("apache", "systemd");
    let emitted = engine.configure(service_id(), CheckSpec::Condition(other), at(50));
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Ok, "not-running")]
    );
    assert_eq!(reason(&emitted[0]), Some("check reconfigured"));
    assert_eq!(
        engine.view(&service_id(), at(0)).unwrap().state,
        CheckState::Unknown
    );
}

#[test]
fn configuring_a_pattern_over_a_flapping_service_emits_its_ok() {
    let mut engine = flapping_engine();
    let emitted = engine.configure(
        service_id(),
        CheckSpec::Pattern(pattern_spec(after(30))),
        at(40),
    );
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Ok, "not-running")]
    );
    assert_eq!(engine.next_deadline(), None);
}

// Several checks, snapshots.

#[test]
fn next_deadline_is_the_earliest_of_all_checks_and_advance_emits_in_check_order() {
    let mut engine = flapping_engine();
    engine.configure(log_id(), CheckSpec::Pattern(pattern_spec(after(30))), at(0));
    engine.observe(&log_id(), matched("ERROR"), at(40));
    // The pattern expires at 70, the service calms at 110.
    assert_eq!(engine.next_deadline(), Some(at(70).boot));
    let emitted = engine.advance(at(200));
    let checks: Vec<&CheckId> = emitted.iter().map(|emitted| &emitted.check).collect();
    assert_eq!(checks, vec![&log_id(), &service_id()]);
    assert_eq!(engine.next_deadline(), None);
    assert_eq!(
        engine.check_ids().cloned().collect::<Vec<_>>(),
        vec![log_id(), service_id()]
    );
}

fn engine_for_snapshot() -> Engine {
    let mut engine = engine_with_service(small_flapping_settings());
    engine.observe(&service_id(), service(false, "failed"), at(10));
    engine.configure(
        log_id(),
        CheckSpec::Pattern(pattern_spec(after(300))),
        at(0),
    );
    engine.observe(&log_id(), matched("ERROR"), at(60));
    engine
}

const BOOT_ID: &str = "5d6f5bc3-4a4e-4d7c-9a6e-2c1b8f0e7a11";
const OTHER_BOOT_ID: &str = "0b9e6c2a-1f3d-4e5b-8c7a-6d4f2e1a0b9c";

#[test]
fn the_snapshot_format_is_version_2() {
    let snapshot = engine_for_snapshot().snapshot(at(100), Some(BOOT_ID));
    let json = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"version":2,"#,
            r#""taken":{"boot_id":"5d6f5bc3-4a4e-4d7c-9a6e-2c1b8f0e7a11","wall":1700000100000,"boot":1100000},"#,
            r#""checks":["#,
            r#"{"check":{"subsystem":"log","name":"app"},"kind":"pattern","#,
            r#""spec":{"alert_name":"Log file contains ERROR","subject_name":"app","subject_type":"log","#,
            r#""subject_status":"LOGCONTAINS","description":"the app logged an error","#,
            r#""expiration":{"after":{"secs":300,"nanos":0}}},"#,
            r#""state":{"critical":{"since":1060000,"last_match":1060000,"expires":1360000}}},"#,
            r#"{"check":{"subsystem":"service","name":"nginx"},"kind":"service","#,
            r#""spec":{"service_name":"nginx","subject_type":"systemd"},"#,
            r#""state":{"running":false,"details":{"state":"failed"},"changes":[],"flapping":false,"since":1010000}}"#,
            r#"]}"#
        )
    );
}

#[test]
fn a_restored_engine_continues_where_the_snapshot_was_taken() {
    let engine = engine_for_snapshot();
    let json = serde_json::to_string(&engine.snapshot(at(100), Some(BOOT_ID))).unwrap();
    let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(snapshot, engine.snapshot(at(100), Some(BOOT_ID)));
    assert_eq!(
        snapshot.check_ids().cloned().collect::<Vec<_>>(),
        vec![log_id(), service_id()]
    );

    let mut restored = Engine::restore(small_flapping_settings(), snapshot, at(100), Some(BOOT_ID));
    assert_eq!(
        restored.view(&log_id(), at(100)),
        engine.view(&log_id(), at(100))
    );
    assert_eq!(
        restored.view(&service_id(), at(100)),
        engine.view(&service_id(), at(100))
    );
    assert_eq!(restored.next_deadline(), Some(at(360).boot));

    // The agent no longer has these checks configured: their OKs go out.
    let emitted = restored.remove(&service_id(), at(100));
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Ok, "not-running")]
    );
    let emitted = restored.remove(&log_id(), at(100));
    assert_eq!(emitted[0].alert.level, Level::Ok);
    assert_eq!(reason(&emitted[0]), Some("check disabled"));
}

#[test]
fn a_snapshot_of_another_version_is_refused() {
    for (json, version) in [
        (r#"{"version":3,"checks":[]}"#, "3"),
        (r#"{"checks":[]}"#, "without a number"),
    ] {
        let error = serde_json::from_str::<Snapshot>(json).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "engine snapshot version {version} is not supported (this build reads \
                 versions 1 and 2): start without the saved alert state"
            )),
            "{error}"
        );
    }
}

#[test]
fn snapshot_times_are_milliseconds() {
    let mut engine = engine_with_pattern(after(30));
    let now = Moment {
        wall: at(10).wall + Duration::from_millis(250),
        boot: at(10).boot + Duration::from_millis(250),
    };
    engine.observe(&log_id(), matched("ERROR"), now);
    let json = serde_json::to_value(engine.snapshot(now, None)).unwrap();
    assert_eq!(
        json["checks"][0]["state"]["critical"]["since"],
        serde_json::json!(1_010_250_u64)
    );
    assert_eq!(
        json["taken"]["wall"],
        serde_json::json!(1_700_000_010_250_u64)
    );
    assert_eq!(json["taken"]["boot_id"], serde_json::Value::Null);
}

// Clocks: durations on the boot clock, the wall clock only shown.

/// `at(seconds)` with the wall clock set to `wall` instead: what NTP (or a person, or a
/// Pi's missing real-time clock) did to it.
fn with_wall(seconds: u64, wall: SystemTime) -> Moment {
    Moment {
        wall,
        ..at(seconds)
    }
}

/// 50 years in seconds, near enough.
const FIFTY_YEARS: u64 = 50 * 365 * 86_400;

#[test]
fn a_wall_clock_jumping_forward_or_back_makes_nothing_due() {
    let mut engine = engine_with_pattern(after(300));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    let far_ahead = at(20).wall + Duration::from_secs(FIFTY_YEARS);
    assert!(engine.advance(with_wall(20, far_ahead)).is_empty());
    assert!(engine.advance(with_wall(30, UNIX_EPOCH)).is_empty());
    let changed = engine.observe(&log_id(), matched("ERROR"), with_wall(40, far_ahead));
    assert!(changed.is_empty());
    assert_eq!(engine.next_deadline(), Some(at(340).boot));
    assert_eq!(
        engine.view(&log_id(), at(40)).unwrap().state,
        CheckState::Critical
    );
}

#[test]
fn boot_clock_progress_makes_the_expiry_due_whatever_the_wall_clock_says() {
    let mut engine = engine_with_pattern(after(300));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    assert!(engine.advance(with_wall(309, UNIX_EPOCH)).is_empty());
    // The wall clock went back to 1970, the boot clock on by 300 s: due, dated by the wall.
    let emitted = engine.advance(with_wall(310, UNIX_EPOCH));
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].alert.level, Level::Ok);
    assert_eq!(emitted[0].alert.timestamp, Timestamp(UNIX_EPOCH));
}

#[test]
fn a_device_booted_in_1970_shows_its_times_at_their_date_once_ntp_set_the_clock() {
    // Up 30 s, the wall clock still at the epoch plus the time since boot.
    let booted = |seconds: u64| Moment {
        wall: UNIX_EPOCH + Duration::from_secs(seconds),
        boot: Duration::from_secs(seconds),
    };
    let mut engine = Engine::new(EngineSettings::default());
    engine.configure(
        log_id(),
        CheckSpec::Pattern(pattern_spec(after(300))),
        booted(20),
    );
    let critical = engine.observe(&log_id(), matched("ERROR"), booted(30));
    assert_eq!(critical[0].alert.timestamp, Timestamp(booted(30).wall));

    // NTP sets the clock at 60 s after boot: the same boot time is now 1_700_000_000 s later.
    let synchronized = |seconds: u64| Moment {
        wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds),
        boot: Duration::from_secs(seconds),
    };
    assert!(engine.advance(synchronized(60)).is_empty());
    assert_eq!(
        engine.view(&log_id(), synchronized(60)),
        Some(CheckView {
            state: CheckState::Critical,
            since: Some(synchronized(30).wall),
            expires: Some(synchronized(330).wall),
        })
    );
    let ok = engine.advance(synchronized(330));
    assert_eq!(ok[0].alert.level, Level::Ok);
    assert_eq!(ok[0].alert.timestamp, Timestamp(synchronized(330).wall));
}

#[test]
fn the_flapping_window_is_on_the_boot_clock() {
    let mut engine = engine_with_service(small_flapping_settings());
    // Three changes within 100 s of boot clock, a year apart on the wall clock.
    let year = Duration::from_secs(365 * 86_400);
    let mut wall = at(0).wall;
    engine.observe(&service_id(), service(true, "active"), with_wall(0, wall));
    let mut names = Vec::new();
    for (second, running) in [(10, false), (20, true), (30, false)] {
        wall += year;
        let emitted = engine.observe(
            &service_id(),
            service(running, "x"),
            with_wall(second, wall),
        );
        names.extend(summary(&emitted));
    }
    assert_eq!(
        names,
        vec![
            not_running(Level::Critical, "not-running"),
            not_running(Level::Ok, "running"),
            flapping()
        ]
    );
    // Calm 100 s of boot clock after the first change, whatever the wall clock does.
    assert_eq!(engine.next_deadline(), Some(at(110).boot));
    assert!(engine.advance(with_wall(109, wall + year)).is_empty());
    assert!(engine.advance(with_wall(109, UNIX_EPOCH)).is_empty());
    let emitted = engine.advance(with_wall(110, UNIX_EPOCH));
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Critical, "not-running")]
    );

    // And changes far apart on the boot clock do not flap, however close their wall times.
    let mut engine = engine_with_service(small_flapping_settings());
    let mut names = Vec::new();
    for (second, running) in [(0, true), (200, false), (400, true), (600, false)] {
        let emitted = engine.observe(
            &service_id(),
            service(running, "x"),
            with_wall(second, wall),
        );
        names.extend(summary(&emitted));
    }
    assert!(!names.contains(&flapping()), "{names:?}");
}

#[test]
fn restoring_in_the_same_boot_keeps_the_boot_clock_times_whatever_the_wall_clock_did() {
    let snapshot = engine_for_snapshot().snapshot(at(100), Some(BOOT_ID));
    // Restarted 10 s later, with the wall clock set 50 years ahead meanwhile.
    let far_ahead = at(110).wall + Duration::from_secs(FIFTY_YEARS);
    let now = with_wall(110, far_ahead);
    let mut restored = Engine::restore(small_flapping_settings(), snapshot, now, Some(BOOT_ID));
    assert_eq!(restored.next_deadline(), Some(at(360).boot));
    assert!(restored.advance(now).is_empty());
    assert_eq!(
        restored.view(&log_id(), now).unwrap().expires,
        Some(far_ahead + Duration::from_secs(250))
    );
    assert_eq!(restored.advance(with_wall(360, far_ahead)).len(), 1);
}

/// The clocks after a reboot: up `up` seconds, the wall clock at `wall`.
fn rebooted(up: u64, wall: SystemTime) -> Moment {
    Moment {
        wall,
        boot: Duration::from_secs(up),
    }
}

#[test]
fn restoring_after_a_reboot_keeps_what_was_left_minus_the_time_off() {
    // CRITICAL at 60 with 300 s: 260 s left at the snapshot at 100.
    let snapshot = engine_for_snapshot().snapshot(at(100), Some(BOOT_ID));
    // Back 50 s of wall clock later, up for 20 s of it.
    let now = rebooted(20, at(150).wall);
    let mut restored = Engine::restore(
        small_flapping_settings(),
        snapshot,
        now,
        Some(OTHER_BOOT_ID),
    );
    assert_eq!(
        restored.next_deadline(),
        Some(Duration::from_secs(20 + 210))
    );
    // The match was before this boot and is shown at its date.
    assert_eq!(
        restored.view(&log_id(), now),
        Some(CheckView {
            state: CheckState::Critical,
            since: Some(at(60).wall),
            expires: Some(at(360).wall),
        })
    );
    // The agent configures its checks again: the expiry counts from the carried last match.
    restored.configure(log_id(), CheckSpec::Pattern(pattern_spec(after(300))), now);
    assert_eq!(restored.next_deadline(), Some(Duration::from_secs(230)));
    assert!(restored.advance(rebooted(229, at(359).wall)).is_empty());
    assert_eq!(restored.advance(rebooted(230, at(360).wall)).len(), 1);
}

#[test]
fn restoring_after_a_reboot_with_the_wall_clock_behind_counts_no_time_off() {
    let snapshot = engine_for_snapshot().snapshot(at(100), Some(BOOT_ID));
    // A Pi without a real-time clock: back in 1970, or at fake-hwclock's last save.
    for wall in [UNIX_EPOCH + Duration::from_secs(20), at(40).wall] {
        let now = rebooted(20, wall);
        let mut restored = Engine::restore(
            small_flapping_settings(),
            snapshot.clone(),
            now,
            Some(OTHER_BOOT_ID),
        );
        restored.configure(log_id(), CheckSpec::Pattern(pattern_spec(after(300))), now);
        // The 260 s that were left, from now.
        assert_eq!(restored.next_deadline(), Some(Duration::from_secs(280)));
        assert!(restored.advance(now).is_empty());
        // NTP sets the clock; nothing falls due before the boot clock gets there.
        let synchronized = rebooted(279, at(500).wall + Duration::from_secs(FIFTY_YEARS));
        assert!(restored.advance(synchronized).is_empty());
        assert_eq!(restored.advance(rebooted(280, at(500).wall)).len(), 1);
    }
}

#[test]
fn restoring_with_an_unknown_boot_carries_the_times_over() {
    let snapshot = engine_for_snapshot().snapshot(at(100), None);
    let restored = Engine::restore(
        small_flapping_settings(),
        snapshot,
        rebooted(20, at(150).wall),
        None,
    );
    assert_eq!(restored.next_deadline(), Some(Duration::from_secs(230)));
}

#[test]
fn restoring_after_a_reboot_never_leaves_more_than_the_configured_expiry() {
    let snapshot = engine_for_snapshot().snapshot(at(100), Some(BOOT_ID));
    let now = rebooted(20, at(100).wall);
    // The check's expiration was shortened while the agent was down.
    let mut restored = Engine::restore(
        small_flapping_settings(),
        snapshot,
        now,
        Some(OTHER_BOOT_ID),
    );
    restored.configure(log_id(), CheckSpec::Pattern(pattern_spec(after(30))), now);
    // The last match was 40 s ago: due now, and never later than 30 s from now.
    assert!(restored.next_deadline().unwrap() <= now.boot);
    assert_eq!(restored.advance(now).len(), 1);
}

#[test]
fn a_flapping_service_restored_after_a_reboot_calms_within_the_window() {
    let mut engine = flapping_engine();
    engine.observe(&service_id(), service(true, "active"), at(40));
    // Changes at 10, 20, 30, 40; calm at 120 (threshold 3: when 20 leaves the window).
    assert_eq!(engine.next_deadline(), Some(at(120).boot));
    let snapshot = engine.snapshot(at(50), Some(BOOT_ID));

    // Back 15 s later, up 5 s: every change was before this boot, and keeps its age.
    let now = rebooted(5, at(65).wall);
    let mut restored = Engine::restore(
        small_flapping_settings(),
        snapshot,
        now,
        Some(OTHER_BOOT_ID),
    );
    assert_eq!(
        restored.view(&service_id(), now).unwrap().state,
        CheckState::Flapping
    );
    // The change at 20 is 45 s old: calm 55 s from now, at 120 on the old wall clock.
    assert_eq!(restored.next_deadline(), Some(Duration::from_secs(60)));
    assert!(restored.advance(rebooted(59, at(119).wall)).is_empty());
    let emitted = restored.advance(rebooted(60, at(120).wall));
    assert_eq!(summary(&emitted), vec![not_running(Level::Ok, "running")]);

    // Changes already out of the window do not come back.
    let snapshot = engine.snapshot(at(50), Some(BOOT_ID));
    let now = rebooted(5, at(200).wall);
    let mut restored = Engine::restore(
        small_flapping_settings(),
        snapshot,
        now,
        Some(OTHER_BOOT_ID),
    );
    assert!(restored.next_deadline().unwrap() <= now.boot);
    let emitted = restored.advance(now);
    assert_eq!(summary(&emitted), vec![not_running(Level::Ok, "running")]);
    // One more change is one change, not the fifth within the window.
    let emitted = restored.observe(
        &service_id(),
        service(false, "failed"),
        rebooted(6, at(201).wall),
    );
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Critical, "not-running")]
    );
}

/// What devices wrote before version 2: the engine of `engine_for_snapshot`, times on the
/// wall clock.
const VERSION_1_SNAPSHOT: &str = concat!(
    r#"{"version":1,"checks":["#,
    r#"{"check":{"subsystem":"log","name":"app"},"kind":"pattern","#,
    r#""spec":{"alert_name":"Log file contains ERROR","subject_name":"app","subject_type":"log","#,
    r#""subject_status":"LOGCONTAINS","description":"the app logged an error","#,
    r#""expiration":{"after":{"secs":300,"nanos":0}}},"#,
    r#""state":{"critical":{"since":1700000060000,"last_match":1700000060000,"expires":1700000360000}}},"#,
    r#"{"check":{"subsystem":"service","name":"nginx"},"kind":"service","#,
    r#""spec":{"service_name":"nginx","subject_type":"systemd"},"#,
    r#""state":{"running":false,"details":{"state":"failed"},"changes":[],"flapping":false,"since":1700000010000}}"#,
    r#"]}"#
);

#[test]
fn a_version_1_snapshot_is_restored_by_the_wall_clock() {
    let snapshot: Snapshot = serde_json::from_str(VERSION_1_SNAPSHOT).unwrap();
    assert_eq!(
        snapshot.check_ids().cloned().collect::<Vec<_>>(),
        vec![log_id(), service_id()]
    );
    // It reads back as it was written.
    assert_eq!(
        serde_json::to_string(&snapshot).unwrap(),
        VERSION_1_SNAPSHOT
    );

    let now = rebooted(20, at(100).wall);
    let mut restored = Engine::restore(
        small_flapping_settings(),
        snapshot.clone(),
        now,
        Some(BOOT_ID),
    );
    assert_eq!(
        restored.view(&log_id(), now),
        Some(CheckView {
            state: CheckState::Critical,
            since: Some(at(60).wall),
            expires: Some(at(360).wall),
        })
    );
    assert_eq!(
        restored.view(&service_id(), now),
        Some(CheckView {
            state: CheckState::Critical,
            since: Some(at(10).wall),
            expires: None,
        })
    );
    assert_eq!(
        restored.next_deadline(),
        Some(Duration::from_secs(20 + 260))
    );
    assert!(restored.advance(now).is_empty());

    // Restored with the wall clock back in 1970: the full expiration, not 54 years of it.
    let now = rebooted(20, UNIX_EPOCH + Duration::from_secs(20));
    let restored = Engine::restore(small_flapping_settings(), snapshot.clone(), now, None);
    assert_eq!(
        restored.next_deadline(),
        Some(Duration::from_secs(20 + 300))
    );
    // And with it 50 years ahead, the expiry ran out: due now, not before.
    let now = rebooted(20, at(100).wall + Duration::from_secs(FIFTY_YEARS));
    let mut restored = Engine::restore(small_flapping_settings(), snapshot, now, None);
    assert_eq!(restored.next_deadline(), Some(now.boot));
    assert_eq!(restored.advance(now).len(), 1);
}

/// Mender's tutorial: "FLAPPING_COUNT_THRESHOLD — Amount of flaps which need to happen
/// within the FLAPPING_INTERVAL to create a flapping alert", and it sets the threshold to 3
/// "to trigger a flapping alert as soon as there are 3 flaps". So the third change within
/// the interval flaps (not the fourth), and the episode ends once fewer than 3 lie within it.
#[test]
fn threshold_three_flaps_as_soon_as_there_are_three_flaps() {
    let mut engine = engine_with_service(EngineSettings {
        flapping_interval: Duration::from_secs(6),
        flapping_count_threshold: 3,
        alert_log_max_age: Duration::from_secs(60),
    });
    let id = service_id();
    let mut names = Vec::new();
    // Seen down first (not a flap), then three changes at 1, 2 and 3.
    for (second, running) in [(0, false), (1, true), (2, false), (3, true)] {
        for emitted in engine.observe(&id, service(running, "x"), at(second)) {
            names.push((emitted.alert.level, emitted.alert.name));
        }
    }
    assert_eq!(
        names,
        vec![
            (Level::Critical, "Service nginx not running".to_string()),
            (Level::Ok, "Service nginx not running".to_string()),
            (Level::Critical, "Service nginx not running".to_string()),
            (
                Level::Critical,
                "Service nginx going up and down".to_string()
            ),
        ]
    );
    // Changes at 1, 2, 3 in a 6 s window: two remain once the one at 1 leaves, at 7.
    assert_eq!(engine.next_deadline(), Some(at(7).boot));
    assert!(engine.advance(at(6)).is_empty());
    assert_eq!(
        summary(&engine.advance(at(7))),
        vec![not_running(Level::Ok, "running")]
    );
}

mod conditions_and_sources;
