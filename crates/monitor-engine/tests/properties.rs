//! Invariants of the engine over random sequences of observations, for one pattern check and
//! one service check sharing an engine, while the wall clock is set to anything at any time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monitor_engine::{
    AlertText, CheckSpec, ConditionCheck, Emitted, Engine, EngineSettings, Moment, Observation,
    PatternCheck, Snapshot,
};
use monitor_wire::control::CheckState;
use monitor_wire::duration::Expiration;
use monitor_wire::{CheckId, Details, Level, Subsystem, Timestamp};
use proptest::prelude::*;

const GOING_UP_AND_DOWN: &str = "Service nginx going up and down";
const BOOT_ID: &str = "5d6f5bc3-4a4e-4d7c-9a6e-2c1b8f0e7a11";

#[derive(Clone, Debug)]
enum Step {
    /// The pattern check matched.
    Match,
    /// `monitorctl clear` on the pattern check.
    Clear,
    /// The service watcher reports running or not.
    Service(bool),
    Advance,
    /// Jump to `next_deadline()` (if later) and advance: hits deadlines exactly.
    AdvanceToDeadline,
    /// Jump to a millisecond before `next_deadline()` (if later) and advance: a deadline
    /// reported late would leave work undone there.
    AdvanceJustBeforeDeadline,
    /// The pattern check's expiration is changed.
    Reconfigure(Expiration),
    /// The wall clock is set to this many seconds after the epoch (NTP, a person, a Pi
    /// without a real-time clock), then `advance`: only timestamps may change.
    SetWall(u64),
}

fn pattern_id() -> CheckId {
    CheckId::new(Subsystem::Log, "app")
}

fn service_id() -> CheckId {
    CheckId::new(Subsystem::Service, "nginx")
}

fn pattern_spec(expiration: Expiration) -> CheckSpec {
    CheckSpec::Pattern(PatternCheck {
        alert_name: "Log file contains ERROR".into(),
        subject_name: "app".into(),
        subject_type: "log".into(),
        subject_status: "LOGCONTAINS".into(),
        description: None,
        expiration,
        source: None,
    })
}

fn text(name: &str, status: &str) -> AlertText {
    AlertText {
        name: name.into(),
        status: status.into(),
    }
}

/// Up 1000 s, the wall clock in 2023.
fn start() -> Moment {
    Moment {
        wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        boot: Duration::from_secs(1_000),
    }
}

/// `now` later by `by` on both clocks.
fn later(now: Moment, by: Duration) -> Moment {
    Moment {
        wall: now.wall + by,
        boot: now.boot + by,
    }
}

/// The wall time of `boot` as `now`'s wall clock counts it: what `CheckView` shows.
fn wall_of(now: Moment, boot: Duration) -> SystemTime {
    if boot <= now.boot {
        now.wall - (now.boot - boot)
    } else {
        now.wall + (boot - now.boot)
    }
}

/// When a check that last matched at `last_match` expires, on the boot clock.
fn deadline_after(expiration: Expiration, last_match: Duration) -> Option<Duration> {
    match expiration {
        Expiration::After(duration) => Some(last_match + duration),
        Expiration::Never => None,
    }
}

fn expiration() -> impl Strategy<Value = Expiration> {
    prop_oneof![
        4 => (0u64..8_000).prop_map(|millis| Expiration::After(Duration::from_millis(millis))),
        1 => Just(Expiration::Never),
    ]
}

fn settings() -> impl Strategy<Value = EngineSettings> {
    // A 10 s window; the remembered age sometimes narrows it.
    (0u32..5, 3u64..20).prop_map(|(threshold, max_age_seconds)| EngineSettings {
        flapping_interval: Duration::from_secs(10),
        flapping_count_threshold: threshold,
        alert_log_max_age: Duration::from_secs(max_age_seconds),
    })
}

/// The changes that make a service flap: the settings' threshold, which the engine reads
/// as 1 when it is 0.
fn threshold(settings: &EngineSettings) -> usize {
    (settings.flapping_count_threshold as usize).max(1)
}

