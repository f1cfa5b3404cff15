//! The agent's loop: wires the watchers to the engine and the engine to the store.
//!
//! Everything that changes state happens on this one task, in the order events arrive, so
//! offsets, engine state and the alert history always agree. It sleeps until something
//! happens: a watcher event, a config change, a control request, the engine's next
//! deadline, or a batched checkpoint.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use monitor::FolderArgs;
use monitor_config::{load_settings, CheckDir, LogSource, Settings, SystemdBus};
use monitor_dbus::{SignalBus, SignalEvent, SignalWatchConfig};
use monitor_docker::{ContainerEvent, ContainerWatchConfig};
use monitor_engine::{Emitted, Engine, EngineSettings, Moment, Observation};
use monitor_logwatch::{
    CommandEvent, CommandWatchConfig, FilePosition, LogEvent, LogMatch, LogWatchConfig,
    WatchedCommand, WatchedFile,
};
use monitor_store::{AlertHistory, Durability, Outbox};
use monitor_systemd::{Bus, ServiceEvent, ServiceWatchConfig};
use monitor_wire::control::{AgentStatus, CheckState, CheckStatus, Request, Response};
use monitor_wire::{Alert, CheckId, Details, HistoryRecord, Level, Subject, Subsystem, Timestamp};
use notify::Watcher;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{self, Checkpoint};
use crate::clock;
use crate::control::{self, ControlRequest};
use crate::delivery::Delivery;
use crate::on_demand::OnDemand;
use crate::persist::{lock, Persister, SharedOutbox, StorageHealth, MAX_UNWRITTEN_ALERTS};
use crate::plan::{plan, Plan};
use crate::sd_notify::SystemdNotifier;

/// Edits to check files settle for this long before they are read (an editor's
/// write-then-rename, `monitorctl create` then `enable`).
const RELOAD_DELAY: Duration = Duration::from_millis(50);
/// How long the watchers get to finish after shutdown begins.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// How many of the newest alerts stay in memory for `monitorctl alerts --follow`.
const RECENT_IN_MEMORY: usize = 1000;
/// A clear is answered once durable, or after this long on a stalled disk.
const DURABLE_REPLY_WAIT: Duration = Duration::from_secs(5);
/// A follower with no news is answered (empty) after this long, and asks again.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);
/// At most this many followers wait at once.
const MAX_FOLLOWERS: usize = 64;
/// Alert numbers a checkpoint reserves beyond the newest it knows of: after a crash the
/// next alert is numbered past them, since the last run may have delivered alerts (from
/// memory) whose numbers never reached the disk.
const SEQ_RESERVE: u64 = 1_000_000;
/// The name of the agent's own check on its state folder (`monitor state_dir`).
const STATE_DIR_CHECK: &str = "state_dir";

