//! A load generator for monitor-server: many devices posting alerts at once.
//!
//! Two modes:
//!
//! - `--create-devices N (--data-dir DIR | --database-url URL) --tokens-file FILE` adds N
//!   accepted devices (`load-000001`, ...) straight into the database through the library
//!   (no server needed, no CLI run per device) and writes their tokens to FILE, one a line.
//! - `--url http://127.0.0.1:PORT --tokens-file FILE` posts alerts to a running server:
//!   `--concurrency` requests in flight (one connection each), for `--duration` or
//!   `--requests`, each carrying `--alerts-per-request` alerts. Request number r goes to
//!   device r mod `--devices` (round-robin: every device posts once the run has made as
//!   many requests as there are devices), and each alert's timestamp is unique per device
//!   (the base time plus one millisecond per alert that device sent), so none is a
//!   duplicate the server would drop.
//!
//! - `--fleet --url … --tokens-file FILE --devices 10000 --storm-devices 100`: a fleet as
//!   agents in `auth: token` mode talk to the server (see "the fleet" below): every device
//!   sends its heartbeat once per `--heartbeat-interval` and its check list once per
//!   `--config-push-interval`, spread evenly, each device on its own connection kept as the
//!   agent's HTTP client keeps it; the first `--storm-devices` drain an alert backlog in
//!   batches of 16, one request at a time, as the agent's outbox does.
//!
//! It prints requests, alerts accepted (204) per second, the non-204 answers by status,
//! connection failures, and latency percentiles (from sending to the end of the answer),
//! and writes the same as JSON with `--json FILE`. Any non-204 answer or failed request
//! counts as an error; the exit code is then 1 (after the figures are out).
//!
//! The server's per-device rate limit (`device_requests_per_minute`, 600 by default) must be
//! raised above what one device posts here, or the run measures 429s.
//!
//! ```sh
//! cargo run --release -p monitor-server --example load -- --create-devices 2000 \
//!     --data-dir /tmp/ms --tokens-file /tmp/ms/tokens
//! cargo run --release -p monitor-server --example load -- --url http://127.0.0.1:8080 \
//!     --tokens-file /tmp/ms/tokens --devices 2000 --concurrency 64 --duration 20s
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Parser;
use monitor_server::credentials::{new_token, token_hash, TokenKind};
use monitor_server::settings::{Database, DATABASE_FILE};
use monitor_server::storage::{DeviceStatus, Engine};

#[derive(Parser, Debug)]
#[command(
    name = "load",
    about = "Load generator for monitor-server (see the source's header)"
)]
struct Cli {
    /// Create this many accepted devices in the database and write their tokens (no load).
    #[arg(long, value_name = "N")]
    create_devices: Option<usize>,
    /// With --create-devices: the SQLite data directory (as the server's --data-dir).
    #[arg(long, conflicts_with = "database_url")]
    data_dir: Option<PathBuf>,
    /// With --create-devices: the database URL (postgres://...).
    #[arg(long)]
    database_url: Option<String>,
    /// With --create-devices: the names' prefix (followed by a 6-digit number).
    #[arg(long, default_value = "load-")]
    name_prefix: String,

    /// The server's base URL, such as http://127.0.0.1:8080.
    #[arg(long)]
    url: Option<String>,
    /// The device tokens, one a line (written by --create-devices, read by a load run).
    #[arg(long, required = true)]
    tokens_file: PathBuf,
    /// How many devices post (the first N tokens of the file).
    #[arg(long, default_value_t = 2000)]
    devices: usize,
    /// Requests in flight at once (each on its own connection).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to post, such as 20s (ignored when --requests is given).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    duration: Duration,
    /// Make exactly this many requests instead of posting for --duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Alerts in each request (the agent sends up to 16 at a time).
    #[arg(long, default_value_t = 1)]
    alerts_per_request: u64,
    /// Threads of the generator's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,

