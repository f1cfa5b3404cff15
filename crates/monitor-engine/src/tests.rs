use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use monitor_wire::{Level, LogLine, Subject, Subsystem, Timestamp};

use super::*;

/// `UNIX_EPOCH + 1_700_000_000 s + seconds`: a fixed clock for every test.
fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
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
    }
}

fn service_spec() -> ServiceCheck {
    ServiceCheck {
        service_name: "nginx".into(),
        subject_type: "systemd".into(),
    }
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
    Observation::Service {
        running,
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
    let emitted = engine.configure(service_id(), CheckSpec::Service(service_spec()), at(0));
    assert!(emitted.is_empty());
    engine
}

/// Threshold 2 in a 100 s window: the third change within 100 s is flapping.
fn small_flapping_settings() -> EngineSettings {
    EngineSettings {
        flapping_interval: Duration::from_secs(100),
        flapping_count_threshold: 2,
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
                timestamp: Timestamp(at(10)),
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
        engine.view(&log_id()),
        Some(CheckView {
            state: CheckState::Critical,
            since: Some(at(10)),
            expires: Some(at(40)),
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
    let view = engine.view(&log_id()).unwrap();
    assert_eq!(view.since, Some(at(10)));
    assert_eq!(view.expires, Some(at(55)));
    assert_eq!(engine.next_deadline(), Some(at(55)));
    assert!(engine.advance(at(40)).is_empty());
}

#[test]
fn advance_at_the_expiry_emits_the_ok_with_a_reason() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    assert_eq!(engine.next_deadline(), Some(at(40)));
    assert!(engine.advance(at(39)).is_empty());

    let emitted = engine.advance(at(40));
    assert_eq!(emitted.len(), 1);
    let alert = &emitted[0].alert;
    assert_eq!(alert.name, "Log file contains ERROR");
    assert_eq!(alert.level, Level::Ok);
    assert_eq!(alert.timestamp, Timestamp(at(40)));
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
        engine.view(&log_id()),
        Some(CheckView {
            state: CheckState::Ok,
            since: Some(at(40)),
            expires: None,
        })
    );
}

#[test]
fn a_late_advance_emits_the_ok_at_its_own_time() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR"), at(10));
    let emitted = engine.advance(at(500));
    assert_eq!(emitted[0].alert.timestamp, Timestamp(at(500)));
}

#[test]
fn a_match_after_a_missed_expiry_gives_the_ok_then_a_new_critical() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(&log_id(), matched("ERROR 1"), at(10));
    let emitted = engine.observe(&log_id(), matched("ERROR 2"), at(40));
    let levels: Vec<Level> = emitted.iter().map(|emitted| emitted.alert.level).collect();
    assert_eq!(levels, vec![Level::Ok, Level::Critical]);
    assert_eq!(engine.view(&log_id()).unwrap().expires, Some(at(70)));
}

#[test]
fn a_never_expiring_critical_stays_until_cleared_by_hand() {
    let mut engine = engine_with_pattern(Expiration::Never);
    engine.observe(&log_id(), matched("ERROR"), at(10));
    assert_eq!(engine.next_deadline(), None);
    assert!(engine.advance(at(1_000_000)).is_empty());
    let view = engine.view(&log_id()).unwrap();
    assert_eq!(view.state, CheckState::Critical);
    assert_eq!(view.expires, None);

    let emitted = engine.observe(&log_id(), Observation::Clear, at(2_000_000));
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].alert.level, Level::Ok);
    assert_eq!(emitted[0].alert.name, "Log file contains ERROR");
    assert_eq!(reason(&emitted[0]), Some("cleared by hand"));
    assert_eq!(engine.view(&log_id()).unwrap().state, CheckState::Ok);
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
    assert_eq!(engine.next_deadline(), Some(at(25)));
    assert_eq!(engine.view(&log_id()).unwrap().state, CheckState::Critical);

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
    assert_eq!(engine.next_deadline(), Some(at(110)));
    assert!(engine.advance(at(40)).is_empty());
    assert_eq!(engine.advance(at(110)).len(), 1);
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
    assert_eq!(engine.next_deadline(), Some(at(70)));
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
    assert_eq!(engine.view(&log_id()).unwrap().since, Some(at(10)));
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
    let emitted = engine.configure(log_id(), CheckSpec::Service(service_spec()), at(20));
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].alert.name, "Log file contains ERROR");
    assert_eq!(emitted[0].alert.level, Level::Ok);
    assert_eq!(reason(&emitted[0]), Some("check reconfigured"));
    assert_eq!(
        engine.view(&log_id()),
        Some(CheckView {
            state: CheckState::Unknown,
            since: Some(at(20)),
            expires: None,
        })
    );
    assert_eq!(engine.next_deadline(), None);
}

