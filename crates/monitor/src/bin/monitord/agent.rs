//! The agent's loop: wires the watchers to the engine and the engine to the store.
//!
//! Everything that changes state happens on this one task, in the order events arrive, so
//! offsets, engine state and the alert history always agree. It sleeps until something
//! happens: a watcher event, a config change, a control request, the engine's next
//! deadline, or a batched checkpoint.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use monitor::FolderArgs;
use monitor_config::{load_settings, CheckDir, LogSource, Settings, SystemdBus};
use monitor_dbus::{SignalBus, SignalEvent, SignalWatchConfig};
use monitor_docker::{ContainerEvent, ContainerWatchConfig};
use monitor_engine::{Emitted, Engine, EngineSettings, Observation};
use monitor_logwatch::{
    CommandEvent, CommandWatchConfig, FilePosition, LogEvent, LogMatch, LogWatchConfig,
    WatchedCommand, WatchedFile,
};
use monitor_store::{AlertHistory, Outbox};
use monitor_systemd::{Bus, ServiceEvent, ServiceWatchConfig};
use monitor_wire::control::{AgentStatus, CheckState, CheckStatus, Request, Response};
use monitor_wire::{Alert, CheckId, Details, HistoryRecord, Level, Subject, Timestamp};
use notify::Watcher;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{self, Checkpoint};
use crate::control::{self, ControlRequest};
use crate::delivery::Delivery;
use crate::on_demand::OnDemand;
use crate::persist::Persister;
use crate::plan::{plan, Plan};
use crate::sd_notify::SystemdNotifier;

/// Offsets and extended expiries are saved this long after they change, in one write.
const CHECKPOINT_DELAY: Duration = Duration::from_secs(1);
/// Edits to check files settle for this long before they are read (an editor's
/// write-then-rename, `monitorctl create` then `enable`).
const RELOAD_DELAY: Duration = Duration::from_millis(50);
/// How long the watchers get to finish after shutdown begins.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

