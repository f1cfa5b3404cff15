//! Where the D-Bus buses are, from the environment (read here only; the watchers of
//! systemd and of D-Bus signals connect to them).

/// `DBUS_SYSTEM_BUS_ADDRESS`, or `default` when it is unset or empty. Callers differ in
/// their default socket path (`/var/run/…` as the D-Bus spec writes it, or `/run/…`).
pub fn system_bus_address(default: &str) -> String {
    variable("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|| default.to_owned())
}

/// `DBUS_SESSION_BUS_ADDRESS`; when it is unset or empty and `runtime_dir_bus` is set,
/// `unix:path=$XDG_RUNTIME_DIR/bus`, where a user session's bus is. `None` when neither.
pub fn session_bus_address(runtime_dir_bus: bool) -> Option<String> {
    variable("DBUS_SESSION_BUS_ADDRESS").or_else(|| {
        runtime_dir_bus
            .then(|| variable("XDG_RUNTIME_DIR"))
            .flatten()
            .map(|runtime| format!("unix:path={runtime}/bus"))
    })
}

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}
