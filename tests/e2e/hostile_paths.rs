//! Log paths that an unprivileged user controls, against `monitord` running as root: a real
//! other user (`nobody`, through `runuser`) swaps the watched file for a FIFO, a symlink to
//! a root-only file, or a link to `/dev/zero`. The agent goes on with its other checks,
//! reads nothing that user could not read, burns no CPU, and shows the problem in `status`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{append, eventually, Agent, Sandbox};

const HOSTILE_USER: &str = "nobody";

/// Root, `runuser` and the user `nobody` are needed: without them the test fails in CI and
/// is skipped elsewhere with the reason.
fn hostile_user_available() -> bool {
    let root = effective_uid() == 0;
    let runuser = Command::new("runuser")
        .args(["-u", HOSTILE_USER, "--", "true"])
        .status()
        .is_ok_and(|status| status.success());
    if root && runuser {
        return true;
    }
    let reason = if root {
        format!("`runuser -u {HOSTILE_USER} -- true` does not work (install util-linux, or add the user {HOSTILE_USER})")
    } else {
        "these tests run monitord as root and act as another user: run them as root".to_string()
    };
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
    eprintln!("skipped: {reason}");
    false
}

/// From /proc/self/status: `Uid:` real, effective, saved, file-system.
fn effective_uid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let uids = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .unwrap();
    uids.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// Run `script` with `sh -c` as the hostile user, and insist that it succeeds.
