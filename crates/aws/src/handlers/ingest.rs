//! `ingest`: reconciles directories when uploads land, and on a schedule.
//!
//! Input is either an SQS batch whose bodies are EventBridge S3
//! "Object Created" events, or the scheduled `{"sweep": true}`. The answer to
//! an SQS batch is a partial batch response: the messages whose directory
//! could not be reconciled are listed in `batchItemFailures` and come back
//! after the visibility timeout; the others are done.

use std::collections::BTreeMap;
use std::time::Instant;

use dsync_core::ids::DirectoryId;
use dsync_core::model::DirectoryStatus;
use dsync_core::ports::StoreError;
use dsync_core::service::ServiceError;
use dsync_core::sync::ReconcileOutcome;
use dsync_core::upload::file_kind;
use serde_json::{json, Value};

use super::decode_s3_key;
use crate::Deployment;

/// What one notification names, once decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub bucket: String,
    pub key: String,
    pub size: u64,
}

/// Reads the EventBridge S3 event inside an SQS message body.
pub fn parse_notification(body: &str) -> Result<Notification, String> {
    let event: Value =
        serde_json::from_str(body).map_err(|error| format!("message body is not JSON: {error}"))?;
    let detail = event
        .get("detail")
        .ok_or("message body has no `detail`; expected an EventBridge S3 event")?;
    let bucket = detail
        .pointer("/bucket/name")
        .and_then(Value::as_str)
        .ok_or("`detail.bucket.name` is missing")?;
    let key = detail
        .pointer("/object/key")
        .and_then(Value::as_str)
        .ok_or("`detail.object.key` is missing")?;
    let size = detail
        .pointer("/object/size")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(Notification {
        bucket: bucket.to_owned(),
        key: decode_s3_key(key),
        size,
    })
}

/// True when the object can change a directory: a recognised upload name at
/// the folder root, not empty. Temporary names, folder markers, `results/`
/// and zero-byte objects are not.
pub fn is_relevant(notification: &Notification) -> bool {
    notification.size > 0
        && !notification.key.ends_with('/')
        && file_kind(&notification.key).is_some()
}

/// A re-sync request queued by the API: `{"directory_id": "directory_..."}`.
pub fn resync_request(body: &str) -> Option<DirectoryId> {
    let value: Value = serde_json::from_str(body).ok()?;
    DirectoryId::parse(value.get("directory_id")?.as_str()?)
}

/// Reconciles one directory under its lease, logging one line per sync.
pub async fn reconcile_directory(
    deployment: &Deployment,
    directory: &DirectoryId,
) -> Result<(), ServiceError> {
    deployment.store.acquire_lease(directory).await?;
    let started = Instant::now();
    let result = deployment.services().reconcile_outcome(directory).await;
    let released = deployment.store.release_lease(directory).await;
    let millis = started.elapsed().as_millis() as u64;
    match &result {
        Ok(ReconcileOutcome::Synced {
            record,
            report_error,
        }) => {
            let files: Vec<&str> = record.files.iter().map(|f| f.name.as_str()).collect();
            tracing::info!(
                directory_id = %directory,
                sync_id = %record.id,
                status = record.status.as_str(),
                files = ?files,
                created = record.counts.created,
                updated = record.counts.updated,
                deleted = record.counts.deleted,
                unchanged = record.counts.unchanged,
                skipped_rows = record.counts.skipped_rows,
                duration_ms = millis,
                report_error = report_error.as_ref().map(|e| e.to_string()),
                "sync finished"
            );
        }
        Ok(ReconcileOutcome::Unchanged(record)) => {
            tracing::info!(directory_id = %directory, sync_id = %record.id, duration_ms = millis, "uploads unchanged; nothing written");
        }
        Ok(ReconcileOutcome::NoUploads) => {
            tracing::info!(directory_id = %directory, duration_ms = millis, "no uploads yet");
        }
        Err(error) => {
            tracing::error!(directory_id = %directory, duration_ms = millis, error = %error, "sync failed");
        }
    }
    if let Err(error) = released {
        tracing::warn!(directory_id = %directory, error = %error, "lease release failed; it expires by itself");
    }
    result.map(|_| ())
}

/// Handles one invocation: an SQS batch or the scheduled sweep.
pub async fn handle(deployment: &Deployment, event: Value) -> Value {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        return handle_batch(deployment, records).await;
    }
    sweep(deployment).await
}

