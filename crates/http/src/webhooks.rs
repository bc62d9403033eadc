//! `/webhook_endpoints`: register, list, update and remove the URLs that
//! receive signed event deliveries, and read each endpoint's attempts.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dsync_core::event::EventKind;
use dsync_core::ids::WebhookEndpointId;
use dsync_core::ports::{DeliveryAttempt, Order, WebhookEndpoint, WebhookStatus};
use dsync_core::time::Timestamp;
use dsync_core::webhook;
use rand::RngCore;
use serde_json::{json, Value};

use crate::body::JsonObject;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{list_json, page_request, Cursor};
use crate::params::Params;
use crate::AppState;

/// The WebhookEndpoint object. `secret` is in every response, list items
/// included, because the Python SDK requires the key.
pub fn endpoint_json(endpoint: &WebhookEndpoint) -> Value {
    json!({
        "object": "webhook_endpoint",
        "id": endpoint.id,
        "endpoint_url": endpoint.endpoint_url,
        "secret": endpoint.secret,
        "status": endpoint.status,
        "events": endpoint.events,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    })
}

fn attempt_json(attempt: &DeliveryAttempt) -> Value {
    json!({
        "object": "webhook_attempt",
        "endpoint_id": attempt.endpoint_id,
        "event_id": attempt.event_id,
        "attempt": attempt.attempt,
        "attempted_at": attempt.attempted_at,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "succeeded": attempt.succeeded,
    })
}

/// `POST /webhook_endpoints`: `{endpoint_url, events, status?}`. dsync
/// generates the secret; the response is 201 with the new endpoint.
pub async fn create(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let mut body = JsonObject::parse(&body, &["endpoint_url", "events", "status"])?;
    let endpoint_url = body.required_string("endpoint_url");
    let events = body.optional_string_list("events").unwrap_or_default();
    let status = body.optional_string("status");

    check_url(&state, &mut body, endpoint_url.as_deref());
    check_events(&mut body, &events);
    let status = parse_status(&mut body, status.as_deref()).unwrap_or(WebhookStatus::Enabled);
    body.finish()?;

    let now = Timestamp::now();
    let endpoint = WebhookEndpoint {
        id: WebhookEndpointId::generate(),
        endpoint_url: endpoint_url.unwrap_or_default(),
        secret: generate_secret(),
        status,
        events,
        created_at: now,
        updated_at: now,
    };
    state.services.store.create_endpoint(&endpoint).await?;
    Ok((StatusCode::CREATED, Json(endpoint_json(&endpoint))).into_response())
}

/// `GET /webhook_endpoints`, newest first by default.
pub async fn list(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    let page = page_request(
        &params,
        Order::Desc,
        Cursor {
            what: "webhook endpoint",
            prefix: WebhookEndpointId::PREFIX,
            valid: |text| WebhookEndpointId::parse(text).is_some(),
        },
    )?;
    let endpoints = state.services.store.list_endpoints(&page).await?;
    Ok(Json(list_json(&endpoints, endpoint_json)))
}

/// `PATCH /webhook_endpoints/{id}`: any subset of `endpoint_url`, `status`
/// (`enabled` or `disabled`) and `events`.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let mut endpoint = load_endpoint(&state, &id).await?;

    let mut body = JsonObject::parse(&body, &["endpoint_url", "events", "status"])?;
    let endpoint_url = body.optional_string("endpoint_url");
    let events = body.optional_string_list("events");
    let status = body.optional_string("status");

    if endpoint_url.is_some() {
        check_url(&state, &mut body, endpoint_url.as_deref());
    }
    if let Some(events) = &events {
        check_events(&mut body, events);
    }
    let status = parse_status(&mut body, status.as_deref());
    body.finish()?;

    if let Some(endpoint_url) = endpoint_url {
        endpoint.endpoint_url = endpoint_url;
    }
    if let Some(events) = events {
        endpoint.events = events;
    }
    if let Some(status) = status {
        endpoint.status = status;
    }
    endpoint.updated_at = Timestamp::now();
    state.services.store.update_endpoint(&endpoint).await?;
    Ok(Json(endpoint_json(&endpoint)))
}

/// `DELETE /webhook_endpoints/{id}`: 204, also when the endpoint is already
/// gone, so a retried DELETE succeeds.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let endpoint_id = parse_endpoint_id(&id)?;
    state.services.store.delete_endpoint(&endpoint_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /webhook_endpoints/{id}/attempts` (extension): every delivery
/// attempt to the endpoint, newest first by default.
pub async fn attempts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let page = page_request(&params, Order::Desc, Cursor::ATTEMPT)?;
    let endpoint = load_endpoint(&state, &id).await?;
    let attempts = state
        .services
        .store
        .list_attempts(&endpoint.id, &page)
        .await?;
    Ok(Json(list_json(&attempts, attempt_json)))
}

fn parse_endpoint_id(id: &str) -> ApiResult<WebhookEndpointId> {
    WebhookEndpointId::parse(id).ok_or_else(|| ApiError::not_found("webhook endpoint", id))
}

async fn load_endpoint(state: &AppState, id: &str) -> ApiResult<WebhookEndpoint> {
    let endpoint_id = parse_endpoint_id(id)?;
    state
        .services
        .store
        .get_endpoint(&endpoint_id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint", id))
}

/// A fresh signing secret from the operating system's CSPRNG, encoded by core
/// as URL-safe base64 so it is plain ASCII wherever it is pasted.
fn generate_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    webhook::secret_from_bytes(&bytes)
}

fn check_url(state: &AppState, body: &mut JsonObject, endpoint_url: Option<&str>) {
    let Some(text) = endpoint_url else {
        return;
    };
    let allow_private = state.config.allow_private_webhook_urls;
    if let Err(refusal) = crate::target::check_endpoint_url(text, allow_private) {
        body.reject("endpoint_url", refusal.code, refusal.message);
    }
}

fn check_events(body: &mut JsonObject, events: &[String]) {
    for name in events {
        if EventKind::parse(name).is_none() {
            let known: Vec<&str> = EventKind::ALL.iter().map(EventKind::as_str).collect();
            body.reject(
                "events",
                "invalid",
                format!(
                    "unknown event type `{name}`; known types: {}",
                    known.join(", ")
                ),
            );
        }
    }
}

fn parse_status(body: &mut JsonObject, status: Option<&str>) -> Option<WebhookStatus> {
    match status? {
        "enabled" => Some(WebhookStatus::Enabled),
        "disabled" => Some(WebhookStatus::Disabled),
        other => {
            body.reject(
                "status",
                "invalid",
                format!("status must be `enabled` or `disabled`, got `{other}`"),
            );
            None
        }
    }
}
