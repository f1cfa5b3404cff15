//! The management API: open alerts per device, history paging and filters, tokens, mute.

use reqwest::StatusCode;
use serde_json::json;

use crate::api::{alert, humantime_timestamp, login, Fixture, EMAIL, PASSWORD};
use crate::on_both_engines;

on_both_engines! {
    /// `alert_count` counts the subjects whose latest alert is CRITICAL; a late resend of an
    /// older CRITICAL does not reopen a subject that is OK since.
    async fn alert_count_follows_the_latest_alert_of_each_subject(database) {
        let fixture = Fixture::start(database).await;
        fixture.post_alerts(&json!([alert("app", "CRITICAL", 10), alert("nginx", "CRITICAL", 11)])).await;
        let id = fixture.device_id("pi-1").await;
        let (device, _) = fixture.manage(&format!("/devices/{id}")).await;
        assert_eq!((device["alert_count"].clone(), device["alerts"].clone()), (json!(2), json!(true)));

        fixture.post_alerts(&json!([alert("app", "OK", 20)])).await;
        fixture.post_alerts(&json!([alert("app", "CRITICAL", 15)])).await; // late, older
        let (devices, total) = fixture.manage("/devices").await;
        assert_eq!(total, Some(1));
        assert_eq!(devices[0]["alert_count"], 1, "{devices}");

        let (latest, total) = fixture.manage(&format!("/devices/{id}/alerts/latest")).await;
        assert_eq!(total, Some(2));
        assert_eq!(subjects_and_levels(&latest), [("nginx", "CRITICAL"), ("app", "OK")], "oldest first");

        fixture.post_alerts(&json!([alert("nginx", "OK", 30)])).await;
        let (open, _) = fixture.manage("/devices?has_alerts=true").await;
        assert_eq!(open, json!([]));
        let (device, _) = fixture.manage(&format!("/devices/{id}")).await;
        assert_eq!((device["alert_count"].clone(), device["alerts"].clone()), (json!(0), json!(false)));
    }
}

/// (subject, level) of each alert of an answer.
fn subjects_and_levels(alerts: &serde_json::Value) -> Vec<(&str, &str)> {
    alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|alert| {
            (
                alert["subject"]["name"].as_str().unwrap(),
                alert["level"].as_str().unwrap(),
            )
        })
        .collect()
}

on_both_engines! {
    /// `…/alerts/latest` as Mender documents it ("List latest alerts"): oldest first, paged
    /// with `page` and `per_page`, and `level_from` keeps the subjects whose latest alert is
    /// at least that severe; a level it does not know is a 400 that lists the levels.
    async fn latest_alerts_page_oldest_first_from_a_level(database) {
        let fixture = Fixture::start(database).await;
        fixture.post_alerts(&json!([
            alert("a", "CRITICAL", 1), alert("b", "OK", 2), alert("c", "CRITICAL", 3),
            alert("d", "CRITICAL", 4), alert("e", "OK", 5),
        ])).await;
        let id = fixture.device_id("pi-1").await;
        let latest = format!("/devices/{id}/alerts/latest");

        let (page, total) = fixture.manage(&format!("{latest}?per_page=2")).await;
        assert_eq!(total, Some(5));
        assert_eq!(subjects_and_levels(&page), [("a", "CRITICAL"), ("b", "OK")]);
        let (page, _) = fixture.manage(&format!("{latest}?per_page=2&page=3")).await;
        assert_eq!(subjects_and_levels(&page), [("e", "OK")]);

        let (critical, total) = fixture.manage(&format!("{latest}?level_from=CRITICAL")).await;
        assert_eq!(total, Some(3));
        assert_eq!(subjects_and_levels(&critical), [("a", "CRITICAL"), ("c", "CRITICAL"), ("d", "CRITICAL")]);
        let (critical, _) = fixture.manage(&format!("{latest}?level_from=CRITICAL&per_page=1&page=2")).await;
        assert_eq!(subjects_and_levels(&critical), [("c", "CRITICAL")]);
        let (warning, _) = fixture.manage(&format!("{latest}?level_from=WARNING")).await;
        assert_eq!(warning.as_array().unwrap().len(), 3, "nothing here is between OK and CRITICAL");
        let (all, _) = fixture.manage(&format!("{latest}?level_from=OK")).await;
        assert_eq!(all.as_array().unwrap().len(), 5);

        for (query, expected) in [
            ("level_from=critical", "level_from: `critical` is not a level: use OK, WARNING or CRITICAL"),
            ("per_page=0", "per_page: give 1 to 500"),
            ("per_page=501", "per_page: give 1 to 500"),
            ("page=0", "page: pages count from 1"),
        ] {
            let bad = fixture.client.get(fixture.url(&format!("/api/management/v1/devicemonitor{latest}?{query}")))
                .bearer_auth(&fixture.user_token).send().await.unwrap();
            assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{query}");
            let answer: serde_json::Value = bad.json().await.unwrap();
            assert_eq!(answer["error"], expected, "{query}");
        }
    }
}

