//! Mender's inventory management API, read only: a device's attributes with their scope,
//! so that tools written against Mender find `alert_count` and `alerts` in scope `monitor`
//! where Mender's monitor add-on puts them (Mender's `test_monitor_client.py` reads them with
//! `GET /api/management/v1/inventory/devices/{id}`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use monitor_wire::Timestamp;
use serde_json::{json, Value};

use super::auth::AuthenticatedUser;
use super::error::{with_total, ApiError};
use super::state::AppState;
use crate::fleet::{AttributeFilter, DeviceInventory};

const DEVICES: &str = "/api/management/v1/inventory/devices";

/// Mender's inventory lists 10 devices a page unless asked.
const DEFAULT_PER_PAGE: u64 = 10;
const MAX_PER_PAGE: u64 = 500;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(DEVICES, get(list_inventories))
        .route(&format!("{DEVICES}/{{id}}"), get(get_inventory))
}

/// Mender's `DeviceInventory`: `{"id", "attributes": [{"name", "scope", "value"}], "updated_ts"}`.
fn shown_inventory(inventory: &DeviceInventory) -> Value {
    let device = &inventory.device;
    let attributes: Vec<Value> = inventory
        .attributes
        .iter()
        .map(|attribute| {
            json!({"name": attribute.name, "scope": attribute.scope, "value": attribute.value})
        })
        .collect();
    let updated = device.last_seen_at.unwrap_or(device.created_at);
    json!({
        "id": device.id,
        "attributes": attributes,
        "updated_ts": Timestamp(updated).to_string(),
    })
}

/// `GET /api/management/v1/inventory/devices/{id}`.
async fn get_inventory(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(shown_inventory(
        &state.fleet.device_inventory(&id).await?,
    )))
}

/// `GET /api/management/v1/inventory/devices?page=&per_page=&{scope}/{name}={value}…`:
/// the devices whose attributes match every filter, by name, with `X-Total-Count` and a
/// `Link` header (`first`, `prev`, `next`) as Mender's inventory answers.
async fn list_inventories(
    State(state): State<AppState>,
    _user: AuthenticatedUser,
    request: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(parameters) = request.map_err(|error| ApiError::BadRequest(error.body_text()))?;
    let mut page = 1;
    let mut per_page = DEFAULT_PER_PAGE;
    let mut filters = Vec::new();
    for (key, value) in &parameters {
        match key.as_str() {
            "page" => page = positive("page", value, u64::MAX)?,
            "per_page" => per_page = positive("per_page", value, MAX_PER_PAGE)?,
            "sort" | "has_group" | "group" => {
                return Err(ApiError::BadRequest(format!(
                    "{key}: this server has no device groups and lists devices by name; \
                     leave `{key}` out"
                )))
            }
            _ => filters.push(AttributeFilter::parse(key, value)),
        }
    }
    let (inventories, total) = state
        .fleet
        .device_inventories(&filters, page, per_page)
        .await?;
    let shown: Vec<Value> = inventories.iter().map(shown_inventory).collect();
    let mut response = with_total(total, Json(shown));
    let link = page_links(&parameters, page, per_page, total);
    if let Ok(link) = HeaderValue::from_str(&link) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response.into_response())
}

fn positive(field: &str, text: &str, max: u64) -> Result<u64, ApiError> {
    match text.parse::<u64>() {
        Ok(number) if (1..=max).contains(&number) => Ok(number),
        _ if max == u64::MAX => Err(ApiError::BadRequest(format!(
            "{field}: `{text}` is not a page number: pages count from 1"
        ))),
        _ => Err(ApiError::BadRequest(format!(
            "{field}: `{text}` is out of range: give 1 to {max}"
        ))),
    }
}

/// `<…?page=1&per_page=10&…>; rel="first"`, then `prev` and `next` where there are such
/// pages; the filters are kept.
fn page_links(parameters: &[(String, String)], page: u64, per_page: u64, total: u64) -> String {
    let filters: Vec<(&str, &str)> = parameters
        .iter()
        .filter(|(key, _)| key != "page" && key != "per_page")
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let link = |page: u64, relation: &str| {
        let (page, per_page) = (page.to_string(), per_page.to_string());
        let mut pairs = vec![("page", page.as_str()), ("per_page", per_page.as_str())];
        pairs.extend(&filters);
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        format!("<{DEVICES}?{query}>; rel=\"{relation}\"")
    };
    let mut links = vec![link(1, "first")];
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page.saturating_mul(per_page) < total {
        links.push(link(page + 1, "next"));
    }
    links.join(", ")
}