pub async fn run(folders: FolderArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config_dir = folders.config_dir.clone();
    let mut settings = load_settings(&config_dir).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}", list.join("\n"))
    })?;
    folders.apply(&mut settings);
    for folder in [&settings.state_dir, &settings.runtime_dir] {
        monitor_store::create_private_folder(folder).with_context(|| {
            format!(
                "cannot create {} (private, 0700); create it or point the agent elsewhere",
                folder.display()
            )
        })?;
        crate::private::refuse_shared_location(folder)?;
    }
    let check_dir = CheckDir::new(&config_dir);
    for folder in [check_dir.available_dir(), check_dir.enabled_dir()] {
        if let Err(error) = std::fs::create_dir_all(&folder) {
            tracing::warn!(folder = %folder.display(), %error, "cannot create the check folder");
        }
    }

    let socket_path = monitor::socket_path(&settings.runtime_dir);
    let listener = control::bind(&socket_path)?;
    let mut history = AlertHistory::open(&settings.state_dir, settings.alert_history_max_bytes)?;
    let checkpoint = checkpoint::load(&settings.state_dir)?;
    let unrecorded = recover_recent_alerts(&mut history, &checkpoint);
    let engine_settings = engine_settings(&settings);
    let boot_id = clock::boot_id();
    let engine = match checkpoint.engine {
        Some(snapshot) => {
            Engine::restore(engine_settings, snapshot, clock::now(), boot_id.as_deref())
        }
        None => Engine::new(engine_settings),
    };

    let tasks = CancellationToken::new();
    let (log_configs, log_config_receiver) = mpsc::channel(4);
    // Bounded: a slow loop makes the log watcher wait, and the data waits in the files.
    let (log_event_sender, mut log_events) = mpsc::channel(256);
    // On a thread of its own: a read that blocks (NFS, a dying SD card) holds up the log
    // checks only, never this loop, its timers or the control socket.
    let log_watcher =
        monitor_logwatch::spawn(log_config_receiver, log_event_sender, tasks.clone())?;
    let (request_sender, mut requests) = mpsc::channel::<ControlRequest>(16);
    let control_server = tokio::spawn(control::serve(
        listener,
        socket_path.clone(),
        request_sender,
        tasks.clone(),
    ));
    // The service watcher starts with the first service check (a device without systemd
    // or D-Bus never tries to reach them); every incarnation sends on this one channel.
    let (service_event_sender, mut service_events) = mpsc::channel(256);
    let (signal_event_sender, mut signal_events) = mpsc::channel(256);
    let (command_event_sender, mut command_events) = mpsc::channel(256);
    let (container_event_sender, mut container_events) = mpsc::channel(256);
    let config_changed = Arc::new(Notify::new());
    let _config_watcher = watch_config(&config_dir, config_changed.clone());

    let limits = monitor_store::OutboxLimits {
        max_count: settings.delivery.alert_offline_store_max_count,
        max_age: settings.delivery.alert_store_max_record_age,
    };
    let mut outbox = Outbox::open(&settings.state_dir, limits)?;
    recover_into_outbox(&mut outbox, &checkpoint.recent_alerts);
    // Alerts delivered from memory may have numbers that a crash kept from the disk: a
    // checkpoint reserves numbers beyond what it knows of, so none is used twice.
    let next_seq = history
        .last_seq()
        .max(outbox.last_seq())
        .max(outbox.newest_taken())
        .map_or(1, |seq| seq + 1)
        .max(checkpoint.next_seq);
    let outbox = Arc::new(std::sync::Mutex::new(outbox));
    let (enqueued, enqueued_receiver) = watch::channel(0);
    let (storage_health_sender, mut storage_health) = watch::channel(Ok(()));
    let (checkpointed_sender, mut checkpointed) = watch::channel(0);
    let persister = Persister::start(
        settings.state_dir.clone(),
        history,
        outbox.clone(),
        storage_health_sender,
        checkpointed_sender,
        checkpoint.state_dir_unwritable.is_some(),
    )?;
    let device_id = monitor::destinations::device_id(&settings);
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
        emitted_recently: VecDeque::new(),
        followers: Vec::new(),
        state_dir_unwritable: checkpoint.state_dir_unwritable,
        durable_replies: Vec::new(),
        stopping: false,
        device_id,
        folders,
        settings,
        check_dir,
        engine,
        boot_id,
        plan: Plan::default(),
        positions: checkpoint.positions,
        next_seq,
        persister,
        recent_alerts: checkpoint.recent_alerts,
        early_requests: Vec::new(),
        checkpoint_due: None,
        caught_up: false,
        log_configs,
        service_event_sender,
        service_watcher: OnDemand::new("service"),
        signal_event_sender,
        signal_watcher: OnDemand::new("dbus"),
        command_event_sender,
        command_watcher: OnDemand::new("@command"),
        container_event_sender,
        container_watcher: OnDemand::new("container"),
        command_generation: 0,
        dead_commands: checkpoint.dead_commands,
        tasks: tasks.clone(),
        source_problems: HashMap::new(),
        restarts: HashMap::new(),
        notifier: SystemdNotifier::from_environment(),
        reload_replies: Vec::new(),
        log_generation: 0,
        started: Timestamp::now(),
    };
    agent.reserve_numbers();
    if !unrecorded.is_empty() {
        agent.submit(unrecorded, Durability::Durable);
    }
    agent.reload().await;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config_dir = %config_dir.display(),
        state_dir = %agent.settings.state_dir.display(),
        socket = %socket_path.display(),
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
            Some(event) = log_events.recv() => agent.on_log_event(event).await,
            Some(event) = service_events.recv() => agent.on_service_event(event).await,
            Some(event) = signal_events.recv() => agent.on_signal_event(event),
            Some(event) = command_events.recv() => agent.on_command_event(event),
            Some(event) = container_events.recv() => agent.on_container_event(event),
            Some((request, reply)) = requests.recv() => agent.on_request(request, reply).await,
            Ok(()) = storage_health.changed() => {
                let health = storage_health.borrow_and_update().clone();
                agent.on_storage_health(health);
            }
            _ = sleep_until(agent.followers_due()) => agent.answer_followers(),
            Ok(()) = checkpointed.changed() => agent.answer_durable_replies(),
            _ = sleep_until(agent.durable_replies_due()) => agent.answer_durable_replies(),
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
    let _ = tokio::time::timeout(STOP_DEADLINE, async {
        let _ = log_watcher.await;
        agent.service_watcher.finish().await;
        agent.signal_watcher.finish().await;
        agent.command_watcher.finish().await;
        agent.container_watcher.finish().await;
        let _ = control_server.await;
    })
    .await;
    while let Ok(event) = log_events.try_recv() {
        agent.on_log_event(event).await;
    }
    // Everything made so far is in this one: the next run numbers on from here exactly.
    agent.stopping = true;
    agent.submit(Vec::new(), Durability::Durable);
    agent.persister.finish();
    tracing::info!("monitord stopped");
    Ok(())
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
    positions: BTreeMap<PathBuf, FilePosition>,
    persister: Persister,
    next_seq: u64,
    /// Alerts not yet known to be durable in the history; every checkpoint carries them.
    recent_alerts: Vec<HistoryRecord>,
    /// Requests that arrived before the log watcher first caught up: answered then, so a
    /// client that sees an answer knows the checks are live.
    early_requests: Vec<(Request, oneshot::Sender<Response>)>,
    checkpoint_due: Option<Instant>,
    /// The log watcher has read what was written while the agent was down; until then
    /// expiries wait, so a match written meanwhile extends a CRITICAL instead of an OK and
    /// a new CRITICAL being sent.
    caught_up: bool,
    log_configs: mpsc::Sender<LogWatchConfig>,
    service_event_sender: mpsc::Sender<ServiceEvent>,
    /// Running while some service check is enabled.
    service_watcher: OnDemand<ServiceWatchConfig>,
    signal_event_sender: mpsc::Sender<SignalEvent>,
    /// Running while some dbus check is enabled.
    signal_watcher: OnDemand<SignalWatchConfig>,
    command_event_sender: mpsc::Sender<CommandEvent>,
    /// Running while some `@command` check is enabled.
    command_watcher: OnDemand<CommandWatchConfig>,
    command_generation: u64,
    container_event_sender: mpsc::Sender<ContainerEvent>,
    /// Running while some `service ... docker` check is enabled.
    container_watcher: OnDemand<ContainerWatchConfig>,
    /// Commands reported dead (once per failure streak) and not recovered yet.
    dead_commands: BTreeSet<String>,
    /// Alerts go to the destinations from here at once; `enqueued` wakes them.
    outbox: SharedOutbox,
    enqueued: watch::Sender<u64>,
    /// The newest alerts, for `monitorctl alerts --follow` before the disk has them.
    emitted_recently: VecDeque<HistoryRecord>,
    /// `Alerts` requests waiting for an alert newer than their `seq`, until their deadline.
    followers: Vec<(u64, Instant, oneshot::Sender<Response>)>,
    /// Why the state folder does not take writes, while the agent says so (CRITICAL sent).
    state_dir_unwritable: Option<String>,
    /// Answers that wait until a checkpoint with alerts up to this `seq` is written.
    durable_replies: Vec<(u64, Instant, oneshot::Sender<Response>, Response)>,
    /// Shutdown: the last checkpoint is being written.
    stopping: bool,
    /// Cancelled at shutdown; the parent of every watcher's token.
    tasks: CancellationToken,
    /// Service checks whose unit cannot be watched (not found, bad unit file), and why.
    source_problems: HashMap<CheckId, String>,
    /// When (on the boot clock) each `on_failure: restart` check last restarted its unit.
    restarts: HashMap<CheckId, Vec<Duration>>,
    notifier: SystemdNotifier,
    /// `Reload` requests answered once the watchers run the new config, so that when
    /// `monitorctl enable` returns the check is live.
    reload_replies: Vec<(u64, oneshot::Sender<Response>)>,
    /// Generation of the latest config sent to the log watcher.
    log_generation: u64,
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
        let plan = plan(&self.settings, self.check_dir.load());
        let known: HashSet<&String> = self.plan.problems.iter().collect();
        for problem in plan
            .problems
            .iter()
            .filter(|problem| !known.contains(problem))
        {
            tracing::error!("{problem}; this check is not watched until the file is fixed");
        }

        let now = clock::now();
        let mut emitted = Vec::new();
        for (id, spec) in &plan.engine_checks {
            emitted.extend(self.engine.configure(id.clone(), spec.clone(), now));
        }
        let wanted: HashSet<_> = plan
            .engine_checks
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        let removed: Vec<_> = self
            .engine
            .check_ids()
            .filter(|id| !wanted.contains(*id))
            .cloned()
            .collect();
        for id in removed {
            emitted.extend(self.engine.remove(&id, now));
        }

        self.positions
            .retain(|path, _| plan.log_files.contains_key(path));
        let files = plan
            .log_files
            .iter()
            .map(|(path, checks)| WatchedFile {
                path: path.clone(),
                checks: checks.clone(),
                resume: self.positions.get(path).copied(),
            })
            .collect();
        self.log_generation += 1;
        let config = LogWatchConfig {
            generation: self.log_generation,
            files,
        };
        if self.log_configs.send(config).await.is_err() {
            tracing::error!(
                "the log watcher stopped; log checks are not watched until monitord restarts"
            );
        }
        self.configure_service_watcher(&plan).await;
        self.configure_signal_watcher(&plan).await;
        self.configure_command_watcher(&plan).await;
        self.configure_container_watcher(&plan).await;
        self.delivery
            .configure(&self.settings, plan.config_push.clone());
        // Problems of sources that are still watched are kept; others are forgotten.
        self.source_problems.retain(|check, _| {
            plan.services.iter().any(|service| &service.check == check)
                || plan
                    .log_files
                    .values()
                    .flatten()
                    .any(|pattern| &pattern.check == check)
                || plan.signals.iter().any(|signal| &signal.check == check)
                || plan
                    .commands
                    .values()
                    .flatten()
                    .any(|pattern| &pattern.check == check)
                || plan
                    .containers
                    .iter()
                    .any(|container| &container.check == check)
        });
        self.dead_commands
            .retain(|command| plan.commands.contains_key(command));
        self.plan = plan;
        self.emit(emitted);
        self.schedule_checkpoint();
    }

    async fn configure_signal_watcher(&mut self, plan: &Plan) {
        let bus = match self.settings.dbus.bus.as_str() {
            "system" => SignalBus::System,
            "session" => SignalBus::Session,
            address => SignalBus::Address(address.to_owned()),
        };
        let config = (!plan.signals.is_empty()).then(|| SignalWatchConfig {
            bus,
            signals: plan.signals.clone(),
        });
        let events = self.signal_event_sender.clone();
        self.signal_watcher
            .configure(config, &self.tasks, |configs, stop| {
                monitor_dbus::run(configs, events, stop)
            })
            .await;
    }

    async fn configure_container_watcher(&mut self, plan: &Plan) {
        let mut config = None;
        if !plan.containers.is_empty() {
            match monitor_docker::Engine::from_env() {
                Ok(engine) => {
                    config = Some(ContainerWatchConfig {
                        engine,
                        containers: plan.containers.clone(),
                    })
                }
                Err(error) => {
                    for container in &plan.containers {
                        self.source_problems
                            .insert(container.check.clone(), error.to_string());
                    }
                    tracing::error!("{error}; container checks are not watched");
                }
            }
        }
        let events = self.container_event_sender.clone();
        self.container_watcher
            .configure(config, &self.tasks, |configs, stop| {
                monitor_docker::run(configs, events, stop)
            })
            .await;
    }

    fn on_container_event(&mut self, event: ContainerEvent) {
        match event {
            ContainerEvent::State {
                check,
                running,
                status,
            } => {
                self.source_problems.remove(&check);
                let details = status.details();
                let emitted = self.engine.observe(
                    &check,
                    Observation::Condition {
                        holds: !running,
                        details,
                    },
                    clock::now(),
                );
                self.emit(emitted);
            }
            ContainerEvent::Problem { check, message } => self.report_problem(check, message),
            ContainerEvent::Connected => tracing::info!("connected to the Docker engine"),
            ContainerEvent::Disconnected { reason } => {
                tracing::warn!("lost the Docker engine ({reason}); reconnecting")
            }
        }
    }

    async fn configure_command_watcher(&mut self, plan: &Plan) {
        self.command_generation += 1;
        let config = (!plan.commands.is_empty()).then(|| CommandWatchConfig {
            generation: self.command_generation,
            commands: plan
                .commands
                .iter()
                .map(|(command, checks)| WatchedCommand {
                    command: command.clone(),
                    checks: checks.clone(),
                    reported_down: self.dead_commands.contains(command),
                })
                .collect(),
        });
        let events = self.command_event_sender.clone();
        self.command_watcher
            .configure(config, &self.tasks, |configs, stop| {
                monitor_logwatch::run_commands(configs, events, stop)
            })
            .await;
    }

    /// The checks that read `command`'s output.
    fn checks_of_command(&self, command: &str) -> Vec<CheckId> {
        self.plan
            .commands
            .get(command)
            .map(|checks| checks.iter().map(|check| check.check.clone()).collect())
            .unwrap_or_default()
    }

    fn on_command_event(&mut self, event: CommandEvent) {
        let now = clock::now();
        match event {
            CommandEvent::Matched { matches, .. } => self.observe_matches(matches, now),
            // A source that died is a problem to report, once per failure streak: a CRITICAL
            // for each check reading it, and its OK when it runs again.
            CommandEvent::Died {
                command,
                reason,
                retry_in,
            } => {
                tracing::warn!(command = %command, retry_in = ?retry_in, "the command of an @command check stopped: {reason}");
                let message = format!(
                    "@{command} stopped: {reason}; restarting it in {}s",
                    retry_in.as_secs().max(1)
                );
                let checks = self.checks_of_command(&command);
                for check in &checks {
                    self.source_problems.insert(check.clone(), message.clone());
                }
                if self.dead_commands.insert(command.clone()) {
                    let emitted = checks
                        .into_iter()
                        .map(|check| {
                            source_alert(check, &command, Level::Critical, &message, now.wall)
                        })
                        .collect();
                    self.emit(emitted);
                }
            }
            CommandEvent::Recovered { command } => {
                tracing::info!(command = %command, "the command of an @command check runs again");
                let checks = self.checks_of_command(&command);
                for check in &checks {
                    self.source_problems.remove(check);
                }
                if self.dead_commands.remove(&command) {
                    let message = format!("@{command} runs again");
                    let emitted = checks
                        .into_iter()
                        .map(|check| source_alert(check, &command, Level::Ok, &message, now.wall))
                        .collect();
                    self.emit(emitted);
                }
            }
            CommandEvent::Applied { .. } => {}
        }
    }

    fn on_signal_event(&mut self, event: SignalEvent) {
        match event {
            SignalEvent::Matched { check, details, .. } => {
                let emitted =
                    self.engine
                        .observe(&check, Observation::Matched { details }, clock::now());
                self.emit(emitted);
            }
            SignalEvent::Problem { check, message } => self.report_problem(check, message),
            SignalEvent::Connected => tracing::info!("listening for D-Bus signals"),
            SignalEvent::Disconnected { reason } => {
                tracing::warn!("lost the D-Bus connection for signals ({reason}); reconnecting")
            }
        }
    }

    async fn configure_service_watcher(&mut self, plan: &Plan) {
        let config = (!plan.services.is_empty()).then(|| ServiceWatchConfig {
            bus: match self.settings.systemd.bus {
                SystemdBus::System => Bus::System,
                SystemdBus::User => Bus::Session,
            },
            services: plan.services.clone(),
        });
        let events = self.service_event_sender.clone();
        self.service_watcher
            .configure(config, &self.tasks, |configs, stop| {
                monitor_systemd::run(configs, events, stop)
            })
            .await;
    }

    /// A check whose source cannot be watched (a missing unit or container, a bad match
    /// rule, a dead command): shown in `status`, logged once per distinct message.
    fn report_problem(&mut self, check: CheckId, message: String) {
        if self.source_problems.get(&check) != Some(&message) {
            tracing::warn!(check = %check, "{message}");
        }
        self.source_problems.insert(check, message);
    }

    /// `on_failure: restart`: restart the unit, at most `max_restarts` times per `window`.
    fn remediate(&mut self, check: &CheckId) {
        let Some((unit, policy)) = self.plan.restarts.get(check).cloned() else {
            return;
        };
        // The boot clock: a wall clock set by NTP meanwhile neither forgets nor keeps restarts.
        let now = clock::now().boot;
        let recent = self.restarts.entry(check.clone()).or_default();
        recent.retain(|at| now.saturating_sub(*at) < policy.window);
        if recent.len() >= policy.max_restarts as usize {
            tracing::error!(check = %check, %unit, "not restarting the unit: {} restarts within {:?} already (on_failure.max_restarts)", recent.len(), policy.window);
            return;
        }
        recent.push(now);
        tracing::warn!(check = %check, %unit, attempt = recent.len(), "unit is not running; restarting it (on_failure: restart)");
        let user = self.settings.systemd.bus == SystemdBus::User;
        tokio::spawn(async move {
            let mut command = tokio::process::Command::new("systemctl");
            if user {
                command.arg("--user");
            }
            command
                .args(["restart", "--no-block", &unit])
                .kill_on_drop(true);
            match tokio::time::timeout(Duration::from_secs(30), command.output()).await {
                Ok(Ok(output)) if output.status.success() => {}
                Ok(Ok(output)) => {
                    tracing::error!(%unit, "systemctl restart failed: {}", String::from_utf8_lossy(&output.stderr).trim())
                }
                Ok(Err(error)) => {
                    tracing::error!(%unit, %error, "cannot run systemctl to restart the unit")
                }
                Err(_) => tracing::error!(%unit, "systemctl restart took longer than 30 s"),
            }
        });
    }

    async fn on_service_event(&mut self, event: ServiceEvent) {
        match event {
            ServiceEvent::State {
                check,
                running,
                status,
            } => {
                if !running && status.load_state == "loaded" {
                    self.remediate(&check);
                }
                if status.load_state == "loaded" && self.source_problems.remove(&check).is_some() {
                    tracing::info!(check = %check, unit = %status.unit, "unit is loaded now");
                }
                let mut details = status.details();
                if !running {
                    let user = self.settings.systemd.bus == SystemdBus::User;
                    let lines = recent_journal(&status.unit, user).await;
                    if !lines.is_empty() {
                        details.fields.insert("journal".into(), lines.into());
                    }
                }
                let emitted = self.engine.observe(
                    &check,
                    Observation::Condition {
                        holds: !running,
                        details,
                    },
                    clock::now(),
                );
                self.emit(emitted);
            }
            ServiceEvent::Problem { check, message } => self.report_problem(check, message),
            ServiceEvent::Connected => tracing::info!("connected to systemd"),
            ServiceEvent::Disconnected { reason } => {
                tracing::warn!("lost the connection to systemd ({reason}); reconnecting")
            }
        }
    }

    async fn on_log_event(&mut self, event: LogEvent) {
        match event {
            LogEvent::CaughtUp { generation } => {
                if !self.caught_up {
                    tracing::debug!("log files caught up");
                }
                let first = !self.caught_up;
                self.caught_up = true;
                if first {
                    self.notifier.ready();
                    for (request, reply) in std::mem::take(&mut self.early_requests) {
                        self.on_request(request, reply).await;
                    }
                }
                let (live, waiting) = std::mem::take(&mut self.reload_replies)
                    .into_iter()
                    .partition(|(wanted, _)| *wanted <= generation);
                self.reload_replies = waiting;
                for (_, reply) in live {
                    let _ = reply.send(Response::Done);
                }
            }
            LogEvent::Read {
                path,
                position,
                matches,
            } => {
                let mut new_file = false;
                if let Some(position) = position {
                    let previous = self.positions.insert(path.clone(), position);
                    // A file followed for the first time, or another file at the path (a
                    // rotation): saved at once, or a crash before the next interval would
                    // start it from its end again and skip the lines written meanwhile.
                    new_file = previous.is_none_or(|previous| {
                        (previous.device, previous.inode) != (position.device, position.inode)
                    });
                    self.schedule_checkpoint();
                }
                self.observe_matches(matches, clock::now());
                if new_file && self.checkpoint_due.is_some() {
                    self.save_checkpoint();
                }
            }
            // Already logged by the watcher: shown in `status` for every check on the path.
            LogEvent::Problem { path, message } => {
                for pattern in self.plan.log_files.get(&path).into_iter().flatten() {
                    self.source_problems
                        .insert(pattern.check.clone(), message.clone());
                }
            }
            LogEvent::ProblemResolved { path } => {
                for pattern in self.plan.log_files.get(&path).into_iter().flatten() {
                    self.source_problems.remove(&pattern.check);
                }
            }
        }
    }

    /// Lines that matched (from a file or a command) go to the engine, one check each.
    fn observe_matches(&mut self, matches: Vec<LogMatch>, now: Moment) {
        let mut emitted = Vec::new();
        for found in matches {
            let check = found.check.clone();
            let details = self.match_details(found);
            emitted.extend(
                self.engine
                    .observe(&check, Observation::Matched { details }, now),
            );
        }
        self.emit(emitted);
    }

    fn match_details(&self, found: LogMatch) -> Details {
        let mut details = Details {
            description: None,
            line_matching: Some(found.line),
            lines_before: found.before,
            lines_after: found.after,
            fields: Default::default(),
        };
        let extras = self.plan.log_checks.get(&found.check);
        match extras.map(|extras| &extras.source) {
            Some(LogSource::File(path)) => {
                details
                    .fields
                    .insert("path".into(), path.display().to_string().into());
            }
            Some(LogSource::Command(command)) => {
                details
                    .fields
                    .insert("command".into(), command.clone().into());
            }
            None => {}
        }
        let template = self
            .plan
            .log_checks
            .get(&found.check)
            .and_then(|extras| extras.details_template.as_ref());
        if let (Some(template), Some(line)) = (template, &details.line_matching) {
            details.fields.insert(
                "message".into(),
                template.replace("%line_matching", &line.data).into(),
            );
        }
        details
    }

    async fn on_request(&mut self, request: Request, reply: oneshot::Sender<Response>) {
        if !self.caught_up {
            self.early_requests.push((request, reply));
            return;
        }
        if let Request::Reload = request {
            self.reload().await;
            self.reload_replies.push((self.log_generation, reply));
            return;
        }
        if let Request::Alerts { after, wait } = request {
            self.on_follow(after, wait, reply);
            return;
        }
        // A clear is a person's word, which no log line or unit repeats after a crash: it
        // is answered once it is in a written checkpoint (or after a few seconds on a
        // stalled disk; its OK was delivered either way).
        if matches!(request, Request::Clear { .. }) {
            let before = self.next_seq;
            let response = self.answer(request);
            let newest = self.next_seq - 1;
            if self.next_seq > before && newest > self.persister.checkpointed_seq() {
                let deadline = Instant::now() + DURABLE_REPLY_WAIT;
                self.durable_replies
                    .push((newest, deadline, reply, response));
            } else {
                let _ = reply.send(response);
            }
            return;
        }
        let _ = reply.send(self.answer(request));
    }

    fn answer(&mut self, request: Request) -> Response {
        match request {
            Request::Status => Response::Status {
                agent: AgentStatus {
                    version: env!("CARGO_PKG_VERSION").into(),
                    device_id: self.device_id.clone(),
                    pid: std::process::id(),
                    started: self.started,
                },
                checks: self.check_statuses(),
                problems: self.plan.problems.clone(),
            },
            Request::Pending => Response::Pending {
                destinations: self.delivery.statuses(),
            },
            Request::Reload | Request::Alerts { .. } => Response::Error {
                message: "answered once the watchers caught up".into(),
            },
            Request::Record { check, unit, alert } => {
                if self
                    .plan
                    .services
                    .iter()
                    .any(|service| service.unit == unit)
                {
                    tracing::debug!(%unit, "a failure reported from outside for a unit the agent watches itself; not recorded twice");
                    return Response::Done;
                }
                tracing::info!(%unit, "recording a failure reported by monitorctl notify-failure");
                self.emit(vec![Emitted {
                    check,
                    alert: *alert,
                }]);
                Response::Done
            }
            Request::Clear { check } => {
                let now = clock::now();
                if self.engine.view(&check, now).is_none()
                    || self.plan.unwatched.contains_key(&check)
                {
                    return Response::Error {
                        message: format!(
                            "no watched check \"{check}\" is enabled; see monitorctl list"
                        ),
                    };
                }
                let emitted = self.engine.observe(&check, Observation::Clear, now);
                self.emit(emitted);
                Response::Done
            }
        }
    }

    fn check_statuses(&self) -> Vec<CheckStatus> {
        // The agent's own check shows while it has something to say.
        let state_dir = self
            .state_dir_unwritable
            .as_ref()
            .map(|reason| CheckStatus {
                check: CheckId::new(Subsystem::Monitor, STATE_DIR_CHECK),
                state: CheckState::Critical,
                since: None,
                expires: None,
                detail: Some(reason.clone()),
            });
        let now = clock::now();
        let checks: Vec<CheckStatus> = self
            .plan
            .enabled
            .iter()
            .map(|id| {
                let view = self.engine.view(id, now);
                let unwatched = self.plan.unwatched.get(id);
                let problem = self.source_problems.get(id);
                let state = match (&view, unwatched, problem) {
                    (_, Some(_), _) => CheckState::Unknown,
                    (_, None, Some(_)) => CheckState::Error,
                    (Some(view), None, None) => view.state,
                    (None, None, None) => CheckState::Unknown,
                };
                let detail = unwatched.or(problem).cloned().or_else(|| {
                    let log = self
                        .plan
                        .log_checks
                        .get(id)
                        .map(|extras| match &extras.source {
                            LogSource::File(path) => format!("following {}", path.display()),
                            LogSource::Command(command) => {
                                format!("reading the output of @{command}")
                            }
                        });
                    let service = self
                        .plan
                        .services
                        .iter()
                        .find(|service| &service.check == id)
                        .map(|service| {
                            format!(
                                "unit {} on the {} bus",
                                service.unit,
                                match self.settings.systemd.bus {
                                    SystemdBus::System => "system",
                                    SystemdBus::User => "user",
                                }
                            )
                        });
                    log.or(service)
                });
                CheckStatus {
                    check: id.clone(),
                    state,
                    since: view.as_ref().and_then(|view| view.since).map(Timestamp),
                    expires: view.as_ref().and_then(|view| view.expires).map(Timestamp),
                    detail,
                }
            })
            .collect();
        [checks, state_dir.into_iter().collect()].concat()
    }

    /// Record alerts: to the destinations and followers from memory at once; then the
    /// checkpoint (so a crash cannot make them twice), the history and the outbox's file,
    /// on the persist thread.
    fn emit(&mut self, emitted: Vec<Emitted>) {
        if emitted.is_empty() {
            return;
        }
        // Timestamps from a wall clock not set yet (a Pi before NTP) may be decades off.
        let clock_unsynchronized = clock::synchronized() == Some(false);
        let records: Vec<HistoryRecord> = emitted
            .into_iter()
            .map(|Emitted { check, mut alert }| {
                if clock_unsynchronized {
                    alert
                        .subject
                        .details
                        .fields
                        .insert(clock::CLOCK_SYNCHRONIZED_FIELD.into(), false.into());
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                tracing::info!(seq, check = %check, level = %alert.level, name = %alert.name, "alert");
                HistoryRecord { seq, check, alert }
            })
            .collect();
        let newest = records.last().map_or(0, |record| record.seq);
        lock(&self.outbox).enqueue(&records, SystemTime::now());
        self.enqueued.send_replace(newest);
        self.emitted_recently.extend(records.iter().cloned());
        let over = self.emitted_recently.len().saturating_sub(RECENT_IN_MEMORY);
        self.emitted_recently.drain(..over);
        self.answer_followers();
        self.recent_alerts.extend(records.iter().cloned());
        self.submit(records, Durability::Durable);
    }

    /// Offsets that made no alert: saved within `checkpoint_interval`, since a restart
    /// that reads those lines again makes the same alerts (none).
    fn schedule_checkpoint(&mut self) {
        let interval = self.settings.checkpoint_interval;
        self.checkpoint_due
            .get_or_insert_with(|| Instant::now() + interval);
    }

    fn save_checkpoint(&mut self) {
        self.submit(Vec::new(), Durability::ContentOnly);
    }

    /// Hand the current checkpoint, then `records`, to the writer thread.
    fn submit(&mut self, records: Vec<HistoryRecord>, durability: Durability) {
        self.checkpoint_due = None;
        let checkpoint = self.checkpoint();
        self.persister
            .submit(checkpoint, durability, records, self.next_seq - 1);
    }

    fn checkpoint(&mut self) -> Checkpoint {
        let appended = self.persister.appended_seq();
        self.recent_alerts.retain(|record| record.seq > appended);
        let over = self
            .recent_alerts
            .len()
            .saturating_sub(MAX_UNWRITTEN_ALERTS);
        self.recent_alerts.drain(..over);
        Checkpoint {
            positions: self.positions.clone(),
            engine: Some(self.engine.snapshot(clock::now(), self.boot_id.as_deref())),
            recent_alerts: self.recent_alerts.clone(),
            dead_commands: self.dead_commands.clone(),
            state_dir_unwritable: self.state_dir_unwritable.clone(),
            next_seq: self.next_seq + if self.stopping { 0 } else { SEQ_RESERVE },
            ..Checkpoint::default()
        }
    }

    /// Before anything is delivered, a checkpoint that reserves the alert numbers this run
    /// will use: alerts go out before they are written, and a crash before the next
    /// checkpoint must not let the run after it number other alerts alike.
    fn reserve_numbers(&mut self) {
        let checkpoint = self.checkpoint();
        if let Err(error) =
            checkpoint::save(&self.settings.state_dir, &checkpoint, Durability::Durable)
        {
            tracing::warn!("{error:#}; the writer thread tries again");
            self.persister.submit(
                checkpoint,
                Durability::Durable,
                Vec::new(),
                self.next_seq - 1,
            );
        }
    }

    /// The state folder stopped or started taking writes: the agent's own CRITICAL or OK.
    fn on_storage_health(&mut self, health: StorageHealth) {
        let now = SystemTime::now();
        let alert = match (health, &self.state_dir_unwritable) {
            (Err(reason), None) => {
                let message = format!(
                    "{} does not take writes: {reason}; alerts are still delivered, and up to {MAX_UNWRITTEN_ALERTS} wait in memory for the history. Free space or repair the disk",
                    self.settings.state_dir.display()
                );
                self.state_dir_unwritable = Some(message.clone());
                state_dir_alert(Level::Critical, message, now)
            }
            (Ok(()), Some(_)) => {
                self.state_dir_unwritable = None;
                let message = format!("{} takes writes again", self.settings.state_dir.display());
                state_dir_alert(Level::Ok, message, now)
            }
            _ => return,
        };
        self.emit(vec![alert]);
    }

    /// Answer the requests whose alerts are in a written checkpoint, or that waited long
    /// enough.
    fn answer_durable_replies(&mut self) {
        let durable = self.persister.checkpointed_seq();
        let now = Instant::now();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.durable_replies)
            .into_iter()
            .partition(|(seq, deadline, _, _)| *seq <= durable || *deadline <= now);
        self.durable_replies = waiting;
        for (_, _, reply, response) in ready {
            let _ = reply.send(response);
        }
    }

    fn durable_replies_due(&self) -> Option<Instant> {
        self.durable_replies
            .iter()
            .map(|(_, deadline, _, _)| *deadline)
            .min()
    }

    fn on_follow(&mut self, after: u64, wait: bool, reply: oneshot::Sender<Response>) {
        if !wait {
            let records = self.alerts_after(after);
            let _ = reply.send(Response::Alerts { records });
            return;
        }
        self.followers.retain(|(_, _, reply)| !reply.is_closed());
        if self.followers.len() >= MAX_FOLLOWERS {
            let _ = reply.send(Response::Error {
                message: format!("more than {MAX_FOLLOWERS} clients follow the alerts; stop some `monitorctl alerts --follow`"),
            });
            return;
        }
        self.followers
            .push((after, Instant::now() + FOLLOW_WAIT, reply));
        self.answer_followers();
    }

    /// Answer the followers that have news, and those that waited long enough (empty).
    fn answer_followers(&mut self) {
        let now = Instant::now();
        let newest = self.emitted_recently.back().map_or(0, |record| record.seq);
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.followers)
            .into_iter()
            .partition(|(after, deadline, _)| newest > *after || *deadline <= now);
        self.followers = waiting;
        for (after, _, reply) in ready {
            let records = self.alerts_after(after);
            let _ = reply.send(Response::Alerts { records });
        }
    }

    /// The alerts in memory newer than `after`.
    fn alerts_after(&self, after: u64) -> Vec<HistoryRecord> {
        self.emitted_recently
            .iter()
            .filter(|record| record.seq > after)
            .cloned()
            .collect()
    }

    fn followers_due(&self) -> Option<Instant> {
        self.followers
            .iter()
            .map(|(_, deadline, _)| *deadline)
            .min()
    }
}

