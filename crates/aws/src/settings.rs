//! Deployment settings, read from the functions' environment.

use anyhow::{bail, Context};

/// What the template passes to every function.
#[derive(Clone, Debug)]
pub struct AwsSettings {
    /// The DynamoDB table (`DSYNC_TABLE`).
    pub table: String,
    /// Per-directory buckets start with this and a hyphen (`DSYNC_BUCKET_PREFIX`).
    pub bucket_prefix: String,
    /// Days before an upload expires (`DSYNC_UPLOAD_RETENTION_DAYS`, default 30).
    pub upload_retention_days: i32,
    /// The Transfer Family server (`DSYNC_TRANSFER_SERVER_ID`).
    pub transfer_server_id: String,
    /// The role SFTP users assume (`DSYNC_TRANSFER_ROLE_ARN`).
    pub transfer_role_arn: String,
    /// Host name shown to uploaders (`DSYNC_SFTP_HOST`).
    pub sftp_host: String,
    pub sftp_port: u16,
    /// The EventBridge bus events go to (`DSYNC_EVENT_BUS`); empty disables it.
    pub event_bus: String,
    /// The queue of webhook deliveries (`DSYNC_WEBHOOK_QUEUE_URL`); empty disables webhooks.
    pub webhook_queue_url: String,
    /// The ingest queue, for re-sync requests from the API (`DSYNC_INGEST_QUEUE_URL`).
    pub ingest_queue_url: String,
}

fn required(name: &str) -> anyhow::Result<String> {
    let value = std::env::var(name).with_context(|| {
        format!("environment variable {name} is not set; the SAM template sets it")
    })?;
    if value.trim().is_empty() {
        bail!("environment variable {name} is empty; the SAM template sets it");
    }
    Ok(value)
}

fn optional(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

impl AwsSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        let retention = match std::env::var("DSYNC_UPLOAD_RETENTION_DAYS") {
            Ok(text) => text
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|days| *days > 0)
                .with_context(|| format!("DSYNC_UPLOAD_RETENTION_DAYS must be a positive number of days, got {text:?}"))?,
            Err(_) => 30,
        };
        let port = match std::env::var("DSYNC_SFTP_PORT") {
            Ok(text) => text
                .trim()
                .parse::<u16>()
                .with_context(|| format!("DSYNC_SFTP_PORT must be a port number, got {text:?}"))?,
            Err(_) => 22,
        };
        let prefix = required("DSYNC_BUCKET_PREFIX")?;
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || prefix.len() > 30
        {
            bail!("DSYNC_BUCKET_PREFIX must be at most 30 lowercase letters, digits and hyphens, got {prefix:?}");
        }
        Ok(Self {
            table: required("DSYNC_TABLE")?,
            bucket_prefix: prefix,
            upload_retention_days: retention,
            transfer_server_id: required("DSYNC_TRANSFER_SERVER_ID")?,
            transfer_role_arn: required("DSYNC_TRANSFER_ROLE_ARN")?,
            sftp_host: required("DSYNC_SFTP_HOST")?,
            sftp_port: port,
            event_bus: optional("DSYNC_EVENT_BUS"),
            webhook_queue_url: optional("DSYNC_WEBHOOK_QUEUE_URL"),
            ingest_queue_url: optional("DSYNC_INGEST_QUEUE_URL"),
        })
    }

    /// True when `bucket` is one of this deployment's directory buckets.
    pub fn owns_bucket(&self, bucket: &str) -> bool {
        bucket
            .strip_prefix(&self.bucket_prefix)
            .is_some_and(|rest| rest.starts_with('-'))
    }
}
