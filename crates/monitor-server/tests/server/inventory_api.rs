//! Mender's inventory management API: `alert_count` and `alerts` in scope `monitor`, the
//! inventory a Mender client reported in scope `inventory`, one device or a page of them.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::{alert, binary, Fixture};
use crate::on_both_engines;

impl Fixture {
    /// GETs an inventory management path as the logged-in user: the answer and its
    /// `X-Total-Count` and `Link` headers.
    async fn inventory(&self, path: &str) -> (Value, Option<u64>, Option<String>) {
        let response = self
            .client
            .get(self.url(&format!("/api/management/v1/inventory{path}")))
            .bearer_auth(&self.user_token)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_owned())
        };
        let total = header("x-total-count").map(|total| total.parse().unwrap());
        let link = header("link");
        (response.json().await.expect("JSON"), total, link)
    }
}

/// Mender's own reading, ported from `get_alerts_and_alert_count_for_device` in
/// `tests/tests/test_monitor_client.py` (mendersoftware/integration): the device's
/// inventory, then the attributes `alert_count` and `alerts` of scope `monitor`.
async fn get_alerts_and_alert_count_for_device(
    fixture: &Fixture,
    devid: &str,
) -> (Option<Value>, Option<Value>) {
    let (inventory_data, _, _) = fixture.inventory(&format!("/devices/{devid}")).await;
    let (mut alert_count, mut alerts) = (None, None);
    for inventory_item in inventory_data["attributes"].as_array().unwrap() {
        if inventory_item["scope"] == "monitor" && inventory_item["name"] == "alert_count" {
            alert_count = Some(inventory_item["value"].clone());
        } else if inventory_item["scope"] == "monitor" && inventory_item["name"] == "alerts" {
            alerts = Some(inventory_item["value"].clone());
        }
    }
    (alerts, alert_count)
}

on_both_engines! {
    /// As `test_monitorclient_alert_email` asserts: `(True, 1)` while a service is down,
    /// `(False, 0)` once it runs again; and a Mender client's own inventory is there too.
    async fn alert_count_and_alerts_are_inventory_attributes_in_scope_monitor(database) {
        let fixture = Fixture::start(database).await;
        let devid = fixture.device_id("pi-1").await;
        assert_eq!(get_alerts_and_alert_count_for_device(&fixture, &devid).await, (Some(json!(false)), Some(json!(0))));

        let mut down = alert("crond", "CRITICAL", 1);
        down["name"] = json!("Service crond not running");
        fixture.post_alerts(&json!([down])).await;
        assert_eq!(get_alerts_and_alert_count_for_device(&fixture, &devid).await, (Some(json!(true)), Some(json!(1))));

        let reported = fixture.client.patch(fixture.url("/api/devices/v1/inventory/device/attributes"))
            .bearer_auth(&fixture.device_token)
            .json(&json!([{"name": "device_type", "value": "raspberrypi4"}, {"name": "mem_total_kB", "value": 3_884_000}]))
            .send().await.unwrap();
        assert_eq!(reported.status(), StatusCode::OK);
        let (inventory, _, _) = fixture.inventory(&format!("/devices/{devid}")).await;
        assert_eq!(inventory["id"], devid.as_str());
        assert!(inventory["updated_ts"].as_str().unwrap().ends_with('Z'), "{inventory}");
        let attributes = inventory["attributes"].as_array().unwrap();
        for expected in [
            json!({"name": "status", "scope": "identity", "value": "accepted"}),
            json!({"name": "name", "scope": "tags", "value": "pi-1"}),
            json!({"name": "alert_count", "scope": "monitor", "value": 1}),
            json!({"name": "alerts", "scope": "monitor", "value": true}),
            json!({"name": "device_type", "scope": "inventory", "value": "raspberrypi4"}),
            json!({"name": "mem_total_kB", "scope": "inventory", "value": 3_884_000}),
        ] {
            assert!(attributes.contains(&expected), "{expected} in {inventory}");
        }

        fixture.post_alerts(&json!([alert("crond", "OK", 2)])).await;
        assert_eq!(get_alerts_and_alert_count_for_device(&fixture, &devid).await, (Some(json!(false)), Some(json!(0))));

        let unknown = fixture.client.get(fixture.url("/api/management/v1/inventory/devices/nope"))
            .bearer_auth(&fixture.user_token).send().await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        let anonymous = fixture.client.get(fixture.url(&format!("/api/management/v1/inventory/devices/{devid}")))
            .send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        let device = fixture.client.get(fixture.url(&format!("/api/management/v1/inventory/devices/{devid}")))
            .bearer_auth(&fixture.device_token).send().await.unwrap();
        assert_eq!(device.status(), StatusCode::UNAUTHORIZED, "a device's token is not a user's");
    }
}

