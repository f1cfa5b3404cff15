//! A watcher task that runs only while some check needs it: started with its first config,
//! given every later one, stopped when no check of its kind is left. A device without
//! systemd, D-Bus or a container engine never tries to reach them.

use std::fmt::Display;
use std::future::Future;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running<C> {
    configs: mpsc::Sender<C>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct OnDemand<C> {
    /// What it watches, for logs: "service", "dbus", ...
    what: &'static str,
    running: Option<Running<C>>,
}

impl<C: Send + 'static> OnDemand<C> {
    pub fn new(what: &'static str) -> Self {
        OnDemand {
            what,
            running: None,
        }
    }

    /// Hand `config` to the task, starting it with `start` first if it is not running;
    /// `None` stops it.
    pub async fn configure<F, Fut, E>(
        &mut self,
        config: Option<C>,
        parent: &CancellationToken,
        start: F,
    ) where
        F: FnOnce(mpsc::Receiver<C>, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        let Some(config) = config else {
            if let Some(running) = self.running.take() {
                tracing::info!("no {} checks left; stopping their watcher", self.what);
                running.stop.cancel();
            }
            return;
        };
        let what = self.what;
        let running = self.running.get_or_insert_with(|| {
            // Bounded: config changes are rare, and the watcher takes them at once.
            let (configs, receiver) = mpsc::channel(4);
            let stop = parent.child_token();
            let watcher = start(receiver, stop.clone());
            let task = tokio::spawn(async move {
                if let Err(error) = watcher.await {
                    tracing::error!("the {what} watcher stopped: {error}");
                }
            });
            Running {
                configs,
                stop,
                task,
            }
        });
        if running.configs.send(config).await.is_err() {
            tracing::error!(
                "the {what} watcher stopped; {what} checks are not watched until monitord restarts"
            );
        }
    }

    /// Wait for the task to end (after the parent token was cancelled).
    pub async fn finish(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.task.await;
        }
    }
}
