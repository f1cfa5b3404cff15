//! `monitorctl`: manage checks (Mender's `mender-monitorctl` verbs and argument order) and
//! look at a running agent.
//!
//! Exit codes: 0 on success (create, enable, disable, delete, clear, raise and import print
//! nothing then, as Mender's tool, except one line on stderr naming the trailing arguments
//! they ignore, as Mender's tool ignores them), 1 when the command failed (one line on
//! stderr says why and what to do), 2 for a command line that does not parse.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use monitor::cli::monitorctl::{
    escape_controls, escape_json_controls, Args, BusArg, Command, ExtraArguments, RaiseLevel,
};
use monitor::{ask_agent, FolderArgs};
use monitor_config::{import_mender, load_settings, CheckDefinition, CheckDir, Settings};
use monitor_wire::control::{
    CheckStatus, DestinationStatus, HeartbeatState, HeartbeatStatus, Request, Response,
};
use monitor_wire::{CheckId, HistoryRecord, Level, Subsystem};

/// `println!` for a reader that may go away (`monitorctl list | grep -q x`,
/// `monitorctl alerts | head`): the rest of the output is dropped and monitorctl ends with
/// success, as a Unix filter does, instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout(), $($arg)*) {
            crate::stdout_failed(error)
        }
    }};
}

mod import_settings;
mod notify_failure;
mod test_destination;

