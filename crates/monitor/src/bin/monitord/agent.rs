//! The agent's loop: wires the watchers to the engine and the engine to the store.
//!
//! Everything that changes state happens on this one task, in the order events arrive, so
//! offsets, engine state and the alert history always agree. It sleeps until something
//! happens: a watcher event, a config change, a control request, the engine's next
//! deadline, or a batched checkpoint. Recording alerts is in `record.rs`, control requests
//! in `requests.rs`, alerts raised by scripts (`monitorctl raise`) in `raised.rs`.

pub(crate) mod failed_units;
pub(crate) mod first_reads;
mod raised;
mod record;
mod requests;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use monitor::FolderArgs;
use monitor_config::{load_settings, CheckDir, Settings};
use monitor_engine::{Engine, Moment, Observation};
use monitor_source::{FileProgress, Observed, SourceEvent, SourceKind};
use monitor_store::Durability;
use monitor_wire::control::{CheckState, Request, Response};
use monitor_wire::{CheckId, HistoryRecord, Timestamp};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Positions, SavedPosition};
use crate::clock;
use crate::control::{self, ControlRequest};
use crate::delivery::Delivery;
use crate::followers::Followers;
use crate::own_alerts::StateDirCheck;
use crate::persist::{Persister, SharedOutbox};
use crate::plan::{plan, Plan};
use crate::sd_notify::SystemdNotifier;
use crate::sources::{self, Sources, EVENT_CAPACITY};
use crate::startup::{engine_settings, watch_config};
use first_reads::FirstReads;

/// Edits to check files settle for this long before they are read (an editor's
/// write-then-rename, `monitorctl create` then `enable`).
const RELOAD_DELAY: Duration = Duration::from_millis(50);
/// How long the watchers get to finish after shutdown begins.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// Alert numbers a checkpoint reserves beyond the newest it knows of: after a crash the
/// next alert is numbered past them, since the last run may have delivered alerts (from
/// memory) whose numbers never reached the disk.
const SEQ_RESERVE: u64 = 1_000_000;

