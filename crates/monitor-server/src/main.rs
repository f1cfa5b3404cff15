//! `monitor-server`: serve the API, or do an administrator's task on the same database.
//!
//! Exit codes: 0 done, 1 failed (the message says why and what to do), 2 bad usage.

use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use monitor_server::device_key::{self, DeviceKeyLocation};
use monitor_server::fleet::{
    parse_status, DeviceHealth, Entity, Fleet, FleetError, TokenMaker, NEVER_SEEN,
};
use monitor_server::notify::ChannelFilter;
use monitor_server::settings::{ExposureFlags, FileSettings, Settings};
use monitor_server::storage::{Device, DeviceStatus, SilentAfter, Store};
use tokio_util::sync::CancellationToken;

mod backup;

#[derive(Parser)]
#[command(
    name = "monitor-server",
    version,
    args_override_self = true,
    about = "A self-hosted backend for monitord's alerts, speaking Mender's devicemonitor API",
    after_help = "Examples:\n  monitor-server --data-dir ./data                 serve on 127.0.0.1:8080 with SQLite in ./data\n  monitor-server --data-dir ./data device add pi-kitchen   print the token for the agent\n  monitor-server --data-dir ./data backup ./monitor-server-backup.db   copy the database while serving\n  echo \"$PASSWORD\" | monitor-server --data-dir ./data user add admin@example.com --password-stdin\n  MONITOR_SERVER_DATABASE_URL=postgres://monitor:…@db/monitor monitor-server --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args)]
struct GlobalArgs {
    /// A YAML file with the same settings as the flags (flags win).
    #[arg(long, global = true, env = "MONITOR_SERVER_CONFIG")]
    config: Option<PathBuf>,
    /// Where the SQLite database lives [default: /var/lib/monitor-server].
    #[arg(long, global = true, env = "MONITOR_SERVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Use this database instead of SQLite: postgres://user:password@host/database.
    #[arg(
        long,
        global = true,
        env = "MONITOR_SERVER_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Address and port to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true, env = "MONITOR_SERVER_LISTEN")]
    listen: Option<SocketAddr>,
    /// The SMTP relay for email channels: smtp://host:25, smtps://user:password@host:465.
    #[arg(
        long,
        global = true,
        env = "MONITOR_SERVER_SMTP_URL",
        hide_env_values = true
    )]
    smtp_url: Option<String>,
    /// The device-token signing key's file (made 0600 at first start) [default:
    /// <data-dir>/device-token.key; with --database-url, none: the key stays in the
    /// database]. Give every replica the same file.
    #[arg(long, global = true, env = "MONITOR_SERVER_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key. SIGHUP reloads both.
    #[arg(
        long,
        global = true,
        env = "MONITOR_SERVER_TLS_CERT",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        global = true,
        env = "MONITOR_SERVER_TLS_KEY",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Serve /metrics without a token (by default it needs an API token or the metrics token).
    #[arg(long, global = true, env = "MONITOR_SERVER_METRICS_PUBLIC")]
    metrics_public: bool,
    /// A file whose first line is a bearer token /metrics accepts (for a Prometheus scraper).
    #[arg(long, global = true, env = "MONITOR_SERVER_METRICS_TOKEN_FILE")]
    metrics_token_file: Option<PathBuf>,
    /// Let the network channels (Discord, webhook, ntfy, Slack, Telegram, MQTT) reach private
    /// and loopback hosts and plain http / mqtt, not only public https (mqtts) services (a
    /// relay, a self-hosted service, a broker at home, a stand-in). Email channels use
    /// --smtp-url whatever this says.
    #[arg(long, global = true, env = "MONITOR_SERVER_ALLOW_PRIVATE_TARGETS")]
    allow_private_targets: bool,
    /// The address users open the dashboard at (https://monitor.example.com, with its path
    /// behind a proxy): notifications then link the device's page on it.
    #[arg(
        long,
        global = true,
        env = "MONITOR_SERVER_PUBLIC_URL",
        value_name = "URL"
    )]
    public_url: Option<String>,
    /// How many missed heartbeats make a device silent ("Device <name> silent", CRITICAL);
    /// `device silent-after` sets a device's own [default: 3].
    #[arg(
        long,
        global = true,
        env = "MONITOR_SERVER_SILENT_AFTER",
        value_name = "N"
    )]
    silent_after: Option<u32>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the device and management APIs (what runs without a command).
    Serve,
    /// Copy the SQLite database to a file while the server runs (PostgreSQL: use pg_dump).
    Backup(backup::BackupArgs),
    #[command(flatten)]
    Admin(AdminCommand),
}

