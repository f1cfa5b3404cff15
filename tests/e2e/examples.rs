//! What the README promises about the shipped files: the quick start runs, the example and
//! default configurations are valid, and the agent refuses what it cannot run with a clear
//! message.

use std::process::Command;

use crate::harness::{
    monitorctl_binary, monitord_binary, repository_root, stderr, stdout, Sandbox,
};

#[test]
fn the_quick_start_shows_a_critical_then_an_ok() {
    let output = Command::new(repository_root().join("examples/quickstart.sh"))
        .env("MONITORD", monitord_binary())
        .env("MONITORCTL", monitorctl_binary())
        .output()
        .expect("bash runs examples/quickstart.sh");
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let text = stdout(&output);
    let critical = text.find(
        "CRITICAL  log crasher_app  Log file contains ERROR  (line 2: ERROR:root:Crashing...)",
    );
    let ok = text.find("OK        log crasher_app  Log file contains ERROR  (no match for 2s)");
    assert!(
        critical.is_some() && ok.is_some() && critical < ok,
        "{text}"
    );
}

#[test]
fn the_default_monitor_yaml_documents_exactly_the_defaults() {
    let settings = monitor_config::load_settings(&repository_root().join("config")).unwrap();
    assert_eq!(settings, monitor_config::Settings::default());
}

#[test]
fn the_example_configuration_is_valid() {
    let output = Command::new(monitorctl_binary())
        .args([
            "--config-dir",
            repository_root().join("examples/config").to_str().unwrap(),
            "validate",
        ])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&output),
        "1 checks (1 enabled), no problems\n",
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_agent_refuses_bad_settings_naming_the_file_and_key() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        "flapping_interval: soon\n",
    )
    .unwrap();
    let output = Command::new(monitord_binary())
        .args([
            "--config-dir",
            sandbox.config_dir().to_str().unwrap(),
            "--state-dir",
            sandbox.state_dir().to_str().unwrap(),
            "--runtime-dir",
            sandbox.path("run").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "{}: flapping_interval: ",
            sandbox.config_dir().join("monitor.yaml").display()
        )),
        "{message}"
    );
}

#[test]
fn a_second_agent_on_the_same_runtime_folder_refuses_to_start() {
    let sandbox = Sandbox::new();
    let _first = sandbox.start_agent();
    let output = Command::new(monitord_binary())
        .env("MONITOR_CONFIG_DIR", sandbox.config_dir())
        .env("MONITOR_STATE_DIR", sandbox.state_dir())
        .env("MONITOR_RUNTIME_DIR", sandbox.path("run"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("another monitord is running"),
        "{}",
        stderr(&output)
    );
    // The first one still answers.
    assert!(sandbox.monitorctl(&["status"]).status.success());
}
