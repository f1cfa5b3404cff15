//! The watch loop: one connection, one signal stream per watched unit, reconnection.
//!
//! Invariants:
//! - A unit's cached status only moves forward: values from a signal sent before the reply
//!   the cache was last read from are dropped (compared by the sender's serial numbers), and
//!   signals from anyone but the current owner of `org.freedesktop.systemd1` are ignored.
//! - `running` is evaluated on `org.freedesktop.systemd1.Unit` signals and on reads only:
//!   systemd sends the Service interface (with `NRestarts`) first and the Unit interface right
//!   after, "so that clients may rely on this order to get atomic behaviour".
//! - One failing unit never stops the others: it is retried on its own with backoff.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use monitor_source::watcher::{self, Flow, Reconnect};
use monitor_wire::backoff::Backoff;
use monitor_wire::CheckId;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use zbus::export::futures_core::Stream;
use zbus::names::OwnedUniqueName;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::{Message, MessageStream};

use crate::bus::{unit_name_of_path, Link, Serial};
use crate::status::{Interface, UnitStatus};
use crate::transitions::RunningTracker;
use crate::{
    Bus, BusAddresses, FailedUnitsWatch, ServiceEvent, ServiceWatchConfig, SystemdError,
    WatchedService,
};

/// Every unit is re-read this often, in case a signal was lost anyway.
const SAFETY_READ_INTERVAL: Duration = Duration::from_secs(5 * 60);
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(30);
const UNIT_RETRY_FIRST_DELAY: Duration = Duration::from_secs(1);
const UNIT_RETRY_MAX_DELAY: Duration = Duration::from_secs(30);
/// How long a stop in progress (`deactivating`) may take before it is reported as is: a stop
/// usually settles within milliseconds into `inactive` or `failed`, whose status (result, exit
/// code) is what a person wants to see.
const SETTLE_DEADLINE: Duration = Duration::from_secs(1);

pub(crate) async fn run(
    addresses: BusAddresses,
    configs: mpsc::Receiver<ServiceWatchConfig>,
    events: mpsc::Sender<ServiceEvent>,
    shutdown: CancellationToken,
) -> Result<(), SystemdError> {
    watcher::run(
        "service",
        "services",
        configs,
        shutdown,
        |first: ServiceWatchConfig| async { Ok(Watcher::new(addresses, events, first)) },
    )
    .await
}

impl watcher::Watcher for Watcher {
    type Config = ServiceWatchConfig;
    type Error = SystemdError;

    async fn step(
        &mut self,
        configs: &mut mpsc::Receiver<ServiceWatchConfig>,
    ) -> Result<Flow, SystemdError> {
        if self.session.is_none() {
            return self.step_disconnected(configs).await;
        }
        let wake = self.next_wake(configs).await;
        match wake {
            Wake::Config(None) => return Ok(Flow::ConfigsClosed),
            Wake::Config(Some(config)) => self.apply_config(config).await?,
            Wake::UnitSignal(index, Some(Ok(message))) => {
                self.on_properties_changed(index, &message).await?
            }
            Wake::FailedSignal(Some(Ok(message))) => self.on_unit_state(&message).await?,
            Wake::UnitRemoved(Some(Ok(message))) => self.on_unit_removed(&message).await?,
            Wake::UnitSignal(_, Some(Err(error)))
            | Wake::FailedSignal(Some(Err(error)))
            | Wake::UnitRemoved(Some(Err(error)))
            | Wake::OwnerChanged(Some(Err(error)))
            | Wake::Reload(Some(Err(error))) => {
                self.lose_session(format!("the {} bus connection failed: {error}", self.bus))
                    .await?
            }
            Wake::UnitSignal(_, None)
            | Wake::FailedSignal(None)
            | Wake::UnitRemoved(None)
            | Wake::OwnerChanged(None)
            | Wake::Reload(None) => {
                self.lose_session(format!("the {} bus connection closed", self.bus))
                    .await?
            }
            Wake::OwnerChanged(Some(Ok(message))) => {
                let new_owner = message
                    .body()
                    .deserialize::<(String, String, String)>()
                    .map(|(_, _, new_owner)| new_owner)
                    .unwrap_or_default();
                let reason = if new_owner.is_empty() {
                    format!(
                        "systemd left the {} bus (re-executing or shutting down)",
                        self.bus
                    )
                } else {
                    format!(
                        "systemd on the {} bus was replaced by {new_owner}",
                        self.bus
                    )
                };
                self.lose_session(reason).await?
            }
            Wake::Reload(Some(Ok(message))) => {
                // Reloading(false) ends a daemon-reload: unit files may have come or gone.
                if message.body().deserialize::<bool>().ok() == Some(false) {
                    tracing::debug!(bus = %self.bus, "systemd reloaded; re-reading every unit");
                    self.read_all(false).await?;
                    self.sync_failed(Recoveries::Wait).await?;
                }
            }
            Wake::SafetyRead => {
                self.next_safety_read = Instant::now() + SAFETY_READ_INTERVAL;
                self.read_all(false).await?;
                self.sync_failed(Recoveries::Wait).await?;
            }
            Wake::RetryUnits => {
                self.unit_retry_at = None;
                self.read_pending().await?;
            }
            Wake::Settle => {
                let now = Instant::now();
                for index in 0..self.units.len() {
                    let due = self.units[index]
                        .deferred_down
                        .as_ref()
                        .is_some_and(|deferred| deferred.until <= now);
                    if due {
                        self.report_running(index, false).await?;
                    }
                }
            }
        }
        Ok(Flow::Continue)
    }
}

