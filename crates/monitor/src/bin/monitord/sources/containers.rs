//! Containers (`service <name> docker` checks): the engine's event stream, followed while
//! some such check is enabled.

use monitor_docker::ContainerWatchConfig;
use monitor_source::{SourceEvent, SourceKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::on_demand::OnDemand;
use super::source::{forward_watcher, with_forwarder, Boxed, Connection, Context, Source};

pub struct Containers {
    events: mpsc::Sender<SourceEvent>,
    tasks: CancellationToken,
    /// Running while some `service ... docker` check is enabled.
    watcher: OnDemand<ContainerWatchConfig>,
}

impl Containers {
    pub fn new(events: mpsc::Sender<SourceEvent>, tasks: &CancellationToken) -> Containers {
        Containers {
            events,
            tasks: tasks.clone(),
            watcher: OnDemand::new("container"),
        }
    }
}

const DOCKER: Connection = Connection {
    source: SourceKind::Containers,
    connected: "connected to the Docker engine",
    lost: "the Docker engine",
};

impl Source for Containers {
    fn configure<'a>(&'a mut self, context: &'a Context<'a>) -> Boxed<'a, Vec<SourceEvent>> {
        Box::pin(async move {
            let containers = &context.plan.containers;
            let mut config = None;
            let mut found = Vec::new();
            if !containers.is_empty() {
                match monitor_docker::Engine::from_env() {
                    Ok(engine) => {
                        config = Some(ContainerWatchConfig {
                            engine,
                            containers: containers.clone(),
                        })
                    }
                    Err(error) => {
                        tracing::error!("{error}; container checks are not watched");
                        found.extend(containers.iter().map(|container| SourceEvent::Problem {
                            check: container.check.clone(),
                            message: error.to_string(),
                        }));
                    }
                }
            }
            let events = self.events.clone();
            self.watcher
                .configure(config, &self.tasks, |configs, stop| {
                    with_forwarder(
                        |raw| monitor_docker::run(configs, raw, stop),
                        |raw| forward_watcher(raw, events, &DOCKER),
                    )
                })
                .await;
            found
        })
    }

    fn finish(&mut self) -> Boxed<'_, ()> {
        Box::pin(self.watcher.finish())
    }
}
