//! The checks the agent samples itself (`diskusage`, `storage`, `memory`, `temperature`...):
//! ONE task, running only while some such check is enabled, with ONE timer for all of them.
//! It sleeps until the next sample is due (no tick when nothing is), runs the due probes
//! concurrently (each bounded by a timeout), feeds each reading through its check's
//! hysteresis and debounce, and tells the loop when a check's condition changes (and the
//! first time), with the measured value in the details. A reading that cannot be taken is
//! the check's problem (shown in `status`), never an alert.
//!
//! A reload keeps the state (hysteresis, next sample) of every check whose definition did
//! not change; a changed check starts afresh and is sampled at once.

use std::collections::HashMap;
use std::time::Duration;

use monitor_config::{IfUnavailable, SampledCheck};
use monitor_health::threshold::Hysteresis;
use monitor_health::{Probe, Reading, Roots};
use monitor_source::{Observed, SourceEvent};
use monitor_wire::CheckId;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::on_demand::OnDemand;
use super::source::{Boxed, Context, ProblemLog, Source};

/// The longest a round of samples may take; past it a sample not taken is a problem
/// (`Unavailable`). Rounds with a check sampled more often than this get its interval.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks due within this much of the first due one are sampled with it: one wake-up
/// serves checks whose times drifted apart by a little.
const COALESCE: Duration = Duration::from_millis(500);

/// What the task samples: every enabled sampled check, and where kernel files are read.
pub struct SampledConfig {
    pub roots: Roots,
    pub checks: Vec<(CheckId, SampledCheck)>,
}

pub struct Sampled {
    events: mpsc::Sender<SourceEvent>,
    tasks: CancellationToken,
    /// Running while some sampled check is enabled.
    sampler: OnDemand<SampledConfig>,
}

impl Sampled {
    pub fn new(events: mpsc::Sender<SourceEvent>, tasks: &CancellationToken) -> Sampled {
        Sampled {
            events,
            tasks: tasks.clone(),
            sampler: OnDemand::new("sampled"),
        }
    }
}

impl Source for Sampled {
    fn configure<'a>(&'a mut self, context: &'a Context<'a>) -> Boxed<'a, Vec<SourceEvent>> {
        Box::pin(async move {
            let checks: Vec<(CheckId, SampledCheck)> = context
                .plan
                .checks
                .iter()
                .filter_map(|(id, kind)| Some((id.clone(), kind.sampled()?.clone())))
                .collect();
            let config = (!checks.is_empty()).then(|| SampledConfig {
                roots: context.settings.health_roots(),
                checks,
            });
            let events = self.events.clone();
            self.sampler
                .configure(config, &self.tasks, |configs, stop| {
                    run(configs, events, stop)
                })
                .await;
            Vec::new()
        })
    }

    fn finish(&mut self) -> Boxed<'_, ()> {
        Box::pin(self.sampler.finish())
    }
}

/// One check as the task keeps it.
struct Scheduled {
    check: SampledCheck,
    hysteresis: Hysteresis,
    next: Instant,
    /// What the loop was last told (`None`: nothing yet).
    reported: Option<bool>,
}

impl Scheduled {
    fn new(check: SampledCheck, now: Instant) -> Self {
        Scheduled {
            hysteresis: check.hysteresis(),
            check,
            next: now,
            reported: None,
        }
    }
}

