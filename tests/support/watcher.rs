//! A watcher under test (the service, container and D-Bus signal watchers): it runs on a
//! task of its own with its config and event channels, and the test waits for what it
//! sends, every wait with a deadline and failing with every event seen so far.
//!
//! Shared by several test targets through
//! `#[path = "../../../tests/support/watcher.rs"] mod watcher;`, so it uses only `std`,
//! `tokio`, `tokio-util` and what every watcher crate depends on (`monitor-source`,
//! `monitor-wire`).

#![allow(dead_code)] // each test target uses a different part of it

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use monitor_source::WatcherEvent;
use monitor_wire::{CheckId, Subsystem};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;

/// `struct $name(WatcherUnderTest<$config, $event, $error>)`, used as the harness itself
/// (through `Deref`), so that a test target adds its own waits (`expect_matched`) to it.
macro_rules! watcher_under_test {
    ($name:ident, $config:ty, $event:ty, $error:ty) => {
        /// A running watcher and everything it sent so far.
        struct $name(watcher::WatcherUnderTest<$config, $event, $error>);

        impl std::ops::Deref for $name {
            type Target = watcher::WatcherUnderTest<$config, $event, $error>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.0
            }
        }
    };
}
pub(crate) use watcher_under_test;

/// A running watcher and everything it sent so far.
pub struct WatcherUnderTest<C, E, Err> {
    events: mpsc::Receiver<E>,
    /// Kept open: a closed config channel stops the watcher.
    pub configs: mpsc::Sender<C>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), Err>>>,
    /// Every event taken so far, in order.
    pub seen: Vec<E>,
    /// How long each wait may take.
    deadline: Duration,
}

impl<C, E, Err> WatcherUnderTest<C, E, Err>
where
    E: Clone + Debug,
    Err: Send + 'static,
{
    /// Starts `run` (the watcher's `run`) with `first` as its first config and room for
    /// `event_capacity` events.
    pub fn start<Running>(
        first: C,
        event_capacity: usize,
        deadline: Duration,
        run: impl FnOnce(mpsc::Receiver<C>, mpsc::Sender<E>, CancellationToken) -> Running,
    ) -> Self
    where
        Running: Future<Output = Result<(), Err>> + Send + 'static,
    {
        let (configs, config_receiver) = mpsc::channel(4);
        let (event_sender, events) = mpsc::channel(event_capacity);
        let shutdown = CancellationToken::new();
        assert!(
            configs.try_send(first).is_ok(),
            "a new config channel takes the first config"
        );
        let task = tokio::spawn(run(config_receiver, event_sender, shutdown.clone()));
        WatcherUnderTest {
            events,
            configs,
            shutdown,
            task: Some(task),
            seen: Vec::new(),
            deadline,
        }
    }

    pub async fn next(&mut self) -> E {
        match tokio::time::timeout(self.deadline, self.events.recv()).await {
            Ok(Some(event)) => {
                self.seen.push(event.clone());
                event
            }
            Ok(None) => panic!("the watcher stopped; events so far: {:#?}", self.seen),
            Err(_) => panic!(
                "no event within {:?}; events so far: {:#?}",
                self.deadline, self.seen
            ),
        }
    }

    /// Skips events until one matches.
    pub async fn expect(&mut self, what: &str, matches: impl Fn(&E) -> bool) -> E {
        self.expect_where(what, |event| matches(event).then(|| event.clone()))
            .await
    }

    /// Skips events until `pick` takes one, and returns what it took.
    pub async fn expect_where<T>(&mut self, what: &str, pick: impl Fn(&E) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + self.deadline;
        loop {
            let event = tokio::time::timeout_at(deadline, self.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {what} within {:?}; events so far: {:#?}",
                        self.deadline, self.seen
                    )
                });
            if let Some(picked) = pick(&event) {
                return picked;
            }
        }
    }

    /// Nothing arrives within `window`.
    pub async fn expect_quiet(&mut self, window: Duration) {
        if let Ok(event) = tokio::time::timeout(window, self.events.recv()).await {
            panic!(
                "expected nothing, got {event:?}; events before: {:#?}",
                self.seen
            );
        }
    }

    /// Stops the watcher: how its task ended (it must end within the deadline), and the
    /// events it sent that were not taken.
    pub async fn stop(mut self) -> (Result<Result<(), Err>, JoinError>, Vec<E>) {
        self.shutdown.cancel();
        let task = self.task.take().expect("stopped once");
        let ended = tokio::time::timeout(self.deadline, task)
            .await
            .expect("the watcher stops on shutdown");
        let mut rest = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            rest.push(event);
        }
        (ended, rest)
    }
}

/// The waits for states, of a watcher of things that run (units, containers), whose checks
/// are service checks.
impl<C, S, Err> WatcherUnderTest<C, WatcherEvent<S>, Err>
where
    S: Clone + Debug,
    Err: Send + 'static,
{
    /// Skips events until a State of the check `name` with `running`.
    pub async fn expect_state(&mut self, name: &str, running: bool) -> S {
        self.state(name, Some(running)).await.1
    }

    /// The next State of the check `name`, skipping other events.
    pub async fn next_state(&mut self, name: &str) -> (bool, S) {
        self.state(name, None).await
    }

    /// Skips events until a State of the check `name`, with `running` as wanted when
    /// `running` is given.
    async fn state(&mut self, name: &str, running: Option<bool>) -> (bool, S) {
        let wanted = CheckId::new(Subsystem::Service, name);
        let what = match running {
            Some(running) => format!("State {name} running={running}"),
            None => format!("State {name}"),
        };
        self.expect_where(&what, |event| match event {
            WatcherEvent::State {
                check,
                running: is,
                status,
            } if *check == wanted && running.is_none_or(|want| want == *is) => {
                Some((*is, status.clone()))
            }
            _ => None,
        })
        .await
    }
}
