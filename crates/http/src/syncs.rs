//! Sync reports (extension): one record per processed upload, and the
//! approve/discard decision on syncs held by the mass-deletion guard.

use axum::extract::{Path, State};
use axum::Json;
use dsync_core::ids::SyncId;
use dsync_core::ports::Order;
use dsync_core::report::SyncRecord;
use serde_json::Value;

use crate::directories::load_directory;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{list_json, page_request, Cursor};
use crate::params::Params;
use crate::AppState;

fn sync_json(record: &SyncRecord) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

fn parse_sync_id(id: &str) -> ApiResult<SyncId> {
    SyncId::parse(id).ok_or_else(|| ApiError::not_found("sync", id))
}

/// `GET /directories/{id}/syncs`, newest first by default.
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let page = page_request(
        &params,
        Order::Desc,
        Cursor {
            what: "sync",
            prefix: SyncId::PREFIX,
            valid: |text| SyncId::parse(text).is_some(),
        },
    )?;
    let directory = load_directory(&state, &id).await?;
    let syncs = state
        .services
        .store
        .list_syncs(&directory.id, &page)
        .await?;
    Ok(Json(list_json(&syncs, sync_json)))
}

/// `GET /syncs/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let sync_id = parse_sync_id(&id)?;
    let record = state
        .services
        .store
        .get_sync(&sync_id)
        .await?
        .ok_or_else(|| ApiError::not_found("sync", &id))?;
    Ok(Json(sync_json(&record)))
}

/// `POST /syncs/{id}/approve`: applies a held sync.
pub async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let sync_id = parse_sync_id(&id)?;
    let record = state.services.approve_sync(&sync_id).await?;
    Ok(Json(sync_json(&record)))
}

/// `POST /syncs/{id}/discard`: drops a held sync; nothing changes.
pub async fn discard(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let sync_id = parse_sync_id(&id)?;
    let record = state.services.discard_sync(&sync_id).await?;
    Ok(Json(sync_json(&record)))
}
