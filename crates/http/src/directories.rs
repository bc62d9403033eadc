//! `/directories`: list, read, create, offboard (DELETE) and re-sync.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dsync_core::ids::DirectoryId;
use dsync_core::model::Directory;
use dsync_core::ports::{DirectoryFilter, Order};
use dsync_core::wire;
use serde_json::{json, Value};

use crate::body::JsonObject;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{list_json, page_request, Cursor};
use crate::params::Params;
use crate::AppState;

/// Builds the REST directory object with this deployment's SFTP endpoint.
pub fn directory_json(state: &AppState, directory: &Directory) -> Value {
    wire::directory_json(directory, &state.config.sftp_host, state.config.sftp_port)
}

/// Parses a directory id from a path; a malformed id names no directory, so it is a 404.
pub fn parse_directory_id(id: &str) -> ApiResult<DirectoryId> {
    DirectoryId::parse(id).ok_or_else(|| ApiError::not_found("directory", id))
}

/// Loads a directory or fails with 404.
pub async fn load_directory(state: &AppState, id: &str) -> ApiResult<Directory> {
    let directory_id = parse_directory_id(id)?;
    state
        .services
        .store
        .get_directory(&directory_id)
        .await?
        .ok_or_else(|| ApiError::not_found("directory", id))
}

/// `GET /directories`: filters `organization_id` and `search` (case-insensitive
/// part of the name). `domain` is accepted and ignored, because local
/// directories have no domains.
pub async fn list(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    let page = page_request(
        &params,
        Order::Desc,
        Cursor {
            what: "directory",
            prefix: DirectoryId::PREFIX,
            valid: |text| DirectoryId::parse(text).is_some(),
        },
    )?;
    let filter = DirectoryFilter {
        organization_id: params.get("organization_id").map(str::to_owned),
        search: params.get("search").map(str::to_owned),
    };

    let directories = state
        .services
        .store
        .list_directories(&filter, &page)
        .await?;
    Ok(Json(list_json(&directories, |directory| {
        directory_json(&state, directory)
    })))
}

/// `GET /directories/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let directory = load_directory(&state, &id).await?;
    Ok(Json(directory_json(&state, &directory)))
}

/// `POST /directories` (extension): `{organization_id, name}` creates an
/// unlinked directory with a generated SFTP username.
pub async fn create(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let mut body = JsonObject::parse(&body, &["organization_id", "name"])?;
    let organization_id = body.required_string("organization_id");
    let name = body.required_string("name");
    if organization_id
        .as_deref()
        .is_some_and(|text| text.trim().is_empty())
    {
        body.reject(
            "organization_id",
            "invalid",
            "`organization_id` must not be empty",
        );
    }
    if name.as_deref().is_some_and(|text| text.trim().is_empty()) {
        body.reject("name", "invalid", "`name` must not be empty");
    }
    body.finish()?;

    let (Some(organization_id), Some(name)) = (organization_id, name) else {
        unreachable!("finish() rejects a body without both fields");
    };
    let directory = state
        .services
        .create_directory(organization_id.trim(), name.trim())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(directory_json(&state, &directory)),
    )
        .into_response())
}

/// `DELETE /directories/{id}`: starts offboarding in the background and
/// returns 202 at once. Idempotent: an id that names no directory (already
/// offboarded, or never created) gets 204, and a retry while offboarding
/// runs gets 202 without starting a second run.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let directory_id = parse_directory_id(&id)?;
    if state
        .services
        .store
        .get_directory(&directory_id)
        .await?
        .is_none()
    {
        return Ok(StatusCode::NO_CONTENT);
    }

    let services = state.services.clone();
    let target = directory_id.clone();
    state.background.spawn_once(
        format!("offboard:{directory_id}"),
        "offboard directory",
        async move { services.delete_directory(&target).await },
    );
    Ok(StatusCode::ACCEPTED)
}

/// `POST /directories/{id}/sync`: reconciles the directory from its newest
/// uploads in the background and returns 202 `{"status": "queued"}`.
pub async fn sync(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let directory = load_directory(&state, &id).await?;

    if let Some(trigger) = &state.config.sync_trigger {
        trigger(directory.id.clone());
    } else {
        // NOTE: without a sync queue, a request that arrives while a
        // reconcile of the same directory runs starts its own; the store's
        // optimistic check rejects the loser, and the log records it.
        let services = state.services.clone();
        let target = directory.id.clone();
        state.background.spawn_once(
            format!("sync:{}:{}", directory.id, ulid::Ulid::new()),
            "reconcile directory",
            async move { services.reconcile(&target).await },
        );
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "queued" }))).into_response())
}
