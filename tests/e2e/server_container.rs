//! The deployment in one command: `deploy/Containerfile` builds a monitor-server image and
//! `deploy/compose.yaml` runs it next to PostgreSQL under podman-compose, on a real podman.
//! The agent reports an alert to the published port as a device, and the management API
//! reads it back.
//!
//! No registry is reachable here, so both images are built from a Debian base made on this
//! machine (debootstrap, cached under the target folder; `tests/support/podman.rs`), and
//! PostgreSQL runs from a stand-in for the official image (`tests/e2e/postgres-image/`) with
//! the same environment variables. Gated like the other podman tests: without podman,
//! podman-compose or debootstrap this says so and passes, and fails under `CI=true`.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{monitord_binary, repository_root, Sandbox};
use crate::podman::{missing_deploy_tools, Podman, APT_PACKAGES, DEPLOY_APT_PACKAGES};
use crate::server::{server_binary, Management, EMAIL, PASSWORD};

const SERVER_IMAGE: &str = "localhost/monitor-server:e2e";
const POSTGRES_IMAGE: &str = "localhost/monitor-e2e-postgres:latest";
/// PostgreSQL's first start (initdb) and the server's start, on a loaded machine.
const START_DEADLINE: Duration = Duration::from_secs(180);

/// The compose project, brought down (with its volumes and network) when dropped, before
/// the engine goes.
struct Compose<'a> {
    podman: &'a Podman,
    project: String,
    env: Vec<(&'static str, String)>,
}

