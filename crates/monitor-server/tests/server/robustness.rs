//! No request can take the server down: a panic costs its request only (500), and every
//! route of the device and management APIs, fed inputs at their limits (numbers at the ends
//! of their range, huge, empty and control-character strings, wrong JSON types, broken
//! bodies, odd path segments and query values), answers below 500 and the server serves on.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api::{alert, Fixture};
use crate::monitor_server::ServerDatabase;
use crate::on_both_engines;

/// `GET /__test/panic` exists in debug builds only (the tests' binary) and panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_request_gets_500_and_the_server_keeps_serving() {
    let fixture = Fixture::start(ServerDatabase::sqlite()).await;
    let panics = (0..8).map(|_| fixture.client.get(fixture.url("/__test/panic")).send());
    for response in futures_all(panics).await {
        let response = response.expect("a panic answers, it does not drop the connection");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let error: Value = response.json().await.expect("JSON");
        assert!(error["error"].as_str().unwrap().contains("log"), "{error}");
    }
    let (devices, _) = fixture.manage("/devices").await;
    assert_eq!(
        devices.as_array().unwrap().len(),
        1,
        "still serving: {devices}"
    );
    let log = fixture.server.log();
    assert!(
        log.contains("a request to GET /__test/panic panicked"),
        "the log names the request: {log}"
    );
}

async fn futures_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut outputs = Vec::new();
    // In turn is enough here: each panic is its own request on a pooled connection.
    for future in futures {
        outputs.push(future.await);
    }
    outputs
}

on_both_engines! {
    /// `expires_in: 18446744073709551615` made the expiry time overflow and the server panic
    /// (and, built to abort, die). Out of range is a 400 that says the range.
    async fn an_out_of_range_expires_in_is_a_400_that_says_the_range(database) {
        let fixture = Fixture::start(database).await;
        let add = |expires_in: Value| {
            fixture
                .client
                .post(fixture.url("/api/management/v1/useradm/settings/tokens"))
                .bearer_auth(&fixture.user_token)
                .json(&json!({"name": "script", "expires_in": expires_in}))
                .send()
        };
        let ten_years = 10 * 365 * 24 * 3600_u64;
        for expires_in in [json!(u64::MAX), json!(0), json!(ten_years + 1)] {
            let response = add(expires_in.clone()).await.expect("the server answers");
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{expires_in}");
            let error: Value = response.json().await.unwrap();
            assert!(
                error["error"].as_str().unwrap().contains(&format!("a token lasts 1 to {ten_years} seconds")),
                "{error}"
            );
        }
        // Within the range, but a token never outlives the session that makes it.
        let response = add(json!(365 * 24 * 3600)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "a year is allowed");
        let response = add(json!(-1)).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "negative: serde refuses it");
    }
}

/// Who a route is called as.
#[derive(Clone, Copy)]
enum Caller {
    Device,
    User,
    Nobody,
}

/// One route and a valid request to it; the inputs are made from it.
struct Route {
    method: Method,
    /// With `{id}` for the device's id where the route has one.
    path: &'static str,
    caller: Caller,
    query: &'static [(&'static str, &'static str)],
    body: Option<Value>,
}

fn route(method: Method, path: &'static str, caller: Caller) -> Route {
    Route {
        method,
        path,
        caller,
        query: &[],
        body: None,
    }
}

impl Route {
    fn with_body(mut self, body: Value) -> Route {
        self.body = Some(body);
        self
    }

    fn with_query(mut self, query: &'static [(&'static str, &'static str)]) -> Route {
        self.query = query;
        self
    }
}

