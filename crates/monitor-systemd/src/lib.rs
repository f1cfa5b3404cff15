//! The systemd service watcher: knows at once when a watched unit stops running, dies,
//! crash-loops under `Restart=always` or goes up and down.
//!
//! [`run`] talks to `org.freedesktop.systemd1` on the system or the session bus ([`Bus`]),
//! calls `Manager.Subscribe()` (systemd only emits `PropertiesChanged` for units while some
//! client is subscribed), follows each watched unit's `PropertiesChanged` signals and sends a
//! [`ServiceEvent::State`] for every change between running and not running, with the unit's
//! [`UnitStatus`] (rendered for people by [`UnitStatus::status_text`] and
//! [`UnitStatus::details`]). Crashes that systemd's signal coalescing hides (a service killed
//! and restarted within ~100 ms shows only `active` → `active`) are recovered from the unit's
//! `NRestarts` counter, so every crash is reported as a down and an up. Units that do not
//! exist or failed to load are reported as [`ServiceEvent::Problem`]s. When the bus drops or
//! systemd re-executes, the watcher reconnects with capped backoff and re-reads every unit.
//! While idle it only wakes for a safety re-read every 5 minutes.
//!
//! A [`FailedUnitsWatch`] follows every unit at once for the `failed` state: one match on
//! the `PropertiesChanged` of all units (those loaded later too), `ListUnitsFiltered` for
//! the units failed already, and a read of a unit only when it enters `failed`, so a
//! manager with thousands of units costs no unit-by-unit load.
//!
//! [`read_unit`] reads one unit once, for callers that run without the agent.
//!
//! This crate does not decide what is an alert (the engine does: "not running", flapping),
//! does not poll `systemctl`, and does not start, stop or restart units.

mod bus;
mod status;
mod systemctl;
mod transitions;
mod watch;

use std::collections::BTreeSet;
use std::fmt;

use monitor_source::{bus_address, WatcherEvent};
use monitor_wire::CheckId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use status::UnitStatus;
pub use systemctl::{recent_journal, restart, restart_unit};

/// Which message bus systemd is reached on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    /// The system bus, where PID 1 is (services of a device, watched as root).
    System,
    /// The user's session bus at `DBUS_SESSION_BUS_ADDRESS`, where `systemd --user` lives.
    Session,
}

impl fmt::Display for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bus::System => "system",
            Bus::Session => "session",
        })
    }
}

/// Where each [`Bus`] is. [`run`] and [`read_unit`] take them from the environment
/// ([`BusAddresses::from_env`]); [`run_on`] and [`read_unit_on`] take them as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusAddresses {
    /// A D-Bus address, `unix:path=/run/dbus/system_bus_socket` by default.
    pub system: String,
    /// A D-Bus address; `None` when the environment names no session bus.
    pub session: Option<String>,
}

/// The system bus address when `DBUS_SYSTEM_BUS_ADDRESS` is not set (as in the D-Bus spec).
pub const DEFAULT_SYSTEM_BUS_ADDRESS: &str = "unix:path=/var/run/dbus/system_bus_socket";

impl BusAddresses {
    /// `DBUS_SYSTEM_BUS_ADDRESS` (or the default socket) and `DBUS_SESSION_BUS_ADDRESS`
    /// (or `$XDG_RUNTIME_DIR/bus`, where a user session's bus is).
    pub fn from_env() -> BusAddresses {
        BusAddresses {
            system: bus_address::system_bus_address(DEFAULT_SYSTEM_BUS_ADDRESS),
            session: bus_address::session_bus_address(true),
        }
    }

    /// Only a session bus at `address` (tests, or an agent told where the bus is).
    pub fn session(address: impl Into<String>) -> BusAddresses {
        BusAddresses {
            system: DEFAULT_SYSTEM_BUS_ADDRESS.to_owned(),
            session: Some(address.into()),
        }
    }

    /// The address of `bus`.
    pub fn address(&self, bus: Bus) -> Result<&str, SystemdError> {
        match bus {
            Bus::System => Ok(&self.system),
            Bus::Session => self.session.as_deref().ok_or(SystemdError::NoSessionBus),
        }
    }
}

/// One service to watch: the check it belongs to and the full unit name.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchedService {
    pub check: CheckId,
    /// A full unit name, e.g. `crasher.service` (see [`unit_name`]).
    pub unit: String,
}

