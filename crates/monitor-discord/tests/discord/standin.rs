//! The stand-in refuses what Discord refuses; otherwise the delivery tests would prove little.

use serde_json::{json, Value};

use crate::discord_standin::{Behaviour, DiscordStandIn};
use crate::{http_client, TOKEN, WEBHOOK_ID};

fn post_url(standin: &DiscordStandIn) -> String {
    format!(
        "http://{}/api/v10/webhooks/{WEBHOOK_ID}/{TOKEN}?wait=true",
        standin.address()
    )
}

async fn post(standin: &DiscordStandIn, body: &Value) -> (u16, Value) {
    let response = http_client()
        .post(post_url(standin))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the stand-in answers");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn embed(title: &str) -> Value {
    json!({"title": title, "fields": [{"name": "Device", "value": "pi"}], "footer": {"text": "monitor"}})
}

#[tokio::test]
async fn invalid_bodies_get_invalid_form_body_with_the_offending_path() {
    let standin = DiscordStandIn::start(Behaviour {
        limit: 1000,
        ..Behaviour::default()
    });
    let long_title = "é".repeat(257);
    let cases = [
        (
            json!({"embeds": vec![embed("x"); 11]}),
            "/embeds/_errors/0/code",
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            json!({"embeds": [embed(&long_title)]}),
            "/embeds/0/title/_errors/0/code",
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            json!({"embeds": [{"title": "x", "fields": [{"name": "Device", "value": ""}]}]}),
            "/embeds/0/fields/0/value/_errors/0/code",
            "BASE_TYPE_REQUIRED",
        ),
        (
            json!({"embeds": [{"title": "x", "footer": {"text": ""}}]}),
            "/embeds/0/footer/text/_errors/0/code",
            "BASE_TYPE_REQUIRED",
        ),
        (
            json!({"embeds": [{"description": "a".repeat(4000)}, {"description": "b".repeat(2001)}]}),
            "/embeds/_errors/0/code",
            "MAX_EMBED_SIZE_EXCEEDED",
        ),
        (
            json!({"embeds": [embed("x")], "username": "Clyde's helper"}),
            "/username/_errors/0/code",
            "USERNAME_INVALID_CONTAINS",
        ),
        (
            json!({"embeds": [embed("x")], "username": "x".repeat(81)}),
            "/username/_errors/0/code",
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            json!({"embeds": [embed("x")], "avatar_url": "systemd.png"}),
            "/avatar_url/_errors/0/code",
            "URL_TYPE_INVALID_URL",
        ),
        (
            json!({"embeds": [{"title": "x", "color": 0x1000000}]}),
            "/embeds/0/color/_errors/0/code",
            "NUMBER_TYPE_MAX",
        ),
        (
            json!({"embeds": [{"title": "x", "timestamp": "yesterday"}]}),
            "/embeds/0/timestamp/_errors/0/code",
            "DATE_TYPE_PARSE",
        ),
        (
            json!({"content": "x".repeat(2001)}),
            "/content/_errors/0/code",
            "BASE_TYPE_MAX_LENGTH",
        ),
    ];
    for (body, pointer, code) in cases {
        let (status, answer) = post(&standin, &body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["code"], 50035, "{answer}");
        assert_eq!(answer["message"], "Invalid Form Body");
        assert_eq!(
            answer["errors"].pointer(pointer),
            Some(&json!(code)),
            "{answer}"
        );
    }
    let (status, answer) = post(&standin, &json!({"username": "monitor"})).await;
    assert_eq!((status, answer["code"].clone()), (400, json!(50006)));
    assert!(standin.messages().is_empty());

    // 256 two-byte characters are within the title's limit.
    let (status, answer) = post(&standin, &json!({"embeds": [embed(&"é".repeat(256))]})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["webhook_id"], WEBHOOK_ID);
    assert_eq!(standin.messages().len(), 1);
}

#[tokio::test]
async fn over_the_rate_limit_is_a_429_with_the_headers_discord_sends() {
    let standin = DiscordStandIn::start(Behaviour::default());
    let client = http_client();
    let mut remaining = Vec::new();
    for _ in 0..6 {
        let response = client
            .post(post_url(&standin))
            .header("content-type", "application/json")
            .body(json!({"content": "hello"}).to_string())
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_owned())
        };
        assert_eq!(header("x-ratelimit-limit").as_deref(), Some("5"));
        assert!(header("x-ratelimit-bucket").is_some());
        let reset_after: f64 = header("x-ratelimit-reset-after").unwrap().parse().unwrap();
        assert!(reset_after > 0.0 && reset_after <= 2.0, "{reset_after}");
        remaining.push(header("x-ratelimit-remaining").unwrap());
        if response.status() == 429 {
            let retry_after: u64 = header("retry-after").unwrap().parse().unwrap();
            assert!((1..=2).contains(&retry_after));
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["global"], false);
            assert!(body["retry_after"].as_f64().unwrap() > 0.0);
            assert_eq!(body["message"], "You are being rate limited.");
        }
    }
    assert_eq!(remaining, ["4", "3", "2", "1", "0", "0"]);
    assert_eq!(standin.statuses(), [200, 200, 200, 200, 200, 429]);
}

#[tokio::test]
async fn without_the_json_content_type_discord_sees_an_empty_message() {
    let standin = DiscordStandIn::start(Behaviour::default());
    let response = http_client()
        .post(post_url(&standin))
        .body(json!({"content": "hello"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 50006);
}
