//! Email from the agent (`delivery.email[]`) to a real SMTP server on 127.0.0.1 (the sink
//! of `tests/support/smtp_sink.rs`): alerts of a real monitord mailed with Mender's subject,
//! a transient refusal retried without a duplicate, a refused login disabling the relay
//! without the password anywhere; over STARTTLS and implicit TLS with a certificate of a
//! test CA (`ca_file`), a certificate not trusted refused with the setting to fix, and a
//! relay that does not offer STARTTLS sent nothing in clear.

use std::fs;

use serde_json::Value;

use crate::harness::{append, eventually, stderr, stdout, Sandbox, DEADLINE};
use crate::smtp_sink::{SinkTls, SmtpSink, Stage};
use crate::tls_certificates::TestCertificates;

const PASSWORD: &str = "smtp-password-never-printed";

/// monitor.yaml mailing `ops@example.com` through `sink` (no TLS: it is on loopback), with
/// `login` (user, password file contents) when given; and log checks `names` over
/// `app.log`, matching `^<name>$`, that never expire.
fn sandbox_mailing(sink: &SmtpSink, login: Option<(&str, &str)>, names: &[&str]) -> Sandbox {
    sandbox_mailing_with(sink, "tls: none", login, names)
}

/// As [`sandbox_mailing`], with `tls` (lines of settings, such as `tls: starttls`) for the
/// relay's protection.
fn sandbox_mailing_with(
    sink: &SmtpSink,
    tls: &str,
    login: Option<(&str, &str)>,
    names: &[&str],
) -> Sandbox {
    let sandbox = Sandbox::new();
    let tls = tls.replace('\n', "\n      ");
    let mut settings = format!(
        "device_id: pi-mail\ndelivery:\n  email:\n    - smtp_host: 127.0.0.1\n      smtp_port: {}\n      {tls}\n      from: monitor <pi@example.com>\n      to: [ops@example.com]\n",
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

/// The relay of `sink` as the outbox names it.
const RELAY_NAME: &str = "email:ops@example.com@127.0.0.1";

/// The agent's one destination as `monitorctl alerts --pending --json` shows it, once
/// `condition` holds of it.
fn pending_once(sandbox: &Sandbox, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let mut shown = Value::Null;
    eventually(what, || {
        let output = sandbox.monitorctl(&["alerts", "--pending", "--json"]);
        shown = serde_json::from_str(&stdout(&output)).unwrap_or(Value::Null);
        condition(&shown[0])
    });
    shown[0].clone()
}

#[test]
fn alerts_are_mailed_over_starttls_and_implicit_tls_to_a_relay_of_a_private_ca() {
    let certificates = TestCertificates::generate();
    for (mode, tls) in [(SinkTls::StartTls, "starttls"), (SinkTls::Implicit, "tls")] {
        let sink = SmtpSink::start_tls(
            mode,
            &certificates.cert(),
            &certificates.key(),
            Some(("pi", PASSWORD)),
        );
        let settings = format!("tls: {tls}\nca_file: {}", certificates.ca().display());
        let sandbox = sandbox_mailing_with(&sink, &settings, Some(("pi", PASSWORD)), &["boom"]);
        let agent = sandbox.start_agent();
        let mut alerts = sandbox.follow_alerts();
        append(&sandbox.path("app.log"), "boom\n");
        alerts.expect("CRITICAL", "log boom");

        let mail = sink.next(DEADLINE);
        assert!(
            subject(&mail).starts_with("CRITICAL: "),
            "{tls}: {}",
            subject(&mail)
        );
        assert!(
            mail.decoded().contains("Device: pi-mail"),
            "{}",
            mail.decoded()
        );
        // The login and the message went encrypted: in clear at most EHLO and STARTTLS.
        let in_clear: &[&str] = match mode {
            SinkTls::StartTls => &["EHLO", "STARTTLS"],
            SinkTls::Implicit => &[],
        };
        assert_eq!(sink.commands_in_clear(), in_clear, "{tls}");
        assert!(
            sink.commands().contains(&"AUTH".to_owned()),
            "{tls}: {:?}",
            sink.commands()
        );

        let tested = sandbox.monitorctl(&["test-destination", "email"]);
        assert!(tested.status.success(), "{tls}: {}", stderr(&tested));
        assert_eq!(
            stdout(&tested),
            format!("delivery.email[0] ({RELAY_NAME}): sent\n")
        );
        let test_mail = sink.next(DEADLINE);
        assert!(
            test_mail
                .decoded()
                .contains("This is a test alert from monitorctl test-destination on pi-mail"),
            "{}",
            test_mail.decoded()
        );
        assert!(!agent.log().contains(PASSWORD));
    }
}

#[test]
fn a_certificate_not_trusted_is_refused_with_ca_file_as_the_fix_and_the_alert_kept() {
    let certificates = TestCertificates::generate();
    let sink = SmtpSink::start_tls(
        SinkTls::StartTls,
        &certificates.cert(),
        &certificates.key(),
        Some(("pi", PASSWORD)),
    );
    // No ca_file: the test CA is not among the system's roots.
    let sandbox = sandbox_mailing_with(&sink, "tls: starttls", Some(("pi", PASSWORD)), &["boom"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&sandbox.path("app.log"), "boom\n");
    alerts.expect("CRITICAL", "log boom");

    let destination = pending_once(
        &sandbox,
        "the relay's certificate is refused",
        |destination| {
            destination["last_error"]
                .as_str()
                .is_some_and(|error| error.contains("not trusted"))
        },
    );
    assert_eq!(destination["name"], RELAY_NAME);
    assert_eq!(
        destination["pending"], 1,
        "the alert is kept: {destination}"
    );
    assert_eq!(destination["disabled"], false, "tried again: {destination}");
    let error = destination["last_error"].as_str().unwrap();
    assert!(
        error.contains("set ca_file to that CA's certificate (PEM)"),
        "{error}"
    );

    let tested = sandbox.monitorctl(&["test-destination", "email"]);
    assert_eq!(tested.status.code(), Some(1));
    let said = stderr(&tested);
    assert!(
        said.starts_with(&format!("monitorctl: delivery.email[0] ({RELAY_NAME}): not sent, for now: 127.0.0.1:{} presented a certificate that is not trusted (UnknownIssuer): for a relay with a private CA set ca_file", sink.port)),
        "{said}"
    );
    // Neither the login nor a message was ever sent.
    assert!(
        sink.commands()
            .iter()
            .all(|verb| verb == "EHLO" || verb == "STARTTLS"),
        "{:?}",
        sink.commands()
    );
    assert!(sink.mails.lock().unwrap().is_empty());
    for text in [agent.log(), said, stdout(&tested), destination.to_string()] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
}

#[test]
fn a_relay_that_does_not_offer_starttls_gets_nothing_in_clear() {
    // A plain relay asking for a login: it never offers STARTTLS.
    let sink = SmtpSink::start_with_login("pi", PASSWORD);
    let sandbox = sandbox_mailing_with(&sink, "tls: starttls", Some(("pi", PASSWORD)), &["boom"]);
    let agent = sandbox.start_agent();
    let mut alerts = sandbox.follow_alerts();
    append(&sandbox.path("app.log"), "boom\n");
    alerts.expect("CRITICAL", "log boom");

    let destination = pending_once(&sandbox, "the relay is disabled", |destination| {
        destination["disabled"] == true
    });
    assert_eq!(
        destination["pending"], 1,
        "the alert is kept: {destination}"
    );
    let error = destination["last_error"].as_str().unwrap();
    assert!(error.contains("STARTTLS is not supported"), "{error}");
    assert!(
        error.contains("with tls: starttls nothing is sent before STARTTLS succeeds"),
        "{error}"
    );

    let tested = sandbox.monitorctl(&["test-destination", "email"]);
    assert_eq!(tested.status.code(), Some(1));
    let said = stderr(&tested);
    assert!(
        said.contains("use tls: tls for a relay that speaks TLS from the first byte"),
        "{said}"
    );
    // Only greetings: no login, no message, in clear or otherwise.
    assert!(
        sink.commands()
            .iter()
            .all(|verb| verb == "EHLO" || verb == "QUIT"),
        "{:?}",
        sink.commands()
    );
    assert!(sink.mails.lock().unwrap().is_empty());
    for text in [agent.log(), said, stdout(&tested), destination.to_string()] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
}