/// Whole milliseconds, as the snapshot keeps them; mostly short gaps, so that services flap.
fn delta() -> impl Strategy<Value = Duration> {
    prop_oneof![
        4 => 0u64..3_000,
        1 => 0u64..30_000,
    ]
    .prop_map(Duration::from_millis)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Match),
        1 => Just(Step::Clear),
        6 => any::<bool>().prop_map(Step::Service),
        2 => Just(Step::Advance),
        2 => Just(Step::AdvanceToDeadline),
        1 => Just(Step::AdvanceJustBeforeDeadline),
        1 => expiration().prop_map(Step::Reconfigure),
        // From 1970 to 2065.
        1 => (0u64..3_000_000_000).prop_map(Step::SetWall),
    ]
}

fn steps() -> impl Strategy<Value = Vec<(Duration, Step)>> {
    prop::collection::vec((delta(), step()), 0..80)
}

/// One alert as emitted, with the time of the call that emitted it.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    now: Moment,
    emitted: Emitted,
}

/// Runs the steps, then advances a day later so that whatever can expire does. With
/// `restore_before`, the engine is snapshotted (through JSON) and restored before that step.
/// `inspect` sees the engine after every step, with what the step emitted.
fn drive(
    settings: &EngineSettings,
    expiration: Expiration,
    steps: &[(Duration, Step)],
    restore_before: Option<usize>,
    mut inspect: impl FnMut(&Engine, Moment, &Step, &[Emitted]),
) -> Vec<Record> {
    let mut now = start();
    let mut engine = Engine::new(settings.clone());
    let mut records = Vec::new();
    let configured = engine
        .configure(pattern_id(), pattern_spec(expiration), now)
        .into_iter()
        .chain(engine.configure(
            service_id(),
            CheckSpec::Condition(ConditionCheck {
                subject_name: "nginx".into(),
                subject_type: "systemd".into(),
                critical: text("Service nginx not running", "not-running"),
                ok: text("Service nginx not running", "running"),
                flapping: Some(text(GOING_UP_AND_DOWN, "flapping")),
            }),
            now,
        ));
    assert_eq!(configured.count(), 0);

    let last = (Duration::from_secs(86_400), Step::Advance);
    for (index, (delta, step)) in steps.iter().chain([&last]).enumerate() {
        if restore_before == Some(index) {
            let json = serde_json::to_string(&engine.snapshot(now, Some(BOOT_ID))).unwrap();
            let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
            engine = Engine::restore(settings.clone(), snapshot, now, Some(BOOT_ID));
        }
        now = later(now, *delta);
        let emitted = match step {
            Step::Match => engine.observe(
                &pattern_id(),
                Observation::Matched {
                    details: Details::default(),
                },
                now,
            ),
            Step::Clear => engine.observe(&pattern_id(), Observation::Clear, now),
            Step::Service(running) => engine.observe(
                &service_id(),
                Observation::Condition {
                    holds: !*running,
                    details: Details::default(),
                },
                now,
            ),
            Step::Advance => engine.advance(now),
            Step::AdvanceToDeadline => {
                if let Some(deadline) = engine.next_deadline() {
                    now = later(now, deadline.saturating_sub(now.boot));
                }
                engine.advance(now)
            }
            Step::AdvanceJustBeforeDeadline => {
                if let Some(deadline) = engine.next_deadline() {
                    let just_before = deadline.saturating_sub(Duration::from_millis(1));
                    now = later(now, just_before.saturating_sub(now.boot));
                }
                engine.advance(now)
            }
            Step::Reconfigure(expiration) => {
                engine.configure(pattern_id(), pattern_spec(*expiration), now)
            }
            Step::SetWall(seconds) => {
                now.wall = UNIX_EPOCH + Duration::from_secs(*seconds);
                engine.advance(now)
            }
        };
        inspect(&engine, now, step, &emitted);
        records.extend(emitted.into_iter().map(|emitted| Record { now, emitted }));
    }
    records
}

