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

use monitor_config::SampledCheck;
use monitor_health::threshold::Hysteresis;
use monitor_health::{Reading, Roots};
use monitor_source::{Observed, SourceEvent};
use monitor_wire::CheckId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::on_demand::OnDemand;
use super::source::{Boxed, Context, ProblemLog, Source};

/// The longest a probe may take; past it the sample is a problem (`Unavailable`). A
/// check sampled more often than this gets its interval instead.
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

/// Takes a sample of each `due` check at once, each within its timeout.
async fn sample(
    checks: &HashMap<CheckId, Scheduled>,
    due: Vec<CheckId>,
    roots: &Roots,
) -> Vec<(CheckId, Reading)> {
    let mut running = JoinSet::new();
    for id in due {
        let Some(scheduled) = checks.get(&id) else {
            continue;
        };
        let probe = scheduled.check.probe.clone();
        let roots = roots.clone();
        // A probe with a timeout of its own (a plugin, a connection) is given that long and
        // a little more, so that its own verdict ("timed out after 10s") is the one seen.
        let timeout = match probe.own_timeout() {
            Some(own) => own + OWN_TIMEOUT_GRACE,
            None => SAMPLE_TIMEOUT.min(scheduled.check.interval),
        };
        running.spawn(async move {
            let reading = match tokio::time::timeout(timeout, probe.sample(&roots)).await {
                Ok(reading) => reading,
                Err(_) => Reading::Unavailable(format!(
                    "no answer within {}s: the device or file system it reads does not respond; check it (dmesg)",
                    timeout.as_secs_f32()
                )),
            };
            (id, reading)
        });
    }
    let mut readings = Vec::new();
    while let Some(result) = running.join_next().await {
        match result {
            Ok(reading) => readings.push(reading),
            Err(error) => tracing::error!("a sample failed: {error}"),
        }
    }
    readings
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
                let event = problems.problem(id, message);
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
