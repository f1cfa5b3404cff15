//! Everything can be revoked and listed: logging out ends the session in the database;
//! sessions, API tokens, users and enrollment tokens are listed and removed through the
//! API, the command line and the settings page; a token never outlives its maker; an
//! out-of-range `expires_in` is a 400.

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::admission::{ask, DeviceKey, KeyType};
use crate::api::{binary, login, Fixture, EMAIL, PASSWORD};
use crate::monitor_server::ServerDatabase;
use crate::on_both_engines;

const DEVICES: &str = "/api/management/v1/devicemonitor/devices";
const TOKENS: &str = "/api/management/v1/useradm/settings/tokens";
const USERS: &str = "/api/management/v1/useradm/users";
const ENROLLMENT: &str = "/api/management/v1/devicemonitor/settings/enrollment_tokens";

/// A client that shows redirects instead of following them.
fn no_redirects() -> Client {
    crate::api::client();
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get_status(fixture: &Fixture, path: &str, token: &str) -> StatusCode {
    fixture
        .client
        .get(fixture.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn get_json(fixture: &Fixture, path: &str, token: &str) -> Value {
    let response = fixture
        .client
        .get(fixture.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

async fn make_token(fixture: &Fixture, maker: &str, body: Value) -> (StatusCode, String) {
    let response = fixture
        .client
        .post(fixture.url(TOKENS))
        .bearer_auth(maker)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn delete(fixture: &Fixture, path: &str, token: &str) -> StatusCode {
    fixture
        .client
        .delete(fixture.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

fn expires_at(listed: &Value, name: &str) -> std::time::SystemTime {
    let token = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["name"] == name)
        .unwrap_or_else(|| panic!("no token {name} in {listed}"));
    humantime::parse_rfc3339(token["expires_at"].as_str().expect("it expires")).unwrap()
}

on_both_engines! {
    /// `POST …/auth/logout` ends the session: the same token is refused afterwards.
    async fn logging_out_of_the_api_ends_the_session(database) {
        let fixture = Fixture::start(database).await;
        assert_eq!(get_status(&fixture, DEVICES, &fixture.user_token).await, StatusCode::OK);
        let other = login(&fixture.client, &fixture.server.url, EMAIL, PASSWORD).await;
        let response = fixture.client.post(fixture.url("/api/management/v1/useradm/auth/logout"))
            .bearer_auth(&fixture.user_token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(get_status(&fixture, DEVICES, &fixture.user_token).await, StatusCode::UNAUTHORIZED);
        assert_eq!(get_status(&fixture, DEVICES, &other).await, StatusCode::OK, "another session stays");
    }
}

on_both_engines! {
    /// Tokens are listed and removed; a token never outlives its maker; out-of-range
    /// lifetimes are 400 and the server stays up.
    async fn api_tokens_are_listed_revoked_and_bounded_by_their_maker(database) {
        let fixture = Fixture::start(database).await;
        let session = fixture.user_token.clone();
        let (status, hourly) = make_token(&fixture, &session, json!({"name": "hourly", "expires_in": 3600})).await;
        assert_eq!(status, StatusCode::OK, "{hourly}");
        // Asked for ten years by a one-hour token: it ends with its maker.
        let (status, child) = make_token(&fixture, &hourly, json!({"name": "child", "expires_in": 315_360_000})).await;
        assert_eq!(status, StatusCode::OK, "{child}");
        let (status, _) = make_token(&fixture, &hourly, json!({"name": "unbounded"})).await;
        assert_eq!(status, StatusCode::OK);
        let listed = get_json(&fixture, TOKENS, &session).await;
        let hourly_end = expires_at(&listed, "hourly");
        assert!(expires_at(&listed, "child") <= hourly_end, "{listed}");
        assert!(expires_at(&listed, "unbounded") <= hourly_end, "{listed}");
        assert!(listed.as_array().unwrap().iter().any(|token| token["kind"] == "session"), "{listed}");
        assert!(!listed.to_string().contains("mut_"), "secrets are never listed: {listed}");

        for expires_in in [json!(0), json!(315_360_001u64), json!(u64::MAX), json!(-1), json!("soon")] {
            let (status, body) = make_token(&fixture, &session, json!({"name": "bad", "expires_in": expires_in})).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{expires_in}: {body}");
        }
        let (_, body) = make_token(&fixture, &session, json!({"name": "bad", "expires_in": u64::MAX})).await;
        assert!(body.contains("a token lasts 1 to 315360000 seconds (ten years)"), "{body}");
        assert_eq!(get_status(&fixture, DEVICES, &session).await, StatusCode::OK, "still serving");

        let child_id = listed.as_array().unwrap().iter().find(|token| token["name"] == "child").unwrap()["id"]
            .as_str().unwrap().to_owned();
        assert_eq!(get_status(&fixture, DEVICES, &child).await, StatusCode::OK);
        assert_eq!(delete(&fixture, &format!("{TOKENS}/{child_id}"), &session).await, StatusCode::NO_CONTENT);
        assert_eq!(get_status(&fixture, DEVICES, &child).await, StatusCode::UNAUTHORIZED);
        assert_eq!(delete(&fixture, &format!("{TOKENS}/{child_id}"), &session).await, StatusCode::NOT_FOUND);
    }
}

on_both_engines! {
    /// Users through the API: added, listed, a new password ends their sessions, removing
    /// one removes their tokens; another user's token cannot be removed as one's own.
    async fn users_are_added_listed_changed_and_removed(database) {
        let fixture = Fixture::start(database).await;
        let admin = fixture.user_token.clone();
        let response = fixture.client.post(fixture.url(USERS)).bearer_auth(&admin)
            .json(&json!({"email": "ops@example.com", "password": "first password"})).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let ops_id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let weak = fixture.client.post(fixture.url(USERS)).bearer_auth(&admin)
            .json(&json!({"email": "weak@example.com", "password": "short"})).send().await.unwrap();
        assert_eq!(weak.status(), StatusCode::BAD_REQUEST);
        let users = get_json(&fixture, USERS, &admin).await;
        let emails: Vec<&str> = users.as_array().unwrap().iter().map(|user| user["email"].as_str().unwrap()).collect();
        assert_eq!(emails, ["admin@example.com", "ops@example.com"]);

        let ops_session = login(&fixture.client, &fixture.server.url, "ops@example.com", "first password").await;
        let (_, ops_token) = make_token(&fixture, &ops_session, json!({"name": "script"})).await;
        let ops_tokens = get_json(&fixture, TOKENS, &ops_session).await;
        let script_id = ops_tokens.as_array().unwrap().iter().find(|token| token["name"] == "script").unwrap()["id"]
            .as_str().unwrap().to_owned();
        assert_eq!(delete(&fixture, &format!("{TOKENS}/{script_id}"), &admin).await, StatusCode::NOT_FOUND,
            "only one's own tokens are removed through /settings/tokens");

        let changed = fixture.client.put(fixture.url(&format!("{USERS}/{ops_id}"))).bearer_auth(&admin)
            .json(&json!({"password": "second password"})).send().await.unwrap();
        assert_eq!(changed.status(), StatusCode::NO_CONTENT);
        assert_eq!(get_status(&fixture, DEVICES, &ops_session).await, StatusCode::UNAUTHORIZED, "sessions end");
        assert_eq!(get_status(&fixture, DEVICES, &ops_token).await, StatusCode::OK, "API tokens stay");
        login(&fixture.client, &fixture.server.url, "ops@example.com", "second password").await;

        assert_eq!(delete(&fixture, &format!("{USERS}/{ops_id}"), &admin).await, StatusCode::NO_CONTENT);
        assert_eq!(get_status(&fixture, DEVICES, &ops_token).await, StatusCode::UNAUTHORIZED);
        assert_eq!(delete(&fixture, &format!("{USERS}/{ops_id}"), &admin).await, StatusCode::NOT_FOUND);
        let refused = fixture.client.post(fixture.url("/api/management/v1/useradm/auth/login"))
            .basic_auth("ops@example.com", Some("second password")).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
}

on_both_engines! {
    /// Enrollment tokens through the API: made (bounded by the session), listed, removed;
    /// a removed one admits nobody.
    async fn enrollment_tokens_are_listed_and_removed(database) {
        let fixture = Fixture::start(database).await;
        let session = fixture.user_token.clone();
        let response = fixture.client.post(fixture.url(ENROLLMENT)).bearer_auth(&session)
            .json(&json!({"name": "factory"})).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let enrollment = response.text().await.unwrap();
        assert!(enrollment.starts_with("met_"), "{enrollment}");
        let listed = get_json(&fixture, ENROLLMENT, &session).await;
        assert!(expires_at(&listed, "factory") <= std::time::SystemTime::now() + std::time::Duration::from_secs(7 * 24 * 3600),
            "a session's enrollment token ends with the session: {listed}");
        assert!(!listed.to_string().contains("met_"));
        let id = listed[0]["id"].as_str().unwrap().to_owned();

        let key = DeviceKey::generate(KeyType::Ed25519);
        let (status, body) = ask(&fixture, &key, &json!({"mac": "dc:a6:32:00:00:01"}), &enrollment, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(delete(&fixture, &format!("{ENROLLMENT}/{id}"), &session).await, StatusCode::NO_CONTENT);
        assert_eq!(get_json(&fixture, ENROLLMENT, &session).await, json!([]));
        let key = DeviceKey::generate(KeyType::Ed25519);
        let (status, body) = ask(&fixture, &key, &json!({"mac": "dc:a6:32:00:00:02"}), &enrollment, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.contains("pending"), "{body}");
        assert_eq!(delete(&fixture, &format!("{ENROLLMENT}/{id}"), &session).await, StatusCode::NOT_FOUND);
    }
}

/// The command line lists and removes users, tokens and enrollment tokens, and sets
/// passwords; what it removes stops working on the running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_lists_and_revokes() {
    let fixture = Fixture::start(ServerDatabase::sqlite()).await;
    let admin =
        |args: &[&str], stdin: Option<&str>| fixture.database.admin_ok(binary(), args, stdin);

    admin(
        &["user", "add", "ops@example.com", "--password-stdin"],
        Some("first password\n"),
    );
    let users = admin(&["user", "list"], None);
    assert!(
        users.starts_with("ID")
            && users.contains("admin@example.com")
            && users.contains("ops@example.com"),
        "{users}"
    );

    let token = admin(
        &["token", "add", "ops@example.com", "--name", "backup"],
        None,
    );
    let tokens = admin(&["token", "list", "--user", "ops@example.com"], None);
    let line = tokens
        .lines()
        .find(|line| line.ends_with(" backup"))
        .unwrap_or_else(|| panic!("{tokens}"));
    assert!(
        line.contains("ops@example.com") && line.contains(" api ") && line.contains("never"),
        "{line}"
    );
    assert!(!tokens.contains(&token), "secrets are never listed");
    let all = admin(&["token", "list"], None);
    assert!(
        all.contains("admin@example.com") && all.contains(" session "),
        "{all}"
    );
    assert_eq!(get_status(&fixture, DEVICES, &token).await, StatusCode::OK);
    let id = line.split_whitespace().next().unwrap();
    admin(&["token", "remove", id], None);
    assert_eq!(
        get_status(&fixture, DEVICES, &token).await,
        StatusCode::UNAUTHORIZED
    );
    let eternal =
        fixture
            .database
            .admin(binary(), &["token", "add", EMAIL, "--expires", "11y"], None);
    assert_eq!(eternal.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&eternal.stderr).contains("a token lasts 1 to 315360000 seconds")
    );
    let again = fixture
        .database
        .admin(binary(), &["token", "remove", id], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr)
        .contains("`monitor-server token list` shows the ids"));

    let session = login(
        &fixture.client,
        &fixture.server.url,
        "ops@example.com",
        "first password",
    )
    .await;
    admin(
        &["user", "password", "ops@example.com", "--password-stdin"],
        Some("second password\n"),
    );
    assert_eq!(
        get_status(&fixture, DEVICES, &session).await,
        StatusCode::UNAUTHORIZED
    );
    let session = login(
        &fixture.client,
        &fixture.server.url,
        "ops@example.com",
        "second password",
    )
    .await;
    admin(&["user", "remove", "ops@example.com"], None);
    assert_eq!(
        get_status(&fixture, DEVICES, &session).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!admin(&["user", "list"], None).contains("ops@example.com"));
    assert!(!admin(&["token", "list"], None).contains("ops@example.com"));
    let gone = fixture
        .database
        .admin(binary(), &["user", "remove", "ops@example.com"], None);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no user `ops@example.com`"));

    let enrollment = admin(
        &["enrollment", "add", "--name", "factory", "--expires", "30d"],
        None,
    );
    let listed = admin(&["enrollment", "list"], None);
    let line = listed
        .lines()
        .find(|line| line.ends_with(" factory"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(!listed.contains(&enrollment));
    admin(
        &[
            "enrollment",
            "remove",
            line.split_whitespace().next().unwrap(),
        ],
        None,
    );
    assert!(!admin(&["enrollment", "list"], None).contains("factory"));
    let key = DeviceKey::generate(KeyType::Ed25519);
    let (status, _) = ask(
        &fixture,
        &key,
        &json!({"mac": "dc:a6:32:00:00:03"}),
        &enrollment,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a removed enrollment token admits nobody"
    );
}

/// Logs in through the dashboard's form; the session cookie's value.
async fn dashboard_login(client: &Client, url: &str) -> String {
    let response = client
        .post(format!("{url}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("email", EMAIL), ("password", PASSWORD)]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie
        .strip_prefix("monitor_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned()
}

/// The settings page lists sessions, tokens, users and enrollment tokens with their remove
/// buttons; removing from another site is refused; logging out ends the session, so the
/// old cookie leads to the login page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_page_revokes_and_logout_ends_the_session() {
    let fixture = Fixture::start(ServerDatabase::sqlite()).await;
    let client = no_redirects();
    let url = fixture.server.url.clone();
    fixture.database.admin_ok(
        binary(),
        &["user", "add", "ops@example.com", "--password-stdin"],
        Some("first password\n"),
    );
    fixture
        .database
        .admin_ok(binary(), &["enrollment", "add", "--name", "factory"], None);
    let (_, script) = make_token(&fixture, &fixture.user_token, json!({"name": "script"})).await;
    let cookie = dashboard_login(&client, &url).await;
    let with_cookie = |request: reqwest::RequestBuilder| {
        request.header("cookie", format!("monitor_session={cookie}"))
    };

    let page = with_cookie(client.get(format!("{url}/ui/settings")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    let tokens = get_json(&fixture, TOKENS, &fixture.user_token).await;
    let script_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["name"] == "script")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        page.contains(&format!(
            "action=\"/ui/settings/tokens/{script_id}/remove\""
        )),
        "{page}"
    );
    assert!(page.contains("(this session)"), "{page}");
    let users = get_json(&fixture, USERS, &fixture.user_token).await;
    let ops_id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["email"] == "ops@example.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        page.contains(&format!("action=\"/ui/settings/users/{ops_id}/remove\"")),
        "{page}"
    );
    let enrollment = get_json(&fixture, ENROLLMENT, &fixture.user_token).await;
    let enrollment_id = enrollment[0]["id"].as_str().unwrap().to_owned();
    assert!(
        page.contains(&format!(
            "action=\"/ui/settings/enrollment_tokens/{enrollment_id}/remove\""
        )),
        "{page}"
    );
    assert!(
        !page.contains(&script) && !page.contains(&cookie),
        "no secret on the page"
    );

    let forged = with_cookie(client.post(format!("{url}/ui/settings/tokens/{script_id}/remove")))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(get_status(&fixture, DEVICES, &script).await, StatusCode::OK);
    let origin = url.clone();
    for path in [
        format!("/ui/settings/tokens/{script_id}/remove"),
        format!("/ui/settings/users/{ops_id}/remove"),
        format!("/ui/settings/enrollment_tokens/{enrollment_id}/remove"),
    ] {
        let removed = with_cookie(client.post(format!("{url}{path}")))
            .header("origin", &origin)
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(removed.headers()["location"], "/ui/settings");
    }
    assert_eq!(
        get_status(&fixture, DEVICES, &script).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!get_json(&fixture, USERS, &fixture.user_token)
        .await
        .to_string()
        .contains("ops@example.com"));
    assert_eq!(
        get_json(&fixture, ENROLLMENT, &fixture.user_token).await,
        json!([])
    );

    let forged = with_cookie(client.post(format!("{url}/ui/logout")))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let out = with_cookie(client.post(format!("{url}/ui/logout")))
        .header("origin", &origin)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = with_cookie(client.get(format!("{url}/ui/devices")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "the old cookie no longer works"
    );
    assert_eq!(after.headers()["location"], "/ui/login");
    assert_eq!(
        get_status(&fixture, DEVICES, &cookie).await,
        StatusCode::UNAUTHORIZED
    );
}