/// The live connection and what belongs to it.
struct Session {
    link: Link,
    /// The unique name of systemd; only its signals are taken.
    systemd: OwnedUniqueName,
    owner_changes: MessageStream,
    reloads: MessageStream,
    /// Every unit's state changes and removals, while some check watches every unit.
    failed: Option<FailedLink>,
}

/// The signals of every unit, valid for one session.
struct FailedLink {
    states: MessageStream,
    removals: MessageStream,
    /// The serial of the last `ListUnitsFiltered` reply: signals sent before it are older.
    fresh_after: Option<Serial>,
}

/// The checks on every unit's `failed` state, and what was seen and reported.
#[derive(Default)]
struct FailedUnits {
    /// Per check, the units reported failed (and not reported back since).
    checks: Vec<(CheckId, BTreeSet<String>)>,
    /// The units failed as last seen, by object path.
    units: BTreeMap<String, UnitStatus>,
}

/// A unit's object path and signal stream, valid for one session.
struct UnitLink {
    path: OwnedObjectPath,
    signals: MessageStream,
    /// Per [`Interface`]: the serial of the reply the cached values were last read from.
    fresh_after: [Option<Serial>; 2],
}

struct UnitWatch {
    service: WatchedService,
    link: Option<UnitLink>,
    status: UnitStatus,
    tracker: RunningTracker,
    /// The problem last reported (`None` while the unit loads fine).
    problem_reported: Option<String>,
    /// A read failed: retry it.
    needs_read: bool,
    /// systemd refused the unit's name: nothing to retry until the next session.
    refused: bool,
    /// A change to not-running seen as `deactivating`, not reported until it settles.
    deferred_down: Option<DeferredDown>,
}

struct DeferredDown {
    status: UnitStatus,
    until: Instant,
}

impl UnitWatch {
    fn new(service: WatchedService) -> UnitWatch {
        let status = UnitStatus {
            unit: service.unit.clone(),
            ..UnitStatus::default()
        };
        UnitWatch {
            service,
            link: None,
            status,
            tracker: RunningTracker::default(),
            problem_reported: None,
            needs_read: true,
            refused: false,
            deferred_down: None,
        }
    }
}

enum Wake {
    Config(Option<ServiceWatchConfig>),
    UnitSignal(usize, Option<zbus::Result<Message>>),
    OwnerChanged(Option<zbus::Result<Message>>),
    Reload(Option<zbus::Result<Message>>),
    FailedSignal(Option<zbus::Result<Message>>),
    UnitRemoved(Option<zbus::Result<Message>>),
    SafetyRead,
    RetryUnits,
    Settle,
}

