//! The dashboard in a real browser (headless chromium): log in, watch a device turn red on
//! a CRITICAL and green on its OK without reloading, accept a pending device, open an
//! alert's details, and look at it on a phone-sized screen. Screenshots are kept in
//! `$CARGO_TARGET_TMPDIR/dashboard/`.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::json;

use crate::admission::{ask, DeviceKey, KeyType};
use crate::api::{alert, Fixture, EMAIL, PASSWORD};
use crate::browser::Browser;
use crate::monitor_server::ServerDatabase;

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser() {
    let Some(browser) = Browser::start(&screenshots()).await else {
        return;
    };
    let fixture = Fixture::start(ServerDatabase::sqlite()).await;
    let ui = |path: &str| fixture.url(path);

    // Logging in: a wrong password is refused, the right one lands on the devices.
    browser.go(&ui("/ui/devices")).await;
    browser.wait_for("form.login").await;
    assert!(browser.url().await.ends_with("/ui/login"));
    browser.type_into("input[name=email]", EMAIL).await;
    browser
        .type_into("input[name=password]", "not the password")
        .await;
    browser.click("form.login button").await;
    browser.wait_for("#login-error").await;
    browser.type_into("input[name=email]", EMAIL).await;
    browser.type_into("input[name=password]", PASSWORD).await;
    browser.click("form.login button").await;
    browser.wait_for("#devices").await;
    let row = browser.wait_for("tr.device.ok[data-name='pi-1']").await;
    assert!(browser.text(&row).await.contains("OK"));
    browser.screenshot("1-devices-ok").await;

    // The agent reports CRITICAL: the row turns red by itself (live update), then green.
    fixture
        .post_alerts(&json!([{
            "name": "Log file contains Traceback",
            "level": "CRITICAL",
            "timestamp": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            "subject": {"name": "crasher_app", "type": "log", "status": "LOGCONTAINS", "details": {
                "description": "the crasher crashed",
                "lines_before": [{"line_number": 41, "data": "working"}, {"line_number": 42, "data": "still working"}],
                "line_matching": {"line_number": 43, "data": "Traceback (most recent call last):"},
                "lines_after": [{"line_number": 44, "data": "  File \"crasher.py\", line 7"}]
            }}
        }]))
        .await;
    let red = browser
        .wait_for("tr.device.critical[data-name='pi-1']")
        .await;
    assert!(
        browser.text(&red).await.contains("1 open"),
        "{}",
        browser.text(&red).await
    );
    browser.screenshot("2-devices-critical").await;
    browser.click("#filter-open").await;
    browser
        .wait_for("tr.device.critical[data-name='pi-1']")
        .await;

    // The device: its latest alert per subject, history, pushed checks and chart.
    let checks = json!([{"name": "crasher_app", "status": "enabled", "type": "log",
        "log": {"pattern": "Traceback", "path": "/var/log/crasher.log", "expire_seconds": 300}}]);
    let pushed = fixture
        .device_post(
            "/api/devices/v1/devicemonitor/config",
            &fixture.device_token,
            &checks,
        )
        .await;
    assert_eq!(pushed.status(), StatusCode::NO_CONTENT);
    browser.click("tr.device[data-name='pi-1'] a").await;
    let check = browser.wait_for("#checks tbody tr").await;
    assert!(browser
        .text(&check)
        .await
        .contains("/Traceback/ in /var/log/crasher.log"));
    browser
        .wait_for("#history tr.alert[data-level=CRITICAL]")
        .await;
    browser.screenshot("3-device").await;

    // The alert's details: the matching line marked among its context, exportable.
    browser.click("#latest a").await;
    let matching = browser.wait_for("mark.matching").await;
    assert!(browser
        .text(&matching)
        .await
        .contains("43  Traceback (most recent call last):"));
    let log = browser.text(&browser.wait_for("#log").await).await;
    assert!(
        log.contains("42  still working") && log.contains("44    File"),
        "{log}"
    );
    let export = browser.wait_for("#export").await;
    let href = browser.attribute(&export, "href").await.unwrap();
    browser.screenshot("4-alert-details").await;
    let session = fixture.user_token.clone(); // the export needs a session; use the API's
    let exported = fixture
        .client
        .get(fixture.url(&href))
        .header("cookie", format!("monitor_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(exported.status(), StatusCode::OK);
    assert!(exported.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(".log"));
    let text = exported.text().await.unwrap();
    assert!(
        text.contains(">    43  Traceback (most recent call last):"),
        "{text}"
    );

    let mut ok = alert("crasher_app", "OK", 0);
    ok["timestamp"] = json!(humantime::format_rfc3339_millis(
        std::time::SystemTime::now() + std::time::Duration::from_secs(1)
    )
    .to_string());
    fixture.post_alerts(&json!([ok])).await;
    browser.go(&ui("/ui/devices")).await;
    browser.wait_for("tr.device.ok[data-name='pi-1']").await;

    // A device asks to join: it waits on the pending page until accepted there.
    let key = DeviceKey::generate(KeyType::Ed25519);
    let identity = json!({"mac": "dc:a6:32:12:34:56"});
    assert_eq!(
        ask(&fixture, &key, &identity, "", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    browser.go(&ui("/ui/pending")).await;
    browser
        .wait_for("#pending tr[data-name='dc:a6:32:12:34:56']")
        .await;
    browser.screenshot("5-pending").await;
    browser
        .click("#pending tr[data-name='dc:a6:32:12:34:56'] button.accept")
        .await;
    browser
        .wait_for("tr.device[data-name='dc:a6:32:12:34:56']")
        .await;
    let (status, jwt) = ask(&fixture, &key, &identity, "", None).await;
    assert_eq!(status, StatusCode::OK, "accepted in the dashboard: {jwt}");

    // Settings, and the devices on a phone.
    browser.go(&ui("/ui/settings")).await;
    browser.wait_for("#global-mute").await;
    browser.screenshot("6-settings").await;
    browser.resize(390, 844).await;
    browser.go(&ui("/ui/devices")).await;
    browser.wait_for("#devices").await;
    browser.screenshot("7-devices-phone").await;
    eprintln!("screenshots in {}", screenshots().display());
}
