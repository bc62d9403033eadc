//! Application services: the operations the CLI, the HTTP API and the Lambda
//! functions perform, written once over the ports.

use std::sync::Arc;

use crate::ids::{DirectoryId, KeyId, SyncId};
use crate::model::Directory;
use crate::ports::{FileStore, SftpAccounts, SshKeyRecord, Store, StoreError};
use crate::report::SyncRecord;
use crate::settings::DirectorySettings;

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

impl Services {
    /// Creates an unlinked directory with a generated SFTP username.
    pub async fn create_directory(&self, _organization_id: &str, _name: &str) -> Result<Directory, ServiceError> {
        unimplemented!("filled in by the local service work")
    }

    /// Validates and registers a key. The first key links the directory,
    /// creates the SFTP account and emits `dsync.activated`.
    pub async fn add_key(&self, _directory: &DirectoryId, _key_line: &str) -> Result<SshKeyRecord, ServiceError> {
        unimplemented!("filled in by the local service work")
    }

    pub async fn remove_key(&self, _directory: &DirectoryId, _key: &KeyId) -> Result<(), ServiceError> {
        unimplemented!("filled in by the local service work")
    }

    pub async fn update_settings(&self, _directory: &DirectoryId, _settings: DirectorySettings) -> Result<Directory, ServiceError> {
        unimplemented!("filled in by the local service work")
    }

    /// Offboards a directory: marks it deleting, emits `dsync.deleted`, removes
    /// the SFTP account, the files and the stored data. Safe to run again
    /// after a crash.
    pub async fn delete_directory(&self, _directory: &DirectoryId) -> Result<(), ServiceError> {
        unimplemented!("filled in by the local service work")
    }

    /// Reconciles a directory from its newest upload of each kind.
    pub async fn reconcile(&self, _directory: &DirectoryId) -> Result<SyncRecord, ServiceError> {
        unimplemented!("filled in by the local service work")
    }

    pub async fn approve_sync(&self, _sync: &SyncId) -> Result<SyncRecord, ServiceError> {
        unimplemented!("filled in by the local service work")
    }

    pub async fn discard_sync(&self, _sync: &SyncId) -> Result<SyncRecord, ServiceError> {
        unimplemented!("filled in by the local service work")
    }
}
