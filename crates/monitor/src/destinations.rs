//! The registry of destinations: from the `delivery:` settings to [`PlannedDestination`]s
//! (secrets read from their files or variables, URLs parsed, names given), the one set-up
//! shared by the agent's delivery and by `monitorctl notify-failure`, which delivers without
//! the agent. Both drive what it plans through `monitor_destination::Destination`.
//!
//! Adding a destination (ntfy, say) touches three files:
//! 1. `destinations/<kind>.rs`: its settings → a `PlannedDestination` (name, identity,
//!    filter, start), and its `Destination` unless a crate of its own has one;
//! 2. this file: `mod <kind>;` and one line in [`plan_destinations`];
//! 3. monitor-config's `settings.rs`: its settings struct and its field of
//!    `DeliverySettings` (monitor-config re-exports every settings type).
//!
//! The delivery task, `notify-failure`, the filter, the outbox and `monitorctl status` need
//! no change.

mod backend;
mod discord;
mod email;
mod mqtt;
mod ntfy;
mod secret;
mod slack;
mod telegram;
mod webhook;

use monitor_config::Settings;
use monitor_destination::PlannedDestination;
use monitor_store::OutboxLimits;

/// Every destination of `settings.delivery`, and a problem (file and field named, no
/// secret) for each that cannot be used.
pub fn plan_destinations(settings: &Settings) -> (Vec<PlannedDestination>, Vec<String>) {
    let (planned, problems) = plan_destinations_by_setting(settings);
    let planned = planned.into_iter().map(|(_, planned)| planned).collect();
    (planned, problems)
}

/// [`plan_destinations`], each destination with its setting below `delivery.` (`discord[0]`,
/// `backend`), by which `monitorctl test-destination` finds it.
pub fn plan_destinations_by_setting(
    settings: &Settings,
) -> (Vec<(String, PlannedDestination)>, Vec<String>) {
    let delivery = &settings.delivery;
    let mut plan = Plan::default();
    plan.each("discord", "this webhook", &delivery.discord, discord::plan);
    plan.one("backend", "the backend", &delivery.backend, backend::plan);
    let device = device_id(settings);
    plan.each("mqtt", "this broker", &delivery.mqtt, |mqtt| {
        mqtt::plan(mqtt, &device)
    });
    plan.each(
        "email",
        "this relay's recipients",
        &delivery.email,
        email::plan,
    );
    plan.each("webhook", "this webhook", &delivery.webhook, webhook::plan);
    plan.each("ntfy", "this topic", &delivery.ntfy, ntfy::plan);
    plan.each("slack", "this webhook", &delivery.slack, slack::plan);
    plan.each("telegram", "this chat", &delivery.telegram, telegram::plan);
    (plan.planned, plan.problems)
}

/// How long undelivered alerts are kept, for every destination alike.
pub fn outbox_limits(settings: &Settings) -> OutboxLimits {
    OutboxLimits {
        max_count: settings.delivery.alert_offline_store_max_count,
        max_age: settings.delivery.alert_store_max_record_age,
    }
}

/// The device's name in alerts: `device_id` from monitor.yaml, else the hostname.
pub fn device_id(settings: &Settings) -> String {
    settings.device_id.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "unknown-device".into())
    })
}

/// Destinations planned so far, and what kept the others from being planned.
#[derive(Default)]
struct Plan {
    /// Each with its setting below `delivery.`.
    planned: Vec<(String, PlannedDestination)>,
    problems: Vec<String>,
}

impl Plan {
    /// A list of destinations of one kind, `delivery.<key>[]`.
    fn each<S>(
        &mut self,
        key: &str,
        which: &str,
        list: &[S],
        plan: impl Fn(&S) -> Result<PlannedDestination, String>,
    ) {
        for (index, settings) in list.iter().enumerate() {
            self.add(&format!("{key}[{index}]"), which, plan(settings));
        }
    }

    /// A destination there is at most one of, `delivery.<key>`.
    fn one<S>(
        &mut self,
        key: &str,
        which: &str,
        settings: &Option<S>,
        plan: fn(&S) -> Result<PlannedDestination, String>,
    ) {
        if let Some(settings) = settings {
            self.add(key, which, plan(settings));
        }
    }

    /// `field` below `delivery.`; `which` names the destination in a problem.
    fn add(&mut self, field: &str, which: &str, planned: Result<PlannedDestination, String>) {
        match planned {
            Ok(destination) => self.planned.push((field.to_owned(), destination)),
            Err(message) => self.problems.push(format!(
                "monitor.yaml: delivery.{field}: {message}; {which} gets nothing"
            )),
        }
    }
}
