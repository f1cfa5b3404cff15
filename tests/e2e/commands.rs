//! `@command` sources end to end: real child processes whose output is matched, restarted
//! and reported when they die, started at once when enabled on a running agent; a simple
//! command is one process (the shell `exec`s it), a pipeline is stopped whole.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::harness::{append, eventually, stdout, AlertFollower, Sandbox};

#[test]
fn a_command_enabled_on_a_running_agent_starts_at_once_and_its_lines_match() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    // Mender's own example of a command source: `@tail -F <file>`.
    let source = format!("@tail -n 0 -F {}", log.display());
    sandbox.monitorctl_quietly(&["create", "log", "tailed", "FATAL", &source, "never"]);
    sandbox.monitorctl_quietly(&["enable", "log", "tailed"]);
    eventually("tail is running", || {
        stdout(&sandbox.monitorctl(&["status"])).contains("reading the output of @tail")
    });
    // tail may start reading a moment after it was spawned: keep writing until it tells.
    let mut written = 0;
    let (_, critical) = loop {
        append(&log, &format!("one\nFATAL: disk {written} gone\ntwo\n"));
        written += 1;
        if let Some(alert) = alerts.try_next(Duration::from_millis(200)) {
            break alert;
        }
        assert!(written < 50, "no alert from the tail command");
    };
    assert_eq!(critical["level"], "CRITICAL");
    assert_eq!(critical["name"], "Log file contains FATAL");
    let details = &critical["subject"]["details"];
    assert!(
        details["line_matching"]["data"]
            .as_str()
            .unwrap()
            .starts_with("FATAL: disk"),
        "{critical:#}"
    );
    assert_eq!(
        details["command"],
        format!("tail -n 0 -F {}", log.display())
    );
}