struct Watcher {
    addresses: BusAddresses,
    events: mpsc::Sender<ServiceEvent>,
    bus: Bus,
    units: Vec<UnitWatch>,
    failed: FailedUnits,
    session: Option<Session>,
    /// When to connect again, and whether the outage was reported.
    reconnect: Reconnect,
    next_safety_read: Instant,
    unit_retry_backoff: Backoff,
    unit_retry_at: Option<Instant>,
}

impl Watcher {
    fn new(
        addresses: BusAddresses,
        events: mpsc::Sender<ServiceEvent>,
        config: ServiceWatchConfig,
    ) -> Watcher {
        Watcher {
            addresses,
            events,
            bus: config.bus,
            units: config.services.into_iter().map(UnitWatch::new).collect(),
            failed: FailedUnits::new(config.failed_units),
            session: None,
            reconnect: Reconnect::new(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY),
            next_safety_read: Instant::now() + SAFETY_READ_INTERVAL,
            unit_retry_backoff: Backoff::new(UNIT_RETRY_FIRST_DELAY, UNIT_RETRY_MAX_DELAY),
            unit_retry_at: None,
        }
    }

    async fn send(&self, event: ServiceEvent) -> Result<(), SystemdError> {
        self.events
            .send(event)
            .await
            .map_err(|_| SystemdError::EventsClosed)
    }

    async fn next_wake(&mut self, configs: &mut mpsc::Receiver<ServiceWatchConfig>) -> Wake {
        let Watcher {
            session,
            units,
            next_safety_read,
            unit_retry_at,
            ..
        } = self;
        let session = session.as_mut().expect("connected");
        let retry_at = *unit_retry_at;
        let settle_at = units
            .iter()
            .filter_map(|unit| unit.deferred_down.as_ref().map(|deferred| deferred.until))
            .min();
        let (states, removals) = match &mut session.failed {
            Some(link) => (Some(&mut link.states), Some(&mut link.removals)),
            None => (None, None),
        };
        tokio::select! {
            config = configs.recv() => Wake::Config(config),
            (index, item) = next_unit_signal(units) => Wake::UnitSignal(index, item),
            item = next_optional_message(states) => Wake::FailedSignal(item),
            item = next_optional_message(removals) => Wake::UnitRemoved(item),
            item = next_message(&mut session.owner_changes) => Wake::OwnerChanged(item),
            item = next_message(&mut session.reloads) => Wake::Reload(item),
            _ = tokio::time::sleep_until(*next_safety_read) => Wake::SafetyRead,
            _ = sleep_until_some(retry_at) => Wake::RetryUnits,
            _ = sleep_until_some(settle_at) => Wake::Settle,
        }
    }

    async fn step_disconnected(
        &mut self,
        configs: &mut mpsc::Receiver<ServiceWatchConfig>,
    ) -> Result<Flow, SystemdError> {
        if let Some(at) = self.reconnect.retry_at() {
            let config = tokio::select! {
                _ = tokio::time::sleep_until(at) => None,
                config = configs.recv() => Some(config),
            };
            match config {
                None => self.reconnect.waited(),
                Some(None) => return Ok(Flow::ConfigsClosed),
                Some(Some(config)) => {
                    self.apply_config(config).await?;
                    return Ok(Flow::Continue);
                }
            }
        }
        match self.connect().await {
            Ok(session) => {
                tracing::info!(bus = %self.bus, "watching systemd");
                self.session = Some(session);
                self.reconnect.connected();
                self.next_safety_read = Instant::now() + SAFETY_READ_INTERVAL;
                self.send(ServiceEvent::Connected).await?;
                for unit in &mut self.units {
                    unit.refused = false;
                }
                self.read_all(true).await?;
                self.sync_failed(Recoveries::Report).await?;
            }
            Err(error) => {
                let (delay, new_outage) = self.reconnect.failed();
                tracing::warn!(%error, retry_in = ?delay, "cannot watch systemd");
                if new_outage {
                    self.send(ServiceEvent::Disconnected {
                        reason: error.to_string(),
                    })
                    .await?;
                }
            }
        }
        Ok(Flow::Continue)
    }