impl Compose<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("podman-compose")
            .arg("--podman-path")
            .arg(self.podman.wrapper())
            .args(["-p", &self.project, "-f"])
            .arg(repository_root().join("deploy/compose.yaml"))
            .args(args)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .output()
            .expect("run podman-compose")
    }

    fn run_ok(&self, args: &[&str]) {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "podman-compose {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The container podman-compose made for a service.
    fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.project)
    }

    /// `podman exec` in a service's container, with standard input.
    fn exec(&self, service: &str, command: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(self.podman.wrapper())
            .args(["exec", "-i", &self.container(service)])
            .args(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run podman exec");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write to podman exec");
        child.wait_with_output().expect("wait for podman exec")
    }

    fn logs(&self, service: &str) -> String {
        let output = self.podman.podman(&["logs", &self.container(service)]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

impl Drop for Compose<'_> {
    fn drop(&mut self) {
        let output = self.run(&["down", "-v", "-t", "0"]);
        if !output.status.success() {
            eprintln!(
                "podman-compose down failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // podman-compose 1.0.3 leaves its network, which podman keeps machine-wide.
        let network = format!("{}_default", self.project);
        let _ = self.podman.podman(&["network", "rm", "--force", &network]);
    }
}

fn podman_ok(podman: &Podman, args: &[&str]) -> String {
    let output = podman.podman(args);
    assert!(
        output.status.success(),
        "podman {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Whether an HTTP server answers on the address (any status).
fn answers_http(address: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut start = [0u8; 5];
    stream.read_exact(&mut start).is_ok() && &start == b"HTTP/"
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The build context for deploy/Containerfile: dist/'s layout, with this build's
/// monitor-server (the cross-built one is not needed to test the image).
fn build_context() -> (tempfile::TempDir, &'static str) {
    let target = "x86_64-unknown-linux-gnu";
    let context = tempfile::Builder::new()
        .prefix("monitor-server-image-")
        .tempdir()
        .expect("a build context");
    fs::create_dir(context.path().join(target)).expect("the target folder");
    fs::copy(
        server_binary(),
        context.path().join(target).join("monitor-server"),
    )
    .expect("copy monitor-server into the build context");
    (context, target)
}

fn target_dir() -> PathBuf {
    // target/debug/monitord
    Path::new(monitord_binary())
        .ancestors()
        .nth(2)
        .expect("the target folder")
        .to_path_buf()
}

#[test]
fn the_compose_setup_serves_an_alert_from_a_device_to_the_management_api() {
    if let Some(missing) = missing_deploy_tools() {
        let problem = format!(
            "the deployment test needs {missing}; install the apt packages {APT_PACKAGES} \
             {DEPLOY_APT_PACKAGES} (.ci/run does)"
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{problem}");
        eprintln!("skipped: {problem}");
        return;
    }
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipped: the image is built from this machine's x86-64 monitor-server");
        return;
    }
    let _engine = crate::podman::one_engine();
    let Some(podman) = Podman::start() else {
        return;
    };
    let started = Instant::now();
    let base = podman.import_debian_base(&target_dir().join("container-base"));
    eprintln!("base image ready after {:?}", started.elapsed());

    let (context, target) = build_context();
    // --layers=false: one copy of the root file system per image on vfs, not one per step.
    podman_ok(
        &podman,
        &[
            "build",
            "--layers=false",
            "-f",
            &repository_root()
                .join("deploy/Containerfile")
                .to_string_lossy(),
            "--build-arg",
            &format!("BASE_IMAGE={base}"),
            "--build-arg",
            &format!("TARGET={target}"),
            "-t",
            SERVER_IMAGE,
            &context.path().to_string_lossy(),
        ],
    );
    drop(context);
    podman_ok(
        &podman,
        &[
            "build",
            "--layers=false",
            "--build-arg",
            &format!("BASE_IMAGE={base}"),
            "-t",
            POSTGRES_IMAGE,
            &repository_root()
                .join("tests/e2e/postgres-image")
                .to_string_lossy(),
        ],
    );
    eprintln!("images built after {:?}", started.elapsed());

    let port = free_port();
    let compose = Compose {
        podman: &podman,
        project: format!("monitore2e{}", std::process::id()),
        env: vec![
            ("POSTGRES_IMAGE", POSTGRES_IMAGE.to_owned()),
            ("MONITOR_SERVER_IMAGE", SERVER_IMAGE.to_owned()),
            ("POSTGRES_PASSWORD", format!("e2e-{}", std::process::id())),
            ("MONITOR_SERVER_PUBLISH", format!("127.0.0.1:{port}")),
        ],
    };
    compose.run_ok(&["up", "-d"]);

    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + START_DEADLINE;
    while !answers_http(&address) {
        assert!(
            Instant::now() < deadline,
            "monitor-server did not answer on {address} within {START_DEADLINE:?}\n\
             server log:\n{}\ndatabase log:\n{}",
            compose.logs("server"),
            compose.logs("db")
        );
        std::thread::park_timeout(Duration::from_millis(200));
    }
    eprintln!("the compose setup answered after {:?}", started.elapsed());

    // The image's user and volume: not root, data private to it.
    let identity = compose.exec("server", &["id", "-u"], "");
    assert_eq!(String::from_utf8_lossy(&identity.stdout).trim(), "10001");
    let data = compose.exec(
        "server",
        &["stat", "-c", "%U %a", "/var/lib/monitor-server"],
        "",
    );
    assert_eq!(
        String::from_utf8_lossy(&data.stdout).trim(),
        "monitor-server 700"
    );
    let mounts = podman_ok(
        &podman,
        &[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}",
            &compose.container("server"),
        ],
    );
    assert!(
        mounts.contains(&format!(
            "{}_server-data:/var/lib/monitor-server",
            compose.project
        )),
        "{mounts}"
    );

    // The admin commands, in the container, on its PostgreSQL.
    let user = compose.exec(
        "server",
        &["monitor-server", "user", "add", EMAIL, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(user.status.success(), "user add: {user:?}");
    let device = compose.exec(
        "server",
        &["monitor-server", "device", "add", "pi-container"],
        "",
    );
    assert!(device.status.success(), "device add: {device:?}");
    let token = String::from_utf8_lossy(&device.stdout).trim().to_owned();

    let url = format!("http://{address}");
    let sandbox = Sandbox::new();
    fs::write(sandbox.path("token"), &token).unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!(
            "delivery:\n  backend:\n    url: {url}\n    auth: token\n    token_file: {}\n",
            sandbox.path("token").display()
        ),
    )
    .unwrap();
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    sandbox.monitorctl_quietly(&["raise", "CRITICAL", "container_disk"]);
    alerts.expect("CRITICAL", "monitor container_disk");

    let management = Management::login(&url);
    crate::harness::eventually("the alert reached the server in the container", || {
        management
            .get("/devices")
            .0
            .as_array()
            .and_then(|devices| devices.first())
            .is_some_and(|device| device["alert_count"] == 1)
    });
    let (devices, _) = management.get("/devices");
    assert_eq!(devices[0]["name"], "pi-container", "{devices}");
    let id = devices[0]["id"].as_str().unwrap().to_owned();
    let (latest, _) = management.get(&format!("/devices/{id}/alerts/latest"));
    assert_eq!(latest[0]["subject"]["name"], "container_disk", "{latest}");

    // It is in PostgreSQL, not in a SQLite file next to the server.
    let stored = compose.exec(
        "db",
        &[
            "psql",
            // The server's own socket and port, not those of the Debian cluster that the
            // package made (and pg_wrapper would pick).
            "-h",
            "/var/run/postgresql",
            "-p",
            "5432",
            "-U",
            "monitor",
            "-d",
            "monitor",
            "-tAc",
            "SELECT count(*) FROM devices WHERE name = 'pi-container'",
        ],
        "",
    );
    assert_eq!(
        String::from_utf8_lossy(&stored.stdout).trim(),
        "1",
        "{stored:?}"
    );
    assert!(
        !compose.logs("server").contains(&token),
        "the device token is not logged"
    );
    eprintln!("done after {:?}", started.elapsed());
}