fn main() -> ExitCode {
    let args = Args::parse();
    // TLS for notify-failure's direct delivery: rustls with the ring provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(args) {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("monitorctl: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// Whether an error is standard output's reader going away (see `outln!`).
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Standard output failed: quiet success when its reader went away, else one line and exit 1.
fn stdout_failed(error: std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("monitorctl: cannot write to standard output: {error}");
    std::process::exit(1)
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    // The default checks as the agent sees them; a broken monitor.yaml is the agent's
    // default (`validate` and the agent say what is wrong with it).
    let default_checks = settings(&args.folders).map_or(true, |settings| settings.default_checks);
    let check_dir = CheckDir::new(&args.folders.config_dir).with_default_checks(default_checks);
    match args.command {
        Command::Create(create) => {
            let (id, definition) = CheckDefinition::from_create(create.subsystem, &create.values)
                .map_err(|message| anyhow::anyhow!("{message}"))?;
            check_dir.create(&id, &definition)?;
        }
        Command::Enable {
            subsystem,
            check,
            extra,
        } => {
            warn_ignored(&extra);
            check_dir.enable(&CheckId::new(subsystem, check))?;
            tell_agent_to_reload(&args.folders);
        }
        Command::Disable {
            subsystem,
            check,
            extra,
        } => {
            warn_ignored(&extra);
            check_dir.disable(&CheckId::new(subsystem, check))?;
            tell_agent_to_reload(&args.folders);
        }
        Command::Delete {
            subsystem,
            check,
            extra,
        } => {
            warn_ignored(&extra);
            check_dir.delete(&CheckId::new(subsystem, check))?;
            tell_agent_to_reload(&args.folders);
        }
        Command::List {
            json,
            raw,
            subsystem,
            check,
        } => list(
            &args.folders,
            &check_dir,
            Format::of(json, raw),
            subsystem,
            check.as_deref(),
        )?,
        // The files of the config directory: the defaults are the binary's, valid.
        Command::Validate => {
            return validate(&args.folders, &CheckDir::new(&args.folders.config_dir))
        }
        Command::Alerts {
            pending: true,
            json,
            raw,
            ..
        } => pending(&args.folders, Format::of(json, raw))?,
        Command::Alerts {
            rejected: true,
            json,
            raw,
            ..
        } => rejected(&args.folders, Format::of(json, raw))?,
        Command::Alerts {
            follow,
            json,
            raw,
            last,
            ..
        } => alerts(&args.folders, follow, Format::of(json, raw), last)?,
        Command::Status { json, raw } => status(&args.folders, Format::of(json, raw))?,
        Command::Clear {
            subsystem,
            check,
            extra,
        } => {
            warn_ignored(&extra);
            let settings = settings(&args.folders)?;
            let check = CheckId::new(subsystem, check);
            // A raised subject has no check file to find; its name is the agent's to check.
            let check = if subsystem == Subsystem::Monitor {
                check
            } else {
                check_dir.resolve(&check)?
            };
            let request = Request::Clear { check };
            match ask_agent(&settings.runtime_dir, &request)? {
                Some(Response::Done) => {}
                Some(Response::Error { message }) => bail!("{message}"),
                Some(other) => bail!("unexpected answer from monitord: {other:?}"),
                None => bail!("{}", not_running(&settings)),
            }
        }
        Command::Raise {
            level,
            subject,
            name,
            details,
            status,
            subject_type,
        } => {
            let settings = settings(&args.folders)?;
            let request = Request::Raise {
                level: match level {
                    RaiseLevel::Critical => Level::Critical,
                    RaiseLevel::Ok => Level::Ok,
                },
                subject,
                name,
                details,
                status,
                subject_type,
            };
            match ask_agent(&settings.runtime_dir, &request)? {
                Some(Response::Done) => {}
                Some(Response::Error { message }) => bail!("{message}"),
                Some(other) => bail!("unexpected answer from monitord: {other:?}"),
                // Not queued: only the agent knows whether the subject is CRITICAL already,
                // and a script run again after the agent starts raises it then.
                None => bail!("the alert was not raised: {}", not_running(&settings)),
            }
        }
        Command::ImportMender {
            from,
            mender_config,
            merge_settings,
        } => {
            let report = import_mender(&from, &check_dir)?;
            for imported in &report.imported {
                let state = if imported.enabled {
                    "enabled"
                } else {
                    "disabled"
                };
                outln!(
                    "imported {} ({state}) to {}",
                    imported.id,
                    imported.file.display()
                );
            }
            for imported in &report.imported {
                if let Some(command) = &imported.command {
                    outln!(
                        "{} runs a command: monitord will run `{command}` with sh -c, as its own user{}",
                        imported.id,
                        if imported.enabled {
                            ""
                        } else {
                            ", once the check is enabled"
                        }
                    );
                }
            }
            for skipped in &report.skipped {
                outln!(
                    "skipped {}: {} exists already",
                    skipped.id,
                    skipped.existing.display()
                );
            }
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            for problem in &report.problems {
                eprintln!("{problem}");
            }
            let settings_imported =
                import_settings::run(&args.folders, mender_config.as_deref(), merge_settings)?;
            if !report.problems.is_empty() || !settings_imported {
                tell_agent_to_reload(&args.folders);
                return Ok(ExitCode::from(1));
            }
            tell_agent_to_reload(&args.folders);
        }
        Command::NotifyFailure {
            unit,
            from_env,
            bus,
        } => notify_failure::run(
            &args.folders,
            &unit,
            from_env,
            bus.map(|bus| matches!(bus, BusArg::User)),
        )?,
        Command::TestDestination { name } => {
            return test_destination::run(&args.folders, name.as_deref())
        }
        Command::Version => outln!("monitorctl {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn settings(folders: &FolderArgs) -> anyhow::Result<Settings> {
    let mut settings = load_settings(&folders.config_dir).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}", list.join("\n"))
    })?;
    folders.apply(&mut settings);
    Ok(settings)
}

/// How a command that shows what logs and the agent say prints it. Text is escaped unless
/// `--raw`: a log line is whatever its writer put there, terminal escapes included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Escaped,
    Raw,
}

impl Format {
    fn of(json: bool, raw: bool) -> Format {
        match (json, raw) {
            (true, _) => Format::Json,
            (false, true) => Format::Raw,
            (false, false) => Format::Escaped,
        }
    }