pub async fn run(folders: FolderArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let opened = crate::startup::open(&folders)?;
    let checkpoint = opened.checkpoint;
    let tasks = CancellationToken::new();
    // Bounded: a slow loop makes the watchers wait (the data waits in the files, the bus,
    // the pipes); every watcher sends on this one channel.
    let (event_sender, mut events) = mpsc::channel(EVENT_CAPACITY);
    let sources = Sources::new(event_sender, &tasks)?;
    let (request_sender, mut requests) = mpsc::channel::<ControlRequest>(16);
    let control_server = tokio::spawn(control::serve(
        opened.listener,
        opened.socket_path.clone(),
        request_sender,
        tasks.clone(),
    ));
    let config_changed = Arc::new(Notify::new());
    let _config_watcher = watch_config(&folders.config_dir, config_changed.clone());

    let outbox = Arc::new(std::sync::Mutex::new(opened.outbox));
    let (enqueued, enqueued_receiver) = watch::channel(0);
    let (storage_health_sender, mut storage_health) = watch::channel(Ok(()));
    let (checkpointed_sender, mut checkpointed) = watch::channel(0);
    let persister = Persister::start(
        opened.settings.state_dir.clone(),
        opened.history,
        outbox.clone(),
        storage_health_sender,
        checkpointed_sender,
        // Its OK is owed: the engine (or a checkpoint of an older version) says it is CRITICAL.
        checkpoint.state_dir_unwritable.is_some()
            || opened
                .engine
                .view(&StateDirCheck::id(), clock::now())
                .is_some_and(|view| view.state == CheckState::Critical),
    )?;
    let device_id = monitor::destinations::device_id(&opened.settings);
    let mut agent = Agent {
        delivery: Delivery::new(
            outbox.clone(),
            enqueued_receiver,
            persister.outbox_writer(),
            tasks.clone(),
            device_id.clone(),
        ),
        outbox,
        enqueued,
        followers: Followers::default(),
        state_dir: StateDirCheck::new(opened.settings.state_dir.clone()),
        restored: Restored {
            dead_commands: checkpoint.dead_commands,
            state_dir_unwritable: checkpoint.state_dir_unwritable,
        },
        stopping: false,
        device_id,
        folders,
        settings: opened.settings,
        check_dir: opened.check_dir,
        engine: opened.engine,
        boot_id: opened.boot_id,
        plan: Plan::default(),
        positions: checkpoint.positions,
        next_seq: opened.next_seq,
        persister,
        recent_alerts: checkpoint.recent_alerts,
        early_requests: Vec::new(),
        checkpoint_due: None,
        new_file_unsaved: false,
        caught_up: false,
        first_reads: FirstReads::new(),
        ready: false,
        sources,
        source_problems: HashMap::new(),
        not_here: HashMap::new(),
        notifier: SystemdNotifier::from_environment(),
        reload_replies: Vec::new(),
        generation: 0,
        started: Timestamp::now(),
    };
    agent.reserve_numbers();
    if !opened.unrecorded.is_empty() {
        agent.submit(opened.unrecorded, Durability::Durable);
    }
    agent.reload().await;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config_dir = %agent.folders.config_dir.display(),
        state_dir = %agent.settings.state_dir.display(),
        socket = %opened.socket_path.display(),
        checks = agent.plan.enabled.len(),
        "monitord started"
    );

    let mut reload_at: Option<Instant> = None;
    let mut watchdog_due = agent
        .notifier
        .watchdog_interval()
        .map(|interval| Instant::now() + interval);
    loop {
        let engine_wake = if agent.caught_up {
            agent.engine.next_deadline().map(instant_of)
        } else {
            None
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(event) = events.recv() => {
                agent.on_source_event(event).await;
                // One checkpoint for the files first followed in a burst (thousands at a
                // first start), not one per file: each holds every position and check.
                if agent.new_file_unsaved && events.is_empty() {
                    agent.save_checkpoint();
                }
                agent.ready_when_known().await;
            }
            Some((request, reply)) = requests.recv() => agent.on_request(request, reply).await,
            Ok(()) = storage_health.changed() => {
                let health = storage_health.borrow_and_update().clone();
                let observation = agent.state_dir.observe(health);
                let emitted = agent.engine.observe(&StateDirCheck::id(), observation, clock::now());
                agent.emit(emitted);
            }
            _ = sleep_until(agent.followers.followers_due()) => agent.followers.answer_followers(),
            Ok(()) = checkpointed.changed() => agent.answer_durable_replies(),
            _ = sleep_until(agent.followers.durable_replies_due()) => agent.answer_durable_replies(),
            _ = config_changed.notified() => {
                reload_at.get_or_insert_with(|| Instant::now() + RELOAD_DELAY);
            }
            _ = sleep_until(reload_at) => {
                reload_at = None;
                agent.reload().await;
            }
            _ = sleep_until(engine_wake) => {
                let emitted = agent.engine.advance(clock::now());
                agent.emit(emitted);
            }
            _ = sleep_until(agent.checkpoint_due) => agent.save_checkpoint(),
            _ = sleep_until(agent.first_reads.deadline()) => agent.become_ready().await,
            // Only when systemd asked for a watchdog (WatchdogSec=): the one periodic wake-up.
            _ = sleep_until(watchdog_due) => {
                agent.notifier.watchdog();
                watchdog_due = agent.notifier.watchdog_interval().map(|interval| Instant::now() + interval);
            }
        }
    }
    agent.notifier.stopping();

    // Stop the watchers, take what they already sent, then persist. No alerts are made
    // because of the shutdown itself.
    tasks.cancel();
    let mut sent = Vec::new();
    let _ = tokio::time::timeout(STOP_DEADLINE, async {
        // Taken meanwhile, so that a watcher waiting on a full channel can finish.
        let finish = agent.sources.finish();
        tokio::pin!(finish);
        loop {
            tokio::select! {
                () = &mut finish => break,
                Some(event) = events.recv() => sent.push(event),
            }
        }
        let _ = control_server.await;
    })
    .await;
    while let Ok(event) = events.try_recv() {
        sent.push(event);
    }
    for event in sent {
        agent.on_source_event(event).await;
    }
    // Everything made so far is in this one: the next run numbers on from here exactly.
    agent.stopping = true;
    agent.submit(Vec::new(), Durability::Durable);
    agent.persister.finish();
    tracing::info!("monitord stopped");
    Ok(())
}

/// See [`Agent::restore_from_older_checkpoint`].
#[derive(Default)]
struct Restored {
    dead_commands: BTreeSet<String>,
    state_dir_unwritable: Option<String>,
}