    async fn connect(&self) -> Result<Session, SystemdError> {
        let link = Link::connect(&self.addresses, self.bus).await?;
        // Follow the owner before asking for it, so that no change falls in between.
        let owner_changes = link.systemd_owner_changes().await?;
        let reloads = link.reloads().await?;
        let systemd = link.systemd_owner().await?;
        link.subscribe().await?;
        Ok(Session {
            link,
            systemd,
            owner_changes,
            reloads,
            failed: None,
        })
    }

    /// Drops the connection, says so once, and schedules the reconnection.
    async fn lose_session(&mut self, reason: String) -> Result<(), SystemdError> {
        tracing::warn!(%reason, "lost systemd; reconnecting");
        self.session = None;
        for unit in &mut self.units {
            unit.link = None;
        }
        self.unit_retry_at = None;
        if self.reconnect.failed().1 {
            self.send(ServiceEvent::Disconnected { reason }).await?;
        }
        Ok(())
    }

    async fn apply_config(&mut self, config: ServiceWatchConfig) -> Result<(), SystemdError> {
        if config.bus != self.bus {
            tracing::info!(from = %self.bus, to = %config.bus, "switching bus");
            self.bus = config.bus;
            self.units = config.services.into_iter().map(UnitWatch::new).collect();
            self.failed = FailedUnits::new(config.failed_units);
            self.session = None;
            self.reconnect.forget_outage();
            self.reconnect.start_over();
            self.unit_retry_at = None;
            return Ok(());
        }
        let mut previous = std::mem::take(&mut self.units);
        self.units = config
            .services
            .into_iter()
            .map(
                |service| match previous.iter().position(|unit| unit.service == service) {
                    Some(index) => previous.swap_remove(index),
                    None => UnitWatch::new(service),
                },
            )
            .collect();
        // Dropping the streams of units no longer watched removes their match rules.
        drop(previous);
        self.read_pending().await?;
        if self.failed.reconfigure(config.failed_units) {
            self.sync_failed(Recoveries::Report).await?;
        }
        Ok(())
    }

    /// Reads (and for new units first sends) every unit that needs it.
    async fn read_pending(&mut self) -> Result<(), SystemdError> {
        if self.session.is_none() {
            return Ok(());
        }
        for index in 0..self.units.len() {
            if self.units[index].needs_read && !self.units[index].refused {
                self.read_unit(index, false).await?;
            }
        }
        if self.units.iter().any(|unit| unit.needs_read) {
            self.schedule_unit_retry();
        } else {
            self.unit_retry_backoff.reset();
        }
        Ok(())
    }

    /// Re-reads every unit; `force` sends a State for each even if unchanged.
    async fn read_all(&mut self, force: bool) -> Result<(), SystemdError> {
        for index in 0..self.units.len() {
            if !self.units[index].refused {
                self.read_unit(index, force).await?;
            }
        }
        if self.units.iter().any(|unit| unit.needs_read) {
            self.schedule_unit_retry();
        }
        Ok(())
    }

    fn schedule_unit_retry(&mut self) {
        if self.unit_retry_at.is_none() {
            self.unit_retry_at = Some(Instant::now() + self.unit_retry_backoff.next_delay());
        }
    }

