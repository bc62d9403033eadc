//! `/directories/{id}/ssh_keys` (extension): the SSH public keys allowed to
//! upload into a directory's SFTP folder.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dsync_core::ids::KeyId;
use dsync_core::ports::SshKeyRecord;
use serde_json::{json, Value};

use crate::body::JsonObject;
use crate::directories::{load_directory, parse_directory_id};
use crate::error::{ApiError, ApiResult};
use crate::pagination::complete_list_json;
use crate::AppState;

fn key_json(key: &SshKeyRecord) -> Value {
    json!({
        "object": "ssh_key",
        "id": key.id,
        "directory_id": key.directory_id,
        "key_type": key.key_type,
        "public_key": key.public_key,
        "comment": key.comment,
        "fingerprint": key.fingerprint,
        "created_at": key.created_at,
    })
}

/// `GET /directories/{id}/ssh_keys`: every key, in one unpaged list.
pub async fn list(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let directory = load_directory(&state, &id).await?;
    let keys = state.services.store.list_keys(&directory.id).await?;
    Ok(Json(complete_list_json(
        keys.iter().map(key_json).collect(),
    )))
}

/// `POST /directories/{id}/ssh_keys`: `{public_key}` holding one OpenSSH
/// public key line. The first key links the directory and emits
/// `dsync.activated`.
pub async fn add(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let directory_id = parse_directory_id(&id)?;

    let mut body = JsonObject::parse(&body, &["public_key"])?;
    let public_key = body.required_string("public_key");
    body.finish()?;

    let key = state
        .services
        .add_key(&directory_id, public_key.as_deref().unwrap_or_default())
        .await?;
    Ok((StatusCode::CREATED, Json(key_json(&key))).into_response())
}

/// `DELETE /directories/{id}/ssh_keys/{key_id}`: 204, or 404 when the
/// directory has no such key.
pub async fn remove(
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let directory_id = parse_directory_id(&id)?;
    let key = KeyId::parse(&key_id).ok_or_else(|| ApiError::not_found("ssh key", &key_id))?;
    state.services.remove_key(&directory_id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
