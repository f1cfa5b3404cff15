//! A real `systemd --user` manager with its own session D-Bus, for tests.
//!
//! Shared by several test targets through
//! `#[path = "../../../tests/support/user_manager.rs"] mod user_manager;`, so it uses only
//! `std` and `tempfile`. The manager runs in a private mount namespace (it refuses to start
//! unless `/run/systemd/system` exists, see `shared/reference/real-components.md`) with its
//! own `XDG_RUNTIME_DIR`, `XDG_CONFIG_HOME` and session bus, all under a temporary directory.
//! Dropping the [`UserManager`] stops it (SIGTERM, then SIGKILL after a deadline) and reaps it.

#![allow(dead_code)] // each test target uses a different part of it

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const MANAGER_BINARY: &str = "/lib/systemd/systemd";
const START_DEADLINE: Duration = Duration::from_secs(15);
const STATE_DEADLINE: Duration = Duration::from_secs(15);
const STOP_DEADLINE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Where a manager's own cgroup is made: the legacy/hybrid `name=systemd` hierarchy, the
/// hybrid unified one, or a pure cgroup v2 mount. Missing ones are skipped.
const CGROUP_HIERARCHIES: [&str; 3] = [
    "/sys/fs/cgroup/systemd",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup",
];

pub struct UserManager {
    pub dir: tempfile::TempDir,
    /// `setsid unshare ... exec systemd --user`: neither `setsid` (not a group leader here) nor
    /// `unshare` (no `--fork`) forks, so this is the manager's own pid.
    child: Child,
}

impl UserManager {
    /// Starts a manager and waits until it answers. Returns `None` (and says why) when a
    /// component is missing, unless `CI=true`, where a missing component is a failure.
    pub fn start() -> Option<UserManager> {
        if let Some(missing) = missing_component() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but a real systemd user manager cannot run here: {missing}; install systemd, dbus-user-session and util-linux");
            }
            eprintln!("skipping: a real systemd user manager cannot run here: {missing}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("user-manager-")
            .tempdir()
            .expect("create a temporary directory for the user manager");
        let runtime = dir.path().join("run");
        fs::create_dir_all(&runtime).expect("create XDG_RUNTIME_DIR");
        fs::create_dir_all(dir.path().join("config/systemd/user"))
            .expect("create the unit directory");
        set_mode_700(&runtime);
        let log = fs::File::create(dir.path().join("manager.log")).expect("create manager.log");
        let cgroup = cgroup_name(dir.path());
        // A user manager started from a process in the container's `/init.scope` takes the
        // cgroup root `/` for its own and creates `/session.slice/dbus.service` and so on
        // there: several managers would share (and kill) each other's unit cgroups and miss
        // their processes' exits. So each gets a cgroup of its own first.
        let script = format!(
            "for hierarchy in {hierarchies}; do \
               if [ -f \"$hierarchy/cgroup.procs\" ] && mkdir -p \"$hierarchy/{cgroup}\" 2>/dev/null; then \
                 echo $$ > \"$hierarchy/{cgroup}/cgroup.procs\" || exit 1; \
               fi; \
             done; \
             mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec {MANAGER_BINARY} --user",
            hierarchies = CGROUP_HIERARCHIES.join(" "),
        );
        let child = Command::new("setsid")
            .args(["unshare", "-m", "sh", "-c", &script])
            .envs(environment(dir.path()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the manager.log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn setsid unshare systemd --user");
        let mut manager = UserManager { dir, child };
        manager.wait_until_ready();
        Some(manager)
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the user manager exited during start-up ({status}):\n{}",
                    self.log()
                );
            }
            // The manager answers on its private socket first; its session bus is socket
            // activated and systemd joins it a moment later. Ready means both, otherwise a
            // `daemon-reexec` can catch the bus half set up.
            let answers = self.systemctl(&["show-environment"]).status.success();
            if answers && self.bus_path().exists() && self.systemd_is_on_the_bus() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "the user manager did not answer within {START_DEADLINE:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn systemd_is_on_the_bus(&self) -> bool {
        let output = Command::new("busctl")
            .args([
                "--user",
                "call",
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "NameHasOwner",
                "s",
                "org.freedesktop.systemd1",
            ])
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .expect("run busctl --user");
        output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "b true"
    }

    fn bus_path(&self) -> PathBuf {
        self.dir.path().join("run/bus")
    }

