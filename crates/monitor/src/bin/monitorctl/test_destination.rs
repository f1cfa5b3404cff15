//! `monitorctl test-destination <name>`: one test alert through one destination, planned
//! from monitor.yaml as monitord plans it, and what the destination made of it, in words a
//! user can act on.
//!
//! It goes past the destination's `min_level` and `checks` (a test of where alerts go, not
//! of which), and around the outbox: nothing is queued, retried or acknowledged, so the
//! agent's progress is untouched. The backend is refused: a Mender server or monitor-server
//! would record the test as a real alert of the device and pass it on to its own channels.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use monitor::destinations::{device_id, plan_destinations_by_setting};
use monitor::FolderArgs;
use monitor_destination::{OutgoingAlert, PlannedDestination, Verdict};
use monitor_wire::{Alert, CheckId, Details, Level, Subject, Subsystem, Timestamp};

/// How long the destination may take to answer.
const DEADLINE: Duration = Duration::from_secs(30);

pub fn run(folders: &FolderArgs, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let settings = crate::settings(folders)?;
    let (planned, problems) = plan_destinations_by_setting(&settings);
    for problem in &problems {
        eprintln!("{problem}");
    }
    let Some(name) = name else {
        outln!("{}", list(&planned));
        return Ok(ExitCode::SUCCESS);
    };
    let Some(index) = find(&planned, name) else {
        eprintln!(
            "monitorctl: no destination {name:?} in monitor.yaml; {}",
            list(&planned)
        );
        return Ok(ExitCode::from(1));
    };
    let (setting, destination) = planned.into_iter().nth(index).expect("found above");
    let shown = format!("delivery.{setting} ({})", destination.name);
    if setting == "backend" {
        bail!(
            "{shown}: not sent: the server would record a test alert as a real alert of this device and pass it on to its notification channels; `monitorctl alerts --pending` shows whether monitord reaches the backend"
        );
    }
    let device = device_id(&settings);
    // MQTT keeps a retained state per check: the test's OK follows, so Home Assistant is
    // not left with a problem sensor on.
    let then_ok = setting.starts_with("mqtt[");
    match send_test_alert(destination, &device, then_ok)? {
        Verdict::Delivered => {
            outln!("{shown}: sent");
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Retry { message, .. } => {
            bail!("{shown}: not sent, for now: {message}; monitord would try again later")
        }
        Verdict::Rejected { message, .. } => {
            bail!("{shown}: refused: {message}")
        }
        Verdict::Gone { message } => bail!(
            "{shown}: {message}; monitord stops sending to it until delivery.{setting} in monitor.yaml changes"
        ),
    }
}

/// The destination `name` means: its setting (with or without `delivery.`), its kind when
/// there is one of that kind, or its outbox name.
fn find(planned: &[(String, PlannedDestination)], name: &str) -> Option<usize> {
    let name = name.strip_prefix("delivery.").unwrap_or(name);
    let kind = |setting: &str| setting.split('[').next().unwrap_or(setting).to_owned();
    if let Some(index) = planned
        .iter()
        .position(|(setting, destination)| setting == name || destination.name == name)
    {
        return Some(index);
    }
    let of_kind: Vec<usize> = planned
        .iter()
        .enumerate()
        .filter(|(_, (setting, _))| kind(setting) == name)
        .map(|(index, _)| index)
        .collect();
    match of_kind[..] {
        [index] => Some(index),
        _ => None,
    }
}

/// The names `find` takes, one destination a line.
fn list(planned: &[(String, PlannedDestination)]) -> String {
    if planned.is_empty() {
        return "monitor.yaml has no destination that can be used: add one under delivery: (see the README)".into();
    }
    let width = planned
        .iter()
        .map(|(setting, _)| setting.len())
        .max()
        .unwrap_or(0);
    let mut text = "the destinations of monitor.yaml, by setting and by name:".to_owned();
    for (setting, destination) in planned {
        text.push_str(&format!("\n  {setting:<width$}  {}", destination.name));
    }
    text.push_str(&format!(
        "\ntest one with e.g. monitorctl test-destination {}",
        planned[0].0
    ));
    text
}

/// Starts the destination and sends it the test alert, and then its OK when `then_ok`;
/// `Err` when it cannot start.
fn send_test_alert(
    destination: PlannedDestination,
    device: &str,
    then_ok: bool,
) -> anyhow::Result<Verdict> {
    let alert = Alert {
        name: "Test alert from monitorctl test-destination".into(),
        level: Level::Critical,
        timestamp: Timestamp::now(),
        subject: Subject {
            name: "test destination".into(),
            kind: "test".into(),
            status: "test".into(),
            details: Details {
                description: Some(format!(
                    "This is a test alert from monitorctl test-destination on {device}; nothing is wrong."
                )),
                ..Details::default()
            },
        },
    };
    let check = CheckId::new(Subsystem::Monitor, "test destination".to_owned());
    let ok = Alert {
        level: Level::Ok,
        ..alert.clone()
    };
    let outgoing = [OutgoingAlert {
        seq: 0,
        check: Some(&check),
        alert: &alert,
        link: None,
    }];
    let outgoing_ok = [OutgoingAlert {
        seq: 1,
        check: Some(&check),
        alert: &ok,
        link: None,
    }];
    let mut started = (destination.start)().map_err(|message| anyhow::anyhow!("{message}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(async {
        if let Some(until) = started.paused_until() {
            tokio::time::sleep_until(until).await;
        }
        let timed_out = |_| Verdict::Retry {
            delivered: 0,
            after: Duration::ZERO,
            message: format!("no answer within {DEADLINE:?}"),
        };
        let verdict = tokio::time::timeout(DEADLINE, started.deliver(device, &outgoing))
            .await
            .unwrap_or_else(timed_out);
        if !then_ok || verdict != Verdict::Delivered {
            return verdict;
        }
        tokio::time::timeout(DEADLINE, started.deliver(device, &outgoing_ok))
            .await
            .unwrap_or_else(timed_out)
    }))
}
