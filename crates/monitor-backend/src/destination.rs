//! The backend as a [`Destination`].

use std::time::Duration;

use monitor_destination::{Destination, Heartbeats, OutgoingAlert, Verdict, VerdictFuture};
use monitor_wire::config_push::ConfigCheck;

use crate::{BackendClient, BackendFailure, BackendFailureKind, HeartbeatAnswer};

/// Alerts per request: the devicemonitor API takes small batches.
const BATCH_SIZE: usize = 16;

/// The devicemonitor backend as a destination: alert batches, and the check list pushed
/// at start, on every change and every `config_push_interval`. A batch it finds invalid or
/// too big (400, 413, 422) is rejected, which the caller answers by splitting it; everything
/// else is retried with the client's backoff. In `auth: token` mode it may also send
/// heartbeats ([`BackendDestination::with_heartbeats`]).
#[derive(Debug)]
pub struct BackendDestination {
    client: BackendClient,
    config_push_interval: Duration,
    heartbeats: Option<Heartbeats>,
}

impl BackendDestination {
    pub fn new(client: BackendClient, config_push_interval: Duration) -> Self {
        BackendDestination {
            client,
            config_push_interval,
            heartbeats: None,
        }
    }

    /// Sends heartbeats as `heartbeats` says (`None`: no heartbeat requests at all, as in
    /// `auth: mender` mode).
    pub fn with_heartbeats(mut self, heartbeats: Option<Heartbeats>) -> Self {
        self.heartbeats = heartbeats;
        self
    }
}

impl Destination for BackendDestination {
    fn batch_size(&self) -> usize {
        BATCH_SIZE
    }

    fn deliver<'a>(
        &'a mut self,
        _device: &'a str,
        alerts: &'a [OutgoingAlert<'a>],
    ) -> VerdictFuture<'a> {
        // The device is who the token says it is: the alerts need not name it.
        Box::pin(async move { verdict(self.client.send_alerts(alerts).await) })
    }

    fn config_push_interval(&self) -> Option<Duration> {
        Some(self.config_push_interval)
    }

    fn push_config<'a>(&'a mut self, checks: &'a [ConfigCheck]) -> VerdictFuture<'a> {
        Box::pin(async move { verdict(self.client.push_config(checks).await) })
    }

    fn heartbeats(&self) -> Option<Heartbeats> {
        self.heartbeats
    }

    fn heartbeat(&mut self) -> VerdictFuture<'_> {
        let interval = match self.heartbeats {
            Some(Heartbeats::Every(interval)) => Some(interval),
            Some(Heartbeats::Stopped) | None => None,
        };
        Box::pin(async move {
            match self.client.send_heartbeat(interval).await {
                Ok(HeartbeatAnswer::Taken) => Verdict::Delivered,
                Ok(HeartbeatAnswer::NotServed { message }) => Verdict::Gone { message },
                Err(failure) => verdict(Err(failure)),
            }
        })
    }
}

fn verdict(result: Result<(), BackendFailure>) -> Verdict {
    let Err(failure) = result else {
        return Verdict::Delivered;
    };
    match failure.kind {
        BackendFailureKind::Retry { after } => Verdict::Retry {
            delivered: 0,
            after,
            message: failure.message,
        },
        BackendFailureKind::Discard { .. } => Verdict::Rejected {
            delivered: 0,
            message: failure.message,
        },
    }
}
