//! `monitord`: the device monitoring agent.
//!
//! Exit codes: 0 after a clean shutdown (SIGTERM, SIGINT), 1 when it cannot run (unreadable
//! settings, unwritable state folder, another agent on the same runtime folder), 2 for bad
//! command-line arguments.

mod agent;
mod checkpoint;
mod clock;
mod control;
mod delivery;
mod followers;
mod logging;
mod own_alerts;
mod persist;
mod plan;
mod private;
mod sd_notify;
mod sources;
mod startup;
mod status;

use std::process::ExitCode;

use clap::Parser;
use monitor::cli::monitord::Args;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = Args::parse();
    // Whatever the umask it was started with, what the agent creates is its own: the
    // history holds log lines, the checkpoint decides what is read back.
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe { libc::umask(0o077) };
    // TLS for delivery: rustls with the ring provider (pure Rust and C-free for the Pi builds).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Held until main returns, so the last lines (the shutdown, an error) are written.
    let (log_writer, _flush_log_on_exit) =
        match logging::spawn(std::io::stderr(), logging::QUEUE_CAPACITY) {
            Ok(writer) => writer,
            Err(error) => {
                eprintln!("error: cannot start the log writer thread: {error}");
                return ExitCode::from(1);
            }
        };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(log_writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    // One thread is plenty for an agent that mostly sleeps, and keeps its footprint small.
    // A blocking-pool thread (the sampled checks' reads of files, every 30 s by default)
    // waits 5 minutes for more work before it ends, so a round of samples reuses it
    // rather than starting a thread every round (tokio's default keeps it 10 s).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_keep_alive(std::time::Duration::from_secs(300))
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        agent::run(args.folders, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop the agent with SIGKILL");
        return;
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
    }
    shutdown.cancel();
}