on_both_engines! {
    /// The list pages as Mender's inventory does (`page`, `per_page` default 10,
    /// `X-Total-Count`, `Link`), and `{scope}/{name}={value}` filters it, e.g. the devices
    /// with open alerts: `monitor/alerts=true`.
    async fn the_inventory_list_pages_and_filters_by_scoped_attribute(database) {
        let fixture = Fixture::start(database).await;
        for name in ["pi-2", "pi-3"] {
            fixture.database.admin_ok(binary(), &["device", "add", name], None);
        }
        fixture.post_alerts(&json!([alert("app", "CRITICAL", 1)])).await;

        let (all, total, link) = fixture.inventory("/devices").await;
        assert_eq!(total, Some(3));
        assert_eq!(all.as_array().unwrap().len(), 3);
        assert_eq!(link.as_deref(), Some("</api/management/v1/inventory/devices?page=1&per_page=10>; rel=\"first\""));

        let (page, total, link) = fixture.inventory("/devices?page=2&per_page=1").await;
        assert_eq!(total, Some(3));
        let names: Vec<Value> = page.as_array().unwrap().iter()
            .flat_map(|device| device["attributes"].as_array().unwrap().iter())
            .filter(|attribute| attribute["scope"] == "tags" && attribute["name"] == "name")
            .map(|attribute| attribute["value"].clone())
            .collect();
        assert_eq!(names, [json!("pi-2")], "by name");
        let link = link.unwrap();
        assert!(link.contains("</api/management/v1/inventory/devices?page=1&per_page=1>; rel=\"prev\""), "{link}");
        assert!(link.contains("page=3&per_page=1>; rel=\"next\""), "{link}");

        let (open, total, link) = fixture.inventory("/devices?monitor/alerts=true").await;
        assert_eq!(total, Some(1));
        let pi_1 = fixture.device_id("pi-1").await;
        assert_eq!(open[0]["id"], pi_1.as_str());
        assert!(link.unwrap().contains("monitor%2Falerts=true"), "filters are kept in the links");
        let (quiet, total, _) = fixture.inventory("/devices?monitor/alert_count=0").await;
        assert_eq!((quiet.as_array().unwrap().len(), total), (2, Some(2)));
        let (none, total, _) = fixture.inventory("/devices?device_type=raspberrypi4").await;
        assert_eq!((none, total), (json!([]), Some(0)), "no scope means `inventory`");

        for (query, expected) in [
            ("per_page=0", "per_page: `0` is out of range: give 1 to 500"),
            ("page=first", "page: `first` is not a page number: pages count from 1"),
            ("group=lab", "group: this server has no device groups and lists devices by name; leave `group` out"),
        ] {
            let bad = fixture.client.get(fixture.url(&format!("/api/management/v1/inventory/devices?{query}")))
                .bearer_auth(&fixture.user_token).send().await.unwrap();
            assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{query}");
            let answer: Value = bad.json().await.unwrap();
            assert_eq!(answer["error"], expected, "{query}");
        }
    }
}