#[test]
fn a_command_that_exits_is_reported_once_and_restarted() {
    let sandbox = Sandbox::new();
    let marker = sandbox.path("runs");
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "flaky",
        "ERROR",
        &format!("@echo run >> {}; echo ERROR once; exit 3", marker.display()),
        "never",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "flaky"]);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();

    let mut seen: Vec<(String, String)> = (0..2)
        .map(|_| {
            let (_, alert) = alerts.next();
            (
                alert["level"].as_str().unwrap().to_owned(),
                alert["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let stopped = format!(
        "Log source @echo run >> {}; echo ERROR once; exit 3 stopped",
        marker.display()
    );
    assert_eq!(
        seen,
        vec![
            ("CRITICAL".to_owned(), "Log file contains ERROR".to_owned()),
            ("CRITICAL".to_owned(), stopped),
        ]
    );
    // Restarted with backoff (1 s, then 2 s): three runs, and no second report of the death.
    eventually("the command ran three times", || {
        fs::read_to_string(&marker)
            .unwrap_or_default()
            .lines()
            .count()
            >= 3
    });
    alerts.assert_quiet_for(Duration::from_millis(300));
    let status = stdout(&sandbox.monitorctl(&["status"]));
    assert!(status.contains("exited with status 3"), "{status}");
    assert!(status.contains("log flaky  error"), "{status}");
}

/// A process below the agent, from /proc.
#[derive(Debug, Clone, PartialEq)]
struct Process {
    pid: u32,
    parent: u32,
    name: String,
    state: char,
}

fn process(pid: u32) -> Option<Process> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
    let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
    let mut rest = stat[stat.rfind(')')? + 2..].split(' ');
    let state = rest.next()?.chars().next()?;
    let parent = rest.next()?.parse().ok()?;
    Some(Process {
        pid,
        parent,
        name: name.to_owned(),
        state,
    })
}

/// Every live process below `ancestor` (zombies not counted: they hold no memory).
fn descendants(ancestor: u32) -> Vec<Process> {
    let all: Vec<Process> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter_map(process)
        .collect();
    let mut found: Vec<Process> = Vec::new();
    let mut parents = vec![ancestor];
    while let Some(parent) = parents.pop() {
        for child in all.iter().filter(|process| process.parent == parent) {
            parents.push(child.pid);
            if child.state != 'Z' {
                found.push(child.clone());
            }
        }
    }
    found.sort_by_key(|process| process.pid);
    found
}

/// Whether `pid` has ended: gone, or a zombie no longer ours to reap (an orphan waits for
/// init, which may not reap in a container).
fn ended(pid: u32, agent: u32) -> bool {
    process(pid).is_none_or(|process| process.state == 'Z' && process.parent != agent)
}

/// Append lines to `log` until an alert arrives: a command may start reading a moment
/// after it was spawned.
fn write_until_alert(log: &Path, line: &str, alerts: &mut AlertFollower) -> serde_json::Value {
    for _ in 0..50 {
        append(log, &format!("one\n{line}\ntwo\n"));
        if let Some((_, alert)) = alerts.try_next(Duration::from_millis(200)) {
            return alert;
        }
    }
    panic!("no alert from the command reading {}", log.display());
}

#[test]
fn ten_tail_commands_are_ten_processes_and_a_disabled_one_leaves_nothing_behind() {
    let sandbox = Sandbox::new();
    for index in 0..10 {
        let log = sandbox.path(&format!("app-{index}.log"));
        fs::write(&log, "").unwrap();
        let source = format!("@tail -n 0 -F {}", log.display());
        let name = format!("tailed{index}");
        sandbox.monitorctl_quietly(&["create", "log", &name, "FATAL", &source, "never"]);
        sandbox.monitorctl_quietly(&["enable", "log", &name]);
    }
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let me = agent.pid();

    // The shell `exec`s each command: ten `tail`s, the agent's own children, no `sh`.
    let mut tails = Vec::new();
    eventually("ten tail processes run as the agent's children", || {
        tails = descendants(me);
        tails.len() == 10 && tails.iter().all(|tail| tail.name == "tail")
    });
    assert!(tails.iter().all(|tail| tail.parent == me), "{tails:?}");
    // And they are the readers: a line in one file is an alert.
    let critical = write_until_alert(&sandbox.path("app-3.log"), "FATAL: here", &mut alerts);
    assert_eq!(critical["check"]["name"], "tailed3", "{critical:#}");

    // Which tail reads app-7.log: its command line says.
    let app7 = sandbox.path("app-7.log").display().to_string();
    let reader_of_app7 = tails
        .iter()
        .find(|tail| {
            fs::read(format!("/proc/{}/cmdline", tail.pid))
                .unwrap_or_default()
                .split(|byte| *byte == 0)
                .any(|argument| argument == app7.as_bytes())
        })
        .expect("a tail reads app-7.log")
        .pid;
    sandbox.monitorctl_quietly(&["disable", "log", "tailed7"]);
    eventually("the disabled check's tail is gone", || {
        ended(reader_of_app7, me)
    });
    let left = descendants(me);
    assert_eq!(left.len(), 9, "{left:?}");
    assert!(left.iter().all(|tail| tail.name == "tail"), "{left:?}");
}

#[test]
fn a_pipeline_still_matches_and_is_stopped_whole() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    // grep passes FATAL and WARN lines; only FATAL matches the check.
    let source = format!(
        "@tail -n 0 -F {} | grep --line-buffered -e FATAL -e WARN",
        log.display()
    );
    sandbox.monitorctl_quietly(&["create", "log", "piped", "FATAL", &source, "never"]);
    sandbox.monitorctl_quietly(&["enable", "log", "piped"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let me = agent.pid();

    let critical = write_until_alert(&log, "WARN low\nFATAL: pipe", &mut alerts);
    assert_eq!(critical["check"]["name"], "piped", "{critical:#}");
    let details = &critical["subject"]["details"];
    assert_eq!(
        details["line_matching"]["data"], "FATAL: pipe",
        "{critical:#}"
    );
    // The lines before it went through grep: only the WARN one is context.
    let before = details["lines_before"].as_array().unwrap();
    assert!(
        before.iter().all(|line| line["data"] == "WARN low"),
        "{critical:#}"
    );

    // A pipeline keeps its shell: sh with tail and grep below it.
    let mut pipeline = Vec::new();
    eventually("the pipeline runs", || {
        pipeline = descendants(me);
        let mut names: Vec<&str> = pipeline.iter().map(|p| p.name.as_str()).collect();
        names.sort();
        names == ["grep", "sh", "tail"]
    });
    sandbox.monitorctl_quietly(&["disable", "log", "piped"]);
    eventually("every process of the pipeline has ended", || {
        pipeline.iter().all(|process| ended(process.pid, me))
    });
    assert_eq!(descendants(me), vec![]);
}

#[test]
fn shell_syntax_in_a_simple_command_works_as_before_in_one_process() {
    let mut sandbox = Sandbox::new();
    let folder = sandbox.path("my logs");
    fs::create_dir(&folder).unwrap();
    let log = folder.join("app log.txt");
    fs::write(&log, "").unwrap();
    sandbox
        .env
        .push(("APP_LOGS".to_owned(), folder.display().to_string()));
    // An assignment, a variable, a quoted name with spaces, a redirection.
    let source =
        r#"@TAIL_MARK="set by the check" tail -n 0 -F "$APP_LOGS/app log.txt" 2>/dev/null"#;
    sandbox.monitorctl_quietly(&["create", "log", "quoted", "FATAL", source, "never"]);
    sandbox.monitorctl_quietly(&["enable", "log", "quoted"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    let me = agent.pid();

    let critical = write_until_alert(&log, "FATAL: quoted", &mut alerts);
    assert_eq!(critical["check"]["name"], "quoted", "{critical:#}");
    let running = descendants(me);
    assert_eq!(running.len(), 1, "{running:?}");
    let tail = &running[0];
    assert_eq!((tail.name.as_str(), tail.parent), ("tail", me));
    let environment = fs::read(format!("/proc/{}/environ", tail.pid)).unwrap();
    assert!(
        environment
            .split(|byte| *byte == 0)
            .any(|variable| variable == b"TAIL_MARK=set by the check"),
        "the assignment reaches the command"
    );
    // stderr went where the text said, not to the agent.
    let stderr = fs::read_link(format!("/proc/{}/fd/2", tail.pid)).unwrap();
    assert_eq!(stderr, Path::new("/dev/null"));
}
