//! `register-key`: the operator's account actions, invoked directly
//! (`aws lambda invoke`) with a JSON command:
//!
//! - `{"action": "create_directory", "organization_id": "...", "name": "..."}`
//! - `{"action": "add_key", "directory_id": "...", "public_key": "ssh-ed25519 AAAA..."}`
//! - `{"action": "remove_key", "directory_id": "...", "key_id": "ssh_key_..."}`
//! - `{"action": "delete_directory", "directory_id": "..."}` (resumable: run it again after a failure)
//! - `{"action": "create_api_key", "name": "..."}` (returns the secret once)
//!
//! The answer is `{"ok": true, ...}` or `{"ok": false, "error": "...", "code": "..."}`.

use dsync_core::ids::{ApiKeyId, DirectoryId, KeyId};
use dsync_core::ports::{ApiKeyRecord, ApiKeys};
use dsync_core::service::ServiceError;
use dsync_core::time::Timestamp;
use dsync_core::wire;
use serde_json::{json, Value};

use crate::Deployment;

fn field<'a>(command: &'a Value, name: &str) -> Result<&'a str, Value> {
    command
        .get(name)
        .and_then(Value::as_str)
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| {
            failure(
                "invalid_request",
                &format!("the command needs a non-empty string field `{name}`"),
            )
        })
}

fn failure(code: &str, message: &str) -> Value {
    json!({ "ok": false, "code": code, "error": message })
}

fn service_failure(error: ServiceError) -> Value {
    let code = match &error {
        ServiceError::NotFound { .. } => "not_found",
        ServiceError::Invalid { .. } => "invalid_request",
        ServiceError::Conflict(_) => "conflict",
        ServiceError::Store(_) => "internal_error",
    };
    failure(code, &error.to_string())
}

fn directory_id(command: &Value) -> Result<DirectoryId, Value> {
    let text = field(command, "directory_id")?;
    DirectoryId::parse(text).ok_or_else(|| {
        failure(
            "invalid_request",
            "`directory_id` must look like directory_01H...",
        )
    })
}

/// Runs one command.
pub async fn handle(deployment: &Deployment, command: Value) -> Value {
    match run(deployment, &command).await {
        Ok(answer) => answer,
        Err(answer) => answer,
    }
}

async fn run(deployment: &Deployment, command: &Value) -> Result<Value, Value> {
    let services = deployment.services();
    let (host, port) = (
        deployment.settings.sftp_host.as_str(),
        deployment.settings.sftp_port,
    );
    match field(command, "action")? {
        "create_directory" => {
            let directory = services
                .create_directory(field(command, "organization_id")?, field(command, "name")?)
                .await
                .map_err(service_failure)?;
            tracing::info!(directory_id = %directory.id, "directory created");
            Ok(json!({ "ok": true, "directory": wire::directory_json(&directory, host, port) }))
        }
        "add_key" => {
            let directory = directory_id(command)?;
            let key = services
                .add_key(&directory, field(command, "public_key")?)
                .await
                .map_err(service_failure)?;
            tracing::info!(directory_id = %directory, key_id = %key.id, fingerprint = %key.fingerprint, "key added");
            let current = services.store.get_directory(&directory).await.ok().flatten();
            Ok(json!({
                "ok": true,
                "key": { "id": key.id, "fingerprint": key.fingerprint, "key_type": key.key_type, "created_at": key.created_at },
                "directory": current.map(|d| wire::directory_json(&d, host, port)),
            }))
        }
        "remove_key" => {
            let directory = directory_id(command)?;
            let key = KeyId::parse(field(command, "key_id")?)
                .ok_or_else(|| failure("invalid_request", "`key_id` must look like ssh_key_01H..."))?;
            services.remove_key(&directory, &key).await.map_err(service_failure)?;
            tracing::info!(directory_id = %directory, key_id = %key, "key removed");
            Ok(json!({ "ok": true }))
        }
        "delete_directory" => {
            let directory = directory_id(command)?;
            services.delete_directory(&directory).await.map_err(service_failure)?;
            tracing::info!(directory_id = %directory, "directory offboarded");
            Ok(json!({ "ok": true }))
        }
        "create_api_key" => {
            let name = field(command, "name")?;
            let secret = format!("sk_{}", hex::encode(rand::random::<[u8; 24]>()));
            let record = ApiKeyRecord {
                id: ApiKeyId::generate(),
                name: name.to_owned(),
                secret_sha256: dsync_http::hash_api_key(&secret),
                created_at: Timestamp::now(),
                revoked_at: None,
            };
            deployment
                .store
                .create_api_key(&record)
                .await
                .map_err(|error| failure("internal_error", &error.to_string()))?;
            tracing::info!(api_key_id = %record.id, "API key created");
            Ok(json!({ "ok": true, "id": record.id, "secret": secret }))
        }
        other => Err(failure(
            "invalid_request",
            &format!("unknown action `{other}`; use create_directory, add_key, remove_key, delete_directory or create_api_key"),
        )),
    }
}
