//! The D-Bus calls to systemd, each with a timeout and an error that names the call.

use std::collections::HashMap;
use std::time::Duration;

use zbus::export::serde::Serialize;
use zbus::message::Type as MessageType;
use zbus::names::OwnedUniqueName;
use zbus::zvariant::{DynamicType, OwnedObjectPath, OwnedValue};
use zbus::{Connection, MatchRule, Message, MessageStream};

use crate::status::{Interface, UnitStatus};
use crate::{Bus, BusAddresses, SystemdError};

/// Every D-Bus call, connection and match registration gives up after this long.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(5);

const SYSTEMD: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
/// Where systemd puts its units' objects.
const UNITS_PATH: &str = "/org/freedesktop/systemd1/unit";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const DBUS: &str = "org.freedesktop.DBus";
const DBUS_PATH: &str = "/org/freedesktop/DBus";

/// How many signals a unit's stream holds before the connection stops reading (and method
/// replies wait too): a crash loop sends about 8 per restart, so this is about 3 s of a
/// `RestartSec=100ms` loop that the watcher does not read. Each slot costs memory up front
/// (with 1024, 20 watched services took 2 MiB more than with 64).
const SIGNAL_QUEUE: usize = 256;

/// A connection to one bus.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) connection: Connection,
    pub(crate) bus: Bus,
}

/// A reply's serial number: signals from the same sender with a lower serial were sent
/// before it, so their values are older than the reply's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Serial(pub(crate) u32);

impl Serial {
    pub(crate) fn of(message: &Message) -> Serial {
        Serial(message.primary_header().serial_num().get())
    }

    /// Whether `self` was sent no later than `other` (serials wrap around).
    pub(crate) fn not_after(self, other: Serial) -> bool {
        other.0.wrapping_sub(self.0) < 1 << 31
    }
}

impl Link {
    pub(crate) async fn connect(addresses: &BusAddresses, bus: Bus) -> Result<Link, SystemdError> {
        let address = addresses.address(bus)?;
        let connect_error = |source| SystemdError::Connect {
            bus,
            address: address.to_owned(),
            source: Box::new(source),
        };
        let builder = zbus::connection::Builder::address(address).map_err(connect_error)?;
        let connection = tokio::time::timeout(CALL_TIMEOUT, builder.build())
            .await
            .map_err(|_| SystemdError::ConnectTimeout {
                bus,
                address: address.to_owned(),
            })?
            .map_err(connect_error)?;
        Ok(Link { connection, bus })
    }

    async fn call<B>(
        &self,
        destination: &str,
        path: &str,
        interface: &str,
        method: &str,
        body: &B,
        call: impl Fn() -> String,
    ) -> Result<Message, SystemdError>
    where
        B: Serialize + DynamicType,
    {
        let bus = self.bus;
        let reply = tokio::time::timeout(
            CALL_TIMEOUT,
            self.connection
                .call_method(Some(destination), path, Some(interface), method, body),
        )
        .await
        .map_err(|_| SystemdError::Timeout { bus, call: call() })?;
        reply.map_err(|error| match error {
            zbus::Error::MethodError(name, message, _) => match name.as_str() {
                "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner" => SystemdError::NotOnBus { bus },
                _ => SystemdError::Refused {
                    bus,
                    call: call(),
                    name: name.to_string(),
                    message: message.unwrap_or_default(),
                },
            },
            source => SystemdError::Call {
                bus,
                call: call(),
                source: Box::new(source),
            },
        })
    }

    fn reply_error(&self, call: String) -> impl FnOnce(zbus::Error) -> SystemdError {
        let bus = self.bus;
        move |source| SystemdError::Reply {
            bus,
            call,
            source: Box::new(source),
        }
    }

    /// The unique name of the process that owns `org.freedesktop.systemd1` now.
    pub(crate) async fn systemd_owner(&self) -> Result<OwnedUniqueName, SystemdError> {
        let call = || format!("GetNameOwner({SYSTEMD})");
        let reply = self
            .call(DBUS, DBUS_PATH, DBUS, "GetNameOwner", &SYSTEMD, call)
            .await?;
        reply
            .body()
            .deserialize::<OwnedUniqueName>()
            .map_err(self.reply_error(call()))
    }