    /// `text` as printed in this format's text output.
    fn show(self, text: &str) -> Cow<'_, str> {
        match self {
            Format::Raw => Cow::Borrowed(text),
            Format::Json | Format::Escaped => escape_controls(text),
        }
    }
}

/// JSON as printed: what JSON leaves raw (C1 controls, bidi overrides) escaped too.
fn json_text(value: &impl serde::Serialize, pretty: bool) -> anyhow::Result<String> {
    let json = if pretty {
        serde_json::to_string_pretty(value)?
    } else {
        serde_json::to_string(value)?
    };
    Ok(escape_json_controls(&json).into_owned())
}

fn not_running(settings: &Settings) -> String {
    format!(
        "monitord is not running (no control socket at {}); start it, e.g. systemctl start monitord",
        monitor::socket_path(&settings.runtime_dir).display()
    )
}

/// The agent also notices file changes by itself; this only makes it immediate.
fn tell_agent_to_reload(folders: &FolderArgs) {
    if let Ok(settings) = settings(folders) {
        let _ = ask_agent(&settings.runtime_dir, &Request::Reload);
    }
}

fn live_states(folders: &FolderArgs) -> HashMap<CheckId, CheckStatus> {
    let Ok(settings) = settings(folders) else {
        return HashMap::new();
    };
    match ask_agent(&settings.runtime_dir, &Request::Status) {
        Ok(Some(Response::Status { checks, .. })) => checks
            .into_iter()
            .map(|status| (status.check.clone(), status))
            .collect(),
        _ => HashMap::new(),
    }
}

/// Mender's tool ignores arguments past the ones a verb takes; so do we, saying so.
fn warn_ignored(extra: &ExtraArguments) {
    if extra.ignored.is_empty() {
        return;
    }
    let quoted: Vec<String> = extra
        .ignored
        .iter()
        .map(|argument| format!("{argument:?}"))
        .collect();
    eprintln!(
        "monitorctl: ignoring extra argument{} {} (Mender's mender-monitorctl ignores {} too)",
        if quoted.len() == 1 { "" } else { "s" },
        quoted.join(" "),
        if quoted.len() == 1 { "it" } else { "them" }
    );
}

fn list(
    folders: &FolderArgs,
    check_dir: &CheckDir,
    format: Format,
    subsystem: Option<Subsystem>,
    name: Option<&str>,
) -> anyhow::Result<()> {
    let mut loaded = check_dir.load();
    for problem in &loaded.problems {
        eprintln!("warning: {}", format.show(&problem.to_string()));
    }
    loaded.checks.retain(|check| {
        subsystem.is_none_or(|subsystem| check.is_in(subsystem))
            && name.is_none_or(|name| check.id.name == name)
    });
    let live = live_states(folders);
    if format == Format::Json {
        let rows: Vec<serde_json::Value> = loaded
            .checks
            .iter()
            .map(|check| {
                serde_json::json!({
                    "subsystem": check.id.subsystem,
                    "check": check.id.name,
                    "enabled": check.enabled,
                    "default": check.default,
                    "source": check.kind.describe_source(),
                    "file": check.file,
                    "state": live.get(&check.id).map(|status| status.state),
                })
            })
            .collect();
        outln!("{}", json_text(&rows, true)?);
        return Ok(());
    }
    let mut rows = vec![[
        "SUBSYSTEM".to_string(),
        "CHECK".into(),
        "ENABLED".into(),
        "STATE".into(),
        "SOURCE".into(),
    ]];
    for check in &loaded.checks {
        rows.push([
            check.id.subsystem.to_string(),
            check.id.name.clone(),
            match (check.enabled, check.default) {
                (true, true) => "yes (default)",
                (true, false) => "yes",
                (false, _) => "no",
            }
            .into(),
            live.get(&check.id)
                .map_or("-", |status| status.state.as_str())
                .into(),
            check.kind.describe_source(),
        ]);
    }
    print_table(&rows, format);
    Ok(())
}