/// The task: takes configs from `configs`, samples what is due, until `stop`.
async fn run(
    mut configs: mpsc::Receiver<SampledConfig>,
    events: mpsc::Sender<SourceEvent>,
    stop: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let mut roots = Roots::default();
    let mut checks: HashMap<CheckId, Scheduled> = HashMap::new();
    let mut problems = ProblemLog::default();
    loop {
        let next_due = checks.values().map(|scheduled| scheduled.next).min();
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            config = configs.recv() => {
                let Some(config) = config else { return Ok(()) };
                roots = config.roots;
                apply(&mut checks, config.checks, Instant::now());
            }
            () = sleep_until(next_due) => {
                let due = take_due(&mut checks, Instant::now());
                let sampled = tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    sampled = sample(&checks, due, &roots) => sampled,
                };
                let found = judge(&mut checks, &mut problems, sampled);
                for event in found {
                    if events.send(event).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Sleeps until `deadline`; forever without one (no check: nothing to wake up for).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Brings the checks in line with a new config: unchanged ones keep their state.
fn apply(
    checks: &mut HashMap<CheckId, Scheduled>,
    wanted: Vec<(CheckId, SampledCheck)>,
    now: Instant,
) {
    let mut kept = HashMap::with_capacity(wanted.len());
    for (id, check) in wanted {
        let scheduled = match checks.remove(&id) {
            Some(scheduled) if scheduled.check == check => scheduled,
            _ => Scheduled::new(check, now),
        };
        kept.insert(id, scheduled);
    }
    *checks = kept;
}

/// The checks due at `now` (or within [`COALESCE`] of it), each moved to its next time.
fn take_due(checks: &mut HashMap<CheckId, Scheduled>, now: Instant) -> Vec<CheckId> {
    let mut due = Vec::new();
    for (id, scheduled) in checks.iter_mut() {
        if scheduled.next <= now + COALESCE {
            due.push(id.clone());
            let interval = scheduled.check.interval;
            scheduled.next += interval;
            // A late wake-up (a suspend, a busy system) skips the samples it missed.
            if scheduled.next <= now {
                scheduled.next = now + interval;
            }
        }
    }
    due
}

/// Takes a sample of each `due` check at once (see [`Probe::sample_all`]: the reads of
/// files in one job, so a round wakes one thread once), within the shortest of their
/// timeouts.
async fn sample(
    checks: &HashMap<CheckId, Scheduled>,
    due: Vec<CheckId>,
    roots: &Roots,
) -> Vec<(CheckId, Reading)> {
    let due: Vec<(CheckId, &SampledCheck)> = due
        .into_iter()
        .filter_map(|id| {
            let check = &checks.get(&id)?.check;
            Some((id, check))
        })
        .collect();
    let timeout = due
        .iter()
        .map(|(_, check)| check.interval)
        .fold(SAMPLE_TIMEOUT, Duration::min);
    let probes: Vec<Probe> = due.iter().map(|(_, check)| check.probe.clone()).collect();
    let readings = Probe::sample_all(&probes, roots, timeout).await;
    due.into_iter().map(|(id, _)| id).zip(readings).collect()
}

/// What the readings mean for the loop: a problem for a reading that could not be taken
/// (once per distinct message), its end, and each condition that changed (or was never
/// reported), in one observation.
fn judge(
    checks: &mut HashMap<CheckId, Scheduled>,
    problems: &mut ProblemLog,
    readings: Vec<(CheckId, Reading)>,
) -> Vec<SourceEvent> {
    let mut events = Vec::new();
    let mut observations = Vec::new();
    for (id, reading) in readings {
        let Some(scheduled) = checks.get_mut(&id) else {
            continue;
        };
        let Some(holds) = scheduled.hysteresis.feed(&reading) else {
            if let Reading::Unavailable(message) = reading {
                let event = match scheduled.check.if_unavailable {
                    IfUnavailable::Problem => problems.problem(id, message),
                    IfUnavailable::Ignore => problems.not_here(id, message),
                };
                events.push(event);
            }
            continue;
        };
        if problems.resolved(&id) {
            tracing::info!(check = %id, "the check reads again");
            events.push(SourceEvent::Resolved { check: id.clone() });
        }
        if scheduled.reported != Some(holds) {
            scheduled.reported = Some(holds);
            let details = scheduled.check.details(&reading);
            observations.push((id, Observed::Condition { holds, details }));
        }
    }
    if !observations.is_empty() {
        events.push(SourceEvent::Observed {
            observations,
            position: None,
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use monitor_config::{
        Debounce, Quantity, SampleInterval, SampledFields, SampledTexts, ThresholdRule,
    };
    use monitor_health::disk::{DiskMetric, DiskProbe};
    use monitor_health::threshold::Direction;
    use monitor_health::Unit;
    use monitor_wire::Subsystem;

    use super::*;

    /// Used % of `path` at or over `raise`, clear 5 points below, `for: 2`.
    fn check(path: &str, raise: f64, interval: u64) -> SampledCheck {
        let fields = SampledFields {
            interval: Some(SampleInterval(Duration::from_secs(interval))),
            threshold: Some(Quantity(raise.to_string())),
            debounce: Some(Debounce::Samples(2)),
            ..SampledFields::default()
        };
        let rule = ThresholdRule {
            unit: Unit::Percent,
            direction: Direction::Above,
            default_threshold: None,
            default_clear: |raise| raise - 5.0,
        };
        let sampling = fields
            .resolve(std::path::Path::new("diskusage_test.yaml"), Some(rule))
            .unwrap();
        SampledCheck::new(
            Probe::Disk(DiskProbe::new(path, DiskMetric::UsedPercent)),
            sampling,
            SampledTexts::new("diskusage", path, "Disk full", "FULL", "FULL"),
        )
    }

    fn id(name: &str) -> CheckId {
        CheckId::new(Subsystem::Diskusage, name)
    }

    fn used(value: f64) -> Reading {
        Reading::Value {
            value,
            unit: Unit::Percent,
            what: "Disk / {value} used".into(),
        }
    }

    #[test]
    fn a_reload_keeps_the_state_of_unchanged_checks_only() {
        let start = Instant::now();
        let mut checks = HashMap::new();
        apply(
            &mut checks,
            vec![
                (id("same"), check("/", 90.0, 30)),
                (id("changed"), check("/", 90.0, 30)),
            ],
            start,
        );
        for scheduled in checks.values_mut() {
            scheduled.hysteresis.feed(&used(95.0));
            scheduled.next = start + Duration::from_secs(20);
        }
        let later = start + Duration::from_secs(10);
        apply(
            &mut checks,
            vec![
                (id("same"), check("/", 90.0, 30)),
                (id("changed"), check("/", 80.0, 30)),
            ],
            later,
        );
        // One sample above the line of two needed: kept, and so is its next sample.
        let same = &checks[&id("same")];
        assert_eq!(same.next, start + Duration::from_secs(20));
        assert_eq!(same.hysteresis.clone().feed(&used(95.0)), Some(true));
        let changed = &checks[&id("changed")];
        assert_eq!(changed.next, later);
        assert_eq!(changed.hysteresis.clone().feed(&used(95.0)), Some(false));
        // Gone from the config: gone.
        apply(&mut checks, vec![(id("same"), check("/", 90.0, 30))], later);
        assert_eq!(checks.len(), 1);
    }

    #[test]
    fn checks_due_together_share_a_wake_up_and_a_late_one_skips_what_it_missed() {
        let start = Instant::now();
        let mut checks = HashMap::new();
        apply(
            &mut checks,
            vec![
                (id("a"), check("/", 90.0, 30)),
                (id("b"), check("/", 90.0, 60)),
            ],
            start,
        );
        checks.get_mut(&id("b")).unwrap().next = start + Duration::from_millis(300);
        let mut due = take_due(&mut checks, start);
        due.sort();
        assert_eq!(due, [id("a"), id("b")]);
        assert_eq!(checks[&id("a")].next, start + Duration::from_secs(30));
        assert!(take_due(&mut checks, start + Duration::from_secs(29)).is_empty());
        // Woken 100 s late (a suspend): the next sample is an interval from now.
        let late = start + Duration::from_secs(130);
        take_due(&mut checks, late);
        assert_eq!(checks[&id("a")].next, late + Duration::from_secs(30));
    }

    #[test]
    fn only_changes_reach_the_loop_and_a_problem_is_told_once() {
        let mut checks = HashMap::new();
        apply(
            &mut checks,
            vec![(id("a"), check("/", 90.0, 30))],
            Instant::now(),
        );
        let mut problems = ProblemLog::default();
        let mut round =
            |reading: Reading| judge(&mut checks, &mut problems, vec![(id("a"), reading)]);
        let observed = |events: &[SourceEvent]| -> Vec<bool> {
            events
                .iter()
                .flat_map(|event| match event {
                    SourceEvent::Observed { observations, .. } => observations
                        .iter()
                        .map(|(_, observed)| {
                            matches!(observed, Observed::Condition { holds: true, .. })
                        })
                        .collect(),
                    _ => Vec::new(),
                })
                .collect()
        };
        // The first sample is reported, the same state again is not.
        assert_eq!(observed(&round(used(50.0))), [false]);
        assert!(round(used(60.0)).is_empty());
        assert!(round(used(95.0)).is_empty());
        let unavailable = round(Reading::Unavailable("gone".into()));
        assert!(
            matches!(&unavailable[..], [SourceEvent::Problem { message, .. }] if message == "gone")
        );
        // The streak started over: one sample above the line is not enough.
        let back = round(used(95.0));
        assert!(
            matches!(&back[..], [SourceEvent::Resolved { .. }]),
            "{back:?}"
        );
        let raised = round(used(96.0));
        assert_eq!(observed(&raised), [true]);
        let SourceEvent::Observed { observations, .. } = &raised[0] else {
            unreachable!()
        };
        let (_, Observed::Condition { details, .. }) = &observations[0] else {
            unreachable!()
        };
        assert_eq!(
            details.description.as_deref(),
            Some("Disk / 96% used (threshold 90%)")
        );
    }
}