    /// What the manager wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("manager.log")).unwrap_or_default()
    }

    /// The manager's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `unix:path=$dir/run/bus`, the value of `DBUS_SESSION_BUS_ADDRESS`.
    pub fn bus_address(&self) -> String {
        format!("unix:path={}", self.bus_path().display())
    }

    /// `XDG_RUNTIME_DIR`, `XDG_CONFIG_HOME` and `DBUS_SESSION_BUS_ADDRESS`, for child processes.
    pub fn env(&self) -> Vec<(String, String)> {
        environment(self.dir.path())
    }

    /// The directory unit files are installed into.
    pub fn unit_directory(&self) -> PathBuf {
        self.dir.path().join("config/systemd/user")
    }

    /// Writes a unit file into `$XDG_CONFIG_HOME/systemd/user/` and runs `daemon-reload`.
    pub fn install_unit(&self, name: &str, text: &str) {
        fs::write(self.unit_directory().join(name), text).expect("write the unit file");
        self.systemctl_ok(&["daemon-reload"]);
    }

    /// `systemctl --user ARGS` against this manager.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        Command::new("systemctl")
            .arg("--user")
            .args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .expect("run systemctl --user")
    }

    /// `systemctl --user ARGS`, panicking with its output when it fails.
    pub fn systemctl_ok(&self, args: &[&str]) -> Output {
        let output = self.systemctl(args);
        assert!(
            output.status.success(),
            "systemctl --user {} failed ({}): {}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// One property of a unit, as `systemctl --user show -p NAME --value` prints it.
    pub fn property(&self, unit: &str, name: &str) -> String {
        let output = self.systemctl(&["show", "-p", name, "--value", unit]);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Polls the unit's `ActiveState` until it is `active_state`; panics after 15 s.
    pub fn wait_for_state(&self, unit: &str, active_state: &str) {
        let deadline = Instant::now() + STATE_DEADLINE;
        loop {
            let current = self.property(unit, "ActiveState");
            if current == active_state {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{unit} did not become {active_state} within {STATE_DEADLINE:?} (it is {current:?})\n{}",
                    String::from_utf8_lossy(&self.systemctl(&["status", "--no-pager", unit]).stdout)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        // SIGTERM makes a user manager start exit.target: its units are stopped (no stray
        // processes are left behind) and it exits. SIGKILL if that takes too long.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(POLL_INTERVAL),
            }
        }
        remove_cgroups(&cgroup_name(self.dir.path()));
    }
}

fn environment(dir: &Path) -> Vec<(String, String)> {
    vec![
        (
            "XDG_RUNTIME_DIR".into(),
            dir.join("run").display().to_string(),
        ),
        (
            "XDG_CONFIG_HOME".into(),
            dir.join("config").display().to_string(),
        ),
        (
            "DBUS_SESSION_BUS_ADDRESS".into(),
            format!("unix:path={}", dir.join("run/bus").display()),
        ),
    ]
}

/// The manager's own cgroup: named after its temporary directory, so unique.
fn cgroup_name(dir: &Path) -> String {
    let name = dir.file_name().expect("a temporary directory has a name");
    name.to_string_lossy().into_owned()
}

/// Removes the manager's cgroups, deepest first (the manager trims its own on exit; this
/// removes what is left). Best effort: a cgroup still holding a process stays.
fn remove_cgroups(cgroup: &str) {
    fn remove_tree(path: &Path) {
        if let Ok(entries) = fs::read_dir(path) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    remove_tree(&entry.path());
                }
            }
        }
        let _ = fs::remove_dir(path);
    }
    for hierarchy in CGROUP_HIERARCHIES {
        let path = Path::new(hierarchy).join(cgroup);
        if path.is_dir() {
            remove_tree(&path);
        }
    }
}

fn set_mode_700(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .expect("chmod 700 XDG_RUNTIME_DIR");
}

/// What keeps a user manager from running here, if anything.
fn missing_component() -> Option<String> {
    if !Path::new(MANAGER_BINARY).exists() {
        return Some(format!("{MANAGER_BINARY} is missing"));
    }
    for program in ["setsid", "unshare", "systemctl", "busctl", "mount", "kill"] {
        if !on_path(program) {
            return Some(format!("`{program}` is not on PATH"));
        }
    }
    None
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}
