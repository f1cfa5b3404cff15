//! A real container engine for tests: `podman system service` with its Docker-compatible API
//! on a socket of its own, and the real `docker` CLI pointed at it.
//!
//! Shared by several test targets through
//! `#[path = "../../../tests/support/podman.rs"] mod podman;`, so it uses only `std` and
//! `tempfile`. Each [`Podman`] has its own storage (vfs), run root, temporary directory,
//! event log, `containers.conf` and socket under a temporary directory, so tests run in
//! parallel without seeing each other's containers, and nothing outside that directory is
//! changed. The image `localhost/bb:latest` is a busybox root file system imported from the
//! `busybox-static` package (no registry is reachable). See
//! `shared/reference/real-components.md` for why runc, cgroupfs, `--network=none` and no
//! ulimits. Dropping the [`Podman`] removes its containers and stops the service.

#![allow(dead_code)] // each test target uses a different part of it

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The image every test container runs: busybox with `sh` and `sleep`.
pub const IMAGE: &str = "localhost/bb:latest";
/// The apt packages that provide what is needed.
/// (`docker.io` only where the image has no `docker` CLI of its own.)
pub const APT_PACKAGES: &str = "podman runc busybox-static (and docker.io for the docker CLI)";

/// One podman engine at a time in a test process: two in parallel stall each other's API
/// here (shared libpod locks), which would test podman, not the agent. Every test that
/// starts a [`Podman`] holds this first.
static ONE_ENGINE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn one_engine() -> std::sync::MutexGuard<'static, ()> {
    ONE_ENGINE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const START_DEADLINE: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Where `busybox-static` installs a statically linked busybox (it must run in the container
/// without a libc there).
const BUSYBOX_CANDIDATES: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];
/// `setrlimit` is not permitted in the CI containers, so no default ulimits.
const CONTAINERS_CONF: &str = "[containers]\ndefault_ulimits = []\n";

pub struct Podman {
    pub dir: tempfile::TempDir,
    service: Option<Child>,
}

