//! `/directory_groups`: list (by directory or user) and read.

use axum::extract::{Path, State};
use axum::Json;
use dsync_core::ids::{DirectoryId, GroupId, UserId};
use dsync_core::ports::{GroupFilter, GroupWithDirectory, Order};
use dsync_core::wire::{self, Owner};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::pagination::{list_json, page_request, Cursor};
use crate::params::Params;
use crate::AppState;

pub fn group_json(group: &GroupWithDirectory) -> Value {
    wire::group_json(&group.group, Owner::of(&group.directory))
}

/// `GET /directory_groups`: exactly one of `directory` or `user`.
pub async fn list(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    let page = page_request(
        &params,
        Order::Desc,
        Cursor {
            what: "directory group",
            prefix: GroupId::PREFIX,
            valid: |text| GroupId::parse(text).is_some(),
        },
    )?;
    let directory = params.id("directory", DirectoryId::parse, DirectoryId::PREFIX)?;
    let user = params.id("user", UserId::parse, UserId::PREFIX)?;
    let filter = match (directory, user) {
        (Some(directory), None) => GroupFilter::Directory(directory),
        (None, Some(user)) => GroupFilter::User(user),
        (None, None) => {
            return Err(ApiError::invalid_field(
                "directory",
                "required",
                "give `directory` (a directory id) or `user` (a directory user id)",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "user",
                "invalid",
                "give either `directory` or `user`, not both",
            ))
        }
    };

    let groups = state.services.store.list_groups(&filter, &page).await?;
    Ok(Json(list_json(&groups, group_json)))
}

/// `GET /directory_groups/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let group_id =
        GroupId::parse(&id).ok_or_else(|| ApiError::not_found("directory group", &id))?;
    let group = state
        .services
        .store
        .get_group(&group_id)
        .await?
        .ok_or_else(|| ApiError::not_found("directory group", &id))?;
    Ok(Json(group_json(&group)))
}