fn routes() -> Vec<Route> {
    use Caller::*;
    vec![
        route(Method::POST, "/api/devices/v1/devicemonitor/alert", Device)
            .with_body(json!([alert("app", "CRITICAL", 1)])),
        route(Method::POST, "/api/devices/v1/devicemonitor/config", Device).with_body(json!([
            {"name": "app", "type": "log", "pattern": "Traceback", "path": "/var/log/app.log"}
        ])),
        route(
            Method::PUT,
            "/api/devices/v1/inventory/device/attributes",
            Device,
        )
        .with_body(
            json!([{"name": "hostname", "value": "pi"}, {"name": "ips", "value": ["10.0.0.2"]}]),
        ),
        route(
            Method::PATCH,
            "/api/devices/v1/inventory/device/attributes",
            Device,
        )
        .with_body(json!([{"name": "os", "value": "debian"}])),
        route(
            Method::GET,
            "/api/devices/v1/deployments/device/deployments/next",
            Device,
        )
        .with_query(&[
            ("artifact_name", "release-1"),
            ("device_type", "raspberrypi4"),
        ]),
        route(
            Method::POST,
            "/api/devices/v2/deployments/device/deployments/next",
            Device,
        )
        .with_body(json!({"update_control_map": false, "device_provides": {"device_type": "pi"}})),
        route(
            Method::POST,
            "/api/devices/v1/authentication/auth_requests",
            Nobody,
        )
        .with_body(json!({
            "id_data": "{\"mac\":\"dc:a6:32:00:00:01\"}",
            "pubkey": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
            "tenant_token": ""
        })),
        route(
            Method::POST,
            "/api/management/v1/useradm/settings/tokens",
            User,
        )
        .with_body(json!({"name": "script", "expires_in": 3600})),
        route(
            Method::GET,
            "/api/management/v1/devicemonitor/devices",
            User,
        )
        .with_query(&[("status", "accepted"), ("has_alerts", "true")]),
        route(
            Method::GET,
            "/api/management/v1/devicemonitor/devices/{id}",
            User,
        ),
        route(
            Method::GET,
            "/api/management/v1/devicemonitor/devices/{id}/alerts",
            User,
        )
        .with_query(&[
            ("page", "1"),
            ("per_page", "20"),
            ("issued_after", "2026-11-21T12:00:00Z"),
            ("issued_before", "2026-11-22T12:00:00Z"),
            ("sort_ascending", "true"),
        ]),
        route(
            Method::GET,
            "/api/management/v1/devicemonitor/devices/{id}/alerts/latest",
            User,
        )
        .with_query(&[("page", "1"), ("per_page", "20"), ("level_from", "OK")]),
        route(
            Method::GET,
            "/api/management/v1/devicemonitor/devices/{id}/config",
            User,
        ),
        route(
            Method::PUT,
            "/api/management/v1/devicemonitor/devices/{id}/mute",
            User,
        )
        .with_body(json!({"muted": false})),
        route(
            Method::PUT,
            "/api/management/v1/devicemonitor/devices/{id}/status",
            User,
        )
        .with_body(json!({"status": "accepted"})),
        route(
            Method::GET,
            "/api/management/v1/devicemonitor/settings/channels",
            User,
        ),
        route(
            Method::POST,
            "/api/management/v1/devicemonitor/settings/channels",
            User,
        )
        .with_body(json!({
            "kind": "discord",
            "name": "ops",
            "target": "https://discord.com/api/webhooks/1/abc"
        })),
        route(
            Method::DELETE,
            "/api/management/v1/devicemonitor/settings/channels/{id}",
            User,
        ),
        route(
            Method::PUT,
            "/api/management/v1/devicemonitor/settings/mute",
            User,
        )
        .with_body(json!({"muted": false})),
        route(
            Method::GET,
            "/api/management/v1/devicemonitor/settings/global/channel/alerts/email/status",
            User,
        ),
        route(
            Method::PUT,
            "/api/management/v1/devicemonitor/settings/global/channel/alerts/email/status",
            User,
        )
        .with_body(json!({"enabled": true})),
        route(Method::GET, "/api/management/v1/inventory/devices", User).with_query(&[
            ("page", "1"),
            ("per_page", "20"),
            ("monitor/alerts", "false"),
        ]),
        route(
            Method::GET,
            "/api/management/v1/inventory/devices/{id}",
            User,
        ),
    ]
}

/// JSON values at the limits of every type, and of the wrong type for any field.
fn odd_values() -> Vec<Value> {
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e308),
        json!(-1e308),
        json!(0.5),
        json!(""),
        json!(" "),
        json!("x".repeat(100_000)),
        json!("\u{0}"),
        json!("line\nbreak\r\u{1b}[2J\u{7f}"),
        json!("😀\u{202e}\u{fffd}"),
        json!("../../../etc/passwd"),
        json!("9999-12-31T23:59:59Z"),
        json!([]),
        json!({}),
        json!({"a": {"b": [null]}}),
        deep,
    ]
}

