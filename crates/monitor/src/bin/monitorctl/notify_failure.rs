//! `monitorctl notify-failure`: report a failed unit without depending on the agent, for
//! `OnFailure=monitor-failure@%n.service` (the agent's own death included) and
//! `ExecStopPost=monitorctl notify-failure --from-env %n`.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use monitor::{ask_agent, FolderArgs};
use monitor_config::SystemdBus;
use std::time::{Duration, SystemTime};

use monitor::destinations::{device_id, outbox_limits, plan_destinations};
use monitor_config::Settings;
use monitor_destination::Outcome;
use monitor_store::{AlertHistory, Outbox};
use monitor_systemd::{read_unit, unit_name, Bus};
use monitor_wire::control::{Request, Response};
use monitor_wire::{Alert, CheckId, Details, HistoryRecord, Level, Subject, Subsystem, Timestamp};

/// `user`: `Some(true)` for the user manager, `Some(false)` for the system one, `None` for
/// the setting in monitor.yaml.
pub fn run(
    folders: &FolderArgs,
    unit: &str,
    from_env: bool,
    user: Option<bool>,
) -> anyhow::Result<()> {
    let settings = crate::settings(folders)?;
    let unit = unit_name(unit);
    let details = if from_env {
        match details_from_environment(&unit)? {
            Some(details) => details,
            // A clean stop is not a failure.
            None => return Ok(()),
        }
    } else {
        let user = user.unwrap_or(settings.systemd.bus == SystemdBus::User);
        let bus = if user { Bus::Session } else { Bus::System };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let status = runtime
            .block_on(read_unit(bus, &unit))
            .with_context(|| format!("cannot read the state of {unit} from systemd"))?;
        status.details()
    };

    let service = unit.strip_suffix(".service").unwrap_or(&unit).to_owned();
    let check = CheckId::new(Subsystem::Service, service.clone());
    let alert = Alert {
        name: format!("Service {service} not running"),
        level: Level::Critical,
        timestamp: Timestamp::now(),
        subject: Subject {
            name: service,
            kind: "systemd".into(),
            status: "not-running".into(),
            details,
        },
    };
    let request = Request::Record {
        check: check.clone(),
        unit: unit.clone(),
        alert: Box::new(alert.clone()),
    };
    match ask_agent(&settings.runtime_dir, &request) {
        Ok(Some(Response::Done)) => return Ok(()),
        Ok(Some(Response::Error { message })) => bail!("{message}"),
        Ok(Some(other)) => bail!("unexpected answer from monitord: {other:?}"),
        // The agent is down (maybe it is the unit that failed): record it ourselves.
        Ok(None) | Err(_) => {}
    }
    std::fs::create_dir_all(&settings.state_dir)
        .with_context(|| format!("cannot create {}", settings.state_dir.display()))?;
    let mut history = AlertHistory::open(&settings.state_dir, settings.alert_history_max_bytes)?;
    let in_use = numbers_in_use(&settings)?;
    let record = history.append_next(check, alert, in_use)?;
    deliver_directly(&settings, record)
}

/// The newest alert number the agent may have used that the history does not show: it
/// delivers alerts before writing them, reserves numbers ahead in its checkpoint, and the
/// outbox may be ahead of the history after a crash.
fn numbers_in_use(settings: &Settings) -> anyhow::Result<u64> {
    let outbox = Outbox::open(&settings.state_dir, outbox_limits(settings))?;
    let reserved = monitor_store::read_optional(&settings.state_dir.join("checkpoint.json"))
        .ok()
        .flatten()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|checkpoint| checkpoint["next_seq"].as_u64())
        .unwrap_or(0);
    Ok(outbox
        .last_seq()
        .max(outbox.newest_taken())
        .unwrap_or(0)
        .max(reserved.saturating_sub(1)))
}

/// With the agent down, deliver to every destination ourselves, once, through the outbox:
/// what does not get through waits there for the agent.
fn deliver_directly(settings: &Settings, record: HistoryRecord) -> anyhow::Result<()> {
    let (planned, problems) = plan_destinations(settings);
    for problem in problems {
        eprintln!("warning: {problem}");
    }
    if planned.is_empty() {
        return Ok(());
    }
    let mut outbox = Outbox::open(&settings.state_dir, outbox_limits(settings))?;
    let names: Vec<String> = planned
        .iter()
        .map(|destination| destination.name.clone())
        .collect();
    let newest = outbox
        .last_seq()
        .unwrap_or(0)
        .min(record.seq.saturating_sub(1));
    outbox.set_destinations(&names, newest);
    outbox.append(std::slice::from_ref(&record), SystemTime::now())?;

    let device_id = device_id(settings);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for destination in planned {
        // The same filter and destinations as the agent's delivery, without its retries:
        // what does not get through now waits for the agent.
        let batch = destination.filter.select(std::slice::from_ref(&record));
        let outcome = if batch.is_empty() {
            Ok(Outcome::Done {
                through: record.seq,
                rejected: Vec::new(),
            })
        } else {
            (destination.start)().map(|mut started| {
                runtime.block_on(async {
                    tokio::time::timeout(
                        DIRECT_DEADLINE,
                        batch.deliver(started.as_mut(), &device_id),
                    )
                    .await
                    .unwrap_or_else(|_| Outcome::Retry {
                        through: None,
                        after: Duration::ZERO,
                        message: format!("no answer within {DIRECT_DEADLINE:?}"),
                        rejected: Vec::new(),
                    })
                })
            })
        };
        match outcome {
            Ok(Outcome::Done { through, rejected }) if rejected.is_empty() => {
                outbox.acknowledge(&destination.name, through)?
            }
            // The agent keeps a refused alert aside (its dead-letter file): left to it.
            Ok(Outcome::Done { rejected, .. }) => eprintln!(
                "warning: {}: {}; the alert waits in the outbox for monitord",
                destination.name, rejected[0].message
            ),
            Ok(Outcome::Retry { message, .. } | Outcome::Disable { message }) | Err(message) => {
                eprintln!(
                    "warning: {}: {message}; the alert waits in the outbox for monitord",
                    destination.name
                )
            }
        }
    }
    Ok(())
}

/// How long a direct delivery may take: the handler unit must finish.
const DIRECT_DEADLINE: Duration = Duration::from_secs(20);

/// What `ExecStopPost=` is told (systemd.exec(5)); `None` when the service stopped cleanly.
fn details_from_environment(unit: &str) -> anyhow::Result<Option<Details>> {
    let Ok(result) = std::env::var("SERVICE_RESULT") else {
        bail!("$SERVICE_RESULT is not set: use --from-env only in ExecStopPost=, or leave it out to ask systemd");
    };
    if result == "success" {
        return Ok(None);
    }
    let code = std::env::var("EXIT_CODE").unwrap_or_default();
    let status = std::env::var("EXIT_STATUS").unwrap_or_default();
    let mut fields = BTreeMap::new();
    fields.insert("unit".to_owned(), unit.into());
    fields.insert("result".to_owned(), result.clone().into());
    if !code.is_empty() {
        fields.insert("exit_code".to_owned(), code.clone().into());
    }
    if !status.is_empty() {
        let value = status
            .parse::<i64>()
            .map_or_else(|_| status.clone().into(), Into::into);
        fields.insert("exit_status".to_owned(), value);
    }
    let mut description = format!("{unit} stopped: Result: {result}");
    if !code.is_empty() {
        description.push_str(&format!(" (code={code}, status={status})"));
    }
    Ok(Some(Details {
        description: Some(description),
        fields,
        ..Details::default()
    }))
}
