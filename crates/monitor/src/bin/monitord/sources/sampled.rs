//! The checks the agent samples itself (`diskusage`, `storage`, `memory`, `temperature`...):
//! ONE task, running only while some such check is enabled, with ONE timer for all of them.
//! It sleeps until the next sample is due (no tick when nothing is), runs the due probes
//! concurrently (each bounded by a timeout; a slow one holds up no other), feeds each
//! reading through its check's
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
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::on_demand::OnDemand;
use super::source::{Boxed, Context, ProblemLog, Source};

/// The longest a round of samples may take; past it a sample not taken is a problem
/// (`Unavailable`). Rounds with a check sampled more often than this get its interval.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a probe with a timeout of its own gets beyond it: the time to kill what it runs
/// and say so.
const OWN_TIMEOUT_GRACE: Duration = Duration::from_secs(2);

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
    /// A sample is being taken: the check is not sampled again until it is back.
    in_flight: bool,
    /// Tells this check's readings from those of the check it replaced at a reload.
    epoch: u64,
}

impl Scheduled {
    fn new(check: SampledCheck, now: Instant, epoch: u64) -> Self {
        Scheduled {
            hysteresis: check.hysteresis(),
            check,
            next: now,
            reported: None,
            in_flight: false,
            epoch,
        }
    }
}

/// Readings of one group of a round, each with the epoch of the check it was taken for.
type Readings = Vec<(CheckId, u64, Reading)>;