/// Bodies that are not JSON, or not whole.
fn odd_raw_bodies() -> Vec<Vec<u8>> {
    vec![
        Vec::new(),
        b"{".to_vec(),
        b"null".to_vec(),
        "[".repeat(100_000).into_bytes(),
        vec![0xff, 0xfe, 0x00],
        "9".repeat(10_000).into_bytes(),
        b"{\"a\":1,\"a\":2}".to_vec(),
    ]
}

/// Query values, as they go in the query string (some deliberately not valid encoding).
const ODD_QUERY_VALUES: &[&str] = &[
    "",
    "0",
    "-1",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "1e308",
    "NaN",
    "abc",
    "%00",
    "%ff",
    "%0A%0D",
    "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "2026-13-45T99:99:99Z",
    "true",
    "+1",
];

/// Path segments in place of an id.
fn odd_ids() -> Vec<String> {
    vec![
        "x".repeat(4000),
        "%00".into(),
        "%ff".into(),
        "%2F..%2F..".into(),
        "..".into(),
        "18446744073709551615".into(),
        "-1".into(),
        "%F0%9F%98%80".into(),
        "%20".into(),
        "'%20OR%201=1--".into(),
    ]
}

/// Every value of `template` replaced, one at a time, by each odd value; each field of an
/// object left out; an unknown field added; and the whole body replaced.
fn body_variants(template: &Value) -> Vec<Value> {
    let mut variants: Vec<Value> = odd_values();
    let mut leaves = Vec::new();
    collect_pointers(template, String::new(), &mut leaves);
    for pointer in leaves {
        for value in odd_values() {
            let mut variant = template.clone();
            *variant.pointer_mut(&pointer).unwrap() = value;
            variants.push(variant);
        }
    }
    if let Some(object) = template.as_object() {
        for key in object.keys() {
            let mut variant = template.clone();
            variant.as_object_mut().unwrap().remove(key);
            variants.push(variant);
        }
        let mut variant = template.clone();
        variant
            .as_object_mut()
            .unwrap()
            .insert("unknown_field".into(), json!(1));
        variants.push(variant);
    }
    variants
}

/// JSON pointers to every value inside `value` (not `value` itself).
fn collect_pointers(value: &Value, at: String, pointers: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(object) => object
            .iter()
            .map(|(key, child)| (key.clone(), child))
            .collect(),
        Value::Array(array) => array
            .iter()
            .enumerate()
            .map(|(index, child)| (index.to_string(), child))
            .collect(),
        _ => return,
    };
    for (key, child) in children {
        let pointer = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
        pointers.push(pointer.clone());
        collect_pointers(child, pointer, pointers);
    }
}

/// One request of the run.
struct Input {
    method: Method,
    path: String,
    caller: Caller,
    body: Option<Vec<u8>>,
}

fn inputs(route: &Route, device_id: &str) -> Vec<Input> {
    let query = |pairs: &[(&str, String)]| -> String {
        let joined: Vec<String> = pairs
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        if joined.is_empty() {
            String::new()
        } else {
            format!("?{}", joined.join("&"))
        }
    };
    let valid_query: Vec<(&str, String)> = route
        .query
        .iter()
        .map(|(key, value)| (*key, (*value).to_owned()))
        .collect();
    let valid_body = route
        .body
        .as_ref()
        .map(|body| serde_json::to_vec(body).unwrap());
    let input = |id: &str, query_text: String, body: Option<Vec<u8>>| Input {
        method: route.method.clone(),
        path: format!("{}{query_text}", route.path.replace("{id}", id)),
        caller: route.caller,
        body,
    };
    let mut inputs = vec![input(device_id, query(&valid_query), valid_body.clone())];
    if route.path.contains("{id}") {
        for id in odd_ids() {
            inputs.push(input(&id, query(&valid_query), valid_body.clone()));
        }
    }
    for (index, (key, _)) in route.query.iter().enumerate() {
        for value in ODD_QUERY_VALUES {
            let mut pairs = valid_query.clone();
            pairs[index] = (key, (*value).to_owned());
            inputs.push(input(device_id, query(&pairs), valid_body.clone()));
        }
        let mut repeated = valid_query.clone();
        repeated.push(repeated[index].clone());
        inputs.push(input(device_id, query(&repeated), valid_body.clone()));
    }
    inputs.push(input(
        device_id,
        query(&[("unknown", "1".into())]),
        valid_body.clone(),
    ));
    if let Some(template) = &route.body {
        for body in body_variants(template) {
            inputs.push(input(
                device_id,
                query(&valid_query),
                Some(serde_json::to_vec(&body).unwrap()),
            ));
        }
        for body in odd_raw_bodies() {
            inputs.push(input(device_id, query(&valid_query), Some(body)));
        }
    }
    inputs
}

