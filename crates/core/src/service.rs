//! Application services: the operations the CLI, the HTTP API and the Lambda
//! functions perform, written once over the ports.

use std::sync::Arc;

use crate::event::{Event, EventKind};
use crate::ids::{DirectoryId, EventId, KeyId, SyncId};
use crate::keys::parse_public_key;
use crate::model::{Directory, DirectoryStatus};
use crate::ports::{EventQuery, FileStore, SftpAccounts, SshKeyRecord, Store, StoreError};
use crate::report::SyncRecord;
use crate::settings::DirectorySettings;
use crate::time::Timestamp;
use crate::wire;

pub use crate::sync::ReconcileOutcome;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{what} not found: {id}")]
    NotFound { what: &'static str, id: String },
    /// The request is valid JSON but breaks a rule; `field` names the input.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The ports one deployment wires together.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub files: Arc<dyn FileStore>,
    pub accounts: Arc<dyn SftpAccounts>,
}

/// Longest accepted organization id and directory name, in bytes.
const MAX_NAME_BYTES: usize = 256;

fn required_text(field: &str, value: &str) -> Result<String, ServiceError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ServiceError::Invalid {
            field: field.to_owned(),
            message: "must not be empty".to_owned(),
        });
    }
    if trimmed.len() > MAX_NAME_BYTES {
        return Err(ServiceError::Invalid {
            field: field.to_owned(),
            message: format!("must be at most {MAX_NAME_BYTES} bytes"),
        });
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ServiceError::Invalid {
            field: field.to_owned(),
            message: "must not contain control characters".to_owned(),
        });
    }
    Ok(trimmed.to_owned())
}