on_both_engines! {
    /// Pages of the history, newest first or oldest first, filtered by device time, with
    /// the number of matching alerts in X-Total-Count.
    async fn the_history_pages_and_filters_by_time(database) {
        let fixture = Fixture::start(database).await;
        let alerts: Vec<_> = (0..25).map(|second| alert("app", if second % 2 == 0 { "CRITICAL" } else { "OK" }, second)).collect();
        fixture.post_alerts(&json!(alerts)).await;
        let id = fixture.device_id("pi-1").await;
        let seconds = |page: &serde_json::Value| -> Vec<String> {
            page.as_array().unwrap().iter().map(|alert| alert["subject"]["details"]["line_matching"]["data"].as_str().unwrap().trim_start_matches("line ").to_owned()).collect()
        };

        let (first, total) = fixture.manage(&format!("/devices/{id}/alerts?per_page=10")).await;
        assert_eq!(total, Some(25));
        assert_eq!(seconds(&first), ["24", "23", "22", "21", "20", "19", "18", "17", "16", "15"]);
        let (last, _) = fixture.manage(&format!("/devices/{id}/alerts?per_page=10&page=3")).await;
        assert_eq!(seconds(&last), ["4", "3", "2", "1", "0"]);
        let (ascending, _) = fixture.manage(&format!("/devices/{id}/alerts?per_page=3&sort_ascending=true")).await;
        assert_eq!(seconds(&ascending), ["0", "1", "2"]);

        let after = humantime_timestamp(5);
        let before = humantime_timestamp(9);
        let (window, total) = fixture.manage(&format!("/devices/{id}/alerts?issued_after={after}&issued_before={before}")).await;
        assert_eq!(total, Some(4));
        assert_eq!(seconds(&window), ["8", "7", "6", "5"]);

        let bad = fixture.client.get(fixture.url(&format!("/api/management/v1/devicemonitor/devices/{id}/alerts?issued_after=yesterday")))
            .bearer_auth(&fixture.user_token).send().await.unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let answer: serde_json::Value = bad.json().await.unwrap();
        assert!(answer["error"].as_str().unwrap().starts_with("issued_after: `yesterday` is not an RFC 3339 time"), "{answer}");
        let unknown = fixture.client.get(fixture.url("/api/management/v1/devicemonitor/devices/nope/alerts"))
            .bearer_auth(&fixture.user_token).send().await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    }
}

on_both_engines! {
    /// The management API needs a user's token: from logging in, or an API token made with it.
    async fn the_management_api_needs_a_users_token(database) {
        let fixture = Fixture::start(database).await;
        let devices = fixture.url("/api/management/v1/devicemonitor/devices");
        let anonymous = fixture.client.get(&devices).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        let device = fixture.client.get(&devices).bearer_auth(&fixture.device_token).send().await.unwrap();
        assert_eq!(device.status(), StatusCode::UNAUTHORIZED, "a device's token is not a user's");
        let wrong = fixture.client.post(fixture.url("/api/management/v1/useradm/auth/login"))
            .basic_auth(EMAIL, Some("wrong password")).send().await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

        let response = fixture.client.post(fixture.url("/api/management/v1/useradm/settings/tokens"))
            .bearer_auth(&fixture.user_token).json(&json!({"name": "grafana", "expires_in": 3600}))
            .send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let api_token = response.text().await.unwrap();
        assert!(api_token.starts_with("mut_"), "{api_token}");
        let listed = fixture.client.get(&devices).bearer_auth(&api_token).send().await.unwrap();
        assert_eq!(listed.status(), StatusCode::OK);
        // A second login is another session; both work.
        let again = login(&fixture.client, &fixture.server.url, EMAIL, PASSWORD).await;
        assert_ne!(again, fixture.user_token);
        let listed = fixture.client.get(&devices).bearer_auth(&again).send().await.unwrap();
        assert_eq!(listed.status(), StatusCode::OK);
    }
}

on_both_engines! {
    /// Mute per device and globally is kept in the database (shared by replicas).
    async fn devices_and_the_whole_fleet_can_be_muted(database) {
        let fixture = Fixture::start(database).await;
        let id = fixture.device_id("pi-1").await;
        assert_eq!(fixture.manage_put(&format!("/devices/{id}/mute"), &json!({"muted": true})).await, StatusCode::NO_CONTENT);
        let (device, _) = fixture.manage(&format!("/devices/{id}")).await;
        assert_eq!(device["muted"], true);
        assert_eq!(fixture.manage_put("/settings/mute", &json!({"muted": true})).await, StatusCode::NO_CONTENT);
        assert_eq!(fixture.manage_put("/settings/mute", &json!({"muted": "yes"})).await, StatusCode::BAD_REQUEST);
    }
}

on_both_engines! {
    /// `/healthz` says the database answers; `/metrics` counts what arrived.
    async fn health_and_metrics(database) {
        let fixture = Fixture::start(database).await;
        let health = fixture.client.get(fixture.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1), alert("app", "OK", 2)])).await;
        fixture.post_alerts(&json!([alert("app", "OK", 2)])).await;
        let metrics = fixture.client.get(fixture.url("/metrics")).bearer_auth(&fixture.user_token).send().await.unwrap().text().await.unwrap();
        for expected in [
            "monitor_server_alerts_received_total 3",
            "monitor_server_alerts_stored_total 2",
            "monitor_server_alert_request_seconds_count 2",
            "monitor_server_devices{status=\"accepted\"} 1",
            "monitor_server_open_alerts 0",
        ] {
            assert!(metrics.contains(expected), "{expected} in\n{metrics}");
        }
    }
}
