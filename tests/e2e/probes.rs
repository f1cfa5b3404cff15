//! `process`, `plugin` and `connectivity` checks with the real agent: a process the test
//! kills and starts again, a plugin script whose exit status the test sets, and an HTTP
//! server on 127.0.0.1 that the test stops and starts.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::harness::{eventually, Sandbox};

/// Sampled every second, so the tests take seconds.
fn sample_every_second(sandbox: &Sandbox, file: &str) {
    let file = sandbox.config_dir().join("available").join(file);
    let mut definition = fs::read_to_string(&file).unwrap();
    definition.push_str("interval: 1s\n");
    fs::write(&file, definition).unwrap();
}

/// The `state` of check `<subsystem> <name>` in `monitorctl status --json`.
fn state_of(sandbox: &Sandbox, subsystem: &str, name: &str) -> String {
    let output = sandbox.monitorctl(&["status", "--json"]);
    assert!(output.status.success(), "monitorctl status: {output:?}");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["check"]["subsystem"] == subsystem && check["check"]["name"] == name)
        .map(|check| check["state"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

fn description(alert: &serde_json::Value) -> &str {
    alert["subject"]["details"]["description"]
        .as_str()
        .unwrap_or_else(|| panic!("no description in {alert:#}"))
}

/// A daemon that is not a systemd unit, killed by the test: CRITICAL; started again: OK.
#[test]
fn a_process_killed_then_started_again_is_critical_then_ok() {
    let sandbox = Sandbox::new();
    // /bin/sleep under a name of its own, so that its `comm` is this test's alone.
    let name = format!("e2e-dmn-{}", std::process::id() % 10_000);
    let daemon = sandbox.path(&name);
    fs::copy("/bin/sleep", &daemon).unwrap();
    let start = || -> Child {
        Command::new(&daemon)
            .arg("3600")
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut running = start();
    sandbox.monitorctl_quietly(&["create", "process", "daemon", "name", &name]);
    sample_every_second(&sandbox, "process_daemon.yaml");
    sandbox.monitorctl_quietly(&["enable", "process", "daemon"]);
    let mut alerts = sandbox.follow_alerts();
    let mut agent = sandbox.start_agent();

    eventually("status shows the process running", || {
        state_of(&sandbox, "process", "daemon") == "ok"
    });
    running.kill().unwrap();
    running.wait().unwrap();
    let (_, critical) = alerts.expect("CRITICAL", "process daemon");
    assert_eq!(critical["name"], format!("Process {name} not running"));
    assert_eq!(critical["subject"]["type"], "process");
    assert_eq!(critical["subject"]["name"], name.as_str());
    assert_eq!(critical["subject"]["status"], "not-running");
    assert_eq!(
        description(&critical),
        format!("no process named {name} runs")
    );

    let mut again = start();
    let (_, ok) = alerts.expect("OK", "process daemon");
    assert_eq!(ok["subject"]["status"], "running");
    assert_eq!(
        description(&ok),
        format!("{name} runs (pid {})", again.id())
    );
    // Once: the next alert is the sentinel, the process killed again.
    again.kill().unwrap();
    again.wait().unwrap();
    alerts.expect("CRITICAL", "process daemon");
    agent.assert_alive();
}

/// A plugin script whose exit status the test sets: 0 (no alert), 2 (CRITICAL with the
/// plugin's first line, without its performance data), 0 again (OK).
#[test]
fn a_plugin_going_from_ok_to_critical_and_back() {
    plugin_scenario(Sandbox::new());
}

/// The scenario of [`a_plugin_going_from_ok_to_critical_and_back`], with the sandbox's
/// binaries (the cross-built ones under emulation too: `cross.rs`).
pub fn plugin_scenario(sandbox: Sandbox) {
    let code = sandbox.path("code");
    fs::write(&code, "0").unwrap();
    let plugin = sandbox.path("check_thing");
    fs::write(
        &plugin,
        format!(
            "#!/bin/sh\ncode=$(cat {})\nif [ \"$code\" = 0 ]; then echo 'THING OK - all fine | load=1'; else echo 'THING CRITICAL - it broke | load=9'; fi\nexit \"$code\"\n",
            code.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&plugin, fs::Permissions::from_mode(0o755)).unwrap();
    let command = format!("{} -w 1 -c 2", plugin.display());
    sandbox.monitorctl_quietly(&["create", "plugin", "thing", &command]);
    sample_every_second(&sandbox, "plugin_thing.yaml");
    sandbox.monitorctl_quietly(&["enable", "plugin", "thing"]);
    let mut alerts = sandbox.follow_alerts();
    let mut agent = sandbox.start_agent();

    eventually("status shows the plugin OK", || {
        state_of(&sandbox, "plugin", "thing") == "ok"
    });
    fs::write(&code, "2").unwrap();
    let (_, critical) = alerts.expect("CRITICAL", "plugin thing");
    assert_eq!(critical["name"], "Plugin check_thing reports a problem");
    assert_eq!(critical["subject"]["type"], "plugin");
    assert_eq!(critical["subject"]["name"], command.as_str());
    assert_eq!(description(&critical), "THING CRITICAL - it broke");

    fs::write(&code, "0").unwrap();
    let (_, ok) = alerts.expect("OK", "plugin thing");
    assert_eq!(description(&ok), "THING OK - all fine");
    // Once: the next alert is the sentinel, the plugin failing again.
    fs::write(&code, "2").unwrap();
    alerts.expect("CRITICAL", "plugin thing");
    agent.assert_alive();
}

/// A real HTTP/1.1 server on 127.0.0.1 answering every request with 200, in a thread,
/// until stopped.
struct HttpServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    fn start(address: &str) -> HttpServer {
        // std sets SO_REUSEADDR: a server started again takes the same port at once.
        let listener = TcpListener::bind(address).unwrap();
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let mut head = Vec::new();
                    let mut buffer = [0; 1024];
                    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer) {
                            Ok(count) if count > 0 => head.extend_from_slice(&buffer[..count]),
                            _ => break,
                        }
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                }
            }
        });
        HttpServer {
            address,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it: once this returns, the port refuses connections.
    fn stop(mut self) -> SocketAddr {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept so the thread sees `stop` and drops the listener.
        let _ = TcpStream::connect(self.address);
        self.thread.take().unwrap().join().unwrap();
        self.address
    }
}