    /// Loads the unit and follows its signals (once per session), reads its properties and
    /// reports what changed. Errors other than a closed event channel only mark the unit
    /// for a retry.
    async fn read_unit(&mut self, index: usize, force: bool) -> Result<(), SystemdError> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        let link = session.link.clone();
        let unit = &mut self.units[index];
        let name = unit.service.unit.clone();
        let read = async {
            if unit.link.is_none() {
                let path = link.load_unit(&name).await?;
                // Follow before reading, so that no change falls in between.
                let signals = link.unit_signals(&path).await?;
                unit.link = Some(UnitLink {
                    path,
                    signals,
                    fresh_after: [None, None],
                });
            }
            let unit_link = unit.link.as_mut().expect("linked above");
            let serials = link
                .read_properties(&unit_link.path, &name, &mut unit.status)
                .await?;
            unit_link.fresh_after = serials;
            Ok::<(), SystemdError>(())
        };
        match read.await {
            Ok(()) => {
                unit.needs_read = false;
                self.report(index, force).await
            }
            Err(error @ SystemdError::Refused { .. }) if unit.link.is_none() => {
                // systemd will not load this name (it is not a valid unit name): a finding,
                // not a failure to retry.
                tracing::warn!(%error, check = %unit.service.check, "unit refused");
                unit.refused = true;
                unit.needs_read = false;
                let message =
                    format!("cannot watch {name}: {error}; fix the service name in the check");
                let check = unit.service.check.clone();
                if unit.problem_reported.as_deref() != Some(message.as_str()) {
                    unit.problem_reported = Some(message.clone());
                    self.send(ServiceEvent::Problem { check, message }).await?;
                }
                self.report_running(index, force).await
            }
            Err(error) => {
                tracing::warn!(%error, check = %unit.service.check, "cannot read unit; will retry");
                unit.needs_read = true;
                Ok(())
            }
        }
    }

    async fn on_properties_changed(
        &mut self,
        index: usize,
        message: &Message,
    ) -> Result<(), SystemdError> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        let header = message.header();
        if header.sender().map(|sender| sender.as_str()) != Some(session.systemd.as_str()) {
            tracing::debug!(sender = ?header.sender(), "ignoring a signal not from systemd");
            return Ok(());
        }
        let Ok((interface, changed, invalidated)) =
            message
                .body()
                .deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
        else {
            tracing::debug!("ignoring a malformed PropertiesChanged");
            return Ok(());
        };
        let Some(interface) = Interface::from_name(&interface) else {
            return Ok(());
        };
        let link = session.link.clone();
        let unit = &mut self.units[index];
        let Some(unit_link) = &mut unit.link else {
            return Ok(());
        };
        let slot = interface as usize;
        let serial = Serial::of(message);
        if let Some(read) = unit_link.fresh_after[slot] {
            if serial.not_after(read) {
                // Sent before the reply the cache holds: older than what we know.
                return Ok(());
            }
        }
        for (name, value) in &changed {
            unit.status.apply(name, value);
        }
        for name in invalidated
            .iter()
            .filter(|name| interface.properties().contains(&name.as_str()))
        {
            match link
                .get_property(&unit_link.path, &unit.service.unit, interface, name)
                .await
            {
                Ok((value, _)) => {
                    unit.status.apply(name, &value);
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read an invalidated property; will re-read the unit");
                    unit.needs_read = true;
                }
            }
        }
        if unit.needs_read {
            self.schedule_unit_retry();
        }
        if interface == Interface::Unit {
            self.report(index, false).await?;
        }
        Ok(())
    }

    /// Sends what changed: a load problem, and the running changes (with restarts that
    /// signals did not show).
    async fn report(&mut self, index: usize, force: bool) -> Result<(), SystemdError> {
        let bus = self.bus;
        let unit = &mut self.units[index];
        if unit.status.load_problem() {
            let message = load_problem_message(bus, &unit.service.unit, &unit.status);
            if unit.problem_reported.as_deref() != Some(message.as_str()) {
                unit.problem_reported = Some(message.clone());
                let check = unit.service.check.clone();
                self.send(ServiceEvent::Problem { check, message }).await?;
            }
        } else if unit.status.load_state == "loaded" {
            unit.problem_reported = None;
        }
        self.report_running(index, force).await
    }

    /// Reports the running changes since the last report. A change to not-running seen as
    /// `deactivating` waits (up to [`SETTLE_DEADLINE`]) for the state it settles in.
    async fn report_running(&mut self, index: usize, force: bool) -> Result<(), SystemdError> {
        let now = Instant::now();
        let unit = &mut self.units[index];
        let current = unit.status.clone();
        let stopping = current.active_state == "deactivating";
        let mut observations = Vec::with_capacity(2);
        match unit.deferred_down.take() {
            Some(deferred) if stopping && !force && now < deferred.until => {
                unit.deferred_down = Some(deferred);
                return Ok(());
            }
            // Back up before the stop settled: the down still happened, before this up.
            Some(deferred) if current.running() => observations.push(deferred.status),
            Some(_) => {}
            None if stopping && !force && unit.tracker.reported() == Some(true) => {
                unit.deferred_down = Some(DeferredDown {
                    status: current,
                    until: now + SETTLE_DEADLINE,
                });
                return Ok(());
            }
            None => {}
        }
        observations.push(current);
        let last = observations.len() - 1;
        let check = unit.service.check.clone();
        let mut events = Vec::new();
        for (position, status) in observations.into_iter().enumerate() {
            let changes = unit.tracker.observe(
                status.running(),
                status.n_restarts,
                force && position == last,
            );
            for running in changes {
                events.push(ServiceEvent::State {
                    check: check.clone(),
                    running,
                    status: status.clone(),
                });
            }
        }
        for event in events {
            self.send(event).await?;
        }
        Ok(())
    }
}

