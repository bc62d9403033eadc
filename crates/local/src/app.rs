//! Wiring of the local deployment: the store, the file store and the
//! services over them, the SFTP backend, the per-directory sync worker and
//! the periodic jobs `dsync serve` runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dsync_core::ids::DirectoryId;
use dsync_core::model::DirectoryStatus;
use dsync_core::ports::{
    Directories, DirectoryFilter, Order, PageRequest, SshKeys, StoreResult, StoredFile,
};
use dsync_core::service::{ReconcileOutcome, ServiceError, Services};
use dsync_core::time::Timestamp;
use dsync_core::upload::file_kind;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::files::{LocalAccounts, LocalFiles, UploadFilter};
use crate::sftp::SftpBackend;
use crate::store::{CompletedUpload, SqliteStore, EVENT_RETENTION_DAYS};

/// The SFTP address operators hand to organizations, as `dsync serve` last
/// recorded it in the data dir.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SftpEndpoint {
    pub host: String,
    pub port: u16,
}

impl Default for SftpEndpoint {
    /// Returns the default `--sftp-listen` of `dsync serve`.
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 2222,
        }
    }
}

impl SftpEndpoint {
    pub fn from_addr(addr: SocketAddr) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("sftp-endpoint.json")
    }

    /// Reads the endpoint recorded by `dsync serve`, or the default when the
    /// server never ran on this data dir.
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        match std::fs::read(Self::path(data_dir)) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes)?),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(error.into()),
        }
    }

    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        std::fs::write(Self::path(data_dir), serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

/// Returns the SFTP server's host key file inside a data dir.
pub fn host_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("ssh_host_ed25519_key")
}

/// Keeps only files that a sync may read: those the SFTP server reported
/// complete (same size and modification time as then).
///
/// The SFTP server writes every upload to a staging file outside the jail
/// and renames it into place on a successful close, so a visible file is
/// always a complete one, and a re-upload in progress leaves the previous
/// file readable. Files in progress are therefore not filtered out: doing so
/// would make the sync fall back to an older file of the same kind and roll
/// the directory back.
///
/// NOTE: between the rename and the completion record (a few milliseconds)
/// the new file does not match its record yet; a periodic re-sync landing in
/// that window reads the older file of that kind, and the reconcile that the
/// completion triggers right after restores the newest state.
pub struct CompletedUploadsFilter {
    store: SqliteStore,
}

impl CompletedUploadsFilter {
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }
}

#[async_trait]
impl UploadFilter for CompletedUploadsFilter {
    async fn retain_readable(
        &self,
        username: &str,
        mut files: Vec<StoredFile>,
    ) -> StoreResult<Vec<StoredFile>> {
        let completed = self.store.completed_uploads(username).await?;
        files.retain(|file| completed.iter().any(|upload| upload.matches(file)));
        Ok(files)
    }
}

/// The ports of one data dir wired into [`Services`].
#[derive(Clone)]
pub struct LocalDeployment {
    pub data_dir: PathBuf,
    pub store: SqliteStore,
    pub files: LocalFiles,
    pub services: Services,
    pub endpoint: SftpEndpoint,
}

impl LocalDeployment {
    /// Opens the data dir (creating it and its database when missing).
    pub fn open(data_dir: &Path, endpoint: SftpEndpoint) -> anyhow::Result<Self> {
        let store = SqliteStore::open_data_dir(data_dir)?;
        let filter = CompletedUploadsFilter::new(store.clone());
        let files = LocalFiles::new(data_dir).with_filter(Arc::new(filter));
        let accounts = LocalAccounts::new(files.clone(), endpoint.host.clone(), endpoint.port);
        let services = Services {
            store: Arc::new(store.clone()),
            files: Arc::new(files.clone()),
            accounts: Arc::new(accounts),
        };
        Ok(Self {
            data_dir: data_dir.to_owned(),
            store,
            files,
            services,
            endpoint,
        })
    }
}

/// Per-directory state of the sync worker.
#[derive(Default)]
struct Slot {
    /// Another reconcile was requested while one ran; run once more after it.
    again: bool,
    /// When the last upload of the directory completed; the reconcile waits
    /// until the debounce period has passed since then.
    last_upload: Option<Instant>,
}

/// Runs reconciles, one at a time per directory, on background tasks.
///
/// Requests for a directory whose reconcile is running are coalesced into
/// one follow-up run, which reads the then-newest files. Reconciles of
/// different directories run in parallel. After an upload the worker waits
/// for a quiet period (the debounce) with no further upload to the
/// directory, so users.csv, groups.csv and user_groups.csv sent one after
/// another become one sync instead of three partial ones.
#[derive(Clone)]
pub struct SyncWorker {
    services: Services,
    running: Arc<Mutex<HashMap<DirectoryId, Slot>>>,
    debounce: Duration,
}