    /// `Manager.Subscribe()`: makes systemd emit `PropertiesChanged` for units.
    pub(crate) async fn subscribe(&self) -> Result<(), SystemdError> {
        match self
            .call(SYSTEMD, SYSTEMD_PATH, MANAGER, "Subscribe", &(), || {
                "Subscribe()".to_owned()
            })
            .await
        {
            Err(SystemdError::Refused { name, .. })
                if name == "org.freedesktop.systemd1.AlreadySubscribed" =>
            {
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// `Manager.LoadUnit(name)`: the unit's object path, also for units that do not exist
    /// (their `LoadState` says `not-found`).
    pub(crate) async fn load_unit(&self, unit: &str) -> Result<OwnedObjectPath, SystemdError> {
        let call = || format!("LoadUnit({unit})");
        let reply = self
            .call(SYSTEMD, SYSTEMD_PATH, MANAGER, "LoadUnit", &unit, call)
            .await?;
        reply
            .body()
            .deserialize::<OwnedObjectPath>()
            .map_err(self.reply_error(call()))
    }

    /// `Manager.GetUnit(name)`: whether the unit is loaded now (it does not load it).
    pub(crate) async fn unit_loaded(&self, unit: &str) -> Result<bool, SystemdError> {
        let call = || format!("GetUnit({unit})");
        match self
            .call(SYSTEMD, SYSTEMD_PATH, MANAGER, "GetUnit", &unit, call)
            .await
        {
            Ok(_) => Ok(true),
            Err(SystemdError::Refused { name, .. })
                if name == "org.freedesktop.systemd1.NoSuchUnit" =>
            {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// All properties of one interface of a unit, and the reply's serial.
    pub(crate) async fn read_interface(
        &self,
        path: &OwnedObjectPath,
        unit: &str,
        interface: Interface,
    ) -> Result<(HashMap<String, OwnedValue>, Serial), SystemdError> {
        let call = || format!("GetAll({}) of {unit}", interface.name());
        let reply = self
            .call(
                SYSTEMD,
                path.as_str(),
                PROPERTIES,
                "GetAll",
                &interface.name(),
                call,
            )
            .await?;
        let properties = reply
            .body()
            .deserialize::<HashMap<String, OwnedValue>>()
            .map_err(self.reply_error(call()))?;
        Ok((properties, Serial::of(&reply)))
    }

    /// One property of a unit, and the reply's serial.
    pub(crate) async fn get_property(
        &self,
        path: &OwnedObjectPath,
        unit: &str,
        interface: Interface,
        name: &str,
    ) -> Result<(OwnedValue, Serial), SystemdError> {
        let call = || format!("Get({}.{name}) of {unit}", interface.name());
        let reply = self
            .call(
                SYSTEMD,
                path.as_str(),
                PROPERTIES,
                "Get",
                &(interface.name(), name),
                call,
            )
            .await?;
        let value = reply
            .body()
            .deserialize::<OwnedValue>()
            .map_err(self.reply_error(call()))?;
        Ok((value, Serial::of(&reply)))
    }

    /// Reads the Unit interface and, for services, the Service interface into `status`.
    /// Returns the serial of each reply (`None` for an interface the unit does not have).
    pub(crate) async fn read_properties(
        &self,
        path: &OwnedObjectPath,
        unit: &str,
        status: &mut UnitStatus,
    ) -> Result<[Option<Serial>; 2], SystemdError> {
        let (properties, unit_serial) = self.read_interface(path, unit, Interface::Unit).await?;
        for (name, value) in &properties {
            status.apply(name, value);
        }
        let mut service_serial = None;
        if unit.ends_with(".service") {
            match self.read_interface(path, unit, Interface::Service).await {
                Ok((properties, serial)) => {
                    for (name, value) in &properties {
                        status.apply(name, value);
                    }
                    service_serial = Some(serial);
                }
                // Units of another type behind an alias have no Service interface.
                Err(SystemdError::Refused { name, .. }) => {
                    tracing::debug!(unit, error = name, "no service properties");
                }
                Err(error) => return Err(error),
            }
        }
        Ok([Some(unit_serial), service_serial])
    }

    /// A stream of matching messages; the match is registered with the bus before it returns.
    pub(crate) async fn signals(
        &self,
        rule: MatchRule<'static>,
        queue: usize,
    ) -> Result<MessageStream, SystemdError> {
        let call = || format!("AddMatch({rule})");
        let stream = tokio::time::timeout(
            CALL_TIMEOUT,
            MessageStream::for_match_rule(rule.clone(), &self.connection, Some(queue)),
        )
        .await
        .map_err(|_| SystemdError::Timeout {
            bus: self.bus,
            call: call(),
        })?;
        stream.map_err(|source| SystemdError::Call {
            bus: self.bus,
            call: call(),
            source: Box::new(source),
        })
    }

    /// `PropertiesChanged` of one unit.
    pub(crate) async fn unit_signals(
        &self,
        path: &OwnedObjectPath,
    ) -> Result<MessageStream, SystemdError> {
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(SYSTEMD)
            .and_then(|rule| rule.path(path.clone()))
            .and_then(|rule| rule.interface(PROPERTIES))
            .and_then(|rule| rule.member("PropertiesChanged"))
            .expect("a valid match rule")
            .build();
        self.signals(rule, SIGNAL_QUEUE).await
    }

    /// `Manager.ListUnitsFiltered(["failed"])`: the name and object path of every unit that
    /// is failed now (one call, however many units the manager has), and the reply's serial.
    pub(crate) async fn failed_units(
        &self,
    ) -> Result<(Vec<(String, OwnedObjectPath)>, Serial), SystemdError> {
        let call = || "ListUnitsFiltered([failed])".to_owned();
        let reply = self
            .call(
                SYSTEMD,
                SYSTEMD_PATH,
                MANAGER,
                "ListUnitsFiltered",
                &(vec!["failed"],),
                call,
            )
            .await?;
        type Listed = (
            String,
            String,
            String,
            String,
            String,
            String,
            OwnedObjectPath,
            u32,
            String,
            OwnedObjectPath,
        );
        let units = reply
            .body()
            .deserialize::<Vec<Listed>>()
            .map_err(self.reply_error(call()))?;
        let units = units
            .into_iter()
            .map(|(name, _, _, _, _, _, path, _, _, _)| (name, path))
            .collect();
        Ok((units, Serial::of(&reply)))
    }

    /// `PropertiesChanged` of the Unit interface of every unit, those loaded later too (one
    /// match on the units' path namespace; the bus leaves out the other interfaces).
    pub(crate) async fn every_unit_signals(&self) -> Result<MessageStream, SystemdError> {
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(SYSTEMD)
            .and_then(|rule| rule.path_namespace(UNITS_PATH))
            .and_then(|rule| rule.interface(PROPERTIES))
            .and_then(|rule| rule.member("PropertiesChanged"))
            .and_then(|rule| rule.arg(0, Interface::Unit.name()))
            .expect("a valid match rule")
            .build();
        self.signals(rule, SIGNAL_QUEUE).await
    }

    /// `Manager.UnitRemoved(id, path)`: a unit unloaded (garbage collected).
    pub(crate) async fn unit_removals(&self) -> Result<MessageStream, SystemdError> {
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(SYSTEMD)
            .and_then(|rule| rule.path(SYSTEMD_PATH))
            .and_then(|rule| rule.interface(MANAGER))
            .and_then(|rule| rule.member("UnitRemoved"))
            .expect("a valid match rule")
            .build();
        self.signals(rule, SIGNAL_QUEUE).await
    }

    /// `NameOwnerChanged` of `org.freedesktop.systemd1`: systemd re-executing or going away.
    pub(crate) async fn systemd_owner_changes(&self) -> Result<MessageStream, SystemdError> {
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(DBUS)
            .and_then(|rule| rule.path(DBUS_PATH))
            .and_then(|rule| rule.interface(DBUS))
            .and_then(|rule| rule.member("NameOwnerChanged"))
            .and_then(|rule| rule.arg(0, SYSTEMD))
            .expect("a valid match rule")
            .build();
        self.signals(rule, 16).await
    }

    /// `Manager.Reloading(active)`: after a `daemon-reload` units may load differently.
    pub(crate) async fn reloads(&self) -> Result<MessageStream, SystemdError> {
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(SYSTEMD)
            .and_then(|rule| rule.path(SYSTEMD_PATH))
            .and_then(|rule| rule.interface(MANAGER))
            .and_then(|rule| rule.member("Reloading"))
            .expect("a valid match rule")
            .build();
        self.signals(rule, 16).await
    }
}

/// The unit an object path of systemd names, for a unit gone before it could be read:
/// systemd writes every byte but ASCII letters and digits (and a leading digit) as `_xx`.
pub(crate) fn unit_name_of_path(path: &str) -> String {
    let label = path.rsplit('/').next().unwrap_or(path);
    let bytes = label.as_bytes();
    let mut name = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'_')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                name.push(byte);
                index += 3;
            }
            None => {
                name.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_name_their_units() {
        assert_eq!(
            unit_name_of_path("/org/freedesktop/systemd1/unit/crasher_2eservice"),
            "crasher.service"
        );
        assert_eq!(
            unit_name_of_path("/org/freedesktop/systemd1/unit/getty_40tty1_2eservice"),
            "getty@tty1.service"
        );
        assert_eq!(
            unit_name_of_path("/org/freedesktop/systemd1/unit/_31password_2etimer"),
            "1password.timer"
        );
    }

    #[test]
    fn serials_compare_across_wrap_around() {
        assert!(Serial(5).not_after(Serial(5)));
        assert!(Serial(4).not_after(Serial(5)));
        assert!(!Serial(6).not_after(Serial(5)));
        assert!(Serial(u32::MAX).not_after(Serial(2)));
        assert!(!Serial(2).not_after(Serial(u32::MAX)));
    }
}