/// The administrator's tasks, on the same database.
#[derive(Subcommand)]
enum AdminCommand {
    /// Devices: add one with a token, list, accept, reject, decommission.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Users of the management API.
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens for users (scripts, dashboards).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Enrollment tokens: devices that present one in `auth_requests` are accepted at once.
    #[command(subcommand)]
    Enrollment(EnrollmentCommand),
    /// Where notifications go: email addresses, Discord and Slack webhooks, Telegram chats.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Turn notifications off, for one device or all.
    Mute(MuteArgs),
    /// Turn notifications back on, for one device or all.
    Unmute(MuteArgs),
    /// The device-token signing key.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Make a new signing key: device JWTs signed with the old one get 401 and their
    /// devices authenticate again (tokens from `device add` are not JWTs and keep working).
    /// A running server picks up a new key file by itself; with the key in PostgreSQL,
    /// restart every replica; with a key file and replicas, copy the new file to each.
    Rotate,
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Add an accepted device and print its token (for the agent's `auth: token`).
    Add { name: String },
    /// List devices with their open alerts; `--status pending` shows each one's identity
    /// and key fingerprint, to compare with the device's before accepting it.
    List {
        /// Only devices with this status (pending, accepted, rejected, decommissioned).
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Accept a pending (or rejected) device, by id (or by name or MAC when only one device
    /// has it); it prints the key fingerprint it accepted.
    Accept {
        device: String,
        /// The SHA-256 fingerprint read on the device (see the README); the device's key
        /// must have it, or nothing is accepted.
        #[arg(long, value_name = "HEX")]
        key_sha256: Option<String>,
    },
    /// Reject a device (by id, or by name or MAC when only one device has it): it gets 401
    /// until accepted.
    Reject { device: String },
    /// Take a device out of service for good; its history stays.
    Decommission { device: String },
    /// Give a device a new token (the old one stops working) and print it.
    Token { device: String },
    /// How many missed heartbeats make this device silent: a number, `never`, or `default`
    /// (the server's --silent-after).
    SilentAfter {
        device: String,
        #[arg(value_name = "N|never|default")]
        missed: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from the first line of standard input.
    Add {
        email: String,
        /// Read the password from standard input (required: it never goes on a command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List the users.
    List,
    /// Remove a user (email or id) with all their sessions and API tokens.
    Remove { user: String },
    /// Set a user's password, read from the first line of standard input; their sessions end.
    Password {
        user: String,
        /// Read the password from standard input (required: it never goes on a command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make an API token for a user and print it (shown once).
    Add {
        email: String,
        #[arg(long, default_value = "cli")]
        name: String,
        /// Lifetime such as 30d or 12h; without it the token does not expire.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
    },
    /// List sessions and API tokens (of one user with --user), never their secrets.
    List {
        /// Only this user's (email or id).
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a session or API token by id (from `token list`).
    Remove { id: String },
}

#[derive(Subcommand)]
enum EnrollmentCommand {
    /// Make an enrollment token and print it (shown once); give it to the devices as
    /// Mender's `TenantToken`.
    Add {
        #[arg(long, default_value = "fleet")]
        name: String,
        /// Lifetime such as 30d; without it the token does not expire.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
    },
    /// List enrollment tokens (never their secrets).
    List,
    /// Remove an enrollment token by id (from `enrollment list`): devices presenting it
    /// are no longer accepted at once.
    Remove { id: String },
}

#[derive(Subcommand)]
enum ChannelCommand {
    /// Send notifications to an email address (needs --smtp-url on the server).
    Email {
        address: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Send notifications to a Discord webhook; its URL (a secret) is read from standard input.
    Discord {
        name: String,
        /// Read the webhook URL from standard input (required: it never goes on a command line).
        #[arg(long, required = true)]
        webhook_url_stdin: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Send notifications to a generic webhook; its target (the URL, then optionally a space
    /// and the signing secret) is read from standard input.
    Webhook {
        name: String,
        /// Read the target from standard input (required: it may hold a secret).
        #[arg(long, required = true)]
        target_stdin: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Send notifications to an ntfy topic; its URL (https://tk_token@ntfy.example/topic
    /// with an access token) is read from standard input.
    Ntfy {
        name: String,
        /// Read the topic URL from standard input (required: it may hold a token).
        #[arg(long, required = true)]
        target_stdin: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Send notifications to a Slack incoming webhook; its URL (a secret) is read from
    /// standard input.
    Slack {
        name: String,
        /// Read the webhook URL from standard input (required: it never goes on a command line).
        #[arg(long, required = true)]
        webhook_url_stdin: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Send notifications to a Telegram chat through a bot; its token (a secret) is read from
    /// standard input.
    Telegram {
        name: String,
        /// The chat: a number (-1001234567890 for a group or a channel) or @channelusername.
        #[arg(long, allow_hyphen_values = true)]
        chat_id: String,
        /// Read the bot token from standard input (required: it never goes on a command line).
        #[arg(long, required = true)]
        bot_token_stdin: bool,
        /// The Bot API server (a self-hosted one needs --allow-private-targets).
        #[arg(long, default_value = monitor_channels::telegram::DEFAULT_API_URL)]
        api_url: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Publish to an MQTT broker for Home Assistant (discovery, problem sensors per device);
    /// its password (a secret) is read from standard input with --password-stdin.
    Mqtt {
        name: String,
        /// The broker: mqtt://host:1883 or mqtts://host:8883 (no password in it).
        #[arg(long)]
        url: String,
        #[arg(long)]
        username: Option<String>,
        /// Read the password from standard input (it never goes on a command line).
        #[arg(long, requires = "username")]
        password_stdin: bool,
        /// The PEM CA of an mqtts broker's certificate (an absolute path on the server).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Home Assistant's discovery prefix.
        #[arg(long, default_value = "homeassistant")]
        discovery_prefix: String,
        /// Where states and availability go: <topic-prefix>/<device>/...
        #[arg(long, default_value = "monitor-server")]
        topic_prefix: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// List the channels (webhook URLs and passwords redacted) and their filters.
    List,
    /// Remove a channel by id.
    Remove { id: String },
    /// Replace a channel's filter (by id); flags left out take every alert.
    Filter {
        id: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

/// Which alerts a new channel takes; by default every alert of every device.
#[derive(Args)]
struct FilterArgs {
    /// OK (every alert) or CRITICAL (CRITICALs only, no "resolved").
    #[arg(long, value_name = "LEVEL")]
    min_level: Option<String>,
    /// Only these subjects, comma-separated: <subject type> or <subject type> <subject name>
    /// ("systemd nginx,log app"; "monitor heartbeat" is the device-silent alert).
    #[arg(long, value_name = "LIST")]
    checks: Option<String>,
    /// Only these devices, comma-separated names; * and ? are wildcards ("pi-*,gw-1").
    #[arg(long, value_name = "LIST")]
    devices: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> anyhow::Result<ChannelFilter> {
        ChannelFilter::from_text(
            self.min_level.as_deref(),
            self.checks.as_deref().unwrap_or_default(),
            self.devices.as_deref().unwrap_or_default(),
        )
        // The fields as the flags spell them.
        .map_err(|message| match message.strip_prefix("min_level: ") {
            Some(rest) => anyhow::anyhow!("--min-level: {rest}"),
            None => anyhow::anyhow!("--{message}"),
        })
    }
}

#[derive(Args)]
struct MuteArgs {
    /// The device (id or name); without it, every device.
    #[arg(long)]
    device: Option<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // reqwest (Discord) and lettre (SMTP) use rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        // What a device or a user sent (a MAC, a name) may hold a newline or an escape:
        // every line is escaped as it is written, so none can forge or hide a log line.
        .with_writer(monitor_server::logging::EscapedStderr { ansi })
        .with_ansi(ansi)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MONITOR_SERVER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("monitor-server: {error:#}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut file = match &cli.global.config {
        Some(path) => FileSettings::load(path)?,
        None => FileSettings::default(),
    };
    // Flags (and environment) win over the file.
    file.key_file = cli.global.key_file.or(file.key_file);
    file.silent_after = cli.global.silent_after.or(file.silent_after);
    let settings = Settings::resolve(
        file,
        cli.global.listen,
        cli.global.data_dir,
        cli.global.database_url,
        cli.global.smtp_url,
        ExposureFlags {
            tls_cert: cli.global.tls_cert,
            tls_key: cli.global.tls_key,
            metrics_public: cli.global.metrics_public,
            metrics_token_file: cli.global.metrics_token_file,
            allow_private_targets: cli.global.allow_private_targets,
            public_url: cli.global.public_url,
        },
    )?;
    let command = match cli.command.unwrap_or(Command::Serve) {
        // It opens the database itself, and a PostgreSQL one not at all.
        Command::Backup(args) => return backup::backup(&settings.database, args).await,
        command => command,
    };
    let store = monitor_server::open_store(&settings.database).await?;
    let result = match command {
        Command::Serve => serve(settings, store.clone()).await,
        Command::Backup(_) => unreachable!("handled above"),
        Command::Admin(AdminCommand::Key(KeyCommand::Rotate)) => {
            rotate_key(&store, &settings.device_key).await
        }
        Command::Admin(command) => {
            admin(
                store.clone(),
                &settings.device_key,
                settings.allow_private_targets,
                command,
            )
            .await
        }
    };
    store.close().await;
    result
}

/// `key rotate`: a new device-token key where the key lives (without opening the fleet,
/// which would refuse a missing or mismatched key file: rotating is the way out of that).
async fn rotate_key(store: &Store, location: &DeviceKeyLocation) -> anyhow::Result<()> {
    device_key::rotate(store, location)
        .await
        .context("cannot rotate the device-token key")?;
    match location {
        DeviceKeyLocation::File(path) => eprintln!(
            "new device-token key in {}: devices authenticate again at their next request (copy the file to every replica)",
            path.display()
        ),
        DeviceKeyLocation::Database => eprintln!(
            "new device-token key in the database: restart every replica; devices then authenticate again"
        ),
    }
    Ok(())
}

/// An administrator's task on the fleet.
async fn admin(
    store: Store,
    device_key: &DeviceKeyLocation,
    allow_private_targets: bool,
    command: AdminCommand,
) -> anyhow::Result<()> {
    let fleet = Fleet::open(store, device_key.clone())
        .await
        .context("cannot load the device-token key")?
        .with_private_targets(allow_private_targets);
    let fleet = &fleet;
    match command {
        AdminCommand::Device(command) => device_command(fleet, command).await,
        AdminCommand::User(command) => user_command(fleet, command).await,
        AdminCommand::Token(command) => token_command(fleet, command).await,
        AdminCommand::Enrollment(command) => enrollment_command(fleet, command).await,
        AdminCommand::Channel(command) => channel_command(fleet, command).await,
        AdminCommand::Mute(args) => mute(fleet, args.device.as_deref(), true).await,
        AdminCommand::Unmute(args) => mute(fleet, args.device.as_deref(), false).await,
        AdminCommand::Key(KeyCommand::Rotate) => unreachable!("rotated before opening the fleet"),
    }
}

/// The one mapping of the fleet's refusals to the command line's messages: what is not
/// found says which command lists or adds it.
fn cli_error(error: FleetError) -> anyhow::Error {
    match error {
        FleetError::NotFound {
            what: Entity::Device,
            key,
        } => anyhow::anyhow!(
            "no device `{key}`: `monitor-server device list` shows the names and ids"
        ),
        FleetError::NotFound {
            what: Entity::Channel,
            key,
        } => anyhow::anyhow!("no channel `{key}`: `monitor-server channel list` shows the ids"),
        FleetError::NotFound {
            what: Entity::User,
            key,
        } => anyhow::anyhow!(
            "no user `{key}`: `monitor-server user list` shows the users; add one with `monitor-server user add <email> --password-stdin`"
        ),
        FleetError::NotFound {
            what: Entity::Token,
            key,
        } => anyhow::anyhow!("no token `{key}`: `monitor-server token list` shows the ids"),
        FleetError::NotFound {
            what: Entity::EnrollmentToken,
            key,
        } => anyhow::anyhow!(
            "no enrollment token `{key}`: `monitor-server enrollment list` shows the ids"
        ),
        other => anyhow::Error::new(other),
    }
}

async fn serve(settings: Settings, store: Store) -> anyhow::Result<()> {
    if settings.device_key == DeviceKeyLocation::Database {
        tracing::warn!(
            "the device-token signing key is kept in the database, so a leaked database lets anyone report as a device: give every replica the same --key-file"
        );
    }
    if let Some(files) = &settings.listener.tls {
        // Fail before saying "listening" when the certificate cannot be served.
        monitor_server::listener::TlsCertificate::load(files.clone())?;
    }
    let hangup = monitor_server::handle_hangup()?;
    let listener = monitor_server::bind(settings.listen).await?;
    let address = listener.local_addr()?;
    let scheme = if settings.listener.tls.is_some() {
        "https"
    } else {
        if !address.ip().is_loopback() {
            tracing::warn!(
                "serving plain HTTP on {address}, beyond this machine: passwords, sessions and \
                 device tokens cross the network readable; give --tls-cert and --tls-key (or \
                 put a TLS proxy in front and listen on 127.0.0.1)"
            );
        }
        "http"
    };
    tracing::info!(database = ?settings.database, metrics = ?settings.metrics, "listening on {scheme}://{address}");
    // Tests and scripts read the address (the port may have been chosen by the system).
    println!("listening on {scheme}://{address}");
    std::io::stdout().flush().ok();
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    monitor_server::serve(listener, store, &settings, hangup, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM and SIGINT");
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::info!("stopping: finishing the requests in flight");
    shutdown.cancel();
}

async fn device_command(fleet: &Fleet, command: DeviceCommand) -> anyhow::Result<()> {
    match command {
        DeviceCommand::Add { name } => {
            let (device, token) = fleet.add_device(&name).await.map_err(cli_error)?;
            eprintln!(
                "added device {} (id {}); its token follows, shown only once: put it in the agent's token_file",
                device.name, device.id
            );
            println!("{token}");
        }
        DeviceCommand::List { status, json } => {
            let status = status
                .as_deref()
                .map(parse_status)
                .transpose()
                .map_err(cli_error)?;
            let devices = fleet.devices(status, false).await.map_err(cli_error)?;
            if status == Some(DeviceStatus::Pending) && !json {
                print_pending_devices(&devices)?;
            } else {
                print_devices(&devices, json)?;
            }
        }
        DeviceCommand::Accept { device, key_sha256 } => {
            accept(fleet, &device, key_sha256.as_deref()).await?
        }
        DeviceCommand::Reject { device } => {
            let device = fleet.device_to_admit(&device).await.map_err(cli_error)?;
            fleet
                .set_device_status(&device, DeviceStatus::Rejected)
                .await
                .map_err(cli_error)?;
            eprintln!("rejected {} (id {})", device.name, device.id);
        }
        DeviceCommand::Decommission { device } => {
            set_status(fleet, &device, DeviceStatus::Decommissioned).await?
        }
        DeviceCommand::Token { device } => {
            let device = fleet
                .device_by_id_or_name(&device)
                .await
                .map_err(cli_error)?;
            let token = fleet.renew_device_token(&device).await.map_err(cli_error)?;
            eprintln!("new token for {}; the old one no longer works", device.name);
            println!("{token}");
        }
        DeviceCommand::SilentAfter { device, missed } => {
            let silent_after: SilentAfter = missed
                .parse()
                .map_err(|error: String| anyhow::anyhow!("{error}"))?;
            let device = fleet
                .device_by_id_or_name(&device)
                .await
                .map_err(cli_error)?;
            fleet
                .set_device_silent_after(&device, silent_after)
                .await
                .map_err(cli_error)?;
            eprintln!("{} is silent after {silent_after}", device.name);
        }
    }
    Ok(())
}

/// Accepts the device `key` names, unambiguously, and only with the fingerprint given.
async fn accept(fleet: &Fleet, key: &str, key_sha256: Option<&str>) -> anyhow::Result<()> {
    let device = fleet.device_to_admit(key).await.map_err(cli_error)?;
    let fingerprint = device.key_fingerprint.as_deref();
    if let Some(expected) = key_sha256 {
        let expected = expected.trim().to_ascii_lowercase();
        if fingerprint != Some(expected.as_str()) {
            anyhow::bail!(
                "device {} (id {}) has the key SHA-256 {}, not {expected}: nothing accepted; \
                 check the fingerprint on the device (see the README) and `monitor-server device list --status pending`",
                device.name,
                device.id,
                fingerprint.unwrap_or("none (a token device)")
            );
        }
    }
    fleet
        .set_device_status(&device, DeviceStatus::Accepted)
        .await
        .map_err(cli_error)?;
    eprintln!(
        "accepted {} (id {}, identity {}, key SHA-256 {})",
        device.name,
        device.id,
        device.identity.as_deref().unwrap_or("none"),
        fingerprint.unwrap_or("none (a token device)")
    );
    Ok(())
}

async fn set_status(fleet: &Fleet, key: &str, status: DeviceStatus) -> anyhow::Result<()> {
    let device = fleet.device_to_admit(key).await.map_err(cli_error)?;
    fleet
        .set_device_status(&device, status)
        .await
        .map_err(cli_error)
}

fn print_devices(devices: &[Device], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<_> = devices
            .iter()
            .map(|device| {
                serde_json::json!({
                    "id": device.id,
                    "name": device.name,
                    "status": device.status.as_str(),
                    "alert_count": DeviceHealth::of(device).open_alerts(),
                    "muted": device.muted,
                    "last_seen_at": device.last_seen_at.map(|at| monitor_wire::Timestamp(at).to_string()),
                    "identity_data": device.identity,
                    "key_sha256": device.key_fingerprint,
                    "heartbeat_interval_seconds": device.heartbeat_interval.map(|interval| interval.as_secs()),
                    "silent_after": device.silent_after.as_number(),
                    "silent_since": device.silent_since.map(|at| monitor_wire::Timestamp(at).to_string()),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:<15} {:>6}  {:<24} ID",
        "NAME", "STATUS", "ALERTS", "LAST SEEN"
    )?;
    for device in devices {
        let last_seen = device.last_seen_at.map_or_else(
            || NEVER_SEEN.to_owned(),
            |at| humantime::format_rfc3339_seconds(at).to_string(),
        );
        let muted = if device.muted { " (muted)" } else { "" };
        let silent = if device.silent_since.is_some() {
            " (silent)"
        } else {
            ""
        };
        writeln!(
            out,
            "{:<24} {:<15} {:>6}  {:<24} {}{muted}{silent}",
            device.name,
            device.status.as_str(),
            DeviceHealth::of(device).open_alerts(),
            last_seen,
            device.id
        )?;
    }
    Ok(())
}

/// Pending devices as a user compares them with the devices: id (what `device accept`
/// takes), identity, and the key's fingerprint, oldest first.
fn print_pending_devices(devices: &[Device]) -> anyhow::Result<()> {
    let mut devices: Vec<&Device> = devices.iter().collect();
    devices.sort_by_key(|device| device.created_at);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<36} {:<20} {:<64} {:<20} IDENTITY",
        "ID", "ASKED", "KEY SHA-256", "MAC"
    )?;
    for device in devices {
        writeln!(
            out,
            "{:<36} {:<20} {:<64} {:<20} {}",
            device.id,
            humantime::format_rfc3339_seconds(device.created_at).to_string(),
            device.key_fingerprint.as_deref().unwrap_or("-"),
            printable(&device.identity_mac().unwrap_or_else(|| "-".into())),
            device.identity.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}

/// What a device sent, with control characters escaped: a device's MAC must not move the
/// cursor or recolour the terminal of whoever lists it (the identity itself is canonical
/// JSON, whose strings are escaped already).
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The first line of standard input, without its line ending.
/// An MQTT channel's target, one URL: `mqtts://user:password@host:port/<topic prefix>?…`.
fn mqtt_target(
    broker: &str,
    username: Option<&str>,
    password: Option<&str>,
    ca_file: Option<&Path>,
    discovery_prefix: &str,
    topic_prefix: &str,
) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(broker).map_err(|error| {
        anyhow::anyhow!("--url: {error}: write mqtt://host:1883 or mqtts://host:8883")
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        anyhow::bail!(
            "--url holds a user name or password: give --username and --password-stdin instead"
        );
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        anyhow::bail!("--url: write only scheme://host:port; the topic prefix is --topic-prefix");
    }
    let cannot = |_| anyhow::anyhow!("--url: {broker} takes no user name: write mqtt://host:1883");
    if let Some(username) = username {
        url.set_username(username).map_err(cannot)?;
    }
    if let Some(password) = password {
        url.set_password(Some(password)).map_err(cannot)?;
    }
    url.set_path(topic_prefix);
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("discovery_prefix", discovery_prefix);
        if let Some(ca_file) = ca_file {
            let ca_file = std::path::absolute(ca_file)
                .with_context(|| format!("--ca-file {}", ca_file.display()))?;
            query.append_pair("ca_file", &ca_file.to_string_lossy());
        }
    }
    Ok(url.to_string())
}

fn read_stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn shown_time(at: Option<std::time::SystemTime>) -> String {
    at.map_or_else(
        || "never".to_owned(),
        |at| humantime::format_rfc3339_seconds(at).to_string(),
    )
}

async fn user_command(fleet: &Fleet, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { email, .. } => {
            let password = read_stdin_line("password")?;
            let user = fleet.add_user(&email, &password).await.map_err(cli_error)?;
            eprintln!("added user {} (id {})", user.email, user.id);
        }
        UserCommand::List => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{:<36} EMAIL", "ID")?;
            for user in fleet.users().await.map_err(cli_error)? {
                writeln!(out, "{:<36} {}", user.id, user.email)?;
            }
        }
        UserCommand::Remove { user } => {
            let user = fleet.user_by_id_or_email(&user).await.map_err(cli_error)?;
            fleet.remove_user(&user).await.map_err(cli_error)?;
            eprintln!("removed user {} with their sessions and tokens", user.email);
        }
        UserCommand::Password { user, .. } => {
            let user = fleet.user_by_id_or_email(&user).await.map_err(cli_error)?;
            let password = read_stdin_line("password")?;
            fleet
                .set_password(&user, &password)
                .await
                .map_err(cli_error)?;
            eprintln!("new password for {}; their sessions ended", user.email);
        }
    }
    Ok(())
}

async fn token_command(fleet: &Fleet, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Add {
            email,
            name,
            expires,
        } => {
            let user = fleet.user_by_email(&email).await.map_err(cli_error)?;
            let token = fleet
                .add_api_token(&user, &name, expires, TokenMaker::Administrator)
                .await
                .map_err(cli_error)?;
            eprintln!("API token `{name}` for {email}, shown only once:");
            println!("{token}");
        }
        TokenCommand::List { user } => {
            let user = match user {
                Some(key) => Some(fleet.user_by_id_or_email(&key).await.map_err(cli_error)?),
                None => None,
            };
            let tokens = fleet.user_tokens(user.as_ref()).await.map_err(cli_error)?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<36} {:<24} {:<8} {:<20} {:<20} NAME",
                "ID", "USER", "KIND", "CREATED", "EXPIRES"
            )?;
            for token in tokens {
                writeln!(
                    out,
                    "{:<36} {:<24} {:<8} {:<20} {:<20} {}",
                    token.id,
                    token.user_email,
                    token.kind.as_str(),
                    shown_time(Some(token.created_at)),
                    shown_time(token.expires_at),
                    token.name
                )?;
            }
        }
        TokenCommand::Remove { id } => {
            fleet
                .remove_user_token(&id, None)
                .await
                .map_err(cli_error)?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}

async fn enrollment_command(fleet: &Fleet, command: EnrollmentCommand) -> anyhow::Result<()> {
    match command {
        EnrollmentCommand::Add { name, expires } => {
            let token = fleet
                .add_enrollment_token(&name, expires, TokenMaker::Administrator)
                .await
                .map_err(cli_error)?;
            eprintln!(
                "enrollment token `{name}`, shown only once: devices presenting it are accepted at once"
            );
            println!("{token}");
        }
        EnrollmentCommand::List => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{:<36} {:<20} {:<20} NAME", "ID", "CREATED", "EXPIRES")?;
            for token in fleet.enrollment_tokens().await.map_err(cli_error)? {
                writeln!(
                    out,
                    "{:<36} {:<20} {:<20} {}",
                    token.id,
                    shown_time(Some(token.created_at)),
                    shown_time(token.expires_at),
                    token.name
                )?;
            }
        }
        EnrollmentCommand::Remove { id } => {
            fleet
                .remove_enrollment_token(&id)
                .await
                .map_err(cli_error)?;
            eprintln!("removed enrollment token {id}");
        }
    }
    Ok(())
}

async fn channel_command(fleet: &Fleet, command: ChannelCommand) -> anyhow::Result<()> {
    // The filter is checked first: a mistake there costs no secret typed in again.
    let (kind, name, target, filter) = match command {
        ChannelCommand::Email {
            address,
            name,
            filter,
        } => {
            let filter = filter.filter()?;
            let name = name.unwrap_or_else(|| address.clone());
            ("email", name, address, filter)
        }
        ChannelCommand::Discord { name, filter, .. } => {
            let filter = filter.filter()?;
            let url = read_stdin_line("webhook URL")?;
            ("discord", name, url, filter)
        }
        ChannelCommand::Webhook { name, filter, .. } => {
            let filter = filter.filter()?;
            ("webhook", name, read_stdin_line("target")?, filter)
        }
        ChannelCommand::Ntfy { name, filter, .. } => {
            let filter = filter.filter()?;
            ("ntfy", name, read_stdin_line("topic URL")?, filter)
        }
        ChannelCommand::Slack { name, filter, .. } => {
            let filter = filter.filter()?;
            let url = read_stdin_line("webhook URL")?;
            ("slack", name, url, filter)
        }
        ChannelCommand::Telegram {
            name,
            chat_id,
            api_url,
            filter,
            ..
        } => {
            use monitor_channels::telegram::{BotToken, ChatId, TelegramConfig};
            let filter = filter.filter()?;
            let token = BotToken::parse(&read_stdin_line("bot token")?)?;
            let config = TelegramConfig::new(&api_url, token, ChatId::parse(&chat_id)?)?;
            ("telegram", name, config.target(), filter)
        }
        ChannelCommand::Mqtt {
            name,
            url,
            username,
            password_stdin,
            ca_file,
            discovery_prefix,
            topic_prefix,
            filter,
        } => {
            let filter = filter.filter()?;
            let password = password_stdin
                .then(|| read_stdin_line("password"))
                .transpose()?;
            let target = mqtt_target(
                &url,
                username.as_deref(),
                password.as_deref(),
                ca_file.as_deref(),
                &discovery_prefix,
                &topic_prefix,
            )?;
            ("mqtt", name, target, filter)
        }
        ChannelCommand::List => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<36} {:<8} {:<20} {:<10} TARGET",
                "ID", "KIND", "NAME", "FILTER"
            )?;
            for channel in fleet.channels().await.map_err(cli_error)? {
                let target = channel.shown_target();
                writeln!(
                    out,
                    "{:<36} {:<8} {:<20} {:<10} {target}",
                    channel.id,
                    channel.kind.as_str(),
                    channel.name,
                    channel.filter.to_string()
                )?;
            }
            return Ok(());
        }
        ChannelCommand::Remove { id } => {
            return fleet.remove_channel(&id).await.map_err(cli_error);
        }
        ChannelCommand::Filter { id, filter } => {
            let channel = fleet
                .set_channel_filter(&id, &filter.filter()?)
                .await
                .map_err(cli_error)?;
            eprintln!("channel {}: {}", channel.name, channel.filter);
            return Ok(());
        }
    };
    let channel = fleet
        .add_channel(kind, &name, &target, &filter)
        .await
        .map_err(cli_error)?;
    eprintln!("added {} channel {}", channel.kind.as_str(), channel.name);
    println!("{}", channel.id);
    Ok(())
}

async fn mute(fleet: &Fleet, device: Option<&str>, muted: bool) -> anyhow::Result<()> {
    match device {
        Some(key) => {
            let device = fleet.device_by_id_or_name(key).await.map_err(cli_error)?;
            fleet
                .set_device_muted(&device, muted)
                .await
                .map_err(cli_error)
        }
        None => fleet.set_global_mute(muted).await.map_err(cli_error),
    }
}
