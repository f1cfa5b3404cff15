//! Containers (`service <name> docker` checks): the engine's event stream, followed while
//! some such check is enabled.

use monitor_docker::{ContainerEvent, ContainerWatchConfig};
use monitor_source::{Observed, SourceEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::on_demand::OnDemand;
use super::source::{forward, with_forwarder, Boxed, Context, ProblemLog, Source};

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

fn container_event(problems: &mut ProblemLog, event: ContainerEvent) -> Vec<SourceEvent> {
    match event {
        ContainerEvent::State {
            check,
            running,
            status,
        } => {
            problems.resolved(&check);
            vec![
                SourceEvent::Resolved {
                    check: check.clone(),
                },
                SourceEvent::Observed {
                    observations: vec![(
                        check,
                        Observed::State {
                            running,
                            details: status.details(),
                        },
                    )],
                    position: None,
                },
            ]
        }
        ContainerEvent::Problem { check, message } => vec![problems.problem(check, message)],
        ContainerEvent::Connected => vec![SourceEvent::Connected {
            message: "connected to the Docker engine",
        }],
        ContainerEvent::Disconnected { reason } => vec![SourceEvent::Disconnected {
            message: format!("lost the Docker engine ({reason}); reconnecting"),
        }],
    }
}

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
                    let mut problems = ProblemLog::default();
                    with_forwarder(
                        |raw| monitor_docker::run(configs, raw, stop),
                        |raw| {
                            forward(raw, events, move |event| {
                                container_event(&mut problems, event)
                            })
                        },
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
