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
    let mut text = String::with_capacity(320 * plan.alerts_per_request as usize);
    text.push('[');
    for index in 0..plan.alerts_per_request {
        let number = sequence * plan.alerts_per_request + index;
        let time = UNIX_EPOCH + Duration::from_millis(plan.base_millis + number);
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