/// A check on every unit: each unit that enters `failed` is a `State { running: false }`
/// of this check whose status names the unit, and the unit leaving `failed` (started again,
/// `systemctl reset-failed`, unloaded) its `State { running: true }`.
///
/// Units failed when the watch starts are reported once; so is every unit the watcher
/// found failed after a reconnect or a `daemon-reload` and had not reported. A `failed`
/// that lasts no longer than systemd's own step to `auto-restart` (`Restart=`) is not one:
/// the unit is read when the signal says `failed`, and only a unit still failed counts.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedUnitsWatch {
    pub check: CheckId,
    /// The units the caller holds as failed for this check (from before a restart of the
    /// agent): each found not failed gets its `running: true`. Read when the check is new
    /// to the watcher only.
    pub known_failed: BTreeSet<String>,
}

/// The whole set of services to watch; a new one replaces the old.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceWatchConfig {
    pub bus: Bus,
    pub services: Vec<WatchedService>,
    /// Checks on every unit's `failed` state.
    pub failed_units: Vec<FailedUnitsWatch>,
}

/// What the watcher observed ([`WatcherEvent`]; never a `Matched`).
///
/// - `State`: the unit's state, sent for every watched unit when it is first read and after
///   each reconnect (even if unchanged), then whenever `running` changes. A crash seen only
///   through `NRestarts` is sent as a `running: false` and a `running: true`, both with the
///   latest status.
/// - `Problem`: the unit does not exist, is masked or failed to load, or systemd refused its
///   name: sent once per finding, with a message a person can act on.
/// - `Connected`: the watcher is (again) connected to the bus and subscribed to systemd; a
///   `State` for every unit follows.
/// - `Disconnected`: the bus or systemd was lost (or could not be reached); the watcher
///   retries with backoff. Sent once per outage.
pub type ServiceEvent = WatcherEvent<UnitStatus>;

/// Why systemd could not be watched or read. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error(
        "the session bus address is unknown: neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set; run monitord in the user's session, or set `systemd: {{bus: system}}` in monitor.yaml for system services"
    )]
    NoSessionBus,
    #[error("cannot connect to the {bus} bus at {address}: {source}; {}", connect_hint(*.bus))]
    Connect {
        bus: Bus,
        address: String,
        source: Box<zbus::Error>,
    },
    #[error("cannot connect to the {bus} bus at {address}: no answer within 5 s; {}", connect_hint(*.bus))]
    ConnectTimeout { bus: Bus, address: String },
    #[error("systemd is not on the {bus} bus (nobody owns org.freedesktop.systemd1); {}", connect_hint(*.bus))]
    NotOnBus { bus: Bus },
    #[error("systemd on the {bus} bus refused {call}: {message} ({name})")]
    Refused {
        bus: Bus,
        call: String,
        name: String,
        message: String,
    },
    #[error("calling {call} on the {bus} bus failed: {source}; the connection is retried")]
    Call {
        bus: Bus,
        call: String,
        source: Box<zbus::Error>,
    },
    #[error("systemd on the {bus} bus did not answer {call} within 5 s; it may be busy or re-executing, try again")]
    Timeout { bus: Bus, call: String },
    #[error("systemd on the {bus} bus answered {call} with something unexpected: {source}; is this systemd?")]
    Reply {
        bus: Bus,
        call: String,
        source: Box<zbus::Error>,
    },
    #[error("the receiver of service events is gone; the agent's engine stopped, nothing is left to watch for")]
    EventsClosed,
}

fn connect_hint(bus: Bus) -> &'static str {
    match bus {
        Bus::Session => "is `systemd --user` running? set `systemd: {bus: system}` in monitor.yaml for system services",
        Bus::System => "is D-Bus running and systemd the init system? monitord must run as root to watch system services",
    }
}

/// The unit suffixes systemd knows; other names are services.
const UNIT_SUFFIXES: [&str; 11] = [
    ".service",
    ".socket",
    ".timer",
    ".mount",
    ".target",
    ".path",
    ".scope",
    ".slice",
    ".swap",
    ".automount",
    ".device",
];

