//! `api`: the HTTP router of `dsync-http` on the deployment's services.
//!
//! `POST /directories/{id}/sync` must not start work that outlives the
//! invocation (Lambda freezes the process once the response is sent), so the
//! trigger queues a re-sync message for the `ingest` function instead.

use std::sync::Arc;

use dsync_core::ids::DirectoryId;
use dsync_http::{ApiConfig, SyncTrigger};

use crate::Deployment;

/// The body of a re-sync request on the ingest queue.
pub fn resync_message(directory: &DirectoryId) -> String {
    serde_json::json!({ "directory_id": directory }).to_string()
}

/// The router the `api` function serves through `lambda_http`.
pub fn router(deployment: &Deployment) -> axum::Router {
    let queue = deployment.settings.ingest_queue_url.clone();
    let sqs = deployment.clients.sqs.clone();
    let sync_trigger: Option<SyncTrigger> = (!queue.is_empty()).then(|| {
        let trigger: SyncTrigger = Arc::new(move |directory: DirectoryId| {
            let body = resync_message(&directory);
            let send = sqs.send_message().queue_url(&queue).message_body(body).send();
            // Sent before the response goes out: the runtime is multi-threaded.
            let sent = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(send));
            if let Err(error) = sent {
                tracing::error!(directory_id = %directory, error = %crate::s3::describe(&error), "queueing a re-sync failed");
            }
        });
        trigger
    });
    let mut config = ApiConfig::new(
        deployment.settings.sftp_host.clone(),
        deployment.settings.sftp_port,
    );
    config.sync_trigger = sync_trigger;
    dsync_http::router(deployment.services(), config)
}