impl Podman {
    /// Imports the image and starts the service, waiting until its socket answers. Returns
    /// `None` (and says why) when a component is missing, unless `CI=true`, where a missing
    /// component is a failure.
    pub fn start() -> Option<Podman> {
        if let Some(missing) = missing_component() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but a real container engine cannot run here: {missing}; install the apt packages {APT_PACKAGES}");
            }
            eprintln!("skipping: a real container engine cannot run here: {missing} (apt packages: {APT_PACKAGES})");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("podman-")
            .tempdir()
            .expect("create a temporary directory for podman");
        let mut podman = Podman { dir, service: None };
        podman.write_containers_conf();
        podman.import_image();
        podman.start_service();
        Some(podman)
    }

    /// The socket of the Docker-compatible API.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("podman.sock")
    }

    /// `DOCKER_HOST` for this engine.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Runs the real `docker` CLI against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", self.docker_host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// [`Podman::docker`], panicking with its output unless it succeeds; returns its stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let output = self.docker(args);
        assert!(
            output.status.success(),
            "docker {} failed: {}{}\nservice log:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Runs `podman` itself with this engine's storage and settings (it needs no service).
    pub fn podman(&self, args: &[&str]) -> Output {
        self.podman_command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run podman")
    }

    /// The service's output so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }

    /// The service's pid, while it runs.
    pub fn service_pid(&self) -> Option<u32> {
        self.service.as_ref().map(Child::id)
    }

    /// Kills the service with SIGKILL, as a crash would (its containers keep running under
    /// their `conmon`), and reaps it.
    pub fn kill_service(&mut self) {
        if let Some(mut service) = self.service.take() {
            let _ = service.kill();
            let _ = service.wait();
        }
    }

    /// Starts the service (again) on the same socket and waits until it answers.
    pub fn start_service(&mut self) {
        assert!(self.service.is_none(), "the podman service already runs");
        let socket = self.socket();
        // A killed service leaves its socket file behind.
        let _ = fs::remove_file(&socket);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("service.log"))
            .expect("open service.log");
        let service = self
            .podman_command()
            .args(["system", "service", "--time=0", &self.docker_host()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the service.log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn podman system service");
        self.service = Some(service);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if UnixStream::connect(&socket).is_ok() {
                return;
            }
            if let Some(status) = self.service.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "podman system service exited with {status}; its log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "podman system service did not listen on {} within {START_DEADLINE:?}; its log:\n{}",
                    socket.display(),
                    self.log()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn podman_command(&self) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new("podman");
        command
            .arg(format!("--root={}", dir.join("storage").display()))
            .arg(format!("--runroot={}", dir.join("runroot").display()))
            .arg(format!("--tmpdir={}", dir.join("libpod-tmp").display()))
            .args([
                "--storage-driver=vfs",
                "--runtime=runc",
                "--cgroup-manager=cgroupfs",
                // journald does not run in the CI containers.
                "--events-backend=file",
            ])
            .env("CONTAINERS_CONF", dir.join("containers.conf"));
        command
    }

    fn write_containers_conf(&self) {
        let path = self.dir.path().join("containers.conf");
        if !path.exists() {
            fs::write(&path, CONTAINERS_CONF).expect("write containers.conf");
        }
    }

    /// Imports `localhost/bb:latest` from the machine's static busybox, once per storage.
    fn import_image(&self) {
        let exists = self.podman(&["image", "exists", IMAGE]);
        if exists.status.success() {
            return;
        }
        let busybox = BUSYBOX_CANDIDATES
            .iter()
            .find(|path| Path::new(path).exists())
            .expect("busybox exists (checked before)");
        let root = self.dir.path().join("image-root");
        fs::create_dir_all(root.join("bin")).expect("create the image's /bin");
        fs::copy(busybox, root.join("bin/busybox")).expect("copy busybox into the image");
        for applet in ["sh", "sleep", "true", "false", "cat", "echo"] {
            symlink("busybox", root.join("bin").join(applet)).expect("link a busybox applet");
        }
        let tar = self.dir.path().join("bb.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("run tar");
        assert!(status.success(), "tar of the busybox image failed");
        let output = self.podman(&["import", &tar.to_string_lossy(), IMAGE]);
        assert!(
            output.status.success(),
            "podman import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let _ = fs::remove_dir_all(&root);
        let _ = fs::remove_file(&tar);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Every container here is this instance's: remove them all (stopping them at once)
        // through podman itself, which needs no service.
        let removed = self.podman(&["rm", "--all", "--force", "--time=0"]);
        if !removed.status.success() {
            let _ = writeln!(
                std::io::stderr(),
                "podman rm --all failed: {}",
                String::from_utf8_lossy(&removed.stderr)
            );
        }
        if let Some(mut service) = self.service.take() {
            // SIGTERM lets it remove its socket; SIGKILL if it does not go in time.
            let _ = Command::new("kill")
                .args(["-TERM", &service.id().to_string()])
                .status();
            let deadline = Instant::now() + STOP_DEADLINE;
            loop {
                match service.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL_INTERVAL),
                    _ => {
                        let _ = service.kill();
                        let _ = service.wait();
                        break;
                    }
                }
            }
        }
        // conmon runs `podman container cleanup` (with this storage) after a container ends;
        // let those finish, or they recreate the directory after it is removed.
        let deadline = Instant::now() + STOP_DEADLINE;
        while processes_using(self.dir.path()) && Instant::now() < deadline {
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// Whether some other process has `dir` on its command line.
fn processes_using(dir: &Path) -> bool {
    let needle = dir.as_os_str().as_encoded_bytes();
    let own = std::process::id().to_string();
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        if name.to_string_lossy() == own {
            return false;
        }
        fs::read(entry.path().join("cmdline"))
            .is_ok_and(|cmdline| cmdline.windows(needle.len()).any(|window| window == needle))
    })
}

/// What is missing for a real engine, if anything.
fn missing_component() -> Option<String> {
    let mut missing = Vec::new();
    for program in ["podman", "runc", "docker"] {
        if !on_path(program) {
            missing.push(format!("`{program}` is not on PATH"));
        }
    }
    if !BUSYBOX_CANDIDATES
        .iter()
        .any(|path| Path::new(path).exists())
    {
        missing.push("no static busybox at /bin/busybox".to_owned());
    }
    if missing.is_empty() {
        None
    } else {
        Some(missing.join(", "))
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|directory| directory.join(program).is_file())
    })
}
