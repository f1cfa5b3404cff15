//! The systemd notification protocol (`Type=notify`, `WatchdogSec=`): a datagram to
//! `$NOTIFY_SOCKET`. Without that variable (not started by systemd) everything is a no-op.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub struct SystemdNotifier {
    target: Option<SocketAddr>,
    socket: Option<UnixDatagram>,
    watchdog: Option<Duration>,
}

impl SystemdNotifier {
    pub fn from_environment() -> SystemdNotifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let bytes = path.as_encoded_bytes();
            let address = match bytes.strip_prefix(b"@") {
                Some(name) => SocketAddr::from_abstract_name(name),
                None => SocketAddr::from_pathname(&path),
            };
            address
                .map_err(|error| tracing::warn!(%error, "NOTIFY_SOCKET is unusable; systemd will not hear from monitord"))
                .ok()
        });
        let socket = target.as_ref().and_then(|_| UnixDatagram::unbound().ok());
        SystemdNotifier {
            target,
            socket,
            watchdog: watchdog_interval(),
        }
    }

    /// How often to pet the watchdog (half of `WatchdogSec=`), when systemd asks for it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Started; `status` is what `systemctl status` shows.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, message: &str) {
        let (Some(socket), Some(target)) = (&self.socket, &self.target) else {
            return;
        };
        if let Err(error) = socket.send_to_addr(message.as_bytes(), target) {
            tracing::warn!(%error, message, "cannot notify systemd");
        }
    }
}

/// `WATCHDOG_USEC` halved, if it is meant for this process (`WATCHDOG_PID` unset or ours).
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
