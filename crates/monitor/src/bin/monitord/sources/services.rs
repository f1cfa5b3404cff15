//! systemd units (`service` checks): one D-Bus connection, run while some such check is
//! enabled. A unit found down gets its journal lines, and is restarted when its check says
//! `on_failure: restart`, both here, off the loop. The states of a check on every unit
//! become the states of one subject per unit (`agent/failed_units.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monitor_config::{RestartPolicy, SystemdBus};
use monitor_source::{SourceEvent, SourceKind, WatchedStatus, WatcherEvent};
use monitor_systemd::{Bus, ServiceEvent, ServiceWatchConfig};
use monitor_wire::CheckId;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::on_demand::OnDemand;
use super::source::{
    state_events, watcher_event, with_forwarder, Boxed, Connection, Context, ProblemLog, Source,
};
use crate::agent::failed_units::unit_subject;
use crate::clock;

const SYSTEMD: Connection = Connection {
    source: SourceKind::Units,
    connected: "connected to systemd",
    lost: "the connection to systemd",
};

/// Per check that restarts its unit: the unit and how often.
type RestartPolicies = Arc<HashMap<CheckId, (String, RestartPolicy)>>;

pub struct Services {
    events: mpsc::Sender<SourceEvent>,
    tasks: CancellationToken,
    /// Running while some service check is enabled.
    watcher: OnDemand<ServiceWatchConfig>,
    /// The checks that restart their unit, as the forwarder reads them.
    restarts: watch::Sender<RestartPolicies>,
    /// The checks on every unit, as the forwarder reads them.
    every_unit: watch::Sender<Arc<HashSet<CheckId>>>,
    /// When (on the boot clock) each `on_failure: restart` check last restarted its unit;
    /// kept while the watcher stops and starts again.
    restarted: Arc<Mutex<HashMap<CheckId, Vec<Duration>>>>,
}

impl Services {
    pub fn new(events: mpsc::Sender<SourceEvent>, tasks: &CancellationToken) -> Services {
        Services {
            events,
            tasks: tasks.clone(),
            watcher: OnDemand::new("service"),
            restarts: watch::channel(Arc::default()).0,
            every_unit: watch::channel(Arc::default()).0,
            restarted: Arc::default(),
        }
    }
}

impl Source for Services {
    fn configure<'a>(&'a mut self, context: &'a Context<'a>) -> Boxed<'a, Vec<SourceEvent>> {
        Box::pin(async move {
            let bus = match context.settings.systemd.bus {
                SystemdBus::System => Bus::System,
                SystemdBus::User => Bus::Session,
            };
            self.restarts
                .send_replace(Arc::new(context.plan.restarts.clone()));
            self.every_unit.send_replace(Arc::new(
                context
                    .plan
                    .failed_units
                    .iter()
                    .map(|watch| watch.check.clone())
                    .collect(),
            ));
            let watched =
                !context.plan.services.is_empty() || !context.plan.failed_units.is_empty();
            let config = watched.then(|| ServiceWatchConfig {
                bus,
                services: context.plan.services.clone(),
                failed_units: context.plan.failed_units.clone(),
            });
            let events = self.events.clone();
            let restarts = self.restarts.subscribe();
            let every_unit = self.every_unit.subscribe();
            let restarted = self.restarted.clone();
            self.watcher
                .configure(config, &self.tasks, move |configs, stop| {
                    let forwarder = Forwarder {
                        bus,
                        restarts,
                        every_unit,
                        restarted,
                        problems: ProblemLog::default(),
                    };
                    with_forwarder(
                        |raw| monitor_systemd::run(configs, raw, stop),
                        |raw| forwarder.run(raw, events),
                    )
                })
                .await;
            Vec::new()
        })
    }

    fn finish(&mut self) -> Boxed<'_, ()> {
        Box::pin(self.watcher.finish())
    }
}

struct Forwarder {
    bus: Bus,
    restarts: watch::Receiver<RestartPolicies>,
    every_unit: watch::Receiver<Arc<HashSet<CheckId>>>,
    restarted: Arc<Mutex<HashMap<CheckId, Vec<Duration>>>>,
    /// Checks whose unit could not be loaded, as reported.
    problems: ProblemLog,
}

impl Forwarder {
    async fn run(
        mut self,
        mut raw: mpsc::Receiver<ServiceEvent>,
        events: mpsc::Sender<SourceEvent>,
    ) {
        while let Some(event) = raw.recv().await {
            for event in self.service_event(event).await {
                if events.send(event).await.is_err() {
                    return;
                }
            }
        }
    }

    /// A unit's state is mapped here: a loaded unit found down is restarted if its check
    /// says so, and a down's details get the unit's journal lines. Anything else is mapped
    /// as for every watcher.
    async fn service_event(&mut self, event: ServiceEvent) -> Vec<SourceEvent> {
        let WatcherEvent::State {
            check,
            running,
            status,
        } = event
        else {
            return watcher_event(&mut self.problems, &SYSTEMD, event);
        };
        // A check on every unit: each unit is a subject of its own.
        let check = if self.every_unit.borrow().contains(&check) {
            unit_subject(&check, &status.unit)
        } else {
            check
        };
        let found = status.found();
        if found {
            if !running {
                self.remediate(&check);
            }
            if self.problems.resolved(&check) {
                tracing::info!(check = %check, unit = %status.unit, "unit is loaded now");
            }
        }
        let mut details = status.details();
        if !running {
            let lines = monitor_systemd::recent_journal(&status.unit, self.bus).await;
            if !lines.is_empty() {
                details.fields.insert("journal".into(), lines.into());
            }
        }
        state_events(check, running, found, details)
    }

    /// `on_failure: restart`: restart the unit, at most `max_restarts` times per `window`.
    fn remediate(&mut self, check: &CheckId) {
        let Some((unit, policy)) = self.restarts.borrow().get(check).cloned() else {
            return;
        };
        // The boot clock: a wall clock set by NTP meanwhile neither forgets nor keeps restarts.
        let now = clock::now().boot;
        let mut restarted = self
            .restarted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let recent = restarted.entry(check.clone()).or_default();
        recent.retain(|at| now.saturating_sub(*at) < policy.window);
        if recent.len() >= policy.max_restarts as usize {
            tracing::error!(check = %check, %unit, "not restarting the unit: {} restarts within {:?} already (on_failure.max_restarts)", recent.len(), policy.window);
            return;
        }
        recent.push(now);
        tracing::warn!(check = %check, %unit, attempt = recent.len(), "unit is not running; restarting it (on_failure: restart)");
        monitor_systemd::restart_unit(unit, self.bus);
    }
}