fn levels_of(records: &[Record], check: &CheckId) -> Vec<Level> {
    records
        .iter()
        .filter(|record| &record.emitted.check == check)
        .map(|record| record.emitted.alert.level)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// 1. No "going up and down" unless the threshold of changes (at least one) happened
    /// within the flapping interval before it (the change that triggers it included).
    #[test]
    fn flapping_needs_the_threshold_of_changes(
        settings in settings(),
        expiration in expiration(),
        steps in steps(),
    ) {
        let mut last_running = None;
        let mut changes = Vec::new();
        drive(&settings, expiration, &steps, None, |_, now, step, emitted| {
            if let Step::Service(running) = step {
                if last_running.is_some_and(|last| last != *running) {
                    changes.push(now.boot);
                }
                last_running = Some(*running);
            }
            for emitted in emitted {
                if emitted.alert.name != GOING_UP_AND_DOWN {
                    continue;
                }
                assert!(matches!(step, Step::Service(_)), "flapping raised by {step:?}");
                let window_start = now.boot - settings.flapping_interval;
                let recent = changes
                    .iter()
                    .filter(|&&at| at > window_start && at <= now.boot)
                    .count();
                assert!(
                    recent >= threshold(&settings),
                    "{recent} changes within the interval, threshold {}",
                    settings.flapping_count_threshold
                );
            }
        });
    }

    /// After `advance(now)` a service is flapping exactly while the threshold of changes (at
    /// least one) lie within the window (narrowed by `alert_log_max_age`): episodes end on time.
    #[test]
    fn flapping_ends_when_the_rate_drops(
        settings in settings(),
        expiration in expiration(),
        steps in steps(),
    ) {
        let window = settings.flapping_interval.min(settings.alert_log_max_age);
        let mut last_running = None;
        let mut changes = Vec::new();
        drive(&settings, expiration, &steps, None, |engine, now, step, _| {
            if let Step::Service(running) = step {
                if last_running.is_some_and(|last| last != *running) {
                    changes.push(now.boot);
                }
                last_running = Some(*running);
            }
            if matches!(
                step,
                Step::Advance
                    | Step::AdvanceToDeadline
                    | Step::AdvanceJustBeforeDeadline
                    | Step::SetWall(_)
            ) {
                let recent = changes.iter().filter(|&&at| at > now.boot - window).count();
                let flapping = engine.view(&service_id(), now).unwrap().state == CheckState::Flapping;
                assert_eq!(
                    flapping,
                    recent >= threshold(&settings),
                    "{recent} changes within the window"
                );
            }
        });
    }

    /// 2. A CRITICAL with an expiry is followed by its OK once `advance` passes the
    /// deadline on the boot clock, and `next_deadline` is never after that deadline; the
    /// wall clock only dates alerts and shows the expiry.
    #[test]
    fn every_expiring_critical_turns_ok_on_time(
        settings in settings(),
        expiration in expiration(),
        steps in steps(),
    ) {
        let mut current_expiration = expiration;
        let mut last_match = None;
        let records = drive(&settings, expiration, &steps, None, |engine, now, step, emitted| {
            match step {
                Step::Reconfigure(expiration) => current_expiration = *expiration,
                Step::Match => last_match = Some(now.boot),
                _ => {}
            }
            for emitted in emitted {
                assert_eq!(emitted.alert.timestamp, Timestamp(now.wall));
            }
            let view = engine.view(&pattern_id(), now).unwrap();
            // Counted from the last match, with the expiration configured now.
            let expires = last_match.and_then(|at| deadline_after(current_expiration, at));
            if view.state == CheckState::Critical {
                assert_eq!(view.expires, expires.map(|expires| wall_of(now, expires)));
            }
            if let (CheckState::Critical, Some(expires)) = (view.state, expires) {
                let deadline = engine.next_deadline();
                assert!(deadline.is_some_and(|deadline| deadline <= expires));
            }
            if matches!(
                step,
                Step::Advance
                    | Step::AdvanceToDeadline
                    | Step::AdvanceJustBeforeDeadline
                    | Step::SetWall(_)
            ) {
                assert!(
                    !(view.state == CheckState::Critical
                        && expires.is_some_and(|expires| expires <= now.boot)),
                    "still CRITICAL after advancing past its expiry"
                );
                if let Some(deadline) = engine.next_deadline() {
                    assert!(deadline > now.boot, "advance left work due");
                }
            }
        });
        // The run ends with an advance a day after the last step.
        if matches!(current_expiration, Expiration::After(_)) {
            let levels = levels_of(&records, &pattern_id());
            prop_assert!(levels.last().is_none_or(|level| *level == Level::Ok));
        }
    }

    /// 3. Replaying a sequence gives the same alerts, and so does a snapshot and restore
    /// midway.
    #[test]
    fn replays_and_restores_are_deterministic(
        settings in settings(),
        expiration in expiration(),
        steps in steps(),
        restore_fraction in 0.0f64..=1.0,
    ) {
        let first = drive(&settings, expiration, &steps, None, |_, _, _, _| {});
        let second = drive(&settings, expiration, &steps, None, |_, _, _, _| {});
        prop_assert_eq!(&first, &second);

        let restore_before = (steps.len() as f64 * restore_fraction) as usize;
        let restored = drive(&settings, expiration, &steps, Some(restore_before), |_, _, _, _| {});
        prop_assert_eq!(&first, &restored);
    }

    /// 3b. Setting the wall clock, forward by decades or back to 1970, changes the alerts'
    /// timestamps and nothing else: the same sequence with the clock left alone gives the
    /// same alerts at the same boot-clock times.
    #[test]
    fn the_wall_clock_only_dates_alerts(
        settings in settings(),
        expiration in expiration(),
        steps in steps(),
        restore_fraction in 0.0f64..=1.0,
    ) {
        let restore_before = (steps.len() as f64 * restore_fraction) as usize;
        let undisturbed: Vec<(Duration, Step)> = steps
            .iter()
            .map(|(delta, step)| match step {
                Step::SetWall(_) => (*delta, Step::Advance),
                step => (*delta, step.clone()),
            })
            .collect();
        let boot_timed = |records: Vec<Record>| -> Vec<(Duration, Emitted)> {
            records
                .into_iter()
                .map(|mut record| {
                    assert_eq!(record.emitted.alert.timestamp, Timestamp(record.now.wall));
                    record.emitted.alert.timestamp = Timestamp(UNIX_EPOCH);
                    (record.now.boot, record.emitted)
                })
                .collect()
        };
        let set = drive(&settings, expiration, &steps, Some(restore_before), |_, _, _, _| {});
        let left_alone = drive(&settings, expiration, &undisturbed, None, |_, _, _, _| {});
        prop_assert_eq!(boot_timed(set), boot_timed(left_alone));
    }

    /// 4. A pattern check's alerts alternate CRITICAL, OK, CRITICAL, ...
    #[test]
    fn pattern_levels_alternate(
        settings in settings(),
        expiration in expiration(),
        steps in steps(),
    ) {
        let records = drive(&settings, expiration, &steps, None, |_, _, _, _| {});
        for (index, level) in levels_of(&records, &pattern_id()).into_iter().enumerate() {
            let expected = if index % 2 == 0 { Level::Critical } else { Level::Ok };
            prop_assert_eq!(level, expected, "alert {}", index);
        }
    }

    /// 5. At most one "going up and down" per flapping episode: an episode ends with a
    /// "not running" alert, so two of them are never adjacent.
    #[test]
    fn one_flapping_alert_per_episode(
        settings in settings(),
        expiration in expiration(),
        steps in steps(),
    ) {
        let mut flapping_before = false;
        let records = drive(&settings, expiration, &steps, None, |engine, now, _, emitted| {
            let flapping_now = engine.view(&service_id(), now).unwrap().state == CheckState::Flapping;
            let raised = emitted
                .iter()
                .filter(|emitted| emitted.alert.name == GOING_UP_AND_DOWN)
                .count();
            // Raised exactly when an episode starts. One call may end an overdue episode
            // and start the next: then the end's "not running" alert comes first.
            assert!(raised <= 1);
            if !flapping_before && flapping_now {
                assert_eq!(raised, 1, "an episode started without its alert");
            }
            if raised == 1 {
                assert!(flapping_now, "a flapping alert, but not flapping");
                let episode_ended = emitted
                    .iter()
                    .take_while(|emitted| emitted.alert.name != GOING_UP_AND_DOWN)
                    .any(|emitted| emitted.check == service_id());
                assert!(!flapping_before || episode_ended, "a second alert in one episode");
            }
            flapping_before = flapping_now;
        });
        let names: Vec<&str> = records
            .iter()
            .filter(|record| record.emitted.check == service_id())
            .map(|record| record.emitted.alert.name.as_str())
            .collect();
        for pair in names.windows(2) {
            prop_assert!(
                !(pair[0] == GOING_UP_AND_DOWN && pair[1] == GOING_UP_AND_DOWN),
                "two flapping alerts in one episode: {:?}",
                names
            );
        }
    }
}