/// Requests in flight at once: enough to overlap, few enough for a 2-core machine.
const CONCURRENT_REQUESTS: usize = 8;

on_both_engines! {
    /// Every route of the device and management APIs, every input made from it: no 5xx,
    /// and the server still serves after.
    async fn every_handler_answers_odd_inputs_below_500(database) {
        let directory = tempfile::tempdir().unwrap();
        let config = directory.path().join("server.yaml");
        // The per-device rate limit would turn most device requests into 429s unchecked.
        std::fs::write(&config, "device_requests_per_minute: 1000000\n").unwrap();
        let fixture = Fixture::start_with(database, &["--config", config.to_str().unwrap()]).await;
        let device_id = fixture.device_id("pi-1").await;
        let all: Vec<Input> = routes().iter().flat_map(|route| inputs(route, &device_id)).collect();
        let total = all.len();
        let fixture = std::sync::Arc::new(fixture);
        let mut failures = Vec::new();
        let mut batch = Vec::new();
        let mut inputs = all.into_iter().peekable();
        while inputs.peek().is_some() {
            batch.clear();
            for input in inputs.by_ref().take(CONCURRENT_REQUESTS) {
                let fixture = fixture.clone();
                batch.push(tokio::spawn(async move {
                    let answer = send(&fixture, &input).await;
                    (input, answer)
                }));
            }
            for task in batch.drain(..) {
                let (input, answer) = task.await.unwrap();
                match answer {
                    Ok((status, _)) if status.as_u16() < 500 => {}
                    Ok((status, body)) => failures.push(format!(
                        "{} {} {}: {status} {body}",
                        input.method, shorten(&input.path), input.body.as_deref().map(|body| shorten(&String::from_utf8_lossy(body))).unwrap_or_default()
                    )),
                    Err(error) => failures.push(format!("{} {}: no answer: {error}", input.method, shorten(&input.path))),
                }
            }
        }
        eprintln!("{total} odd requests, {} answered 5xx or not at all", failures.len());
        assert!(failures.is_empty(), "{} of {total} failed:\n{}", failures.len(), failures.join("\n"));
        let response = fixture.client.get(fixture.url("/healthz")).send().await.expect("alive");
        assert_eq!(response.status(), StatusCode::OK);
        let (devices, _) = fixture.manage("/devices").await;
        assert!(!devices.as_array().unwrap().is_empty());
    }
}

async fn send(fixture: &Fixture, input: &Input) -> reqwest::Result<(StatusCode, String)> {
    let mut request = fixture
        .client
        .request(input.method.clone(), fixture.url(&input.path));
    request = match input.caller {
        Caller::Device => request.bearer_auth(&fixture.device_token),
        Caller::User => request.bearer_auth(&fixture.user_token),
        Caller::Nobody => request.header("x-men-signature", "c2lnbmF0dXJl"),
    };
    if let Some(body) = &input.body {
        request = request
            .header("content-type", "application/json")
            .body(body.clone());
    }
    let response = request.send().await?;
    let status = response.status();
    Ok((status, shorten(&response.text().await.unwrap_or_default())))
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 160 {
        format!("{}…", text.chars().take(160).collect::<String>())
    } else {
        text.to_owned()
    }
}