struct Agent {
    folders: FolderArgs,
    settings: Settings,
    device_id: String,
    check_dir: CheckDir,
    engine: Engine,
    /// The boot the engine's snapshots are taken in; `None` when unknown.
    boot_id: Option<String>,
    plan: Plan,
    delivery: Delivery,
    positions: Positions,
    persister: Persister,
    next_seq: u64,
    /// Alerts not yet known to be durable in the history; every checkpoint carries them.
    recent_alerts: Vec<HistoryRecord>,
    /// Requests that arrived before the agent was ready: answered then, so a client that
    /// sees an answer knows the checks are live and has a state for each.
    early_requests: Vec<(Request, oneshot::Sender<Response>)>,
    checkpoint_due: Option<Instant>,
    /// A file followed for the first time (or rotated) is not in a checkpoint yet: saved
    /// once the events queued meanwhile are handled, at the latest at `checkpoint_due`.
    new_file_unsaved: bool,
    /// The log watcher has read what was written while the agent was down; until then
    /// expiries wait, so a match written meanwhile extends a CRITICAL instead of an OK and
    /// a new CRITICAL being sent.
    caught_up: bool,
    /// The checks enabled at start that wait for their first read.
    first_reads: FirstReads,
    /// Every check enabled at start had its first read (or the deadline passed): systemd
    /// was told `READY=1`, and control requests are answered.
    ready: bool,
    /// The watchers, following the plan.
    sources: Sources,
    /// What a checkpoint of an older version kept outside the engine, until the first
    /// reload hands it over.
    restored: Restored,
    /// Alerts go to the destinations from here at once; `enqueued` wakes them.
    outbox: SharedOutbox,
    enqueued: watch::Sender<u64>,
    /// `monitorctl alerts --follow`, and answers that wait for a written checkpoint.
    followers: Followers,
    /// The agent's own check on its state folder.
    state_dir: StateDirCheck,
    /// Shutdown: the last checkpoint is being written.
    stopping: bool,
    /// Checks whose source cannot be watched (not found, bad unit file), and why.
    source_problems: HashMap<CheckId, String>,
    /// Checks whose thing is not on this device (`if_unavailable: ignore`), and what is
    /// missing: `status` says so.
    not_here: HashMap<CheckId, String>,
    notifier: SystemdNotifier,
    /// `Reload` requests answered once the watchers run the new config, so that when
    /// `monitorctl enable` returns the check is live.
    reload_replies: Vec<(u64, oneshot::Sender<Response>)>,
    /// Generation of the latest config sent to the watchers.
    generation: u64,
    started: Timestamp,
}

