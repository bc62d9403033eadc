//! Uploads on S3: one bucket per directory, created with the SFTP account.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    CreateBucketConfiguration, Delete, EventBridgeConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NotificationConfiguration,
    ObjectIdentifier, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use aws_sdk_s3::Client;
use dsync_core::ids::DirectoryId;
use dsync_core::model::Directory;
use dsync_core::ports::{FileStore, StoreError, StoreResult, StoredFile};
use dsync_core::time::Timestamp;

use crate::dynamo::DynamoStore;

/// The folder dsync writes sync reports into.
pub const RESULTS_PREFIX: &str = "results/";

pub(crate) fn describe<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    match error {
        SdkError::ServiceError(service) => {
            let e = service.err();
            format!(
                "{}: {}",
                e.code().unwrap_or("error"),
                e.message().unwrap_or("")
            )
        }
        other => format!("{other}"),
    }
}

fn code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

fn backend<E: ProvideErrorMetadata, R>(what: String) -> impl FnOnce(SdkError<E, R>) -> StoreError {
    move |error| StoreError::Backend(format!("S3 {what} failed: {}", describe(&error)))
}

/// [`FileStore`] on per-directory buckets; the bucket name is kept on the
/// directory's DynamoDB item.
pub struct S3Files {
    client: Client,
    store: Arc<DynamoStore>,
}

impl S3Files {
    pub fn new(client: Client, store: Arc<DynamoStore>) -> Self {
        Self { client, store }
    }

    async fn bucket(&self, directory: &DirectoryId) -> StoreResult<String> {
        self.store
            .bucket_of(directory)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "bucket of directory (register a key first)",
                id: directory.to_string(),
            })
    }
}

/// True for keys that are never uploads: the results folder and folder markers.
pub fn is_listed_upload(key: &str, size: u64) -> bool {
    !key.starts_with(RESULTS_PREFIX) && !key.ends_with('/') && size > 0
}

#[async_trait]
impl FileStore for S3Files {
    async fn list_uploads(&self, directory: &Directory) -> StoreResult<Vec<StoredFile>> {
        let bucket = self.bucket(&directory.id).await?;
        let mut files = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&bucket)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(backend(format!("listing bucket {bucket}")))?;
            for object in out.contents() {
                let Some(key) = object.key() else { continue };
                let size = object.size().unwrap_or(0).max(0) as u64;
                if !is_listed_upload(key, size) {
                    continue;
                }
                let modified = object
                    .last_modified()
                    .and_then(|t| t.to_millis().ok())
                    .map(Timestamp::from_millis)
                    .unwrap_or_else(Timestamp::now);
                files.push(StoredFile {
                    name: key.to_owned(),
                    size_bytes: size,
                    modified,
                });
            }
            match out.next_continuation_token() {
                Some(next) if out.is_truncated().unwrap_or(false) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(files)
    }

    async fn open_upload(
        &self,
        directory: &Directory,
        name: &str,
    ) -> StoreResult<Box<dyn Read + Send>> {
        let bucket = self.bucket(&directory.id).await?;
        let out = self
            .client
            .get_object()
            .bucket(&bucket)
            .key(name)
            .send()
            .await
            .map_err(|error| match code(&error) {
                Some("NoSuchKey") => StoreError::NotFound {
                    what: "upload",
                    id: name.to_owned(),
                },
                _ => backend(format!("reading {name}"))(error),
            })?;
        // Spooled to a temporary file so memory does not grow with the upload.
        let mut spool = tempfile::tempfile()
            .map_err(|error| StoreError::Backend(format!("creating a temporary file: {error}")))?;
        let mut body = out.body;
        while let Some(bytes) = body
            .try_next()
            .await
            .map_err(|error| StoreError::Backend(format!("reading {name} from S3: {error}")))?
        {
            spool
                .write_all(&bytes)
                .map_err(|error| StoreError::Backend(format!("spooling {name}: {error}")))?;
        }
        spool
            .seek(SeekFrom::Start(0))
            .map_err(|error| StoreError::Backend(format!("spooling {name}: {error}")))?;
        Ok(Box::new(spool))
    }