impl SyncWorker {
    /// Default quiet period after an upload before the directory is synced.
    pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(2);

    /// Creates a worker with no debounce; see [`SyncWorker::with_debounce`].
    pub fn new(services: Services) -> Self {
        Self {
            services,
            running: Arc::default(),
            debounce: Duration::ZERO,
        }
    }

    /// Sets the quiet period that follows an upload before its reconcile.
    pub fn with_debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// Asks for a reconcile of `directory`. Returns at once.
    pub fn request(&self, directory: DirectoryId) {
        self.enqueue(directory, false);
    }

    /// Asks for a reconcile of `directory` after an upload to it completed.
    /// The reconcile starts once no upload has completed for the debounce
    /// period. Returns at once.
    pub fn request_after_upload(&self, directory: DirectoryId) {
        self.enqueue(directory, true);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DirectoryId, Slot>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn enqueue(&self, directory: DirectoryId, upload: bool) {
        {
            let mut running = self.lock();
            let upload_at = upload.then(Instant::now);
            if let Some(slot) = running.get_mut(&directory) {
                slot.again = true;
                if upload_at.is_some() {
                    slot.last_upload = upload_at;
                }
                return;
            }
            running.insert(
                directory.clone(),
                Slot {
                    again: false,
                    last_upload: upload_at,
                },
            );
        }

        let worker = self.clone();
        tokio::spawn(async move {
            loop {
                worker.quiet_period(&directory).await;
                worker.reconcile_and_log(&directory).await;

                let mut running = worker.lock();
                let again = running
                    .get_mut(&directory)
                    .map(|slot| std::mem::take(&mut slot.again));
                if again != Some(true) {
                    running.remove(&directory);
                    break;
                }
            }
        });
    }

    /// Waits until the debounce period has passed since the directory's
    /// last upload; another upload meanwhile extends the wait.
    async fn quiet_period(&self, directory: &DirectoryId) {
        loop {
            let wake = {
                let mut running = self.lock();
                let Some(slot) = running.get_mut(directory) else {
                    return;
                };
                match slot.last_upload.map(|at| at + self.debounce) {
                    Some(wake) if wake > Instant::now() => wake,
                    _ => {
                        // The reconcile about to start reads the newest files,
                        // so requests made until now need no follow-up run.
                        slot.again = false;
                        return;
                    }
                }
            };
            tokio::time::sleep_until(wake.into()).await;
        }
    }

    /// True while any reconcile runs or waits.
    pub fn is_busy(&self) -> bool {
        !self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_empty()
    }

    /// Waits until no reconcile runs, or `limit` passes.
    pub async fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.is_busy() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn reconcile_and_log(&self, directory: &DirectoryId) {
        let started = Instant::now();
        let outcome = self.services.reconcile_outcome(directory).await;
        let duration_ms = started.elapsed().as_millis() as u64;

        match outcome {
            Ok(ReconcileOutcome::NoUploads) => {
                tracing::debug!(directory_id = %directory, duration_ms, "sync skipped: no complete upload");
            }
            Ok(ReconcileOutcome::Unchanged(record)) => {
                tracing::debug!(directory_id = %directory, last_sync_id = %record.id, duration_ms, "sync skipped: uploads unchanged");
            }
            Ok(ReconcileOutcome::Synced {
                record,
                report_error,
            }) => {
                let files: Vec<&str> = record.files.iter().map(|file| file.name.as_str()).collect();
                tracing::info!(
                    directory_id = %directory,
                    sync_id = %record.id,
                    files = %files.join(","),
                    created = record.counts.created,
                    updated = record.counts.updated,
                    deleted = record.counts.deleted,
                    unchanged = record.counts.unchanged,
                    skipped_rows = record.counts.skipped_rows,
                    errors = record.errors.len(),
                    warnings = record.warnings.len(),
                    duration_ms,
                    outcome = record.status.as_str(),
                    reason = record.reason.as_deref().unwrap_or(""),
                    "sync finished"
                );
                if let Some(error) = report_error {
                    tracing::error!(directory_id = %directory, sync_id = %record.id, %error, "cannot write the sync report to results/");
                }
            }
            Err(ServiceError::NotFound { .. }) => {
                tracing::debug!(directory_id = %directory, "sync skipped: directory no longer exists");
            }
            Err(error) => {
                tracing::error!(directory_id = %directory, duration_ms, %error, "sync failed");
            }
        }
    }
}

/// The embedded SFTP server's view of dsync.
pub struct LocalSftpBackend {
    deployment: LocalDeployment,
    worker: SyncWorker,
}

impl LocalSftpBackend {
    pub fn new(deployment: LocalDeployment, worker: SyncWorker) -> Self {
        Self { deployment, worker }
    }
}

#[async_trait]
impl SftpBackend for LocalSftpBackend {
    async fn authorize(&self, username: &str, fingerprint: &str) -> Option<PathBuf> {
        let store = &self.deployment.store;
        let directory = match store.find_directory_by_username(username).await {
            Ok(Some(directory)) => directory,
            Ok(None) => return None,
            Err(error) => {
                tracing::error!(%error, "cannot look up the SFTP user's directory");
                return None;
            }
        };
        if directory.status != DirectoryStatus::Linked {
            return None;
        }
        let key = match store.find_key_by_fingerprint(fingerprint).await {
            Ok(key) => key?,
            Err(error) => {
                tracing::error!(directory_id = %directory.id, %error, "cannot look up the SSH key");
                return None;
            }
        };
        if key.directory_id != directory.id {
            return None;
        }

        let folder = match self.deployment.files.folder(&directory) {
            Ok(folder) => folder,
            Err(error) => {
                tracing::error!(directory_id = %directory.id, %error, "invalid upload folder");
                return None;
            }
        };
        if let Err(error) = std::fs::create_dir_all(&folder) {
            tracing::error!(directory_id = %directory.id, %error, "cannot create the upload folder");
            return None;
        }
        Some(folder)
    }