/// A full unit name for a service name: `crasher` → `crasher.service`; names that already end
/// in a unit suffix (`.service`, `.socket`, `.timer`, `.mount`, `.target`, `.path`, `.scope`,
/// `.slice`, `.swap`, `.automount`, `.device`) are kept.
pub fn unit_name(name: &str) -> String {
    let name = name.trim();
    if UNIT_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
        name.to_owned()
    } else {
        format!("{name}.service")
    }
}

/// Reads one unit once (for `monitorctl notify-failure`, which runs without the agent), with
/// the bus addresses from the environment. Errors if the bus or systemd cannot be reached.
pub async fn read_unit(bus: Bus, unit: &str) -> Result<UnitStatus, SystemdError> {
    read_unit_on(&BusAddresses::from_env(), bus, unit).await
}

/// [`read_unit`] with the bus addresses given.
pub async fn read_unit_on(
    addresses: &BusAddresses,
    bus: Bus,
    unit: &str,
) -> Result<UnitStatus, SystemdError> {
    let link = bus::Link::connect(addresses, bus).await?;
    let path = link.load_unit(&unit_name(unit)).await?;
    let mut status = UnitStatus::default();
    link.read_properties(&path, &unit_name(unit), &mut status)
        .await?;
    Ok(status)
}

/// Watches the services of the latest config from `configs` and sends what it observes to
/// `events`, with the bus addresses from the environment. Waits for the first config.
///
/// Returns `Ok` on shutdown or when `configs` closes, and an error only when `events` closes.
/// Bus and systemd trouble is reported as [`ServiceEvent::Disconnected`] and retried.
/// `events` is bounded: when it is full the watcher waits (signals queue up in the bus
/// connection meanwhile).
pub async fn run(
    configs: mpsc::Receiver<ServiceWatchConfig>,
    events: mpsc::Sender<ServiceEvent>,
    shutdown: CancellationToken,
) -> Result<(), SystemdError> {
    run_on(BusAddresses::from_env(), configs, events, shutdown).await
}

/// [`run`] with the bus addresses given.
pub async fn run_on(
    addresses: BusAddresses,
    configs: mpsc::Receiver<ServiceWatchConfig>,
    events: mpsc::Sender<ServiceEvent>,
    shutdown: CancellationToken,
) -> Result<(), SystemdError> {
    watch::run(addresses, configs, events, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_service_name_gets_the_service_suffix() {
        assert_eq!(unit_name("crasher"), "crasher.service");
        assert_eq!(unit_name("getty@tty1"), "getty@tty1.service");
        assert_eq!(unit_name("my.app"), "my.app.service");
    }

    #[test]
    fn names_with_a_unit_suffix_are_kept() {
        for name in [
            "crasher.service",
            "dbus.socket",
            "backup.timer",
            "data.mount",
            "multi-user.target",
            "spool.path",
            "session-1.scope",
            "user.slice",
            "swapfile.swap",
            "proc-sys-fs-binfmt_misc.automount",
            "dev-sda.device",
        ] {
            assert_eq!(unit_name(name), name);
        }
    }

    #[test]
    fn errors_say_what_to_do() {
        let error = SystemdError::ConnectTimeout {
            bus: Bus::Session,
            address: "unix:path=/run/user/0/bus".into(),
        };
        assert_eq!(
            error.to_string(),
            "cannot connect to the session bus at unix:path=/run/user/0/bus: no answer within 5 s; is `systemd --user` running? set `systemd: {bus: system}` in monitor.yaml for system services"
        );
        assert_eq!(
            SystemdError::NotOnBus { bus: Bus::System }.to_string(),
            "systemd is not on the system bus (nobody owns org.freedesktop.systemd1); is D-Bus running and systemd the init system? monitord must run as root to watch system services"
        );
    }

    #[test]
    fn the_session_bus_address_comes_from_the_given_addresses() {
        let addresses = BusAddresses::session("unix:path=/tmp/bus");
        assert_eq!(
            addresses.address(Bus::Session).unwrap(),
            "unix:path=/tmp/bus"
        );
        assert_eq!(
            addresses.address(Bus::System).unwrap(),
            DEFAULT_SYSTEM_BUS_ADDRESS
        );
        let none = BusAddresses {
            session: None,
            ..addresses
        };
        assert!(matches!(
            none.address(Bus::Session),
            Err(SystemdError::NoSessionBus)
        ));
    }
}