impl FailedUnits {
    fn new(watches: Vec<FailedUnitsWatch>) -> FailedUnits {
        FailedUnits {
            checks: watches
                .into_iter()
                .map(|watch| (watch.check, watch.known_failed))
                .collect(),
            units: BTreeMap::new(),
        }
    }

    /// Takes the new set of checks (a check it had keeps what it reported); whether the set
    /// changed.
    fn reconfigure(&mut self, watches: Vec<FailedUnitsWatch>) -> bool {
        let mut previous = std::mem::take(&mut self.checks);
        let changed = previous.len() != watches.len()
            || previous
                .iter()
                .zip(&watches)
                .any(|((check, _), watch)| *check != watch.check);
        self.checks = watches
            .into_iter()
            .map(
                |watch| match previous.iter().position(|(check, _)| *check == watch.check) {
                    Some(index) => previous.swap_remove(index),
                    None => (watch.check, watch.known_failed),
                },
            )
            .collect();
        changed
    }

    /// The reports that bring every check in line with `units`: a `running: false` for a
    /// unit failed and not reported, a `running: true` for one reported and failed no more.
    fn reports(&mut self) -> Vec<ServiceEvent> {
        let failed: BTreeMap<&str, &UnitStatus> = self
            .units
            .values()
            .map(|status| (status.unit.as_str(), status))
            .collect();
        let mut events = Vec::new();
        for (check, reported) in &mut self.checks {
            reported.retain(|unit| {
                let still = failed.contains_key(unit.as_str());
                if !still {
                    events.push(ServiceEvent::State {
                        check: check.clone(),
                        running: true,
                        status: UnitStatus {
                            unit: unit.clone(),
                            ..UnitStatus::default()
                        },
                    });
                }
                still
            });
            for (unit, status) in &failed {
                if reported.insert((*unit).to_owned()) {
                    events.push(ServiceEvent::State {
                        check: check.clone(),
                        running: false,
                        status: (*status).clone(),
                    });
                }
            }
        }
        events
    }

    /// A unit that left `failed` (`status`, as it is now): its `running: true` for every
    /// check that reported it.
    fn recovered(&mut self, status: &UnitStatus) -> Vec<ServiceEvent> {
        self.checks
            .iter_mut()
            .filter_map(|(check, reported)| reported.remove(&status.unit).then_some(check))
            .map(|check| ServiceEvent::State {
                check: check.clone(),
                running: true,
                status: status.clone(),
            })
            .collect()
    }
}

