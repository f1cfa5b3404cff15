//! Opening what the agent owns before its loop runs: settings, the private folders, the
//! control socket, the checkpoint, the history and the outbox (with what a crash kept
//! from them), and the number of the next alert.

use std::sync::Arc;

use anyhow::Context;
use monitor::FolderArgs;
use monitor_config::{load_settings, CheckDir, Settings};
use monitor_engine::{Engine, EngineSettings};
use monitor_store::{AlertHistory, Outbox};
use monitor_wire::HistoryRecord;
use notify::Watcher;
use tokio::net::UnixListener;
use tokio::sync::Notify;

use crate::checkpoint::{self, Checkpoint};
use crate::clock;
use crate::control;
use crate::persist::{recover_into_outbox, recover_recent_alerts};

/// What [`open`] found and opened.
pub struct Opened {
    pub settings: Settings,
    pub check_dir: CheckDir,
    pub socket_path: std::path::PathBuf,
    pub listener: UnixListener,
    pub history: AlertHistory,
    pub outbox: Outbox,
    pub checkpoint: Checkpoint,
    /// Alerts of the checkpoint the history lacks and the disk refused now.
    pub unrecorded: Vec<HistoryRecord>,
    pub engine: Engine,
    pub boot_id: Option<String>,
    pub next_seq: u64,
}

pub fn open(folders: &FolderArgs) -> anyhow::Result<Opened> {
    let config_dir = folders.config_dir.clone();
    let mut settings = load_settings(&config_dir).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}", list.join("\n"))
    })?;
    folders.apply(&mut settings);
    for folder in [&settings.state_dir, &settings.runtime_dir] {
        monitor_store::create_private_folder(folder).with_context(|| {
            format!(
                "cannot create {} (private, 0700); create it or point the agent elsewhere",
                folder.display()
            )
        })?;
        crate::private::refuse_shared_location(folder)?;
    }
    let check_dir = CheckDir::new(&config_dir).with_default_checks(settings.default_checks);
    for folder in [check_dir.available_dir(), check_dir.enabled_dir()] {
        if let Err(error) = std::fs::create_dir_all(&folder) {
            tracing::warn!(folder = %folder.display(), %error, "cannot create the check folder");
        }
    }

    let socket_path = monitor::socket_path(&settings.runtime_dir);
    let listener = control::bind(&socket_path)?;
    let mut history = AlertHistory::open(&settings.state_dir, settings.alert_history_max_bytes)?;
    let mut checkpoint = checkpoint::load(&settings.state_dir)?;
    let unrecorded = recover_recent_alerts(&mut history, &checkpoint);
    let boot_id = clock::boot_id();
    let engine = match checkpoint.engine.take() {
        Some(snapshot) => Engine::restore(
            engine_settings(&settings),
            snapshot,
            clock::now(),
            boot_id.as_deref(),
        ),
        None => Engine::new(engine_settings(&settings)),
    };
    let limits = monitor_store::OutboxLimits {
        max_count: settings.delivery.alert_offline_store_max_count,
        max_age: settings.delivery.alert_store_max_record_age,
    };
    let mut outbox = Outbox::open(&settings.state_dir, limits)?;
    recover_into_outbox(&mut outbox, &checkpoint.recent_alerts);
    // Alerts delivered from memory may have numbers that a crash kept from the disk: a
    // checkpoint reserves numbers beyond what it knows of, so none is used twice.
    let next_seq = history
        .last_seq()
        .max(outbox.last_seq())
        .max(outbox.newest_taken())
        .map_or(1, |seq| seq + 1)
        .max(checkpoint.next_seq);
    Ok(Opened {
        settings,
        check_dir,
        socket_path,
        listener,
        history,
        outbox,
        checkpoint,
        unrecorded,
        engine,
        boot_id,
        next_seq,
    })
}

pub fn engine_settings(settings: &Settings) -> EngineSettings {
    EngineSettings {
        flapping_interval: settings.flapping_interval,
        flapping_count_threshold: settings.flapping_count_threshold,
        alert_log_max_age: settings.alert_log_max_age,
    }
}

/// Watch the config folder (recursively: available/ and enabled/ included).
pub fn watch_config(
    config_dir: &std::path::Path,
    changed: Arc<Notify>,
) -> Option<notify::RecommendedWatcher> {
    let mut watcher = match notify::recommended_watcher(
        // Our own reads of the check files make access events: only changes count.
        move |event: notify::Result<notify::Event>| match event {
            Ok(event) if monitor_logwatch::is_read_only_access(&event.kind) => {}
            _ => changed.notify_one(),
        },
    ) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(%error, "cannot watch the config folder; changes need `monitorctl` or a restart");
            return None;
        }
    };
    if let Err(error) = watcher.watch(config_dir, notify::RecursiveMode::Recursive) {
        tracing::warn!(folder = %config_dir.display(), %error, "cannot watch the config folder; changes need `monitorctl` or a restart");
        return None;
    }
    Some(watcher)
}