/// Columns as wide as their widest cell, each cell shown in `format` first, so an escape
/// counts for what it prints.
fn print_table<const N: usize>(rows: &[[String; N]], format: Format) {
    let rows: Vec<[String; N]> = rows
        .iter()
        .map(|row| row.clone().map(|cell| format.show(&cell).into_owned()))
        .collect();
    let mut widths = [0; N];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        outln!("{}", line.trim_end());
    }
}

fn validate(folders: &FolderArgs, check_dir: &CheckDir) -> anyhow::Result<ExitCode> {
    let mut problems: Vec<String> = Vec::new();
    match load_settings(&folders.config_dir) {
        // Used regardless, as the agent uses them: shown, not counted as failures.
        Ok(settings) => {
            let file = folders.config_dir.join(monitor_config::SETTINGS_FILE_NAME);
            for warning in settings.secret_file_warnings(&file) {
                eprintln!("warning: {warning}");
            }
        }
        Err(settings_problems) => {
            problems.extend(settings_problems.iter().map(ToString::to_string))
        }
    }
    let loaded = check_dir.load();
    // Warnings are about checks that run regardless: shown, not counted as failures.
    for warning in loaded
        .problems
        .iter()
        .filter(|problem| problem.is_warning())
    {
        eprintln!("warning: {warning}");
    }
    problems.extend(
        loaded
            .problems
            .iter()
            .filter(|problem| !problem.is_warning())
            .map(ToString::to_string),
    );
    if problems.is_empty() {
        let enabled = loaded.checks.iter().filter(|check| check.enabled).count();
        outln!(
            "{} checks ({enabled} enabled), no problems",
            loaded.checks.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    eprintln!(
        "{} problem{} found",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::from(1))
}

fn status(folders: &FolderArgs, format: Format) -> anyhow::Result<()> {
    let settings = settings(folders)?;
    let response = ask_agent(&settings.runtime_dir, &Request::Status)?;
    let Some(Response::Status {
        agent,
        checks,
        problems,
        heartbeat,
    }) = response
    else {
        match response {
            Some(Response::Error { message }) => bail!("{message}"),
            Some(other) => bail!("unexpected answer from monitord: {other:?}"),
            None => bail!("{}", not_running(&settings)),
        }
    };
    if format == Format::Json {
        let value = serde_json::json!({
            "agent": agent,
            "heartbeat": heartbeat,
            "checks": checks,
            "problems": problems,
        });
        outln!("{}", json_text(&value, true)?);
        return Ok(());
    }
    outln!(
        "monitord {} on {} (pid {}, since {})",
        format.show(&agent.version),
        format.show(&agent.device_id),
        agent.pid,
        agent.started
    );
    outln!("{}", format.show(&heartbeat_line(heartbeat.as_ref())));
    let mut rows = vec![[
        "CHECK".to_string(),
        "STATE".into(),
        "SINCE".into(),
        "DETAIL".into(),
    ]];
    for check in &checks {
        let mut detail = check.detail.clone().unwrap_or_default();
        if let Some(expires) = check.expires {
            detail = format!("OK at {expires} unless it matches again; {detail}");
        }
        rows.push([
            check.check.to_string(),
            check.state.as_str().into(),
            check.since.map_or("-".into(), |since| since.to_string()),
            detail,
        ]);
    }
    print_table(&rows, format);
    for problem in &problems {
        outln!("problem: {}", format.show(problem));
    }
    Ok(())
}

/// Whether heartbeats go to the backend, how often, the last answered and the last error.
fn heartbeat_line(heartbeat: Option<&HeartbeatStatus>) -> String {
    let Some(heartbeat) = heartbeat else {
        return "heartbeats: off (only delivery.backend with auth: token sends them)".into();
    };
    let mut line = match (heartbeat.state, heartbeat.interval_seconds) {
        (HeartbeatState::On, Some(seconds)) => format!("heartbeats: on, every {seconds}s"),
        (HeartbeatState::On, None) => "heartbeats: on".into(),
        (HeartbeatState::Off, _) => "heartbeats: off (heartbeat_interval: never)".into(),
        (HeartbeatState::NotServed, _) => "heartbeats: off, the backend does not take them".into(),
    };
    match heartbeat.last_answered {
        Some(at) => line.push_str(&format!("; last answered {at}")),
        None if heartbeat.state == HeartbeatState::On => line.push_str("; none answered yet"),
        None => {}
    }
    if let Some(error) = &heartbeat.last_error {
        line.push_str(&format!("; last error: {error}"));
    }
    line
}

/// The agent knows the last error and the next retry; without it, the outbox on disk
/// still says what waits.
fn pending(folders: &FolderArgs, format: Format) -> anyhow::Result<()> {
    let settings = settings(folders)?;
    let destinations = match ask_agent(&settings.runtime_dir, &Request::Pending)? {
        Some(Response::Pending { destinations }) => destinations,
        Some(Response::Error { message }) => bail!("{message}"),
        Some(other) => bail!("unexpected answer from monitord: {other:?}"),
        None => {
            eprintln!(
                "monitord is not running: showing the outbox on disk (last errors are unknown)"
            );
            let limits = monitor_store::OutboxLimits {
                max_count: settings.delivery.alert_offline_store_max_count,
                max_age: settings.delivery.alert_store_max_record_age,
            };
            let outbox = monitor_store::Outbox::open(&settings.state_dir, limits)?;
            outbox
                .destinations()
                .into_iter()
                .map(|name| {
                    let waiting = outbox.pending(&name, usize::MAX);
                    DestinationStatus {
                        pending: waiting.len(),
                        oldest_pending: waiting.first().map(|record| record.alert.timestamp),
                        name,
                        ..DestinationStatus::default()
                    }
                })
                .collect()
        }
    };
    if format == Format::Json {
        outln!("{}", json_text(&destinations, true)?);
        return Ok(());
    }
    if destinations.is_empty() {
        outln!("no delivery destinations (delivery: in monitor.yaml)");
        return Ok(());
    }
    let mut rows = vec![[
        "DESTINATION".to_string(),
        "PENDING".into(),
        "OLDEST".into(),
        "RETRY AT".into(),
        "LAST ERROR".into(),
    ]];
    for destination in &destinations {
        rows.push([
            destination.name.clone(),
            destination.pending.to_string(),
            destination
                .oldest_pending
                .map_or("-".into(), |at| at.to_string()),
            if destination.disabled {
                "disabled".into()
            } else {
                destination.retry_at.map_or("-".into(), |at| at.to_string())
            },
            destination.last_error.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    print_table(&rows, format);
    Ok(())
}

/// The dead-letter file: alerts a destination refused on their own, oldest first.
fn rejected(folders: &FolderArgs, format: Format) -> anyhow::Result<()> {
    let settings = settings(folders)?;
    let records = monitor_store::read_rejected(&settings.state_dir)?;
    let mut stdout = std::io::stdout().lock();
    if records.is_empty() && format != Format::Json {
        writeln!(stdout, "no alert was refused by a destination")?;
    }
    for rejected in &records {
        if format == Format::Json {
            writeln!(stdout, "{}", json_text(rejected, false)?)?;
            continue;
        }
        let alert = &rejected.record.alert;
        writeln!(
            stdout,
            "{}  {}  {:<8}  {}  {}  (alert {} of {})\n    reason: {}",
            rejected.rejected_at,
            format.show(&rejected.destination),
            alert.level.to_string(),
            format.show(&rejected.record.check.to_string()),
            format.show(&alert.name),
            rejected.record.seq,
            alert.timestamp,
            format.show(&rejected.reason)
        )?;
    }
    Ok(())
}

fn alerts(
    folders: &FolderArgs,
    follow: bool,
    format: Format,
    last: Option<usize>,
) -> anyhow::Result<()> {
    let settings = settings(folders)?;
    let state_dir = settings.state_dir;
    let runtime_dir = settings.runtime_dir;
    let records = monitor_store::read_history(&state_dir)?;
    let mut records = records;
    // What the agent made but the disk does not have yet (a stalled or full state folder).
    let newest_on_disk = records.last().map_or(0, |record| record.seq);
    if let Ok(Some(Response::Alerts { records: newer })) = monitor::ask_agent(
        &runtime_dir,
        &Request::Alerts {
            after: newest_on_disk,
            wait: false,
        },
    ) {
        records.extend(
            newer
                .into_iter()
                .filter(|record| record.seq > newest_on_disk),
        );
    }
    let skip = last.map_or(0, |last| records.len().saturating_sub(last));
    let mut newest = records.last().map_or(0, |record| record.seq);
    let mut stdout = std::io::stdout().lock();
    for record in &records[skip..] {
        print_record(&mut stdout, record, format)?;
    }
    if !follow {
        return Ok(());
    }
    stdout.flush()?;
    // From the agent's memory while it runs, so an alert shows before the disk has it (a
    // stalled or full state folder); from the file when no agent (or an older one) answers.
    while let Ok(Some(Response::Alerts { records })) = monitor::ask_agent(
        &runtime_dir,
        &Request::Alerts {
            after: newest,
            wait: true,
        },
    ) {
        for record in &records {
            if record.seq > newest {
                newest = record.seq;
                print_record(&mut stdout, record, format)?;
            }
        }
        stdout.flush()?;
    }
    follow_history(&state_dir, |record| {
        if record.seq > newest {
            newest = record.seq;
            print_record(&mut stdout, record, format)?;
            stdout.flush()?;
        }
        Ok(())
    })
}

fn follow_history(
    state_dir: &Path,
    mut each: impl FnMut(&HistoryRecord) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use notify::Watcher;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let (sender, receiver) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.as_ref().map_or(true, may_hold_new_records) {
            let _ = sender.send(());
        }
    })?;
    watcher
        .watch(state_dir, notify::RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", state_dir.display()))?;
    // Catch what was appended between the first read and the watch.
    loop {
        for record in monitor_store::read_history(state_dir)? {
            each(&record)?;
        }
        receiver.recv()?;
        while receiver.try_recv().is_ok() {}
    }
}

/// Could this change have added records to the history? Only writes, creations, renames
/// and removals of the history's own files can (the checkpoint in the same folder changes
/// every second when busy). Reading the history opens, reads and closes it, which inotify
/// reports too: reacting to those would make every read cause the next one, for ever.
fn may_hold_new_records(event: &notify::Event) -> bool {
    use notify::event::ModifyKind;
    use notify::EventKind;
    if event.need_rescan() {
        return true;
    }
    let writes = match event.kind {
        EventKind::Access(_) => !monitor_logwatch::is_read_only_access(&event.kind),
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    };
    writes
        && event.paths.iter().any(|path| {
            path.file_name().is_some_and(|name| {
                name.to_string_lossy()
                    .starts_with(monitor_store::HISTORY_FILE_NAME)
            })
        })
}

fn print_record(
    out: &mut impl Write,
    record: &HistoryRecord,
    format: Format,
) -> anyhow::Result<()> {
    if format == Format::Json {
        writeln!(out, "{}", json_text(record, false)?)?;
        return Ok(());
    }
    let alert = &record.alert;
    let mut line = format!(
        "{}  {:<8}  {}  {}",
        alert.timestamp,
        alert.level.to_string(),
        record.check,
        alert.name
    );
    if let Some(matching) = &alert.subject.details.line_matching {
        line.push_str(&format!(
            "  (line {}: {})",
            matching.line_number, matching.data
        ));
    } else if let Some(reason) = alert
        .subject
        .details
        .fields
        .get("reason")
        .and_then(|reason| reason.as_str())
    {
        line.push_str(&format!("  ({reason})"));
    }
    writeln!(out, "{}", format.show(&line))?;
    Ok(())
}
