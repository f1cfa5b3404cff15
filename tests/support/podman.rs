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

/// A Debian base image made on this machine (no registry is reachable): debootstrap's
/// `minbase` of bookworm with CA certificates and PostgreSQL, so that one base serves both
/// the monitor-server image and a PostgreSQL image.
pub const DEBIAN_BASE_IMAGE: &str = "localhost/monitor-debian-base:bookworm";
/// What the deployment tests need besides [`APT_PACKAGES`].
pub const DEPLOY_APT_PACKAGES: &str = "podman-compose debootstrap";
const DEBIAN_BASE_PACKAGES: &str = "ca-certificates,postgresql";
/// The cached root file system, named after what is in it.
const DEBIAN_BASE_TARBALL: &str = "debian-bookworm-minbase-ca-postgresql-nojit.tar";
/// Left out of the image: what debootstrap mounts or makes, caches, documentation, and
/// PostgreSQL's JIT with the LLVM it loads (a quarter of the size; without its plugin
/// PostgreSQL runs without JIT, which the tests' small queries never use).
const DEBIAN_BASE_EXCLUDES: [&str; 12] = [
    "./proc/*",
    "./sys/*",
    "./dev/*",
    "./var/cache/apt/archives/*.deb",
    "./var/lib/apt/lists/*",
    "./usr/share/doc/*",
    "./usr/share/man/*",
    "./usr/share/locale/*",
    "./usr/lib/postgresql/*/lib/llvmjit*",
    "./usr/lib/postgresql/*/lib/bitcode",
    "./usr/lib/*-linux-gnu/libLLVM-*",
    "./usr/lib/*-linux-gnu/libz3.so*",
];

impl Podman {
    /// Imports [`DEBIAN_BASE_IMAGE`] into this engine from a root file system cached in
    /// `cache_dir` (made with debootstrap on the first run: 3 to 5 minutes here, mostly
    /// downloading and unpacking; a 250 MB tarball that later runs only import).
    pub fn import_debian_base(&self, cache_dir: &Path) -> &'static str {
        if self
            .podman(&["image", "exists", DEBIAN_BASE_IMAGE])
            .status
            .success()
        {
            return DEBIAN_BASE_IMAGE;
        }
        let tarball = debian_base_tarball(cache_dir);
        let output = self.podman(&["import", &tarball.to_string_lossy(), DEBIAN_BASE_IMAGE]);
        assert!(
            output.status.success(),
            "podman import {} failed: {}; delete the file to make it again",
            tarball.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        DEBIAN_BASE_IMAGE
    }

    /// An executable `podman` with this engine's storage and settings, for tools that run
    /// podman themselves (podman-compose's `--podman-path`).
    pub fn wrapper(&self) -> PathBuf {
        let path = self.dir.path().join("podman-wrapper");
        if !path.exists() {
            let command = self.podman_command();
            let quote = |text: &std::ffi::OsStr| format!("'{}'", text.to_string_lossy());
            let mut script = String::from("#!/bin/sh\n");
            for (name, value) in command.get_envs() {
                if let Some(value) = value {
                    script.push_str(&format!(
                        "export {}={}\n",
                        name.to_string_lossy(),
                        quote(value)
                    ));
                }
            }
            script.push_str("exec podman");
            for arg in command.get_args() {
                script.push(' ');
                script.push_str(&quote(arg));
            }
            script.push_str(" \"$@\"\n");
            fs::write(&path, script).expect("write the podman wrapper");
            let mut permissions = fs::metadata(&path).expect("the wrapper").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
            fs::set_permissions(&path, permissions).expect("make the wrapper executable");
        }
        path
    }
}

/// What is missing for the deployment tests (podman-compose, debootstrap), if anything.
pub fn missing_deploy_tools() -> Option<String> {
    if let Some(missing) = missing_component() {
        return Some(missing);
    }
    let missing: Vec<String> = ["podman-compose", "debootstrap"]
        .into_iter()
        .filter(|program| !on_path(program) && !Path::new("/usr/sbin").join(program).is_file())
        .map(|program| format!("`{program}` is not installed"))
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// The cached root file system of [`DEBIAN_BASE_IMAGE`], made with debootstrap from the
/// machine's Debian mirror when it is not there yet.
pub fn debian_base_tarball(cache_dir: &Path) -> PathBuf {
    let tarball = cache_dir.join(DEBIAN_BASE_TARBALL);
    if tarball.is_file() {
        return tarball;
    }
    fs::create_dir_all(cache_dir).expect("create the base image cache directory");
    // Per process, so that two test runs making it at once do not mix their files; the
    // tarball appears by a rename, whole.
    let root = cache_dir.join(format!("rootfs-{}", std::process::id()));
    let log = cache_dir.join("debootstrap.log");
    let mirror = debian_mirror();
    let status = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={DEBIAN_BASE_PACKAGES}"),
        ])
        .arg("bookworm")
        .arg(&root)
        .arg(&mirror)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&log).expect("create debootstrap.log"))
        .stderr(
            fs::File::options()
                .append(true)
                .open(&log)
                .expect("open debootstrap.log"),
        )
        .status()
        .expect("run debootstrap");
    if !status.success() {
        // debootstrap mounts these while it runs; a failure can leave them mounted.
        for mount in ["proc", "sys"] {
            let _ = Command::new("umount").arg(root.join(mount)).status();
        }
        let _ = fs::remove_dir_all(&root);
        panic!(
            "debootstrap of bookworm from {mirror} failed ({status}); its log is {}:\n{}",
            log.display(),
            fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let partial = cache_dir.join(format!("{DEBIAN_BASE_TARBALL}.{}", std::process::id()));
    let mut tar = Command::new("tar");
    tar.arg("-C").arg(&root);
    for pattern in DEBIAN_BASE_EXCLUDES {
        tar.arg(format!("--exclude={pattern}"));
    }
    let status = tar
        .arg("-cf")
        .arg(&partial)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar of {} failed", root.display());
    fs::rename(&partial, &tarball).expect("put the base image tarball in place");
    let _ = fs::remove_dir_all(&root);
    tarball
}

/// The machine's Debian mirror, from apt's sources (deb822 or one-line format).
fn debian_mirror() -> String {
    let mut sources = String::new();
    for path in [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ] {
        sources.push_str(&fs::read_to_string(path).unwrap_or_default());
        sources.push('\n');
    }
    sources
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if let Some(uris) = line.strip_prefix("URIs:") {
                uris.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|part| part.contains("://"))
            } else {
                None
            }
        })
        .find(|uri| uri.trim_end_matches('/').ends_with("/debian"))
        .unwrap_or("http://deb.debian.org/debian")
        .to_owned()
}