async fn handle_batch(deployment: &Deployment, records: &[Value]) -> Value {
    let mut failures: Vec<String> = Vec::new();
    // Each directory is reconciled once per batch, from its newest files.
    let mut by_directory: BTreeMap<DirectoryId, Vec<String>> = BTreeMap::new();
    for record in records {
        let message_id = record
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let body = record
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(directory) = resync_request(body) {
            by_directory.entry(directory).or_default().push(message_id);
            continue;
        }
        let notification = match parse_notification(body) {
            Ok(notification) => notification,
            Err(reason) => {
                tracing::error!(message_id = %message_id, reason = %reason, "unreadable notification");
                failures.push(message_id);
                continue;
            }
        };
        if !deployment.settings.owns_bucket(&notification.bucket) || !is_relevant(&notification) {
            continue;
        }
        match deployment
            .store
            .directory_of_bucket(&notification.bucket)
            .await
        {
            Ok(Some(directory)) => by_directory.entry(directory).or_default().push(message_id),
            // An offboarded directory's late notification: nothing to do.
            Ok(None) => {}
            Err(error) => {
                tracing::error!(message_id = %message_id, error = %error, "bucket lookup failed");
                failures.push(message_id);
            }
        }
    }
    for (directory, messages) in by_directory {
        let result = reconcile_directory(deployment, &directory).await;
        match result {
            Ok(()) => {}
            // Offboarding started or finished: the upload no longer matters.
            Err(ServiceError::NotFound { .. }) => {}
            Err(ServiceError::Conflict(_)) if is_deleting(deployment, &directory).await => {}
            Err(ServiceError::Store(StoreError::Busy(_))) => {
                // Another invocation is reconciling this directory; come back
                // soon rather than after the whole visibility timeout.
                retry_soon(deployment, records, &messages).await;
                failures.extend(messages);
            }
            Err(_) => failures.extend(messages),
        }
    }
    json!({
        "batchItemFailures": failures
            .into_iter()
            .map(|id| json!({ "itemIdentifier": id }))
            .collect::<Vec<_>>()
    })
}

/// Seconds a message waits when its directory's lease was taken.
pub const BUSY_RETRY_SECONDS: i32 = 30;

async fn retry_soon(deployment: &Deployment, records: &[Value], messages: &[String]) {
    let queue = &deployment.settings.ingest_queue_url;
    if queue.is_empty() {
        return;
    }
    for record in records {
        let id = record
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(receipt) = record.get("receiptHandle").and_then(Value::as_str) else {
            continue;
        };
        if messages.iter().any(|m| m == id) {
            let changed = deployment
                .clients
                .sqs
                .change_message_visibility()
                .queue_url(queue)
                .receipt_handle(receipt)
                .visibility_timeout(BUSY_RETRY_SECONDS)
                .send()
                .await;
            if let Err(error) = changed {
                tracing::warn!(message_id = %id, error = %crate::s3::describe(&error), "shortening the retry wait failed");
            }
        }
    }
}

async fn is_deleting(deployment: &Deployment, directory: &DirectoryId) -> bool {
    use dsync_core::ports::Directories;
    matches!(
        deployment.store.get_directory(directory).await,
        Ok(None)
            | Ok(Some(dsync_core::model::Directory {
                status: DirectoryStatus::Deleting,
                ..
            }))
    )
}

/// Reconciles every linked directory; a safety net for lost notifications.
pub async fn sweep(deployment: &Deployment) -> Value {
    let directories = match deployment.store.all_directories().await {
        Ok(directories) => directories,
        Err(error) => {
            tracing::error!(error = %error, "listing directories failed");
            return json!({ "reconciled": 0, "failed": 0, "error": error.to_string() });
        }
    };
    let mut reconciled = 0;
    let mut failed = 0;
    // Offboardings cut off halfway (an API call that timed out) are finished here.
    for directory in directories
        .iter()
        .filter(|d| d.status == DirectoryStatus::Deleting)
    {
        match deployment.services().delete_directory(&directory.id).await {
            Ok(()) => tracing::info!(directory_id = %directory.id, "offboarding finished"),
            Err(error) => {
                tracing::error!(directory_id = %directory.id, error = %error, "offboarding failed")
            }
        }
    }
    for directory in directories
        .iter()
        .filter(|d| d.status == DirectoryStatus::Linked)
    {
        match reconcile_directory(deployment, &directory.id).await {
            Ok(()) => reconciled += 1,
            Err(_) => failed += 1,
        }
    }
    json!({ "reconciled": reconciled, "failed": failed })
}