impl Watcher {
    /// Lists the units failed now and reports what changed for each check on every unit
    /// (the units no longer failed only with [`Recoveries::Report`]); follows every unit's
    /// signals first (once per session) so that no change falls in between, and lets them
    /// go when no such check is left.
    async fn sync_failed(&mut self, recoveries: Recoveries) -> Result<(), SystemdError> {
        let Some(session) = &mut self.session else {
            return Ok(());
        };
        if self.failed.checks.is_empty() {
            // Dropping the streams removes their match rules.
            session.failed = None;
            self.failed.units.clear();
            return Ok(());
        }
        let link = session.link.clone();
        let listed = async {
            if session.failed.is_none() {
                session.failed = Some(FailedLink {
                    states: link.every_unit_signals().await?,
                    removals: link.unit_removals().await?,
                    fresh_after: None,
                });
            }
            let (listed, serial) = link.failed_units().await?;
            let mut units = BTreeMap::new();
            for (name, path) in listed {
                let mut status = UnitStatus {
                    unit: name.clone(),
                    active_state: "failed".to_owned(),
                    ..UnitStatus::default()
                };
                if let Err(error) = link.read_properties(&path, &name, &mut status).await {
                    // Reported with what the list said; the next change reads it again.
                    tracing::debug!(%error, unit = name, "cannot read a failed unit");
                }
                if status.active_state == "failed" {
                    units.insert(path.as_str().to_owned(), status);
                }
            }
            Ok::<_, SystemdError>((units, serial))
        };
        match listed.await {
            Ok((mut units, serial)) => {
                if let Some(failed) = &mut session.failed {
                    failed.fresh_after = Some(serial);
                }
                if recoveries == Recoveries::Wait {
                    // Units reported failed stay failed until a signal says otherwise.
                    let reported: BTreeSet<&String> = self
                        .failed
                        .checks
                        .iter()
                        .flat_map(|(_, reported)| reported)
                        .collect();
                    for (path, status) in &self.failed.units {
                        if reported.contains(&status.unit) && !units.contains_key(path) {
                            units.insert(path.clone(), status.clone());
                        }
                    }
                }
                self.failed.units = units;
                for event in self.failed.reports() {
                    self.send(event).await?;
                }
                Ok(())
            }
            Err(SystemdError::EventsClosed) => Err(SystemdError::EventsClosed),
            Err(error) => {
                self.lose_session(format!("cannot list the failed units: {error}"))
                    .await
            }
        }
    }

    /// A unit's state changed: entering or leaving `failed`, the unit is read to be sure
    /// (systemd steps through `failed` on its way to `auto-restart`, and through `inactive`
    /// while a `daemon-reload` rebuilds a failed unit); what the read says is reported.
    async fn on_unit_state(&mut self, message: &Message) -> Result<(), SystemdError> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        let header = message.header();
        if header.sender().map(|sender| sender.as_str()) != Some(session.systemd.as_str()) {
            return Ok(());
        }
        let Some(path) = header.path().map(|path| path.as_str().to_owned()) else {
            return Ok(());
        };
        if let Some(read) = session.failed.as_ref().and_then(|link| link.fresh_after) {
            if Serial::of(message).not_after(read) {
                return Ok(());
            }
        }
        let Ok((_, changed, _)) = message
            .body()
            .deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
        else {
            return Ok(());
        };
        let Some(active_state) = changed
            .get("ActiveState")
            .and_then(|value| <&str>::try_from(value).ok())
        else {
            return Ok(());
        };
        let known = self.failed.units.contains_key(&path);
        if active_state == "failed" && !known {
            let name = unit_name_of_path(&path);
            let mut status = UnitStatus {
                unit: name.clone(),
                ..UnitStatus::default()
            };
            for (property, value) in &changed {
                status.apply(property, value);
            }
            let link = session.link.clone();
            let object = OwnedObjectPath::try_from(path.clone()).expect("a signal's path");
            match link.read_properties(&object, &name, &mut status).await {
                Ok(_) => {}
                // Gone already (a transient unit collected at once): failed all the same.
                Err(error) => tracing::debug!(%error, unit = name, "cannot read a failed unit"),
            }
            if status.active_state != "failed" {
                tracing::debug!(
                    unit = status.unit,
                    state = status.active_state,
                    "failed on its way to a restart; not reported"
                );
                return Ok(());
            }
            self.failed.units.insert(path, status);
            for event in self.failed.reports() {
                self.send(event).await?;
            }
        } else if active_state != "failed" && known {
            // Read too: during a `daemon-reload` systemd sends a failed unit's state as
            // `inactive` while it rebuilds the unit, and then says nothing more.
            let mut status = self.failed.units.remove(&path).expect("known");
            let failed_process = status.exec_main_pid;
            for (property, value) in &changed {
                status.apply(property, value);
            }
            let link = session.link.clone();
            let object = OwnedObjectPath::try_from(path.clone()).expect("a signal's path");
            let unit = status.unit.clone();
            if let Err(error) = link.read_properties(&object, &unit, &mut status).await {
                tracing::debug!(%error, unit, "cannot read a unit that left failed");
            }
            // Failed again by the time it was read: the same failure, unless another
            // process ran meanwhile (started again, and failed again at once).
            let again = status.active_state == "failed";
            if again && (status.exec_main_pid == 0 || status.exec_main_pid == failed_process) {
                self.failed.units.insert(path, status);
                return Ok(());
            }
            for event in self.failed.recovered(&status) {
                self.send(event).await?;
            }
            if again {
                self.failed.units.insert(path, status);
                for event in self.failed.reports() {
                    self.send(event).await?;
                }
            }
        }
        Ok(())
    }

    /// `UnitRemoved`: a failed unit unloaded (garbage collected) is failed no more. A
    /// `daemon-reload` removes every unit and loads it again, so systemd is asked whether
    /// the unit is still there: it answers once the reload is over.
    async fn on_unit_removed(&mut self, message: &Message) -> Result<(), SystemdError> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        let Ok((unit, path)) = message.body().deserialize::<(String, OwnedObjectPath)>() else {
            return Ok(());
        };
        if !self.failed.units.contains_key(path.as_str()) {
            return Ok(());
        }
        match session.link.unit_loaded(&unit).await {
            Ok(false) => {}
            Ok(true) => return Ok(()),
            Err(error) => {
                return self
                    .lose_session(format!("cannot ask for {unit}: {error}"))
                    .await
            }
        }
        if let Some(mut status) = self.failed.units.remove(path.as_str()) {
            status.active_state = "inactive".to_owned();
            status.sub_state = "dead".to_owned();
            for event in self.failed.recovered(&status) {
                self.send(event).await?;
            }
        }
        Ok(())
    }
}

