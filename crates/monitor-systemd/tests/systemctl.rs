//! `on_failure: restart`'s `systemctl restart` against a real `systemd --user` manager: a unit
//! whose name starts with `-` (as `-.mount` does) is restarted, never read as options.
//!
//! One test in this binary: `systemctl` finds the manager through the process environment,
//! which is set here before anything else runs.

#[path = "../../../tests/support/user_manager.rs"]
mod user_manager;

use std::time::{Duration, Instant};

use monitor_systemd::{restart, Bus};
use user_manager::UserManager;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_name_starting_with_a_dash_is_restarted_not_taken_for_options() {
    let Some(manager) = UserManager::start() else {
        return;
    };
    for (name, value) in manager.env() {
        std::env::set_var(name, value);
    }
    let ran = manager.dir.path().join("ran");
    manager.install_unit(
        "-dash.service",
        &format!(
            "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'echo ran >> {}'\n",
            ran.display()
        ),
    );

    // Without `--`, systemctl reads `-dash.service` as `-d -a -s -h ...` and refuses it.
    restart("-dash.service", Bus::Session)
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", manager.log()));
    // (`UserManager::wait_for_state` passes the name without `--`, so this asks itself.)
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let shown = manager.systemctl_ok(&[
            "show",
            "-p",
            "ActiveState",
            "--value",
            "--",
            "-dash.service",
        ]);
        if String::from_utf8_lossy(&shown.stdout).trim() == "active" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "-dash.service did not start within 15 s\n{}",
            manager.log()
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "ran\n");

    // Without `--`, `--version` prints systemctl's version and "succeeds".
    let error = restart("--version", Bus::Session)
        .await
        .expect_err("--version is a unit name that does not exist");
    assert!(error.contains("--version.service"), "{error}");
}