pub async fn run(folders: FolderArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config_dir = folders.config_dir.clone();
    let mut settings = load_settings(&config_dir).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}", list.join("\n"))
    })?;
    folders.apply(&mut settings);
    for folder in [&settings.state_dir, &settings.runtime_dir] {
        std::fs::create_dir_all(folder).with_context(|| {
            format!(
                "cannot create {}; create it or point the agent elsewhere",
                folder.display()
            )
        })?;
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
    recover_recent_alerts(&mut history, &checkpoint)?;
    let engine_settings = engine_settings(&settings);
    let engine = match checkpoint.engine {
        Some(snapshot) => Engine::restore(engine_settings, snapshot),
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
    recover_into_outbox(&mut outbox, &checkpoint.recent_alerts)?;
    let next_seq = history
        .last_seq()
        .max(outbox.last_seq())
        .map_or(1, |seq| seq + 1);
    let outbox = Arc::new(std::sync::Mutex::new(outbox));
    let (appended, appended_receiver) = watch::channel(0);
    let persister = Persister::start(
        settings.state_dir.clone(),
        history,
        outbox.clone(),
        appended,
    )?;
    let device_id = monitor::destinations::device_id(&settings);
    let mut agent = Agent {
        delivery: Delivery::new(outbox, appended_receiver, tasks.clone(), device_id.clone()),
        device_id,
        folders,
        settings,
        check_dir,
        engine,
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
        dead_commands: HashSet::new(),
        tasks: tasks.clone(),
        source_problems: HashMap::new(),
        restarts: HashMap::new(),
        notifier: SystemdNotifier::from_environment(),
        reload_replies: Vec::new(),
        log_generation: 0,
        started: Timestamp::now(),
    };
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
            _ = config_changed.notified() => {
                reload_at.get_or_insert_with(|| Instant::now() + RELOAD_DELAY);
            }
            _ = sleep_until(reload_at) => {
                reload_at = None;
                agent.reload().await;
            }
            _ = sleep_until(engine_wake) => {
                let emitted = agent.engine.advance(SystemTime::now());
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
    agent.save_checkpoint();
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
    dead_commands: HashSet<String>,
    /// Cancelled at shutdown; the parent of every watcher's token.
    tasks: CancellationToken,
    /// Service checks whose unit cannot be watched (not found, bad unit file), and why.
    source_problems: HashMap<CheckId, String>,
    /// When each `on_failure: restart` check last restarted its unit.
    restarts: HashMap<CheckId, Vec<SystemTime>>,
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

        let now = SystemTime::now();
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
                    Observation::Service { running, details },
                    SystemTime::now(),
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
        let now = SystemTime::now();
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
                        .map(|check| source_alert(check, &command, Level::Critical, &message, now))
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
                        .map(|check| source_alert(check, &command, Level::Ok, &message, now))
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
                let emitted = self.engine.observe(
                    &check,
                    Observation::Matched { details },
                    SystemTime::now(),
                );
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
        let now = SystemTime::now();
        let recent = self.restarts.entry(check.clone()).or_default();
        recent.retain(|at| now.duration_since(*at).unwrap_or_default() < policy.window);
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
                    Observation::Service { running, details },
                    SystemTime::now(),
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
                if let Some(position) = position {
                    self.positions.insert(path.clone(), position);
                    self.schedule_checkpoint();
                }
                self.observe_matches(matches, SystemTime::now());
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
    fn observe_matches(&mut self, matches: Vec<LogMatch>, now: SystemTime) {
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
            Request::Reload => Response::Error {
                message: "reload is answered once the watchers caught up".into(),
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
                if self.engine.view(&check).is_none() || self.plan.unwatched.contains_key(&check) {
                    return Response::Error {
                        message: format!(
                            "no watched check \"{check}\" is enabled; see monitorctl list"
                        ),
                    };
                }
                let emitted = self
                    .engine
                    .observe(&check, Observation::Clear, SystemTime::now());
                self.emit(emitted);
                Response::Done
            }
        }
    }

    fn check_statuses(&self) -> Vec<CheckStatus> {
        self.plan
            .enabled
            .iter()
            .map(|id| {
                let view = self.engine.view(id);
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
            .collect()
    }

    /// Record alerts: checkpoint first (so a crash cannot make them twice), then history.
    fn emit(&mut self, emitted: Vec<Emitted>) {
        if emitted.is_empty() {
            return;
        }
        let records: Vec<HistoryRecord> = emitted
            .into_iter()
            .map(|Emitted { check, alert }| {
                let seq = self.next_seq;
                self.next_seq += 1;
                tracing::info!(seq, check = %check, level = %alert.level, name = %alert.name, "alert");
                HistoryRecord { seq, check, alert }
            })
            .collect();
        self.recent_alerts.extend(records.iter().cloned());
        self.submit(records);
    }

    fn schedule_checkpoint(&mut self) {
        self.checkpoint_due
            .get_or_insert_with(|| Instant::now() + CHECKPOINT_DELAY);
    }

    fn save_checkpoint(&mut self) {
        self.submit(Vec::new());
    }

    /// Hand the current checkpoint, then `records`, to the writer thread.
    fn submit(&mut self, records: Vec<HistoryRecord>) {
        self.checkpoint_due = None;
        let appended = self.persister.appended_seq();
        self.recent_alerts.retain(|record| record.seq > appended);
        let checkpoint = Checkpoint {
            positions: self.positions.clone(),
            engine: Some(self.engine.snapshot()),
            recent_alerts: self.recent_alerts.clone(),
            ..Checkpoint::default()
        };
        self.persister.submit(checkpoint, records);
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

/// The alert about an `@command` source itself (not about what it printed).
fn source_alert(
    check: CheckId,
    command: &str,
    level: Level,
    message: &str,
    now: SystemTime,
) -> Emitted {
    let alert = Alert {
        name: format!("Log source @{command} stopped"),
        level,
        timestamp: Timestamp(now),
        subject: Subject {
            name: check.name.clone(),
            kind: "log".into(),
            status: if level == Level::Critical {
                "SOURCE_DOWN"
            } else {
                "SOURCE_UP"
            }
            .into(),
            details: Details {
                description: Some(message.to_owned()),
                ..Details::default()
            },
        },
    };
    Emitted { check, alert }
}

/// Alerts the last run recorded in its checkpoint but did not get into the outbox.
fn recover_into_outbox(outbox: &mut Outbox, recent: &[HistoryRecord]) -> anyhow::Result<()> {
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
        outbox.append(&missing, SystemTime::now())?;
    }
    Ok(())
}

/// Alerts the last run recorded in its checkpoint but did not get into the history.
fn recover_recent_alerts(
    history: &mut AlertHistory,
    checkpoint: &Checkpoint,
) -> anyhow::Result<()> {
    let last = history.last_seq().unwrap_or(0);
    let missing: Vec<HistoryRecord> = checkpoint
        .recent_alerts
        .iter()
        .filter(|record| record.seq > last)
        .cloned()
        .collect();
    if !missing.is_empty() {
        tracing::info!(
            count = missing.len(),
            "recording alerts that a crash kept from the history"
        );
        history.append(&missing)?;
    }
    Ok(())
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

fn instant_of(deadline: SystemTime) -> Instant {
    Instant::now()
        + deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