/// Whether a listing of the failed units may report a unit that is failed no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recoveries {
    /// Yes: at a (re)connection or for a new check, nothing else would tell.
    Report,
    /// No, signals tell: right after a `daemon-reload` systemd lists a failed service as
    /// `inactive` for a moment, and says nothing when it is `failed` again.
    Wait,
}

/// What a person should do about a unit that did not load.
fn load_problem_message(bus: Bus, unit: &str, status: &UnitStatus) -> String {
    let systemctl = match bus {
        Bus::System => "systemctl",
        Bus::Session => "systemctl --user",
    };
    let reason = if status.load_error.is_empty() {
        String::new()
    } else {
        format!(" ({})", status.load_error.trim_end_matches('.'))
    };
    match status.load_state.as_str() {
        "not-found" => format!(
            "unit {unit} not found on the {bus} bus{reason}: install its unit file and run `{systemctl} daemon-reload`, or fix the service name in the check"
        ),
        "masked" => format!("unit {unit} is masked: unmask it with `{systemctl} unmask {unit}`"),
        state => {
            let file = if status.fragment_path.is_empty() {
                "its unit file".to_owned()
            } else {
                status.fragment_path.clone()
            };
            format!(
                "unit {unit} failed to load ({state}){reason}: fix {file} and run `{systemctl} daemon-reload`"
            )
        }
    }
}

async fn next_message(stream: &mut MessageStream) -> Option<zbus::Result<Message>> {
    poll_fn(|context| Pin::new(&mut *stream).poll_next(context)).await
}

/// The next item of any unit's signal stream. Polling starts at a rotating index so that a
/// busy unit cannot starve the others.
async fn next_unit_signal(units: &mut [UnitWatch]) -> (usize, Option<zbus::Result<Message>>) {
    let mut start = 0;
    poll_fn(|context| {
        let count = units.len();
        for offset in 0..count {
            let index = (start + offset) % count;
            if let Some(link) = &mut units[index].link {
                if let Poll::Ready(item) = Pin::new(&mut link.signals).poll_next(context) {
                    start = index + 1;
                    return Poll::Ready((index, item));
                }
            }
        }
        Poll::Pending
    })
    .await
}

async fn next_optional_message(
    stream: Option<&mut MessageStream>,
) -> Option<zbus::Result<Message>> {
    match stream {
        Some(stream) => next_message(stream).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