    async fn upload_completed(&self, username: &str, path: &str) {
        // Temporary names (`users.csv.filepart`) and other files are not
        // uploads; their rename into a recognised name calls again.
        if file_kind(path).is_none() {
            return;
        }
        let directory = match self
            .deployment
            .store
            .find_directory_by_username(username)
            .await
        {
            Ok(Some(directory)) => directory,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%error, "cannot look up the directory of a completed upload");
                return;
            }
        };

        let Ok(folder) = self.deployment.files.folder(&directory) else {
            return;
        };
        let metadata = match std::fs::symlink_metadata(folder.join(path)) {
            Ok(metadata) if metadata.is_file() => metadata,
            Ok(_) => return,
            Err(error) => {
                tracing::error!(directory_id = %directory.id, %error, "cannot read a completed upload");
                return;
            }
        };
        let modified_ms = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |duration| duration.as_millis() as i64);
        let upload = CompletedUpload {
            path: path.to_owned(),
            size_bytes: metadata.len(),
            modified_ms,
        };
        if let Err(error) = self
            .deployment
            .store
            .record_completed_upload(username, upload)
            .await
        {
            tracing::error!(directory_id = %directory.id, %error, "cannot record a completed upload");
            return;
        }

        self.worker.request_after_upload(directory.id);
    }
}

/// Lists the id of every directory that accepts uploads.
async fn linked_directories(store: &SqliteStore) -> StoreResult<Vec<DirectoryId>> {
    let mut ids = Vec::new();
    let mut page = PageRequest {
        limit: 100,
        order: Order::Asc,
        before: None,
        after: None,
    };
    loop {
        let directories = store
            .list_directories(&DirectoryFilter::default(), &page)
            .await?;
        ids.extend(
            directories
                .data
                .iter()
                .filter(|directory| directory.status == DirectoryStatus::Linked)
                .map(|directory| directory.id.clone()),
        );
        match directories.after {
            Some(after) => page.after = Some(after),
            None => return Ok(ids),
        }
    }
}

/// Resolves when `shutdown` turns true.
pub async fn stopped(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Requests a reconcile of every linked directory now and every `interval`,
/// so a sync that failed (or was missed while the server was down) catches up.
pub async fn run_periodic_resync(
    store: SqliteStore,
    worker: SyncWorker,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = stopped(shutdown);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticker.tick() => {}
        }
        match linked_directories(&store).await {
            Ok(ids) => {
                tracing::debug!(directories = ids.len(), "periodic re-sync");
                for id in ids {
                    worker.request(id);
                }
            }
            Err(error) => tracing::error!(%error, "periodic re-sync cannot list directories"),
        }
    }
}

/// Deletes events older than the retention period now and every `interval`.
pub async fn run_retention(
    store: SqliteStore,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = stopped(shutdown);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticker.tick() => {}
        }
        let cutoff = Timestamp::from_millis(
            Timestamp::now().millis() - EVENT_RETENTION_DAYS * 24 * 60 * 60 * 1000,
        );
        match store.purge_events_before(cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(
                deleted,
                retention_days = EVENT_RETENTION_DAYS,
                "purged old events"
            ),
            Err(error) => tracing::error!(%error, "event retention purge failed"),
        }
    }
}