    /// Run the fleet scenario (heartbeats, config pushes, an alert storm) for --duration.
    #[arg(long, requires = "url")]
    fleet: bool,
    /// With --fleet: each device's heartbeat interval (the agent's default is 60s).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    heartbeat_interval: Duration,
    /// With --fleet: each device's config push interval (the agent's default is 1h).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    config_push_interval: Duration,
    /// With --fleet: how many devices (the first of the file) are in an alert storm.
    #[arg(long, default_value_t = 0)]
    storm_devices: usize,
    /// With --fleet: alerts a storming device makes per second; 0: a backlog, sent as fast
    /// as the server answers.
    #[arg(long, default_value_t = 0.0)]
    storm_rate: f64,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = if cli.create_devices.is_some() {
        runtime.block_on(create_devices(&cli)).map(|()| true)
    } else if cli.fleet {
        runtime.block_on(fleet::run(&cli))
    } else {
        runtime.block_on(load(&cli))
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(error) => {
            eprintln!("load: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

// ---- creating devices

async fn create_devices(cli: &Cli) -> anyhow::Result<()> {
    let count = cli.create_devices.unwrap_or_default();
    let database = match (&cli.data_dir, &cli.database_url) {
        (Some(directory), None) => Database::Sqlite(directory.join(DATABASE_FILE)),
        (None, Some(url)) => Database::Url(url.clone()),
        _ => bail!("--create-devices needs --data-dir DIR or --database-url URL"),
    };
    let started = Instant::now();
    let store = monitor_server::open_store(&database).await?;
    // SQLite has one writer: parallel inserts would only wait for its lock.
    let workers = match store.engine() {
        Engine::Sqlite => 1,
        Engine::Postgres => 8,
    };
    let tokens: Arc<Vec<String>> =
        Arc::new((0..count).map(|_| new_token(TokenKind::Device)).collect());
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let (store, tokens, prefix) = (store.clone(), tokens.clone(), cli.name_prefix.clone());
        tasks.spawn(async move {
            for index in (worker..tokens.len()).step_by(workers) {
                let name = format!("{prefix}{:06}", index + 1);
                store
                    .add_device(
                        &name,
                        DeviceStatus::Accepted,
                        Some(&token_hash(&tokens[index])),
                    )
                    .await
                    .with_context(|| format!("cannot add the device {name}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.context("a device-adding task failed")??;
    }
    store.close().await;
    let seconds = started.elapsed().as_secs_f64();
    let mut text = tokens.join("\n");
    text.push('\n');
    write_file(&cli.tokens_file, &text)?;
    println!(
        "created {count} accepted devices in {seconds:.2} s ({:.0}/s, {database:?}); tokens in {}",
        count as f64 / seconds.max(1e-9),
        cli.tokens_file.display()
    );
    if let Some(path) = &cli.json {
        let figures = serde_json::json!({ "devices": count, "seconds": seconds });
        write_file(path, &format!("{figures:#}\n"))?;
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

// ---- the load

/// What one connection's task saw.
#[derive(Default)]
struct TaskFigures {
    /// Microseconds, one per request that got an answer or failed.
    latencies_us: Vec<u64>,
    accepted_requests: u64,
    /// Non-204 answers by status code.
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused or reset, timeout).
    transport_errors: u64,
    /// The first non-204 answer's or failure's text, to say what went wrong.
    first_error: Option<String>,
    /// Alerts accepted in each second of the run (by the answer's arrival).
    per_second: Vec<u64>,
}

struct Plan {
    url: String,
    tokens: Vec<String>,
    alerts_per_request: u64,
    /// Device time of each device's first alert, in milliseconds since the epoch.
    base_millis: u64,
    requests: Option<u64>,
    deadline: Instant,
    started: Instant,
    next_request: AtomicU64,
    /// Accepted requests per device, to tell how many devices posted.
    accepted_by_device: Vec<AtomicU32>,
}

const SUBJECTS: [&str; 4] = ["app", "nginx", "sshd", "kernel"];

/// The alerts of request `request`: every alert's timestamp is unique for its device.
fn body(plan: &Plan, request: u64) -> String {
    let devices = plan.tokens.len() as u64;
    let sequence = request / devices;
    alert_batch(
        plan.base_millis,
        sequence * plan.alerts_per_request,
        plan.alerts_per_request,
    )
}

/// `count` alerts of one device, numbered from `first`: alert n is stamped `base_millis`
/// plus n milliseconds, so no two of a device's alerts are duplicates.
fn alert_batch(base_millis: u64, first: u64, count: u64) -> String {
    let mut text = String::with_capacity(320 * count as usize);
    text.push('[');
    for index in 0..count {
        let number = first + index;
        let time = UNIX_EPOCH + Duration::from_millis(base_millis + number);
        let subject = SUBJECTS[(number % SUBJECTS.len() as u64) as usize];
        let level = if number.is_multiple_of(2) {
            "CRITICAL"
        } else {
            "OK"
        };
        if index > 0 {
            text.push(',');
        }
        let _ = write!(
            text,
            r#"{{"name":"{subject} is {level}","level":"{level}","timestamp":"{}","subject":{{"name":"{subject}","type":"log","status":"LOGCONTAINS","details":{{"line_matching":{{"line_number":{number},"data":"Nov 22 12:00:01 edge-gw-07 {subject}[4242]: ERROR payment gateway timeout after 30000ms (order {number})"}}}}}}}}"#,
            humantime::format_rfc3339_millis(time)
        );
    }
    text.push(']');
    text
}

async fn connection(plan: Arc<Plan>, client: reqwest::Client) -> TaskFigures {
    let mut figures = TaskFigures::default();
    let endpoint = format!(
        "{}/api/devices/v1/devicemonitor/alert",
        plan.url.trim_end_matches('/')
    );
    loop {
        let request = plan.next_request.fetch_add(1, Ordering::Relaxed);
        match plan.requests {
            Some(total) if request >= total => break,
            None if Instant::now() >= plan.deadline => break,
            _ => {}
        }
        let device = (request % plan.tokens.len() as u64) as usize;
        let payload = body(&plan, request);
        let sent = Instant::now();
        let outcome = client
            .post(&endpoint)
            .bearer_auth(&plan.tokens[device])
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await;
        let outcome = match outcome {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.bytes().await;
                text.map(|text| (status, text))
            }
            Err(error) => Err(error),
        };
        let done = Instant::now();
        figures
            .latencies_us
            .push(u64::try_from(done.duration_since(sent).as_micros()).unwrap_or(u64::MAX));
        match outcome {
            Ok((204, _)) => {
                figures.accepted_requests += 1;
                plan.accepted_by_device[device].fetch_add(1, Ordering::Relaxed);
                let second = done.duration_since(plan.started).as_secs() as usize;
                if figures.per_second.len() <= second {
                    figures.per_second.resize(second + 1, 0);
                }
                figures.per_second[second] += plan.alerts_per_request;
            }
            Ok((status, text)) => {
                *figures.statuses.entry(status).or_default() += 1;
                figures.first_error.get_or_insert_with(|| {
                    format!("{status}: {}", String::from_utf8_lossy(&text).trim())
                });
            }
            Err(error) => {
                figures.transport_errors += 1;
                figures
                    .first_error
                    .get_or_insert_with(|| format!("no answer: {error:#}"));
            }
        }
    }
    figures
}

/// The first `--devices` tokens of `--tokens-file`.
fn read_tokens(cli: &Cli) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(&cli.tokens_file)
        .with_context(|| format!("cannot read {}", cli.tokens_file.display()))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .take(cli.devices)
        .map(str::to_owned)
        .collect();
    if tokens.len() < cli.devices {
        bail!(
            "{} has {} tokens, fewer than --devices {}: make them with --create-devices",
            cli.tokens_file.display(),
            tokens.len(),
            cli.devices
        );
    }
    Ok(tokens)
}

/// Nearest-rank percentile, as bench/common.py's.
fn percentile(sorted: &[u64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = (fraction * (sorted.len() - 1) as f64).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

async fn load(cli: &Cli) -> anyhow::Result<bool> {
    let Some(url) = cli.url.clone() else {
        bail!("give --url http://HOST:PORT to post to a server, or --create-devices N to make devices");
    };
    if cli.devices == 0 || cli.concurrency == 0 || cli.alerts_per_request == 0 {
        bail!("--devices, --concurrency and --alerts-per-request must be at least 1");
    }
    let tokens = read_tokens(cli)?;
    // reqwest is built without a default crypto provider (plain HTTP here, but the client
    // builder asks for one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(cli.concurrency)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .tls_backend_rustls()
        .build()
        .context("cannot build the HTTP client")?;

    let base_millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let started = Instant::now();
    let plan = Arc::new(Plan {
        url: url.clone(),
        accepted_by_device: (0..tokens.len()).map(|_| AtomicU32::new(0)).collect(),
        tokens,
        alerts_per_request: cli.alerts_per_request,
        base_millis,
        requests: cli.requests,
        deadline: started + cli.duration,
        started,
        next_request: AtomicU64::new(0),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..cli.concurrency {
        tasks.spawn(connection(plan.clone(), client.clone()));
    }
    let mut all = TaskFigures::default();
    while let Some(figures) = tasks.join_next().await {
        let figures = figures.context("a connection task failed")?;
        all.latencies_us.extend(figures.latencies_us);
        all.accepted_requests += figures.accepted_requests;
        for (status, count) in figures.statuses {
            *all.statuses.entry(status).or_default() += count;
        }
        all.transport_errors += figures.transport_errors;
        if all.first_error.is_none() {
            all.first_error = figures.first_error;
        }
        if all.per_second.len() < figures.per_second.len() {
            all.per_second.resize(figures.per_second.len(), 0);
        }
        for (second, count) in figures.per_second.into_iter().enumerate() {
            all.per_second[second] += count;
        }
    }
    let seconds = started.elapsed().as_secs_f64();

    let mut latencies = all.latencies_us;
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    let alerts_accepted = all.accepted_requests * cli.alerts_per_request;
    let non_204: u64 = all.statuses.values().sum();
    let errors = non_204 + all.transport_errors;
    let devices_posted = plan
        .accepted_by_device
        .iter()
        .filter(|count| count.load(Ordering::Relaxed) > 0)
        .count();
    let mean_ms = if latencies.is_empty() {
        f64::NAN
    } else {
        latencies.iter().sum::<u64>() as f64 / latencies.len() as f64 / 1000.0
    };
    let (p50, p90, p99) = (
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
    );
    let max = latencies
        .last()
        .map_or(f64::NAN, |&max| max as f64 / 1000.0);
    let statuses: BTreeMap<String, u64> = all
        .statuses
        .iter()
        .map(|(status, count)| (status.to_string(), *count))
        .collect();

    println!(
        "monitor-server load: {url}, {} devices ({devices_posted} posted at least once), \
         concurrency {}, {} alert(s) per request, {seconds:.2} s",
        cli.devices, cli.concurrency, cli.alerts_per_request
    );
    println!(
        "requests         {requests} ({:.1}/s), {} accepted (204)",
        requests as f64 / seconds,
        all.accepted_requests
    );
    println!(
        "alerts accepted  {alerts_accepted} ({:.1}/s)",
        alerts_accepted as f64 / seconds
    );
    println!(
        "latency ms       p50 {p50:.2}  p90 {p90:.2}  p99 {p99:.2}  max {max:.2}  mean {mean_ms:.2}"
    );
    if errors == 0 {
        println!("errors           0");
    } else {
        let by_status: Vec<String> = all
            .statuses
            .iter()
            .map(|(status, count)| format!("{count} × {status}"))
            .collect();
        println!(
            "errors           {errors}: non-204 answers [{}], {} without an answer; first: {}",
            by_status.join(", "),
            all.transport_errors,
            all.first_error.as_deref().unwrap_or("?")
        );
    }
    if let Some(path) = &cli.json {
        let figures = serde_json::json!({
            "url": url,
            "devices": cli.devices,
            "devices_posted": devices_posted,
            "concurrency": cli.concurrency,
            "alerts_per_request": cli.alerts_per_request,
            "threads": cli.threads,
            "seconds": seconds,
            "requests": requests,
            "requests_per_s": requests as f64 / seconds,
            "accepted_requests": all.accepted_requests,
            "alerts_accepted": alerts_accepted,
            "alerts_per_s": alerts_accepted as f64 / seconds,
            "non_204": statuses,
            "transport_errors": all.transport_errors,
            "errors": errors,
            "first_error": all.first_error,
            "latency_ms": { "p50": p50, "p90": p90, "p99": p99, "max": max, "mean": mean_ms },
            "alerts_accepted_per_second": all.per_second,
        });
        write_file(path, &format!("{figures:#}\n"))?;
    }
    Ok(errors == 0)
}

// ---- the fleet

/// The fleet scenario: what agents in `auth: token` mode send, on the connections they
/// would hold.
///
/// An agent (`monitor-backend`'s `BackendDestination`, driven by monitord's delivery loop)
/// sends, one request at a time on its own HTTP client:
/// - `POST /api/devices/v1/monitor/heartbeat` `{"interval_seconds": 60}` at start and every
///   `heartbeat_interval` (60 s by default), only while its outbox has nothing pending;
/// - `POST /api/devices/v1/devicemonitor/config`, its check list, at start, on a change and
///   every `config_push_interval` (1 h by default), also between batches;
/// - `POST /api/devices/v1/devicemonitor/alert` with up to 16 alerts, the next batch as soon
///   as the answer came while alerts are pending; a 429 waits its `Retry-After`.
///
/// It never authenticates again: in `auth: token` mode its token is fixed (a Mender client's
/// JWT, from `auth_requests`, lasts a week: 10,000 devices make one a minute).
///
/// Its client (`monitor_backend::http_client`) keeps a connection for 60 s after a request
/// (`POOL_IDLE_TIMEOUT`) and opens a new one for a request that comes later: with a
/// heartbeat every 60 s, every device holds a connection to the server nearly all the time.
/// Here each device has its own connection, kept and replaced by the same rule; a request
/// that finds its kept connection closed by the server is sent again on a new one, as
/// hyper's pool does when nothing was written yet.
///
/// Every device's heartbeats are due at its own offset (device i at i/N of the interval),
/// so the fleet sends N per interval, evenly. Heartbeats and config pushes are open-loop:
/// each is timed from when it was due, so a slow server cannot hide its queue. Storming
/// devices (the first `--storm-devices`) always have alerts pending, so they send neither.
mod fleet {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use anyhow::{bail, Context as _};
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};
    use hyper::client::conn::http1::SendRequest;
    use hyper_util::rt::TokioIo;

    use super::{alert_batch, percentile, read_tokens, write_file, Cli};

    const HEARTBEAT_PATH: &str = "/api/devices/v1/monitor/heartbeat";
    const CONFIG_PATH: &str = "/api/devices/v1/devicemonitor/config";
    const ALERT_PATH: &str = "/api/devices/v1/devicemonitor/alert";
    /// The agent's `POOL_IDLE_TIMEOUT`, `CONNECT_TIMEOUT` and `REQUEST_TIMEOUT`.
    const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// The agent's batch size for the backend.
    const BATCH_SIZE: u64 = 16;
    /// The agent's first backoff delay after a failure.
    const RETRY_DELAY: Duration = Duration::from_secs(1);
    /// A check list as an agent with a few checks pushes it.
    const CHECKS: &str = r#"[{"name":"app","status":"enabled","type":"log","log":{"pattern":"ERROR|Traceback","path":"/var/log/app.log","expire_seconds":300}},{"name":"nginx","status":"enabled","type":"service","service":{"name":"nginx","type":"systemd"}},{"name":"sshd","status":"enabled","type":"service","service":{"name":"ssh","type":"systemd"}}]"#;

    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Kind {
        Heartbeat,
        Config,
        Alerts,
    }

    impl Kind {
        const ALL: [Kind; 3] = [Kind::Heartbeat, Kind::Config, Kind::Alerts];

        fn name(self) -> &'static str {
            match self {
                Kind::Heartbeat => "heartbeat",
                Kind::Config => "config",
                Kind::Alerts => "alerts",
            }
        }
    }

    /// What one kind of request saw.
    #[derive(Default)]
    struct KindFigures {
        /// (second of the run it was due, microseconds to its answer or failure).
        latencies_us: Vec<(u64, u64)>,
        accepted: u64,
        alerts_accepted: u64,
        statuses: BTreeMap<u16, u64>,
        transport_errors: u64,
        first_error: Option<String>,
    }

    struct DeviceConnection {
        sender: SendRequest<Full<Bytes>>,
        idle_since: Instant,
    }

    struct Answer {
        status: u16,
        retry_after: Option<Duration>,
        text: String,
    }

    struct Fleet {
        address: String,
        tokens: Vec<String>,
        connections: Vec<tokio::sync::Mutex<Option<DeviceConnection>>>,
        figures: Mutex<BTreeMap<Kind, KindFigures>>,
        started: Instant,
        deadline: Instant,
        connections_opened: AtomicU64,
        connections_open: AtomicI64,
        connections_open_peak: AtomicI64,
    }

    impl Fleet {
        async fn connect(self: &Arc<Self>) -> anyhow::Result<SendRequest<Full<Bytes>>> {
            let stream = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect(&self.address),
            )
            .await
            .context("connect timed out")?
            .context("cannot connect")?;
            stream.set_nodelay(true).context("TCP_NODELAY")?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP handshake")?;
            self.connections_opened.fetch_add(1, Ordering::Relaxed);
            let open = self.connections_open.fetch_add(1, Ordering::Relaxed) + 1;
            self.connections_open_peak
                .fetch_max(open, Ordering::Relaxed);
            let fleet = self.clone();
            tokio::spawn(async move {
                let _ = connection.await;
                fleet.connections_open.fetch_sub(1, Ordering::Relaxed);
            });
            Ok(sender)
        }

        /// One request of `device`, on its kept connection or a new one, within the agent's
        /// request timeout.
        async fn request(
            self: &Arc<Self>,
            device: usize,
            path: &'static str,
            body: String,
        ) -> anyhow::Result<Answer> {
            let mut kept = self.connections[device].lock().await;
            let attempt = async {
                for _ in 0..2 {
                    let (mut sender, reused) = match kept.take() {
                        Some(connection)
                            if connection.idle_since.elapsed() < POOL_IDLE_TIMEOUT
                                && !connection.sender.is_closed() =>
                        {
                            (connection.sender, true)
                        }
                        // An expired connection is dropped here, which closes it.
                        _ => (self.connect().await?, false),
                    };
                    if sender.ready().await.is_err() {
                        if reused {
                            continue;
                        }
                        bail!("the new connection closed at once");
                    }
                    let request = hyper::Request::post(path)
                        .header(hyper::header::HOST, &self.address)
                        .header(
                            hyper::header::AUTHORIZATION,
                            format!("Bearer {}", self.tokens[device]),
                        )
                        .header(hyper::header::CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from(body.clone())))
                        .context("the request")?;
                    let response = match sender.send_request(request).await {
                        Ok(response) => response,
                        // Closed by the server before our request went out: a new one.
                        Err(error) if reused && (error.is_canceled() || error.is_closed()) => {
                            continue
                        }
                        Err(error) => return Err(error).context("no answer"),
                    };
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(hyper::header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.trim().parse().ok())
                        .map(Duration::from_secs);
                    let text = response
                        .into_body()
                        .collect()
                        .await
                        .context("reading the answer")?
                        .to_bytes();
                    *kept = Some(DeviceConnection {
                        sender,
                        idle_since: Instant::now(),
                    });
                    return Ok(Answer {
                        status,
                        retry_after,
                        text: String::from_utf8_lossy(&text).trim().to_owned(),
                    });
                }
                bail!("the kept connection closed twice")
            };
            tokio::time::timeout(REQUEST_TIMEOUT, attempt)
                .await
                .unwrap_or_else(|_| bail!("no answer within {REQUEST_TIMEOUT:?}"))
        }

        /// Notes the outcome of a request of `kind` due at `due`.
        fn record(&self, kind: Kind, due: Instant, alerts: u64, outcome: &anyhow::Result<Answer>) {
            let done = Instant::now();
            let second = due.saturating_duration_since(self.started).as_secs();
            let micros = u64::try_from(done.duration_since(due).as_micros()).unwrap_or(u64::MAX);
            let mut figures = self.figures.lock().unwrap_or_else(|p| p.into_inner());
            let figures = figures.entry(kind).or_default();
            figures.latencies_us.push((second, micros));
            match outcome {
                Ok(answer) if (200..300).contains(&answer.status) => {
                    figures.accepted += 1;
                    figures.alerts_accepted += alerts;
                }
                Ok(answer) => {
                    *figures.statuses.entry(answer.status).or_default() += 1;
                    figures
                        .first_error
                        .get_or_insert_with(|| format!("{}: {}", answer.status, answer.text));
                }
                Err(error) => {
                    figures.transport_errors += 1;
                    figures
                        .first_error
                        .get_or_insert_with(|| format!("no answer: {error:#}"));
                }
            }
        }
    }

    /// Sends `path` for device `schedule(j)` at `started + j * period`, open-loop, until the
    /// deadline; `None` from `schedule` skips that turn.
    async fn open_loop(
        fleet: Arc<Fleet>,
        kind: Kind,
        period: Duration,
        schedule: impl Fn(u64) -> Option<usize>,
        path: &'static str,
        body: impl Fn(usize) -> String,
    ) {
        let mut tasks = tokio::task::JoinSet::new();
        for turn in 0u64.. {
            let due = fleet.started + period.mul_f64(turn as f64);
            if due >= fleet.deadline {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            let Some(device) = schedule(turn) else {
                continue;
            };
            let (fleet, body) = (fleet.clone(), body(device));
            tasks.spawn(async move {
                let outcome = fleet.request(device, path, body).await;
                fleet.record(kind, due, 0, &outcome);
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    /// A storming device: alerts always pending (or made at `rate` a second), sent in
    /// batches of up to 16, one request at a time, as the agent's outbox sends them.
    async fn storm(fleet: Arc<Fleet>, device: usize, rate: f64, base_millis: u64) {
        let mut sent = 0u64;
        loop {
            let now = Instant::now();
            if now >= fleet.deadline {
                return;
            }
            let pending = if rate > 0.0 {
                let made = (now.duration_since(fleet.started).as_secs_f64() * rate) as u64;
                made.saturating_sub(sent).min(BATCH_SIZE)
            } else {
                BATCH_SIZE
            };
            if pending == 0 {
                let next = fleet.started + Duration::from_secs_f64((sent + 1) as f64 / rate);
                tokio::time::sleep_until(next.into()).await;
                continue;
            }
            let outcome = fleet
                .request(device, ALERT_PATH, alert_batch(base_millis, sent, pending))
                .await;
            fleet.record(Kind::Alerts, now, pending, &outcome);
            match &outcome {
                Ok(answer) if (200..300).contains(&answer.status) => sent += pending,
                Ok(answer) => {
                    tokio::time::sleep(answer.retry_after.unwrap_or(RETRY_DELAY)).await;
                }
                Err(_) => tokio::time::sleep(RETRY_DELAY).await,
            }
        }
    }

    pub(super) async fn run(cli: &Cli) -> anyhow::Result<bool> {
        let url = cli.url.clone().unwrap_or_default();
        let Some(address) = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
        else {
            bail!("--fleet needs --url http://HOST:PORT (plain HTTP)");
        };
        if cli.devices == 0 || cli.storm_devices > cli.devices {
            bail!("--devices must be at least 1 and at least --storm-devices");
        }
        let tokens = read_tokens(cli)?;
        let devices = tokens.len();
        let storming = cli.storm_devices;
        let started = Instant::now();
        let fleet = Arc::new(Fleet {
            address: address.to_owned(),
            connections: (0..devices)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            tokens,
            figures: Mutex::new(BTreeMap::new()),
            started,
            deadline: started + cli.duration,
            connections_opened: AtomicU64::new(0),
            connections_open: AtomicI64::new(0),
            connections_open_peak: AtomicI64::new(0),
        });
        let base_millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let heartbeat = format!(
            r#"{{"interval_seconds":{}}}"#,
            cli.heartbeat_interval.as_secs()
        );
        let mut tasks = tokio::task::JoinSet::new();
        let quiet = move |device: usize| (device >= storming).then_some(device);
        tasks.spawn(open_loop(
            fleet.clone(),
            Kind::Heartbeat,
            cli.heartbeat_interval / devices as u32,
            move |turn| quiet((turn % devices as u64) as usize),
            HEARTBEAT_PATH,
            move |_| heartbeat.clone(),
        ));
        // From the last device down, so a short run's pushes are not all storming devices'.
        tasks.spawn(open_loop(
            fleet.clone(),
            Kind::Config,
            cli.config_push_interval / devices as u32,
            move |turn| quiet(devices - 1 - (turn % devices as u64) as usize),
            CONFIG_PATH,
            |_| CHECKS.to_owned(),
        ));
        for device in 0..storming {
            tasks.spawn(storm(fleet.clone(), device, cli.storm_rate, base_millis));
        }
        while let Some(done) = tasks.join_next().await {
            done.context("a fleet task failed")?;
        }
        let seconds = started.elapsed().as_secs_f64();
        report(cli, &fleet, &url, seconds)
    }

    fn report(cli: &Cli, fleet: &Fleet, url: &str, seconds: f64) -> anyhow::Result<bool> {
        let mut figures = fleet.figures.lock().unwrap_or_else(|p| p.into_inner());
        println!(
            "monitor-server fleet: {url}, {} devices (heartbeat every {:?}, config every {:?}), \
             {} storming (rate {}), {seconds:.1} s; connections opened {}, open at most {}",
            fleet.tokens.len(),
            cli.heartbeat_interval,
            cli.config_push_interval,
            cli.storm_devices,
            if cli.storm_rate > 0.0 {
                format!("{}/s", cli.storm_rate)
            } else {
                "backlog".into()
            },
            fleet.connections_opened.load(Ordering::Relaxed),
            fleet.connections_open_peak.load(Ordering::Relaxed),
        );
        let mut kinds = serde_json::Map::new();
        let mut errors = 0;
        for kind in Kind::ALL {
            let figures = figures.entry(kind).or_default();
            let mut latencies: Vec<u64> = figures.latencies_us.iter().map(|(_, us)| *us).collect();
            latencies.sort_unstable();
            let requests = latencies.len() as u64;
            let non_2xx: u64 = figures.statuses.values().sum();
            errors += non_2xx + figures.transport_errors;
            let (p50, p90, p99) = (
                percentile(&latencies, 0.50),
                percentile(&latencies, 0.90),
                percentile(&latencies, 0.99),
            );
            let max = latencies
                .last()
                .map_or(f64::NAN, |&max| max as f64 / 1000.0);
            // p99 per minute of the run, by when the request was due.
            let mut by_minute: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for (second, us) in &figures.latencies_us {
                by_minute.entry(second / 60).or_default().push(*us);
            }
            let p99_by_minute: Vec<f64> = by_minute
                .into_values()
                .map(|mut minute| {
                    minute.sort_unstable();
                    percentile(&minute, 0.99)
                })
                .collect();
            let statuses: BTreeMap<String, u64> = figures
                .statuses
                .iter()
                .map(|(status, count)| (status.to_string(), *count))
                .collect();
            println!(
                "{:9} {requests:>7} req ({:>6.1}/s) {:>7} ok  p50 {p50:>7.1}  p90 {p90:>7.1}  p99 {p99:>7.1}  max {max:>8.1} ms  \
                 errors {} {:?}{}",
                kind.name(),
                requests as f64 / seconds,
                figures.accepted,
                non_2xx + figures.transport_errors,
                statuses,
                figures.first_error.as_deref().map(|e| format!(" first: {e}")).unwrap_or_default()
            );
            kinds.insert(
                kind.name().to_owned(),
                serde_json::json!({
                    "requests": requests,
                    "requests_per_s": requests as f64 / seconds,
                    "accepted": figures.accepted,
                    "alerts_accepted": figures.alerts_accepted,
                    "non_2xx": statuses,
                    "transport_errors": figures.transport_errors,
                    "errors": non_2xx + figures.transport_errors,
                    "first_error": figures.first_error,
                    "latency_ms": { "p50": p50, "p90": p90, "p99": p99, "max": max },
                    "p99_ms_by_minute": p99_by_minute,
                }),
            );
        }
        if let Some(path) = &cli.json {
            let all = serde_json::json!({
                "url": url,
                "devices": fleet.tokens.len(),
                "storm_devices": cli.storm_devices,
                "storm_rate": cli.storm_rate,
                "heartbeat_interval_s": cli.heartbeat_interval.as_secs_f64(),
                "config_push_interval_s": cli.config_push_interval.as_secs_f64(),
                "seconds": seconds,
                "connections_opened": fleet.connections_opened.load(Ordering::Relaxed),
                "connections_open_peak": fleet.connections_open_peak.load(Ordering::Relaxed),
                "errors": errors,
                "kinds": kinds,
            });
            write_file(path, &format!("{all:#}\n"))?;
        }
        Ok(errors == 0)
    }
}
