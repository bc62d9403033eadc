//! SFTP accounts on AWS Transfer Family: one service-managed user per
//! directory, jailed by a logical home directory to the directory's bucket.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_transfer::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_transfer::types::{HomeDirectoryMapEntry, HomeDirectoryType};
use aws_sdk_transfer::Client;
use dsync_core::model::Directory;
use dsync_core::ports::{SftpAccounts, SshKeyRecord, StoreError, StoreResult};

use crate::dynamo::DynamoStore;
use crate::items::{dir_pk, get_s, item, s};
use crate::s3::create_directory_bucket;
use crate::settings::AwsSettings;

fn code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

fn backend<E: ProvideErrorMetadata, R>(what: String) -> impl FnOnce(SdkError<E, R>) -> StoreError {
    move |error| {
        let detail = match &error {
            SdkError::ServiceError(service) => format!(
                "{}: {}",
                service.err().code().unwrap_or("error"),
                service.err().message().unwrap_or("")
            ),
            other => format!("{other}"),
        };
        StoreError::Backend(format!("Transfer Family {what} failed: {detail}"))
    }
}

/// A bucket name from a cryptographically random id: the prefix, a hyphen
/// and 24 hex digits (96 random bits).
pub fn new_bucket_name(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}-{}", hex::encode(bytes))
}

/// The session policy of a directory's SFTP user: its own bucket, nothing else.
pub fn session_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListOwnBucket",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": format!("arn:aws:s3:::{bucket}")
            },
            {
                "Sid": "ReadWriteOwnObjects",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:GetObjectVersion", "s3:AbortMultipartUpload"],
                "Resource": format!("arn:aws:s3:::{bucket}/*")
            }
        ]
    })
    .to_string()
}

/// [`SftpAccounts`] on a Transfer Family server.
pub struct TransferAccounts {
    client: Client,
    s3: aws_sdk_s3::Client,
    store: Arc<DynamoStore>,
    settings: AwsSettings,
}

impl TransferAccounts {
    pub fn new(
        client: Client,
        s3: aws_sdk_s3::Client,
        store: Arc<DynamoStore>,
        settings: AwsSettings,
    ) -> Self {
        Self {
            client,
            s3,
            store,
            settings,
        }
    }

    fn key_sk(key: &SshKeyRecord) -> String {
        format!("TK#{}", key.id)
    }
}

#[async_trait]
impl SftpAccounts for TransferAccounts {
    async fn ensure_account(&self, directory: &Directory) -> StoreResult<()> {
        // The name is recorded before the bucket exists, so a retry after a
        // crash reuses it instead of leaving an orphan bucket.
        let bucket = match self.store.bucket_of(&directory.id).await? {
            Some(bucket) => bucket,
            None => {
                let bucket = new_bucket_name(&self.settings.bucket_prefix);
                self.store.set_bucket(&directory.id, &bucket).await?;
                bucket
            }
        };
        create_directory_bucket(&self.s3, &bucket, self.settings.upload_retention_days).await?;
        let mapping = HomeDirectoryMapEntry::builder()
            .entry("/")
            .target(format!("/{bucket}"))
            .build()
            .map_err(|error| {
                StoreError::Backend(format!("building the home directory mapping: {error}"))
            })?;
        let created = self
            .client
            .create_user()
            .server_id(&self.settings.transfer_server_id)
            .user_name(&directory.sftp_username)
            .role(&self.settings.transfer_role_arn)
            .home_directory_type(HomeDirectoryType::Logical)
            .home_directory_mappings(mapping)
            .policy(session_policy(&bucket))
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(error) if code(&error) == Some("ResourceExistsException") => Ok(()),
            Err(error) => Err(backend(format!(
                "creating user {}",
                directory.sftp_username
            ))(error)),
        }
    }

    async fn add_key(&self, directory: &Directory, key: &SshKeyRecord) -> StoreResult<()> {
        let imported = self
            .client
            .import_ssh_public_key()
            .server_id(&self.settings.transfer_server_id)
            .user_name(&directory.sftp_username)
            .ssh_public_key_body(&key.public_key)
            .send()
            .await
            .map_err(backend(format!(
                "importing key {} for user {}",
                key.id, directory.sftp_username
            )))?;
        // Transfer names keys by its own id; keep the mapping to remove it later.
        self.store
            .put_item(&item(&[
                ("pk", s(dir_pk(&directory.id))),
                ("sk", s(Self::key_sk(key))),
                ("transfer_key", s(imported.ssh_public_key_id)),
            ]))
            .await
    }

    async fn remove_key(&self, directory: &Directory, key: &SshKeyRecord) -> StoreResult<()> {
        let pk = dir_pk(&directory.id);
        let sk = Self::key_sk(key);
        let Some(mapping) = self.store.get_item(&pk, &sk).await? else {
            return Ok(());
        };
        let transfer_key = get_s(&mapping, "transfer_key")?.to_owned();
        let deleted = self
            .client
            .delete_ssh_public_key()
            .server_id(&self.settings.transfer_server_id)
            .user_name(&directory.sftp_username)
            .ssh_public_key_id(&transfer_key)
            .send()
            .await;
        match deleted {
            Ok(_) => {}
            Err(error) if code(&error) == Some("ResourceNotFoundException") => {}
            Err(error) => {
                return Err(backend(format!(
                    "deleting key {} of user {}",
                    key.id, directory.sftp_username
                ))(error))
            }
        }
        self.store.delete_item(&pk, &sk).await
    }

    async fn delete_account(&self, directory: &Directory) -> StoreResult<()> {
        let deleted = self
            .client
            .delete_user()
            .server_id(&self.settings.transfer_server_id)
            .user_name(&directory.sftp_username)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(error) if code(&error) == Some("ResourceNotFoundException") => Ok(()),
            Err(error) => Err(backend(format!(
                "deleting user {}",
                directory.sftp_username
            ))(error)),
        }
    }

    fn endpoint(&self) -> (String, u16) {
        (self.settings.sftp_host.clone(), self.settings.sftp_port)
    }
}
