//! `/directories/{id}/settings` (extension): the mass-deletion guard and the
//! inactive-user policy of one directory.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use dsync_core::model::Directory;
use dsync_core::settings::InactiveUserPolicy;
use serde_json::{json, Value};

use crate::body::JsonObject;
use crate::directories::load_directory;
use crate::error::ApiResult;
use crate::AppState;

const FIELDS: [&str; 3] = [
    "deletion_threshold_percent",
    "deletion_minimum_users",
    "inactive_users",
];

fn settings_json(directory: &Directory) -> Value {
    let settings = &directory.settings;
    json!({
        "object": "directory_settings",
        "directory_id": directory.id,
        "deletion_threshold_percent": settings.deletion_threshold_percent,
        "deletion_minimum_users": settings.deletion_minimum_users,
        "inactive_users": settings.inactive_users,
    })
}

/// `GET /directories/{id}/settings`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let directory = load_directory(&state, &id).await?;
    Ok(Json(settings_json(&directory)))
}

/// `PATCH /directories/{id}/settings`: any subset of the fields; the others
/// keep their values.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let directory = load_directory(&state, &id).await?;

    let mut body = JsonObject::parse(&body, &FIELDS)?;
    let threshold = body.optional_integer("deletion_threshold_percent", 0..=100);
    let minimum = body.optional_integer("deletion_minimum_users", 0..=u64::from(u32::MAX));
    let inactive = match body.optional_string("inactive_users").as_deref() {
        None => None,
        Some("delete") => Some(InactiveUserPolicy::Delete),
        Some("keep") => Some(InactiveUserPolicy::Keep),
        Some(other) => {
            body.reject(
                "inactive_users",
                "invalid",
                format!("inactive_users must be `delete` or `keep`, got `{other}`"),
            );
            None
        }
    };
    body.finish()?;

    let mut settings = directory.settings.clone();
    if let Some(threshold) = threshold.and_then(|value| u8::try_from(value).ok()) {
        settings.deletion_threshold_percent = threshold;
    }
    if let Some(minimum) = minimum.and_then(|value| u32::try_from(value).ok()) {
        settings.deletion_minimum_users = minimum;
    }
    if let Some(inactive) = inactive {
        settings.inactive_users = inactive;
    }

    let updated = state
        .services
        .update_settings(&directory.id, settings)
        .await?;
    Ok(Json(settings_json(&updated)))
}