/// The task: takes configs from `configs`, samples what is due, until `stop`. A round's
/// samples run as tasks of their own (the reads of files in one, each other probe in its
/// own), and each group's readings are judged as soon as it is back: a plugin that takes
/// its full timeout holds up no other check.
async fn run(
    mut configs: mpsc::Receiver<SampledConfig>,
    events: mpsc::Sender<SourceEvent>,
    stop: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let mut roots = Roots::default();
    let mut checks: HashMap<CheckId, Scheduled> = HashMap::new();
    let mut problems = ProblemLog::default();
    let mut epochs = 0u64;
    // Dropped at the end: samples still running are abandoned (a plugin's process group is
    // killed with its sample).
    let mut rounds: JoinSet<Readings> = JoinSet::new();
    loop {
        let next_due = checks
            .values()
            .filter(|scheduled| !scheduled.in_flight)
            .map(|scheduled| scheduled.next)
            .min();
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            config = configs.recv() => {
                let Some(config) = config else { return Ok(()) };
                roots = config.roots;
                apply(&mut checks, config.checks, Instant::now(), &mut epochs);
            }
            Some(joined) = rounds.join_next(), if !rounds.is_empty() => {
                let readings = match joined {
                    Ok(readings) => readings,
                    Err(error) => {
                        tracing::error!("a sample failed: {error}");
                        continue;
                    }
                };
                let found = judge(&mut checks, &mut problems, readings);
                for event in found {
                    if events.send(event).await.is_err() {
                        return Ok(());
                    }
                }
            }
            () = sleep_until(next_due) => {
                let due = take_due(&mut checks, Instant::now());
                start_round(&mut rounds, &checks, due, &roots);
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
    epochs: &mut u64,
) {
    let mut kept = HashMap::with_capacity(wanted.len());
    for (id, check) in wanted {
        let scheduled = match checks.remove(&id) {
            Some(scheduled) if scheduled.check == check => scheduled,
            _ => {
                *epochs += 1;
                Scheduled::new(check, now, *epochs)
            }
        };
        kept.insert(id, scheduled);
    }
    *checks = kept;
}

/// The checks due at `now` (or within [`COALESCE`] of it) and not being sampled already,
/// each moved to its next time and marked in flight.
fn take_due(checks: &mut HashMap<CheckId, Scheduled>, now: Instant) -> Vec<CheckId> {
    let mut due = Vec::new();
    for (id, scheduled) in checks.iter_mut() {
        if !scheduled.in_flight && scheduled.next <= now + COALESCE {
            due.push(id.clone());
            scheduled.in_flight = true;
            let interval = scheduled.check.interval;
            scheduled.next += interval;
            // A late wake-up (a suspend, a busy system, a sample that took long) skips the
            // samples it missed.
            if scheduled.next <= now {
                scheduled.next = now + interval;
            }
        }
    }
    due
}

/// Starts a sample of each `due` check: the reads of files in one task (see
/// [`Probe::sample_all`]: one job on the blocking pool, so a round wakes one thread once),
/// within the shortest of their timeouts; every other probe (a connection, a plugin) in a
/// task of its own, within its own timeout and a grace, or the default.
fn start_round(
    rounds: &mut JoinSet<Readings>,
    checks: &HashMap<CheckId, Scheduled>,
    due: Vec<CheckId>,
    roots: &Roots,
) {
    let mut file_reads: Vec<(CheckId, u64, Probe)> = Vec::new();
    let mut file_timeout = SAMPLE_TIMEOUT;
    for id in due {
        let Some(scheduled) = checks.get(&id) else {
            continue;
        };
        let probe = scheduled.check.probe.clone();
        let epoch = scheduled.epoch;
        if probe.reads_files().is_some() {
            file_timeout = file_timeout.min(scheduled.check.interval);
            file_reads.push((id, epoch, probe));
            continue;
        }
        // A probe with a timeout of its own (a plugin, a connection) is given that long and
        // a little more, so that its own verdict ("timed out after 10s") is the one seen.
        let timeout = match probe.own_timeout() {
            Some(own) => own + OWN_TIMEOUT_GRACE,
            None => SAMPLE_TIMEOUT.min(scheduled.check.interval),
        };
        let roots = roots.clone();
        rounds.spawn(async move {
            let reading = Probe::sample_all(std::slice::from_ref(&probe), &roots, timeout)
                .await
                .pop()
                .expect("one reading per probe");
            vec![(id, epoch, reading)]
        });
    }
    if !file_reads.is_empty() {
        let roots = roots.clone();
        rounds.spawn(async move {
            let probes: Vec<Probe> = file_reads
                .iter()
                .map(|(_, _, probe)| probe.clone())
                .collect();
            let readings = Probe::sample_all(&probes, &roots, file_timeout).await;
            file_reads
                .into_iter()
                .zip(readings)
                .map(|((id, epoch, _), reading)| (id, epoch, reading))
                .collect()
        });
    }
}

/// What the readings mean for the loop: a problem for a reading that could not be taken
/// (once per distinct message), its end, and each condition that changed (or was never
/// reported), in one observation.
fn judge(
    checks: &mut HashMap<CheckId, Scheduled>,
    problems: &mut ProblemLog,
    readings: Readings,
) -> Vec<SourceEvent> {
    let mut events = Vec::new();
    let mut observations = Vec::new();
    for (id, epoch, reading) in readings {
        // A check removed or changed meanwhile: the reading is not its own.
        let Some(scheduled) = checks
            .get_mut(&id)
            .filter(|scheduled| scheduled.epoch == epoch)
        else {
            continue;
        };
        scheduled.in_flight = false;
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
        let mut epochs = 0;
        apply(
            &mut checks,
            vec![
                (id("same"), check("/", 90.0, 30)),
                (id("changed"), check("/", 90.0, 30)),
            ],
            start,
            &mut epochs,
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
            &mut epochs,
        );
        // One sample above the line of two needed: kept, and so is its next sample.
        let same = &checks[&id("same")];
        assert_eq!(same.next, start + Duration::from_secs(20));
        assert_eq!(same.hysteresis.clone().feed(&used(95.0)), Some(true));
        let changed = &checks[&id("changed")];
        assert_eq!(changed.next, later);
        assert_eq!(changed.hysteresis.clone().feed(&used(95.0)), Some(false));
        // Gone from the config: gone.
        apply(
            &mut checks,
            vec![(id("same"), check("/", 90.0, 30))],
            later,
            &mut epochs,
        );
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
            &mut 0,
        );
        checks.get_mut(&id("b")).unwrap().next = start + Duration::from_millis(300);
        let mut due = take_due(&mut checks, start);
        due.sort();
        assert_eq!(due, [id("a"), id("b")]);
        assert_eq!(checks[&id("a")].next, start + Duration::from_secs(30));
        assert!(take_due(&mut checks, start + Duration::from_secs(29)).is_empty());
        // A check still being sampled is not sampled again; back, it is.
        let late = start + Duration::from_secs(130);
        assert!(take_due(&mut checks, late).is_empty());
        for scheduled in checks.values_mut() {
            scheduled.in_flight = false;
        }
        // Woken 100 s late (a suspend): the next sample is an interval from now.
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
            &mut 0,
        );
        let epoch = checks[&id("a")].epoch;
        let mut problems = ProblemLog::default();
        let mut round =
            |reading: Reading| judge(&mut checks, &mut problems, vec![(id("a"), epoch, reading)]);
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
