//! `delivery.backend`: a backend speaking the Mender devicemonitor device API.

use monitor_backend::{Auth, BackendClient, BackendDestination};
use monitor_config::{BackendAuth, BackendSettings};
use monitor_destination::{Filter, Heartbeats, PlannedDestination};
use monitor_wire::duration::Expiration;

use super::secret;

pub(super) fn plan(settings: &BackendSettings) -> Result<PlannedDestination, String> {
    let auth = match settings.auth {
        BackendAuth::Mender => Auth::Mender {
            bus_address: settings.mender_bus.clone(),
        },
        BackendAuth::Token => {
            let token = if let Some(file) = &settings.token_file {
                secret::from_file(file, "token_file")?.trim().to_owned()
            } else if let Some(variable) = &settings.token_env {
                secret::from_env(variable, "token_env")?
            } else {
                return Err("auth: token needs token_file or token_env".into());
            };
            let server_url = settings.url.clone().ok_or("auth: token needs url")?;
            Auth::Token { server_url, token }
        }
    };
    let identity = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        settings.url,
        settings.auth,
        settings.token_file,
        settings.token_env,
        settings.ca_file,
        settings.mender_bus,
        settings.config_push_interval,
        settings.heartbeat_interval
    );
    let ca_file = settings.ca_file.clone();
    let push_every = settings.config_push_interval;
    // Only in token mode: Mender's API has no heartbeat.
    let heartbeats = settings.heartbeat().map(|interval| match interval {
        Expiration::After(every) => Heartbeats::Every(every),
        Expiration::Never => Heartbeats::Stopped,
    });
    Ok(PlannedDestination {
        name: "backend".into(),
        identity,
        // The backend takes every alert: it is the device's record.
        filter: Filter::everything(),
        start: Box::new(move || {
            let http = monitor_backend::http_client(ca_file.as_deref())
                .map_err(|error| format!("monitor.yaml: delivery.backend.ca_file: {error}"))?;
            let client = BackendClient::new(http, auth);
            Ok(Box::new(
                BackendDestination::new(client, push_every).with_heartbeats(heartbeats),
            ))
        }),
    })
}