    async fn write_result(
        &self,
        directory: &Directory,
        name: &str,
        body: &[u8],
    ) -> StoreResult<()> {
        let bucket = self.bucket(&directory.id).await?;
        let key = if name.starts_with(RESULTS_PREFIX) {
            name.to_owned()
        } else {
            format!("{RESULTS_PREFIX}{name}")
        };
        let content_type = if key.ends_with(".json") {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        self.client
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .content_type(content_type)
            .body(body.to_vec().into())
            .send()
            .await
            .map_err(backend(format!("writing {key}")))?;
        Ok(())
    }

    async fn delete_all(&self, directory: &Directory) -> StoreResult<()> {
        let Some(bucket) = self.store.bucket_of(&directory.id).await? else {
            return Ok(());
        };
        empty_and_delete_bucket(&self.client, &bucket).await
    }
}

/// Deletes every object version and delete marker, then the bucket. A
/// missing bucket counts as done.
pub async fn empty_and_delete_bucket(client: &Client, bucket: &str) -> StoreResult<()> {
    loop {
        let listed = client.list_object_versions().bucket(bucket).send().await;
        let out = match listed {
            Ok(out) => out,
            Err(error) if code(&error) == Some("NoSuchBucket") => return Ok(()),
            Err(error) => return Err(backend(format!("listing versions in {bucket}"))(error)),
        };
        let mut targets = Vec::new();
        for version in out.versions() {
            if let Some(key) = version.key() {
                targets.push((key.to_owned(), version.version_id().map(str::to_owned)));
            }
        }
        for marker in out.delete_markers() {
            if let Some(key) = marker.key() {
                targets.push((key.to_owned(), marker.version_id().map(str::to_owned)));
            }
        }
        if targets.is_empty() {
            // Unversioned buckets list their objects here too; check plainly.
            let plain = client
                .list_objects_v2()
                .bucket(bucket)
                .send()
                .await
                .map_err(backend(format!("listing {bucket}")))?;
            for object in plain.contents() {
                if let Some(key) = object.key() {
                    targets.push((key.to_owned(), None));
                }
            }
        }
        if targets.is_empty() {
            break;
        }
        for chunk in targets.chunks(1000) {
            let mut objects = Vec::with_capacity(chunk.len());
            for (key, version) in chunk {
                objects.push(
                    ObjectIdentifier::builder()
                        .key(key)
                        .set_version_id(version.clone().filter(|v| v != "null"))
                        .build()
                        .map_err(|error| {
                            StoreError::Backend(format!("building a delete request: {error}"))
                        })?,
                );
            }
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|error| {
                    StoreError::Backend(format!("building a delete request: {error}"))
                })?;
            client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(backend(format!("deleting objects in {bucket}")))?;
        }
    }
    match client.delete_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(error) if code(&error) == Some("NoSuchBucket") => Ok(()),
        Err(error) => Err(backend(format!("deleting bucket {bucket}"))(error)),
    }
}

/// Creates a directory bucket: private, encrypted, TLS only, uploads expiring
/// after `retention_days`, EventBridge notifications on. Idempotent.
pub async fn create_directory_bucket(
    client: &Client,
    bucket: &str,
    retention_days: i32,
) -> StoreResult<()> {
    let mut create = client.create_bucket().bucket(bucket);
    let region = client
        .config()
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_default();
    if !region.is_empty() && region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => {}
        Err(error) if code(&error) == Some("BucketAlreadyOwnedByYou") => {}
        Err(error) => return Err(backend(format!("creating bucket {bucket}"))(error)),
    }
    client
        .put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(backend(format!("blocking public access to {bucket}")))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .map_err(|error| {
                    StoreError::Backend(format!("building encryption settings: {error}"))
                })?,
        )
        .build();
    client
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|error| {
                    StoreError::Backend(format!("building encryption settings: {error}"))
                })?,
        )
        .send()
        .await
        .map_err(backend(format!("setting encryption on {bucket}")))?;
    client
        .put_bucket_policy()
        .bucket(bucket)
        .policy(tls_only_policy(bucket))
        .send()
        .await
        .map_err(backend(format!("setting the policy of {bucket}")))?;
    let expire = LifecycleRule::builder()
        .id("expire-uploads")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .expiration(LifecycleExpiration::builder().days(retention_days).build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(1)
                .build(),
        )
        .build()
        .map_err(|error| StoreError::Backend(format!("building the lifecycle rule: {error}")))?;
    client
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(expire)
                .build()
                .map_err(|error| {
                    StoreError::Backend(format!("building the lifecycle rule: {error}"))
                })?,
        )
        .send()
        .await
        .map_err(backend(format!("setting the lifecycle of {bucket}")))?;
    client
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .event_bridge_configuration(EventBridgeConfiguration::builder().build())
                .build(),
        )
        .send()
        .await
        .map_err(backend(format!(
            "turning on EventBridge notifications for {bucket}"
        )))?;
    Ok(())
}

/// A bucket policy that refuses every request not made over TLS.
pub fn tls_only_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyWithoutTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    })
    .to_string()
}
