//! Email from the agent (`delivery.email[]`) to a real SMTP server on 127.0.0.1 (the sink
//! of `tests/support/smtp_sink.rs`): alerts of a real monitord mailed with Mender's subject,
//! a transient refusal retried without a duplicate, a refused login disabling the relay
//! without the password anywhere.

use std::fs;

use serde_json::Value;

use crate::harness::{append, eventually, stderr, stdout, Sandbox, DEADLINE};
use crate::smtp_sink::{SmtpSink, Stage};

const PASSWORD: &str = "smtp-password-never-printed";

/// monitor.yaml mailing `ops@example.com` through `sink` (no TLS: it is on loopback), with
/// `login` (user, password file contents) when given; and log checks `names` over
/// `app.log`, matching `^<name>$`, that never expire.
fn sandbox_mailing(sink: &SmtpSink, login: Option<(&str, &str)>, names: &[&str]) -> Sandbox {
    let sandbox = Sandbox::new();
    let mut settings = format!(
        "device_id: pi-mail\ndelivery:\n  email:\n    - smtp_host: 127.0.0.1\n      smtp_port: {}\n      tls: none\n      from: monitor <pi@example.com>\n      to: [ops@example.com]\n",
        sink.port
    );
    if let Some((user, password)) = login {
        fs::write(sandbox.path("smtp-password"), format!("{password}\n")).unwrap();
        fs::set_permissions(
            sandbox.path("smtp-password"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        settings.push_str(&format!(
            "      username: {user}\n      password_file: {}\n",
            sandbox.path("smtp-password").display()
        ));
    }
    fs::write(sandbox.config_dir().join("monitor.yaml"), settings).unwrap();
    let log = sandbox.path("app.log");
    fs::write(&log, "").unwrap();
    for name in names {
        sandbox.monitorctl_quietly(&[
            "create",
            "log",
            name,
            &format!("^{name}$"),
            log.to_str().unwrap(),
            "never",
        ]);
        sandbox.monitorctl_quietly(&["enable", "log", name]);
    }
    sandbox
}

fn subject(mail: &crate::smtp_sink::Mail) -> String {
    mail.header("Subject").unwrap_or_default()
}

#[test]
fn a_log_check_is_mailed_critical_then_ok_with_menders_subject() {
    let sink = SmtpSink::start();
    let sandbox = sandbox_mailing(&sink, None, &[]);
    let log = sandbox.path("app.log");
    sandbox.monitorctl_quietly(&[
        "create",
        "log",
        "kernel_oops",
        "Oops",
        log.to_str().unwrap(),
        "2",
    ]);
    sandbox.monitorctl_quietly(&["enable", "log", "kernel_oops"]);
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "before\nkernel: Oops: 0002 [#1]\n");
    let (_, critical) = alerts.expect("CRITICAL", "log kernel_oops");
    let name = critical["name"].as_str().unwrap().to_owned();

    let mail = sink.next(DEADLINE);
    assert_eq!(
        subject(&mail),
        format!("CRITICAL: Monitor Alert for {name} on pi-mail")
    );
    assert_eq!(mail.from, "pi@example.com");
    assert_eq!(mail.to, ["ops@example.com"]);
    let body = mail.decoded();
    assert!(body.contains("Device: pi-mail\r\n"), "{body}");
    assert!(body.contains(&format!("CRITICAL: {name}")), "{body}");
    assert!(body.contains("kernel: Oops: 0002 [#1]"), "{body}");

    alerts.expect("OK", "log kernel_oops");
    let mail = sink.next(DEADLINE);
    assert_eq!(
        subject(&mail),
        format!("OK: Monitor Alert for {name} on pi-mail")
    );
}

#[test]
fn a_451_is_retried_and_the_alert_is_mailed_once() {
    let sink = SmtpSink::start();
    sink.refuse_next(Stage::Mail, "451 4.3.0 mailbox busy, try again later");
    let sandbox = sandbox_mailing(&sink, None, &["first", "sentinel"]);
    let log = sandbox.path("app.log");
    let _agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "first\n");
    alerts.expect("CRITICAL", "log first");

    let mail = sink.next(DEADLINE);
    assert!(
        subject(&mail).starts_with("CRITICAL: "),
        "{}",
        subject(&mail)
    );
    assert!(mail.decoded().contains("first"), "{}", mail.decoded());
    assert_eq!(
        sink.refusals(),
        ["451 4.3.0 mailbox busy, try again later"],
        "the first try was refused"
    );
    // Once: the next mail is the sentinel's, not the first alert again.
    append(&log, "sentinel\n");
    let next = sink.next(DEADLINE);
    let text = next.decoded();
    assert!(text.contains("sentinel"), "{text}");
    assert!(!text.contains("^first$"), "{text}");
    assert_eq!(sink.mails.lock().unwrap().len(), 2);
}

#[test]
fn a_refused_login_disables_the_relay_and_names_no_password() {
    let sink = SmtpSink::start_with_login("pi", "the-right-password");
    let sandbox = sandbox_mailing(&sink, Some(("pi", PASSWORD)), &["boom"]);
    let log = sandbox.path("app.log");
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&log, "boom\n");
    alerts.expect("CRITICAL", "log boom");

    let mut shown = Value::Null;
    eventually("the relay is disabled", || {
        let output = sandbox.monitorctl(&["alerts", "--pending", "--json"]);
        shown = serde_json::from_str(&stdout(&output)).unwrap_or(Value::Null);
        shown[0]["disabled"] == true
    });
    let destination = &shown[0];
    assert_eq!(destination["name"], "email:ops@example.com@127.0.0.1");
    assert_eq!(
        destination["pending"], 1,
        "the alert is kept: {destination}"
    );
    let error = destination["last_error"].as_str().unwrap();
    assert!(error.contains("refused the login"), "{error}");
    assert!(error.contains("535"), "{error}");
    assert!(error.contains("password_file"), "{error}");
    assert_eq!(
        sink.refusals(),
        ["535 5.7.8 Authentication credentials invalid"]
    );
    assert!(sink.mails.lock().unwrap().is_empty());

    // monitorctl test-destination says the same, and exits 1.
    let tested = sandbox.monitorctl(&["test-destination", "email"]);
    assert_eq!(tested.status.code(), Some(1));
    let said = stderr(&tested);
    assert!(
        said.contains("delivery.email[0] (email:ops@example.com@127.0.0.1): 127.0.0.1:"),
        "{said}"
    );
    assert!(said.contains("refused the login"), "{said}");
    for text in [agent.log(), said, stdout(&tested), shown.to_string()] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
}

#[test]
fn plain_smtp_to_another_host_is_refused_with_the_field_and_the_fix() {
    let sandbox = Sandbox::new();
    fs::write(
        sandbox.config_dir().join("monitor.yaml"),
        "delivery:\n  email:\n    - smtp_host: mail.example.com\n      tls: none\n      from: pi@example.com\n      to: []\n",
    )
    .unwrap();
    let output = sandbox.monitorctl(&["validate"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let said = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        said.contains("monitor.yaml: delivery.email[0].tls: none to mail.example.com would send the password and alerts in clear"),
        "{said}"
    );
    assert!(said.contains("delivery.email[0].to: empty"), "{said}");
}