impl Agent {
    /// Read settings and checks again and bring the engine and the watchers in line.
    async fn reload(&mut self) {
        match load_settings(&self.folders.config_dir) {
            Ok(mut settings) => {
                self.folders.apply(&mut settings);
                if settings.state_dir != self.settings.state_dir
                    || settings.runtime_dir != self.settings.runtime_dir
                {
                    tracing::warn!(
                        "state_dir and runtime_dir changes take effect when monitord restarts"
                    );
                    settings.state_dir = self.settings.state_dir.clone();
                    settings.runtime_dir = self.settings.runtime_dir.clone();
                }
                self.engine.set_settings(engine_settings(&settings));
                self.settings = settings;
            }
            Err(problems) => {
                for problem in problems {
                    tracing::error!("{problem}; keeping the previous settings");
                }
            }
        }
        self.check_dir
            .set_default_checks(self.settings.default_checks);
        let mut plan = plan(&self.settings, self.check_dir.load());
        // A check on every unit starts from the units the engine holds failed: those that
        // are failed no more (reset while the agent was down) get their OKs.
        for watch in &mut plan.failed_units {
            watch.known_failed = failed_units::failed_units_of(&self.engine, &watch.check)
                .into_iter()
                .collect();
        }
        plan.engine_checks
            .push((StateDirCheck::id(), StateDirCheck::spec()));
        let known: HashSet<&String> = self.plan.problems.iter().collect();
        for problem in plan
            .problems
            .iter()
            .filter(|problem| !known.contains(problem))
        {
            tracing::error!("{problem}; this check is not watched until the file is fixed");
        }
        let known: HashSet<&String> = self.plan.warnings.iter().collect();
        for warning in plan
            .warnings
            .iter()
            .filter(|warning| !known.contains(warning))
        {
            tracing::warn!("{warning}; the check runs regardless");
        }

        let now = clock::now();
        let mut emitted = Vec::new();
        for (id, spec) in &plan.engine_checks {
            emitted.extend(self.engine.configure(id.clone(), spec.clone(), now));
        }
        let wanted: HashSet<_> = plan.engine_checks.iter().map(|(id, _)| id).collect();
        // Subjects raised by scripts, and failed units of a check on every unit, have no
        // check file: they stay until their OK.
        let removed: Vec<_> = self
            .engine
            .check_ids()
            .filter(|id| {
                !wanted.contains(*id)
                    && !raised::is_raised(id)
                    && !failed_units::is_kept_unit_subject(&plan, id)
            })
            .cloned()
            .collect();
        for id in removed {
            emitted.extend(self.engine.remove(&id, now));
        }

        self.restore_from_older_checkpoint(&plan, now);
        // `@command` sources whose stop the engine holds: a new run starts in its streak.
        let down: BTreeSet<String> = plan
            .commands
            .iter()
            .filter(|(_, patterns)| {
                patterns
                    .iter()
                    .any(|pattern| self.engine.source_down(&pattern.check))
            })
            .map(|(command, _)| command.clone())
            .collect();
        self.positions
            .retain(|path, _| plan.log_files.contains_key(path));
        let (generation, found) = self
            .sources
            .configure(&plan, &self.settings, &self.positions, &down)
            .await;
        self.generation = generation;
        self.delivery
            .configure(&self.settings, plan.config_push.clone());
        // Problems of sources that are still watched are kept; others are forgotten.
        let watched: HashSet<&CheckId> = plan.engine_checks.iter().map(|(id, _)| id).collect();
        self.source_problems
            .retain(|check, _| watched.contains(check) && !plan.unwatched.contains_key(check));
        self.not_here.retain(|check, _| watched.contains(check));
        self.first_reads.plan(&plan);
        self.plan = plan;
        for event in found {
            self.on_source_event(event).await;
        }
        self.emit(emitted);
        self.schedule_checkpoint();
        // A check disabled meanwhile waits no more.
        Box::pin(self.ready_when_known()).await;
    }

    async fn on_source_event(&mut self, event: SourceEvent) {
        let now = clock::now();
        match event {
            SourceEvent::Observed {
                observations,
                position,
            } => {
                let mut new_file = false;
                if let Some(FileProgress {
                    path,
                    position,
                    seen_by,
                }) = position
                {
                    let saved = SavedPosition {
                        position,
                        seen_by: Some(seen_by),
                    };
                    let previous = self.positions.insert(path, saved);
                    // A file followed for the first time, or another file at the path (a
                    // rotation): saved as soon as the events queued are handled, or a
                    // crash before the next interval would start it from its end again and
                    // skip the lines written meanwhile.
                    new_file = previous.is_none_or(
                        |SavedPosition {
                             position: previous, ..
                         }| {
                            (previous.device, previous.inode) != (position.device, position.inode)
                        },
                    );
                    self.schedule_checkpoint();
                }
                let mut emitted = Vec::new();
                for (check, observed) in observations {
                    self.first_reads.read(&check);
                    let observation = match observed {
                        Observed::Matched { details } => Observation::Matched { details },
                        Observed::State { running, details } => {
                            self.prepare_unit_subject(&check, !running);
                            Observation::Condition {
                                holds: !running,
                                details,
                            }
                        }
                        Observed::Condition { holds, details } => {
                            Observation::Condition { holds, details }
                        }
                    };
                    let holds = matches!(observation, Observation::Condition { holds: true, .. });
                    emitted.extend(self.engine.observe(&check, observation, now));
                    self.forget_unit_subject(&check, holds);
                }
                self.emit(emitted);
                if new_file && self.checkpoint_due.is_some() {
                    self.new_file_unsaved = true;
                }
            }
            // Logged by the source.
            SourceEvent::Problem { check, message } => {
                self.first_reads.read(&check);
                self.not_here.remove(&check);
                self.source_problems.insert(check, message);
            }
            SourceEvent::NotHere { check, message } => {
                self.first_reads.read(&check);
                self.source_problems.remove(&check);
                self.not_here.insert(check, message);
            }
            SourceEvent::Resolved { check } => {
                self.source_problems.remove(&check);
                self.not_here.remove(&check);
            }
            SourceEvent::Connected { source, message } => {
                tracing::info!("{message}");
                // The states of a source's own checks follow; a check on every unit has
                // none of its own until a unit fails.
                if matches!(source, SourceKind::Signals | SourceKind::Units) {
                    self.first_reads.source_read(source);
                }
            }
            SourceEvent::Disconnected { source, message } => {
                tracing::warn!("{message}");
                self.first_reads.outage(source, message);
            }
            SourceEvent::CaughtUp { source, generation } => {
                self.first_reads.source_read(source);
                if source == SourceKind::LogFiles {
                    self.on_caught_up(generation).await;
                }
            }
            // A source that died is a problem to report, once per failure streak: a CRITICAL
            // for each check reading it, and its OK when it runs again.
            SourceEvent::SourceDown {
                source,
                checks,
                reason,
                retry_in,
            } => {
                let message = sources::commands::stopped(&source, &reason, retry_in);
                let mut emitted = Vec::new();
                for check in checks {
                    self.first_reads.read(&check);
                    let observation = Observation::SourceDown {
                        message: message.clone(),
                    };
                    emitted.extend(self.engine.observe(&check, observation, now));
                    self.source_problems.insert(check, message.clone());
                }
                self.emit(emitted);
            }
            SourceEvent::SourceUp { source, checks } => {
                let message = sources::commands::runs_again(&source);
                let mut emitted = Vec::new();
                for check in checks {
                    self.source_problems.remove(&check);
                    let observation = Observation::SourceUp {
                        message: message.clone(),
                    };
                    emitted.extend(self.engine.observe(&check, observation, now));
                }
                self.emit(emitted);
            }
        }
    }