impl Services {
    /// Reads a directory or fails with `NotFound`.
    pub(crate) async fn require_directory(
        &self,
        id: &DirectoryId,
    ) -> Result<Directory, ServiceError> {
        self.store
            .get_directory(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                what: "directory",
                id: id.to_string(),
            })
    }

    /// Reads a directory that is not being offboarded.
    pub(crate) async fn require_live_directory(
        &self,
        id: &DirectoryId,
    ) -> Result<Directory, ServiceError> {
        let directory = self.require_directory(id).await?;
        if directory.status == DirectoryStatus::Deleting {
            return Err(ServiceError::Conflict(format!(
                "directory {id} is being deleted"
            )));
        }
        Ok(directory)
    }

    /// Returns true when the log contains an event of `kind` for the directory.
    async fn has_event(
        &self,
        directory: &DirectoryId,
        kind: EventKind,
    ) -> Result<bool, ServiceError> {
        let query = EventQuery {
            kinds: vec![kind],
            directory_id: Some(directory.clone()),
            limit: 1,
            ..EventQuery::default()
        };
        Ok(!self.store.list_events(&query).await?.data.is_empty())
    }

    fn directory_event(kind: EventKind, directory: &Directory) -> Event {
        Event {
            id: EventId::generate(),
            event: kind,
            directory_id: Some(directory.id.clone()),
            organization_id: Some(directory.organization_id.clone()),
            data: wire::directory_event_json(directory),
            created_at: Timestamp::now(),
        }
    }

    /// Creates an unlinked directory with a generated SFTP username.
    ///
    /// The username is `d-` and the directory id's ULID in lowercase, so it
    /// is unique, stable and safe as a folder name.
    pub async fn create_directory(
        &self,
        organization_id: &str,
        name: &str,
    ) -> Result<Directory, ServiceError> {
        let organization_id = required_text("organization_id", organization_id)?;
        let name = required_text("name", name)?;

        let id = DirectoryId::generate();
        let ulid = id.ulid().map(|ulid| ulid.to_string()).unwrap_or_default();
        let external_key = EventId::generate()
            .ulid()
            .map(|ulid| ulid.to_string().to_lowercase())
            .unwrap_or_default();
        let now = Timestamp::now();
        let directory = Directory {
            id,
            organization_id,
            external_key,
            name,
            status: DirectoryStatus::Unlinked,
            domain: None,
            sftp_username: format!("d-{}", ulid.to_lowercase()),
            settings: DirectorySettings::default(),
            created_at: now,
            updated_at: now,
        };
        self.store.create_directory(&directory).await?;
        Ok(directory)
    }

    /// Validates and registers a key. The first key links the directory,
    /// creates the SFTP account and emits `dsync.activated`.
    pub async fn add_key(
        &self,
        directory: &DirectoryId,
        key_line: &str,
    ) -> Result<SshKeyRecord, ServiceError> {
        let mut directory = self.require_live_directory(directory).await?;
        let key = parse_public_key(key_line).map_err(|error| ServiceError::Invalid {
            field: "public_key".to_owned(),
            message: error.to_string(),
        })?;

        if let Some(existing) = self.store.find_key_by_fingerprint(&key.fingerprint).await? {
            let owner = if existing.directory_id == directory.id {
                "this directory"
            } else {
                "another directory"
            };
            return Err(ServiceError::Conflict(format!(
                "the key {} is already registered to {owner}; each key belongs to one directory",
                key.fingerprint
            )));
        }

        let record = SshKeyRecord {
            id: KeyId::generate(),
            directory_id: directory.id.clone(),
            key_type: key.key_type.as_str().to_owned(),
            public_key: key.canonical_line.clone(),
            comment: key.comment.clone(),
            fingerprint: key.fingerprint.clone(),
            created_at: Timestamp::now(),
        };

        self.accounts.ensure_account(&directory).await?;
        self.store.add_key(&record).await?;
        self.accounts.add_key(&directory, &record).await?;

        // Status first, then the event, guarded by a look at the log: a crash
        // between the two is repaired by the next key added, and a retry never
        // emits `dsync.activated` twice for one activation.
        let first_key = directory.status == DirectoryStatus::Unlinked;
        if first_key {
            directory.status = DirectoryStatus::Linked;
            directory.updated_at = Timestamp::now();
            self.store.update_directory(&directory).await?;
        }
        if first_key || !self.has_event(&directory.id, EventKind::Activated).await? {
            let event = Self::directory_event(EventKind::Activated, &directory);
            self.store.append_events(&[event]).await?;
        }
        Ok(record)
    }

    /// Removes a key. Removing the last key unlinks the directory: uploads
    /// stop until a key is added again.
    pub async fn remove_key(
        &self,
        directory: &DirectoryId,
        key: &KeyId,
    ) -> Result<(), ServiceError> {
        let mut directory = self.require_live_directory(directory).await?;
        let keys = self.store.list_keys(&directory.id).await?;
        let Some(record) = keys.iter().find(|record| &record.id == key) else {
            return Err(ServiceError::NotFound {
                what: "key",
                id: key.to_string(),
            });
        };

        self.accounts.remove_key(&directory, record).await?;
        if !self.store.remove_key(&directory.id, key).await? {
            return Err(ServiceError::NotFound {
                what: "key",
                id: key.to_string(),
            });
        }

        if keys.len() == 1 && directory.status == DirectoryStatus::Linked {
            directory.status = DirectoryStatus::Unlinked;
            directory.updated_at = Timestamp::now();
            self.store.update_directory(&directory).await?;
        }
        Ok(())
    }

    pub async fn update_settings(
        &self,
        directory: &DirectoryId,
        settings: DirectorySettings,
    ) -> Result<Directory, ServiceError> {
        let mut directory = self.require_live_directory(directory).await?;
        if settings.deletion_threshold_percent > 100 {
            return Err(ServiceError::Invalid {
                field: "deletion_threshold_percent".to_owned(),
                message: "must be a percentage from 0 to 100".to_owned(),
            });
        }
        directory.settings = settings;
        directory.updated_at = Timestamp::now();
        self.store.update_directory(&directory).await?;
        Ok(directory)
    }

    /// Offboards a directory: marks it deleting, emits `dsync.deleted`, removes
    /// the SFTP account, the files and the stored data. Safe to run again
    /// after a crash.
    ///
    /// Each step is idempotent and runs in this order, so a retry after a
    /// crash at any point finishes the job: the `deleting` status stops new
    /// keys and syncs first; `dsync.deleted` is appended only when the log
    /// does not hold it yet; the account, the files and the rows go last.
    pub async fn delete_directory(&self, directory: &DirectoryId) -> Result<(), ServiceError> {
        let mut directory = self.require_directory(directory).await?;

        if directory.status != DirectoryStatus::Deleting {
            directory.status = DirectoryStatus::Deleting;
            directory.updated_at = Timestamp::now();
            self.store.update_directory(&directory).await?;
        }

        if !self.has_event(&directory.id, EventKind::Deleted).await? {
            let event = Self::directory_event(EventKind::Deleted, &directory);
            self.store.append_events(&[event]).await?;
        }

        self.accounts.delete_account(&directory).await?;
        self.files.delete_all(&directory).await?;
        self.store.purge_directory(&directory.id).await?;
        Ok(())
    }

    /// Reconciles a directory from its newest upload of each kind.
    ///
    /// Returns the new sync record, or the previous one when the newest
    /// uploads were already processed (nothing is written then). Fails with
    /// `NotFound` when the folder contains no recognised upload.
    pub async fn reconcile(&self, directory: &DirectoryId) -> Result<SyncRecord, ServiceError> {
        match self.reconcile_outcome(directory).await? {
            ReconcileOutcome::NoUploads => Err(ServiceError::NotFound {
                what: "upload (users.csv, groups.csv or user_groups.csv) for directory",
                id: directory.to_string(),
            }),
            ReconcileOutcome::Unchanged(record) => Ok(record),
            ReconcileOutcome::Synced { record, .. } => Ok(record),
        }
    }

    pub async fn approve_sync(&self, sync: &SyncId) -> Result<SyncRecord, ServiceError> {
        crate::sync::approve(self, sync).await
    }

    pub async fn discard_sync(&self, sync: &SyncId) -> Result<SyncRecord, ServiceError> {
        crate::sync::discard(self, sync).await
    }
}