/// An HTTP server stopped: CRITICAL after the check's failure count; started again: OK.
#[test]
fn an_http_server_stopped_then_started_again() {
    let sandbox = Sandbox::new();
    let server = HttpServer::start("127.0.0.1:0");
    let url = format!("http://{}/health", server.address);
    sandbox.monitorctl_quietly(&["create", "connectivity", "web", &url, "2"]);
    sample_every_second(&sandbox, "connectivity_web.yaml");
    sandbox.monitorctl_quietly(&["enable", "connectivity", "web"]);
    let mut alerts = sandbox.follow_alerts();
    let mut agent = sandbox.start_agent();

    eventually("status shows the server reachable", || {
        state_of(&sandbox, "connectivity", "web") == "ok"
    });
    let address = server.stop();
    let (_, critical) = alerts.expect("CRITICAL", "connectivity web");
    assert_eq!(critical["name"], format!("Cannot reach {url}"));
    assert_eq!(critical["subject"]["type"], "connectivity");
    assert_eq!(critical["subject"]["name"], url.as_str());
    assert_eq!(
        description(&critical),
        format!("HEAD {url}: cannot connect: Connection refused (os error 111)")
    );

    let server = HttpServer::start(&address.to_string());
    let (_, ok) = alerts.expect("OK", "connectivity web");
    assert!(
        description(&ok).starts_with(&format!("HEAD {url}: 200 OK (")),
        "{ok:#}"
    );
    // Once: the next alert is the sentinel, the server gone again.
    server.stop();
    alerts.expect("CRITICAL", "connectivity web");
    agent.assert_alive();
}

/// A plugin that hangs for its whole timeout holds up no other sampled check: a SoC
/// heating past its threshold (a Pi's thermal zone under `sysfs_root`, sampled every
/// second) is CRITICAL while the plugin's first sample is still running.
#[test]
fn a_hanging_plugin_holds_up_no_other_check() {
    let sandbox = Sandbox::new();
    let sys = sandbox.path("sys");
    let zone = sys.join("class/thermal/thermal_zone0");
    fs::create_dir_all(&zone).unwrap();
    fs::write(zone.join("type"), "cpu-thermal\n").unwrap();
    fs::write(zone.join("temp"), "49660\n").unwrap();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        format!("sysfs_root: {}\n", sys.display()),
    )
    .unwrap();
    sandbox.monitorctl_quietly(&["create", "plugin", "stuck", "sleep 120"]);
    let file = sandbox.config_dir().join("available/plugin_stuck.yaml");
    let mut definition = fs::read_to_string(&file).unwrap();
    definition.push_str("interval: 60s\ntimeout: 60s\n");
    fs::write(&file, definition).unwrap();
    sandbox.monitorctl_quietly(&["enable", "plugin", "stuck"]);
    sandbox.monitorctl_quietly(&["create", "temperature", "soc_heat", "80"]);
    sample_every_second(&sandbox, "temperature_soc_heat.yaml");
    sandbox.monitorctl_quietly(&["enable", "temperature", "soc_heat"]);
    let mut alerts = sandbox.follow_alerts();
    let mut agent = sandbox.start_agent();

    eventually("status shows the SoC OK", || {
        state_of(&sandbox, "temperature", "soc_heat") == "ok"
    });
    fs::write(zone.join("temp"), "85000\n").unwrap();
    alerts.expect("CRITICAL", "temperature soc_heat");
    // The plugin has not answered yet: its first sample runs for a minute.
    assert_eq!(state_of(&sandbox, "plugin", "stuck"), "unknown");
    agent.assert_alive();
}
