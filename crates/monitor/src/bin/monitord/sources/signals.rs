//! D-Bus signals (`dbus` checks): one connection, run while some such check is enabled.

use monitor_dbus::{SignalBus, SignalWatchConfig};
use monitor_source::{SourceEvent, SourceKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::on_demand::OnDemand;
use super::source::{forward_watcher, with_forwarder, Boxed, Connection, Context, Source};

pub struct Signals {
    events: mpsc::Sender<SourceEvent>,
    tasks: CancellationToken,
    /// Running while some dbus check is enabled.
    watcher: OnDemand<SignalWatchConfig>,
}

impl Signals {
    pub fn new(events: mpsc::Sender<SourceEvent>, tasks: &CancellationToken) -> Signals {
        Signals {
            events,
            tasks: tasks.clone(),
            watcher: OnDemand::new("dbus"),
        }
    }
}

const DBUS: Connection = Connection {
    source: SourceKind::Signals,
    connected: "listening for D-Bus signals",
    lost: "the D-Bus connection for signals",
};

impl Source for Signals {
    fn configure<'a>(&'a mut self, context: &'a Context<'a>) -> Boxed<'a, Vec<SourceEvent>> {
        Box::pin(async move {
            let bus = match context.settings.dbus.bus.as_str() {
                "system" => SignalBus::System,
                "session" => SignalBus::Session,
                address => SignalBus::Address(address.to_owned()),
            };
            let config = (!context.plan.signals.is_empty()).then(|| SignalWatchConfig {
                bus,
                signals: context.plan.signals.clone(),
            });
            let events = self.events.clone();
            self.watcher
                .configure(config, &self.tasks, |configs, stop| {
                    with_forwarder(
                        |raw| monitor_dbus::run(configs, raw, stop),
                        |raw| forward_watcher(raw, events, &DBUS),
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