    /// Ready once the log files caught up and every check enabled at start had its first
    /// read.
    async fn ready_when_known(&mut self) {
        if !self.ready && self.caught_up && self.first_reads.complete() {
            self.become_ready().await;
        }
    }

    /// Tell systemd, and answer the requests that waited. At the deadline, checks whose
    /// source has not read them yet say so in `status`.
    async fn become_ready(&mut self) {
        if self.ready {
            return;
        }
        self.ready = true;
        self.first_reads.ready();
        let unread = self.first_reads.unread();
        if unread == 0 {
            tracing::debug!("every check had its first read; ready");
            self.notifier.ready("watching");
        } else {
            tracing::warn!(
                "ready after {:?}; not read yet: {unread} checks (see monitorctl status)",
                first_reads::FIRST_READ_DEADLINE
            );
            self.notifier.ready(&format!(
                "watching; not read yet: {unread} checks (see monitorctl status)"
            ));
        }
        for (request, reply) in std::mem::take(&mut self.early_requests) {
            Box::pin(self.on_request(request, reply)).await;
        }
    }

    /// A checkpoint of an older version kept the stopped `@command` sources and the state
    /// folder's CRITICAL outside the engine: the engine takes them over (their CRITICALs
    /// were sent by that run, so the alerts are not made again), and owes their OKs.
    fn restore_from_older_checkpoint(&mut self, plan: &Plan, now: Moment) {
        for command in std::mem::take(&mut self.restored.dead_commands) {
            for pattern in plan.commands.get(&command).into_iter().flatten() {
                let message = format!("@{command} stopped");
                let observation = Observation::SourceDown { message };
                let _ = self.engine.observe(&pattern.check, observation, now);
            }
        }
        if let Some(reason) = self.restored.state_dir_unwritable.take() {
            let observation = self.state_dir.observe(Err(reason));
            let _ = self.engine.observe(&StateDirCheck::id(), observation, now);
        }
    }

    async fn on_caught_up(&mut self, generation: u64) {
        if !self.caught_up {
            tracing::debug!("log files caught up");
            self.caught_up = true;
        }
        let (live, waiting) = std::mem::take(&mut self.reload_replies)
            .into_iter()
            .partition(|(wanted, _)| *wanted <= generation);
        self.reload_replies = waiting;
        for (_, reply) in live {
            let _ = reply.send(Response::Done);
        }
    }
}

/// A deadline on the boot clock as a tokio instant. Tokio's clock stops during suspend
/// where the boot clock does not: a deadline that falls during a suspend fires at the first
/// event after resume (the loop converts it again at every turn) or when the sleep runs out.
fn instant_of(deadline: Duration) -> Instant {
    Instant::now() + deadline.saturating_sub(clock::now().boot)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
