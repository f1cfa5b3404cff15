//! The administrator's commands: what they print, and their errors.

use serde_json::Value;

use crate::api::binary;
use crate::monitor_server::ServerDatabase;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn device_commands_print_the_token_once_and_list_devices() {
    let database = ServerDatabase::sqlite();
    let token = database.admin_ok(binary(), &["device", "add", "pi-kitchen"], None);
    assert!(token.starts_with("mdt_") && token.len() == 68, "{token}");
    let listed = database.admin_ok(binary(), &["device", "list"], None);
    let lines: Vec<_> = listed.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{listed}");
    assert!(
        lines[1].starts_with("pi-kitchen")
            && lines[1].contains("accepted")
            && lines[1].contains("never"),
        "{listed}"
    );
    assert!(
        !listed.contains(&token),
        "the token is shown only when made"
    );

    let again = database.admin(binary(), &["device", "add", "pi-kitchen"], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("a device named `pi-kitchen` exists already: choose another name"),
        "{}",
        stderr(&again)
    );

    let fresh = database.admin_ok(binary(), &["device", "token", "pi-kitchen"], None);
    assert_ne!(fresh, token);
    database.admin_ok(binary(), &["device", "decommission", "pi-kitchen"], None);
    let json: Value =
        serde_json::from_str(&database.admin_ok(binary(), &["device", "list", "--json"], None))
            .unwrap();
    assert_eq!(json[0]["status"], "decommissioned");
    let accept = database.admin(binary(), &["device", "accept", "pi-kitchen"], None);
    assert_eq!(accept.status.code(), Some(1));
    assert!(
        stderr(&accept).contains("pi-kitchen is decommissioned"),
        "{}",
        stderr(&accept)
    );

    let unknown = database.admin(binary(), &["device", "reject", "pi-garage"], None);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains(
            "no device `pi-garage`: `monitor-server device list` shows the names and ids"
        ),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn user_commands_refuse_weak_passwords_and_duplicates() {
    let database = ServerDatabase::sqlite();
    let short = database.admin(
        binary(),
        &["user", "add", "a@example.com", "--password-stdin"],
        Some("short\n"),
    );
    assert_eq!(short.status.code(), Some(1));
    assert!(
        stderr(&short).contains("shorter than 8 characters"),
        "{}",
        stderr(&short)
    );
    let no_flag = database.admin(binary(), &["user", "add", "a@example.com"], None);
    assert_eq!(no_flag.status.code(), Some(2), "usage error");
    database.admin_ok(
        binary(),
        &["user", "add", "a@example.com", "--password-stdin"],
        Some("long enough\n"),
    );
    let twice = database.admin(
        binary(),
        &["user", "add", "a@example.com", "--password-stdin"],
        Some("long enough\n"),
    );
    assert!(
        stderr(&twice).contains("a user with the email `a@example.com` exists already"),
        "{}",
        stderr(&twice)
    );
    let token = database.admin_ok(
        binary(),
        &[
            "token",
            "add",
            "a@example.com",
            "--name",
            "ci",
            "--expires",
            "30d",
        ],
        None,
    );
    assert!(token.starts_with("mut_"), "{token}");
    let nobody = database.admin(binary(), &["token", "add", "b@example.com"], None);
    assert!(
        stderr(&nobody).contains("no user `b@example.com`"),
        "{}",
        stderr(&nobody)
    );
}

#[test]
fn a_bad_configuration_file_is_named_with_the_field() {
    let database = ServerDatabase::sqlite();
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("server.yaml");
    std::fs::write(&config, "listen: 127.0.0.1:0\nport: 8080\n").unwrap();
    let output = database.admin(
        binary(),
        &["--config", config.to_str().unwrap(), "device", "list"],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(
        error.contains("server.yaml") && error.contains("unknown field `port`"),
        "{error}"
    );
}

#[test]
fn an_unreachable_database_is_reported_without_its_password() {
    let database = ServerDatabase::sqlite();
    let output = database.admin(
        binary(),
        &[
            "--database-url",
            "postgres://monitor:hunter2secret@127.0.0.1:1/monitor",
            "device",
            "list",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(
        error.contains("cannot open the database postgres://monitor:***@127.0.0.1:1/monitor"),
        "{error}"
    );
    assert!(!error.contains("hunter2secret"), "{error}");
}

/// A public URL users could not open is refused at start, whether given as a flag, in the
/// environment or in the file, naming the flag, the field and what to give; a password in
/// it is never shown.
#[test]
fn a_public_url_that_is_no_web_address_is_refused_at_start() {
    let database = ServerDatabase::sqlite();
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("server.yaml");
    std::fs::write(&config, "public_url: monitor.example\n").unwrap();
    let config = config.to_str().unwrap();
    let start = |args: &[&str], env: Option<&str>| {
        let mut command = std::process::Command::new(binary());
        command
            .args(database.args())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("MONITOR_SERVER_LOG", "warn")
            .env_remove("MONITOR_SERVER_PUBLIC_URL");
        if let Some(value) = env {
            command.env("MONITOR_SERVER_PUBLIC_URL", value);
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
        stderr(&output)
    };
    for (args, env, shown, problem) in [
        (
            &["--public-url", "ftp://monitor.example"][..],
            None,
            "ftp://monitor.example",
            "not an http or https address",
        ),
        (
            &[][..],
            Some("https://monitor.example/?tab=1"),
            "https://monitor.example/?tab=1",
            "a query or a fragment",
        ),
        (
            &["--config", config][..],
            None,
            "monitor.example",
            "not a URL",
        ),
        (
            &[
                "--public-url",
                "https://admin:hunter2secret@monitor.example",
            ][..],
            None,
            "https://monitor.example/",
            "a user or a password",
        ),
    ] {
        let error = start(args, env);
        assert!(
            error.contains(&format!("--public-url (public_url) `{shown}`: "))
                && error.contains(problem)
                && error.contains("such as https://monitor.example.com"),
            "{error}"
        );
        assert!(!error.contains("hunter2secret"), "{error}");
    }
}