/// The unit's last journal lines, when journald runs: what a person reads first. Bounded
/// in time so a slow journal never holds an alert back for long; without journald (or
/// `journalctl`) there are none, at no cost.
async fn recent_journal(unit: &str, user: bool) -> Vec<String> {
    const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
    const JOURNAL_LINES: &str = "10";
    const JOURNAL_DEADLINE: Duration = Duration::from_millis(300);
    if !std::path::Path::new(JOURNAL_SOCKET).exists() {
        return Vec::new();
    }
    let mut command = tokio::process::Command::new("journalctl");
    if user {
        command.arg("--user");
    }
    command
        .args([
            "--unit",
            unit,
            "--lines",
            JOURNAL_LINES,
            "--output",
            "short-iso",
            "--no-pager",
            "--quiet",
        ])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(JOURNAL_DEADLINE, command.output()).await {
        Ok(Ok(output)) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// An alert the agent makes itself, about a condition rather than a match: what the
/// condition is called, and its subject's status while it holds and once it is over.
struct ConditionAlert<'a> {
    check: CheckId,
    name: String,
    kind: &'a str,
    statuses: [&'a str; 2],
}

impl ConditionAlert<'_> {
    fn at(self, level: Level, message: String, now: SystemTime) -> Emitted {
        let [holds, over] = self.statuses;
        let alert = Alert {
            name: self.name,
            level,
            timestamp: Timestamp(now),
            subject: Subject {
                name: self.check.name.clone(),
                kind: self.kind.into(),
                status: if level == Level::Critical {
                    holds
                } else {
                    over
                }
                .into(),
                details: Details {
                    description: Some(message),
                    ..Details::default()
                },
            },
        };
        Emitted {
            check: self.check,
            alert,
        }
    }
}

/// The alert about an `@command` source itself (not about what it printed).
fn source_alert(
    check: CheckId,
    command: &str,
    level: Level,
    message: &str,
    now: SystemTime,
) -> Emitted {
    ConditionAlert {
        check,
        name: format!("Log source @{command} stopped"),
        kind: "log",
        statuses: ["SOURCE_DOWN", "SOURCE_UP"],
    }
    .at(level, message.to_owned(), now)
}

/// The agent's own alert about its state folder (check `monitor state_dir`).
fn state_dir_alert(level: Level, message: String, now: SystemTime) -> Emitted {
    ConditionAlert {
        check: CheckId::new(Subsystem::Monitor, STATE_DIR_CHECK),
        name: "Monitor state folder not writable".into(),
        kind: "monitor",
        statuses: ["NOT_WRITABLE", "WRITABLE"],
    }
    .at(level, message, now)
}

/// Alerts the last run recorded in its checkpoint but did not get into the outbox. On a
/// disk that refuses them they stay in memory, and the writer thread writes them later.
fn recover_into_outbox(outbox: &mut Outbox, recent: &[HistoryRecord]) {
    let last = outbox.last_seq().unwrap_or(0);
    let missing: Vec<HistoryRecord> = recent
        .iter()
        .filter(|record| record.seq > last)
        .cloned()
        .collect();
    if !missing.is_empty() {
        tracing::info!(
            count = missing.len(),
            "queueing alerts that a crash kept from the outbox"
        );
        if let Err(error) = outbox.append(&missing, SystemTime::now()) {
            tracing::warn!("{error:#}; they wait in memory and are written later");
        }
    }
}

/// Alerts the last run recorded in its checkpoint but did not get into the history; those
/// a full or failing disk refuses now are returned, for the writer thread.
fn recover_recent_alerts(
    history: &mut AlertHistory,
    checkpoint: &Checkpoint,
) -> Vec<HistoryRecord> {
    let last = history.last_seq().unwrap_or(0);
    let missing: Vec<HistoryRecord> = checkpoint
        .recent_alerts
        .iter()
        .filter(|record| record.seq > last)
        .cloned()
        .collect();
    if missing.is_empty() {
        return missing;
    }
    tracing::info!(
        count = missing.len(),
        "recording alerts that a crash kept from the history"
    );
    match history.append(&missing) {
        Ok(()) => Vec::new(),
        Err(error) => {
            tracing::warn!("{error:#}; they wait in memory and are written later");
            missing
        }
    }
}

fn engine_settings(settings: &Settings) -> EngineSettings {
    EngineSettings {
        flapping_interval: settings.flapping_interval,
        flapping_count_threshold: settings.flapping_count_threshold,
        alert_log_max_age: settings.alert_log_max_age,
    }
}

/// Watch the config folder (recursively: available/ and enabled/ included).
fn watch_config(
    config_dir: &std::path::Path,
    changed: Arc<Notify>,
) -> Option<notify::RecommendedWatcher> {
    let mut watcher = match notify::recommended_watcher(
        // Our own reads of the check files make access events: only changes count.
        move |event: notify::Result<notify::Event>| match event {
            Ok(event) if monitor_logwatch::is_read_only_access(&event.kind) => {}
            _ => changed.notify_one(),
        },
    ) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(%error, "cannot watch the config folder; changes need `monitorctl` or a restart");
            return None;
        }
    };
    if let Err(error) = watcher.watch(config_dir, notify::RecursiveMode::Recursive) {
        tracing::warn!(folder = %config_dir.display(), %error, "cannot watch the config folder; changes need `monitorctl` or a restart");
        return None;
    }
    Some(watcher)
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