#[test]
fn configuring_the_other_kind_over_an_ok_check_emits_nothing() {
    let mut engine = engine_with_pattern(after(30));
    assert!(engine
        .configure(log_id(), CheckSpec::Service(service_spec()), at(20))
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
    assert_eq!(engine.view(&log_id()), None);
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
    assert_eq!(engine.view(&unknown), None);
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
        engine.view(&service_id()).unwrap().state,
        CheckState::Unknown
    );
}

// Service checks.

#[test]
fn a_service_first_seen_not_running_is_critical() {
    let mut engine = engine_with_service(EngineSettings::default());
    assert_eq!(
        engine.view(&service_id()),
        Some(CheckView {
            state: CheckState::Unknown,
            since: Some(at(0)),
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
                timestamp: Timestamp(at(10)),
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
        engine.view(&service_id()),
        Some(CheckView {
            state: CheckState::Critical,
            since: Some(at(10)),
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
    let view = engine.view(&service_id()).unwrap();
    assert_eq!(view.state, CheckState::Ok);
    assert_eq!(view.since, Some(at(10)));
}

#[test]
fn a_repeated_state_emits_nothing_but_updates_the_details() {
    let mut engine = engine_with_service(small_flapping_settings());
    engine.observe(&service_id(), service(false, "failed"), at(10));
    assert!(engine
        .observe(&service_id(), service(false, "activating"), at(20))
        .is_empty());
    assert_eq!(engine.view(&service_id()).unwrap().since, Some(at(10)));
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
fn more_changes_than_the_threshold_within_the_interval_is_flapping() {
    let mut engine = engine_with_service(small_flapping_settings());
    engine.observe(&service_id(), service(true, "active"), at(0));
    engine.observe(&service_id(), service(false, "failed"), at(10));
    engine.observe(&service_id(), service(true, "active"), at(20));
    // The third change in 100 s: more than 2.
    let emitted = engine.observe(&service_id(), service(false, "failed"), at(30));
    assert_eq!(summary(&emitted), vec![flapping()]);
    assert_eq!(emitted[0].alert.subject.kind, "systemd");
    assert_eq!(
        engine.view(&service_id()),
        Some(CheckView {
            state: CheckState::Flapping,
            since: Some(at(30)),
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
        engine.view(&service_id()).unwrap().state,
        CheckState::Flapping
    );
}

#[test]
fn flapping_ends_exactly_when_the_count_drops_to_the_threshold() {
    let mut engine = flapping_engine();
    engine.observe(&service_id(), service(true, "active"), at(40));
    engine.observe(&service_id(), service(false, "failed"), at(50));
    engine.observe(&service_id(), service(true, "started again"), at(60));
    // Changes at 10..=60; three or more within (t - 100, t] until the change at 40 leaves.
    assert_eq!(engine.next_deadline(), Some(at(140)));
    assert!(engine.advance(at(139)).is_empty());
    assert_eq!(
        engine.view(&service_id()).unwrap().state,
        CheckState::Flapping
    );

    let emitted = engine.advance(at(140));
    assert_eq!(summary(&emitted), vec![not_running(Level::Ok, "running")]);
    assert_eq!(
        emitted[0].alert.subject.details,
        details_with("state", "started again")
    );
    assert_eq!(
        engine.view(&service_id()),
        Some(CheckView {
            state: CheckState::Ok,
            since: Some(at(140)),
            expires: None,
        })
    );
    assert_eq!(engine.next_deadline(), None);
}

#[test]
fn flapping_that_ends_down_is_critical_not_running() {
    let mut engine = flapping_engine();
    assert_eq!(engine.next_deadline(), Some(at(110)));
    let emitted = engine.advance(at(110));
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Critical, "not-running")]
    );
    assert_eq!(
        engine.view(&service_id()).unwrap().state,
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
    assert!(engine.next_deadline().unwrap() <= at(31));
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
    assert_eq!(engine.next_deadline(), Some(at(35)));
}

#[test]
fn remembered_changes_are_capped() {
    let settings = EngineSettings {
        flapping_interval: Duration::from_secs(1_000_000),
        flapping_count_threshold: 5000,
        alert_log_max_age: Duration::from_secs(1_000_000),
    };
    let mut state = ServiceState::fresh(at(0));
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
    assert_eq!(changes.len(), service::MAX_REMEMBERED_CHANGES);
    assert_eq!(changes.last().unwrap().as_u64(), Some(1_700_002_999_000));
}

#[test]
fn clear_on_a_service_emits_nothing() {
    let mut engine = engine_with_service(EngineSettings::default());
    engine.observe(&service_id(), service(false, "failed"), at(10));
    assert!(engine
        .observe(&service_id(), Observation::Clear, at(20))
        .is_empty());
    assert_eq!(
        engine.view(&service_id()).unwrap().state,
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
    let sysv = ServiceCheck {
        subject_type: "sysv".into(),
        ..service_spec()
    };
    assert!(engine
        .configure(service_id(), CheckSpec::Service(sysv), at(20))
        .is_empty());
    assert_eq!(
        engine.view(&service_id()).unwrap().state,
        CheckState::Critical
    );
    let emitted = engine.observe(&service_id(), service(true, "active"), at(30));
    assert_eq!(emitted[0].alert.subject.kind, "sysv");

    engine.observe(&service_id(), service(false, "failed"), at(40));
    let other = ServiceCheck {
        service_name: "apache".into(),
        subject_type: "systemd".into(),
    };
    let emitted = engine.configure(service_id(), CheckSpec::Service(other), at(50));
    assert_eq!(
        summary(&emitted),
        vec![not_running(Level::Ok, "not-running")]
    );
    assert_eq!(reason(&emitted[0]), Some("check reconfigured"));
    assert_eq!(
        engine.view(&service_id()).unwrap().state,
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
    assert_eq!(engine.next_deadline(), Some(at(70)));
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

#[test]
fn the_snapshot_format_is_version_1() {
    let json = serde_json::to_string(&engine_for_snapshot().snapshot()).unwrap();
    assert_eq!(
        json,
        concat!(
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
        )
    );
}

#[test]
fn a_restored_engine_continues_where_the_snapshot_was_taken() {
    let engine = engine_for_snapshot();
    let json = serde_json::to_string(&engine.snapshot()).unwrap();
    let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(snapshot, engine.snapshot());
    assert_eq!(
        snapshot.check_ids().cloned().collect::<Vec<_>>(),
        vec![log_id(), service_id()]
    );

    let mut restored = Engine::restore(small_flapping_settings(), snapshot);
    assert_eq!(restored.view(&log_id()), engine.view(&log_id()));
    assert_eq!(restored.view(&service_id()), engine.view(&service_id()));
    assert_eq!(restored.next_deadline(), Some(at(360)));

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
    let json = r#"{"version":2,"checks":[]}"#;
    let error = serde_json::from_str::<Snapshot>(json).unwrap_err();
    assert!(
        error.to_string().starts_with(
            "engine snapshot version 2 is not supported (this build reads version 1): \
             start without the saved alert state"
        ),
        "{error}"
    );
}

#[test]
fn snapshot_times_are_epoch_milliseconds() {
    let mut engine = engine_with_pattern(after(30));
    engine.observe(
        &log_id(),
        matched("ERROR"),
        at(10) + Duration::from_millis(250),
    );
    let json = serde_json::to_value(engine.snapshot()).unwrap();
    assert_eq!(
        json["checks"][0]["state"]["critical"]["since"],
        serde_json::json!(1_700_000_010_250_u64)
    );
}

#[test]
fn a_down_first_seen_then_four_changes_over_threshold_three_is_flapping_at_the_fourth() {
    let mut engine = engine_with_service(EngineSettings {
        flapping_interval: Duration::from_secs(6),
        flapping_count_threshold: 3,
        alert_log_max_age: Duration::from_secs(60),
    });
    let id = service_id();
    let mut names = Vec::new();
    for (second, running) in [(0, false), (1, true), (2, false), (3, true), (4, false)] {
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
            (Level::Ok, "Service nginx not running".to_string()),
            (
                Level::Critical,
                "Service nginx going up and down".to_string()
            ),
        ]
    );
}