fn as_hostile_user(script: &str) {
    let output = Command::new("runuser")
        .args(["-u", HOSTILE_USER, "--", "sh", "-c", script])
        .output()
        .expect("runuser runs");
    assert!(
        output.status.success(),
        "`{script}` as {HOSTILE_USER}: {}; {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A sandbox with a folder that the hostile user owns, holding the watched `app.log` (a
/// real file of theirs at first), and a root-owned `sentinel.log` elsewhere.
struct Scene {
    sandbox: Sandbox,
    hostile: PathBuf,
    app_log: PathBuf,
    sentinel_log: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let sandbox = Sandbox::new();
        // The hostile user must be able to reach their folder.
        fs::set_permissions(sandbox.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let hostile = sandbox.path("hostile");
        fs::create_dir(&hostile).unwrap();
        let status = Command::new("chown")
            .args([HOSTILE_USER, hostile.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        let app_log = hostile.join("app.log");
        as_hostile_user(&format!("touch '{}'", app_log.display()));
        let sentinel_log = sandbox.path("sentinel.log");
        fs::write(&sentinel_log, "").unwrap();
        for (name, path, expiration) in
            [("app", &app_log, "never"), ("sentinel", &sentinel_log, "1")]
        {
            sandbox.monitorctl_quietly(&[
                "create",
                "log",
                name,
                "ERROR",
                path.to_str().unwrap(),
                expiration,
            ]);
            sandbox.monitorctl_quietly(&["enable", "log", name]);
        }
        Scene {
            sandbox,
            hostile,
            app_log,
            sentinel_log,
        }
    }

    /// The `status --json` entry of the check `log <name>`.
    fn status_of(&self, name: &str) -> Value {
        let output = self.sandbox.monitorctl(&["status", "--json"]);
        assert!(output.status.success(), "monitorctl status: {output:?}");
        let status: Value = serde_json::from_slice(&output.stdout).unwrap();
        status["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|check| check["check"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no check {name} in {status:#}"))
    }

    /// Wait until `status` shows the app check in error with a detail containing `wanted`.
    fn wait_for_app_problem(&self, wanted: &str) -> String {
        let mut detail = String::new();
        eventually(&format!("status shows the problem \"{wanted}\""), || {
            let status = self.status_of("app");
            detail = status["detail"].as_str().unwrap_or_default().to_string();
            status["state"] == "error" && detail.contains(wanted)
        });
        detail
    }
}

/// The agent's CPU time so far (user + system, all threads), from /proc/<pid>/stat.
fn cpu_time(agent: &Agent) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{}/stat", agent.pid())).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second: u64 = String::from_utf8(
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf runs")
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    Duration::from_millis(ticks * 1000 / per_second)
}

fn alert_details(alert: &Value) -> String {
    alert["subject"]["details"].to_string()
}

fn history(sandbox: &Sandbox) -> String {
    fs::read_to_string(sandbox.state_dir().join("alerts.jsonl")).unwrap_or_default()
}

#[test]
fn a_fifo_in_place_of_the_log_is_a_problem_once_and_the_agent_goes_on() {
    if !hostile_user_available() {
        return;
    }
    let scene = Scene::new();
    let agent = scene.sandbox.start_agent();
    let mut alerts = scene.sandbox.follow_alerts();

    // With no writer, a blocking open of this FIFO would never return.
    let fifo = scene.hostile.join("fifo");
    as_hostile_user(&format!(
        "mkfifo '{0}' && mv -f '{0}' '{1}'",
        fifo.display(),
        scene.app_log.display()
    ));
    let detail = scene.wait_for_app_problem("is a FIFO, not a regular file");
    assert_eq!(
        detail,
        format!(
            "{0} is a FIFO, not a regular file, and is not read; point the check at a log file, or replace {0} with one",
            scene.app_log.display()
        )
    );
    // More changes to the FIFO: the same problem is not reported again.
    as_hostile_user(&format!(
        "touch '{0}' && chmod 0666 '{0}'",
        scene.app_log.display()
    ));

    // The other check still alerts (after the FIFO's changes were looked at: inotify keeps
    // their order), and its expiry timer still runs.
    append(&scene.sentinel_log, "ERROR sentinel\n");
    alerts.expect("CRITICAL", "log sentinel");
    alerts.expect("OK", "log sentinel");
    let log = agent.log();
    assert_eq!(
        log.matches("is a FIFO, not a regular file").count(),
        1,
        "the problem is logged once:\n{log}"
    );
}

#[test]
fn a_symlink_to_a_root_only_file_is_refused_and_its_secret_goes_nowhere() {
    if !hostile_user_available() {
        return;
    }
    let scene = Scene::new();
    let private = scene.sandbox.path("private");
    fs::create_dir(&private).unwrap();
    let secret = private.join("secret.log");
    fs::write(&secret, "ERROR password=hunter2\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let _agent = scene.sandbox.start_agent();
    let mut alerts = scene.sandbox.follow_alerts();

    as_hostile_user(&format!(
        "ln -sf '{}' '{}'",
        secret.display(),
        scene.app_log.display()
    ));
    let detail = scene.wait_for_app_problem("is not read");
    assert_eq!(
        detail,
        format!(
            "{app} is not read: user nobody (uid 65534) controls {hostile} and cannot read {secret} themselves (owner root, group root, mode 0600); make {hostile} writable by root only, or make the file readable by them",
            app = scene.app_log.display(),
            hostile = scene.hostile.display(),
            secret = secret.display(),
        )
    );
    // More secrets written to the file are not read either.
    append(&secret, "ERROR password=hunter2-again\n");

    append(&scene.sentinel_log, "ERROR sentinel\n");
    let (_, sentinel) = alerts.next();
    assert_eq!(
        crate::harness::describe_check(&sentinel),
        "log sentinel",
        "the first alert is the sentinel's: {sentinel:#}"
    );
    assert!(!alert_details(&sentinel).contains("hunter2"));
    alerts.expect("OK", "log sentinel");
    assert!(!history(&scene.sandbox).contains("hunter2"));
    assert!(history(&scene.sandbox).contains("ERROR sentinel"));
}

#[test]
fn a_link_to_dev_zero_burns_no_cpu_and_a_real_file_in_its_place_is_followed() {
    if !hostile_user_available() {
        return;
    }
    let scene = Scene::new();
    let agent = scene.sandbox.start_agent();
    let mut alerts = scene.sandbox.follow_alerts();

    let cpu_before = cpu_time(&agent);
    let window = Instant::now();
    as_hostile_user(&format!("ln -sf /dev/zero '{}'", scene.app_log.display()));
    scene.wait_for_app_problem("is a character device, not a regular file");
    // The sentinel's CRITICAL and its OK a second later (the agent's own timer) bound a
    // window in which an endless read would show.
    append(&scene.sentinel_log, "ERROR sentinel\n");
    alerts.expect("CRITICAL", "log sentinel");
    alerts.expect("OK", "log sentinel");
    let used = cpu_time(&agent).saturating_sub(cpu_before);
    let elapsed = window.elapsed();
    eprintln!("the agent used {used:?} of CPU in {elapsed:?} with /dev/zero in place of its log");
    assert!(elapsed >= Duration::from_secs(1));
    assert!(
        used < Duration::from_millis(300),
        "the agent used {used:?} of CPU in {elapsed:?}"
    );

    // Replaced by a real file: followed again, from its start, and the problem is gone.
    let fresh = scene.hostile.join("fresh");
    as_hostile_user(&format!(
        "printf 'ERROR after zero\\n' > '{0}' && mv -f '{0}' '{1}'",
        fresh.display(),
        scene.app_log.display()
    ));
    let (_, alert) = alerts.expect("CRITICAL", "log app");
    assert_eq!(
        alert["subject"]["details"]["line_matching"]["data"],
        "ERROR after zero"
    );
    eventually("status shows the app check without its problem", || {
        let status = scene.status_of("app");
        status["state"] == "critical"
    });
}
