//! The backend as a [`Destination`].

use std::time::Duration;

use monitor_destination::{Destination, OutgoingAlert, Verdict, VerdictFuture};
use monitor_wire::config_push::ConfigCheck;

use crate::{BackendClient, BackendFailure, BackendFailureKind};

/// Alerts per request: the devicemonitor API takes small batches.
const BATCH_SIZE: usize = 16;

/// The devicemonitor backend as a destination: alert batches, and the check list pushed
/// at start, on every change and every `config_push_interval`. A batch it finds invalid or
/// too big (400, 413, 422) is rejected, which the caller answers by splitting it; everything
/// else is retried with the client's backoff.
#[derive(Debug)]
pub struct BackendDestination {
    client: BackendClient,
    config_push_interval: Duration,
}

impl BackendDestination {
    pub fn new(client: BackendClient, config_push_interval: Duration) -> Self {
        BackendDestination {
            client,
            config_push_interval,
        }
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
