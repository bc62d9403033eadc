//! Reconciling a directory from its newest uploads, and resolving held syncs.
//!
//! A reconcile lists the directory's uploads, reads the newest file of each
//! kind, plans against the stored state and then commits (applied), or saves
//! the record alone (held, rejected, failed). The report is written back to
//! the folder's `results/`.
//!
//! Callers serialise reconciles of one directory: the local app runs one at
//! a time per directory, the AWS ingest function holds a lease. The store's
//! `commit_sync` still rejects a plan made from stale state, and the
//! reconcile then plans again.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::ids::SyncId;
use crate::model::Directory;
use crate::plan::{plan, PlanContext, PlanStatus};
use crate::ports::{Order, PageRequest, StoreError, StoredFile};
use crate::report::{Counts, FileKind, FileSummary, SyncRecord, SyncStatus};
use crate::service::{ServiceError, Services};
use crate::snapshot::Snapshot;
use crate::time::Timestamp;
use crate::upload::{newest_per_kind, read_snapshot, ReadLimits, Upload};

/// How many times a reconcile re-plans after `commit_sync` reports that
/// another writer changed the directory first.
const COMMIT_ATTEMPTS: usize = 3;

/// The result of one reconcile.
#[derive(Debug)]
pub enum ReconcileOutcome {
    /// The folder contains no recognised upload, so nothing was written.
    NoUploads,
    /// The newest uploads (same names and checksums) were already processed
    /// and planning them again changes nothing; nothing was written. Carries
    /// the record that processed them.
    Unchanged(SyncRecord),
    /// A new sync record was written (applied, held, rejected or failed).
    Synced {
        record: SyncRecord,
        /// Set when the report could not be written to `results/`. The sync
        /// itself is committed or saved regardless.
        report_error: Option<StoreError>,
    },
}

/// Returns a new sync id that sorts after every id this process generated
/// before, even within one millisecond, because "the newest sync" of a
/// directory is the one with the greatest id.
fn next_sync_id() -> SyncId {
    static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let generated = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .generate();
    match generated {
        Ok(ulid) => SyncId::from_ulid(ulid),
        // The random part overflowed within one millisecond: fall back to a fresh id.
        Err(_) => SyncId::generate(),
    }
}

/// Returns the name of a sync report inside `results/`: the sync's finish time, then
/// its id, so a folder listing sorts by time.
pub fn report_file_name(record: &SyncRecord) -> String {
    let time = record
        .finished_at
        .as_datetime()
        .format("%Y%m%dT%H%M%S%.3fZ");
    format!("{time}-{}.json", record.id)
}

/// Returns the files a record read as sorted (kind, name, checksum) triples.
fn file_signature(files: &[FileSummary]) -> Vec<(FileKind, &str, &str)> {
    let mut signature: Vec<(FileKind, &str, &str)> = files
        .iter()
        .map(|file| (file.kind, file.name.as_str(), file.sha256.as_str()))
        .collect();
    signature.sort();
    signature
}

/// True when the chosen uploads are exactly the files `record` read: the same
/// kinds and names, and the same SHA-256 of their bytes. Any read error
/// returns false, so the full read that follows records it.
async fn files_match_record(
    services: &Services,
    directory: &Directory,
    chosen: &BTreeMap<FileKind, StoredFile>,
    record: &SyncRecord,
) -> bool {
    let mut chosen_names: Vec<(FileKind, &str)> = chosen
        .iter()
        .map(|(kind, file)| (*kind, file.name.as_str()))
        .collect();
    let mut recorded_names: Vec<(FileKind, &str)> = record
        .files
        .iter()
        .map(|file| (file.kind, file.name.as_str()))
        .collect();
    chosen_names.sort();
    recorded_names.sort();
    if chosen_names != recorded_names {
        return false;
    }

    for file in &record.files {
        let Ok(mut reader) = services.files.open_upload(directory, &file.name).await else {
            return false;
        };
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(count) => hasher.update(&buffer[..count]),
                Err(_) => return false,
            }
        }
        if hex::encode(hasher.finalize()) != file.sha256 {
            return false;
        }
    }
    true
}

/// A sync read failure that is not a problem of the file's content (the file
/// vanished, the disk failed); the sync is recorded as failed.
#[derive(Debug)]
struct ReadFailure(String);

/// Opens and reads the chosen uploads into a snapshot.
async fn read_chosen(
    services: &Services,
    directory: &Directory,
    chosen: &BTreeMap<FileKind, StoredFile>,
) -> Result<Snapshot, ReadFailure> {
    let mut uploads = Vec::new();
    for (kind, file) in chosen {
        let reader = services
            .files
            .open_upload(directory, &file.name)
            .await
            .map_err(|error| ReadFailure(format!("cannot open {}: {error}", file.name)))?;
        uploads
            .push(Upload::with_kind(file.name.clone(), *kind, reader).size_bytes(file.size_bytes));
    }
    // NOTE: reading is blocking I/O and CPU work on the caller's task; the
    // local app runs each reconcile on its own task, so the API stays
    // responsive, but a very large file occupies one runtime worker meanwhile.
    read_snapshot(uploads, &ReadLimits::default()).map_err(|error| ReadFailure(error.to_string()))
}

fn new_record(directory: &Directory, id: SyncId, started_at: Timestamp) -> SyncRecord {
    SyncRecord {
        object: "sync".to_owned(),
        id,
        directory_id: directory.id.clone(),
        status: SyncStatus::Failed,
        reason: None,
        files: Vec::new(),
        counts: Counts::default(),
        errors: Vec::new(),
        warnings: Vec::new(),
        started_at,
        finished_at: started_at,
        resolved_at: None,
    }
}

/// Returns the newest record of a directory that is not `failed` (a failed sync is
/// retried, so it never makes the next reconcile a no-op).
async fn last_settled_record(
    services: &Services,
    directory: &Directory,
) -> Result<Option<SyncRecord>, ServiceError> {
    let mut page = PageRequest {
        limit: 100,
        order: Order::Desc,
        before: None,
        after: None,
    };
    loop {
        let records = services.store.list_syncs(&directory.id, &page).await?;
        if let Some(record) = records
            .data
            .iter()
            .find(|record| record.status != SyncStatus::Failed)
        {
            return Ok(Some(record.clone()));
        }
        match records.after {
            Some(after) => page.after = Some(after),
            None => return Ok(None),
        }
    }
}

async fn write_report(
    services: &Services,
    directory: &Directory,
    record: &SyncRecord,
) -> Option<StoreError> {
    let body = match serde_json::to_vec_pretty(record) {
        Ok(body) => body,
        Err(error) => {
            return Some(StoreError::Backend(format!(
                "cannot encode sync report: {error}"
            )))
        }
    };
    services
        .files
        .write_result(directory, &report_file_name(record), &body)
        .await
        .err()
}

impl Services {
    /// Reconciles a directory and reports whether anything was written.
    pub async fn reconcile_outcome(
        &self,
        directory: &crate::ids::DirectoryId,
    ) -> Result<ReconcileOutcome, ServiceError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.reconcile_once(directory).await {
                Err(ServiceError::Store(StoreError::Conflict(_))) if attempt < COMMIT_ATTEMPTS => {
                    // The competing commit is stamped with a millisecond at or
                    // before now. Starting the retry in a later millisecond
                    // keeps the store's check from reporting it again.
                    let failed_at = Timestamp::now();
                    while Timestamp::now() <= failed_at {
                        std::thread::yield_now();
                    }
                }
                other => return other,
            }
        }
    }

    async fn reconcile_once(
        &self,
        directory_id: &crate::ids::DirectoryId,
    ) -> Result<ReconcileOutcome, ServiceError> {
        // Taken before the state is loaded: commit_sync compares it with the
        // directory's last commit to detect a concurrent writer.
        let started_at = Timestamp::now();
        let directory = self.require_live_directory(directory_id).await?;

        let uploads = self.files.list_uploads(&directory).await?;
        let chosen = newest_per_kind(&uploads);
        if chosen.is_empty() {
            return Ok(ReconcileOutcome::NoUploads);
        }

        let sync_id = next_sync_id();
        let mut record = new_record(&directory, sync_id.clone(), started_at);

        // The periodic re-sync mostly finds the files of the last settled
        // sync. Hashing them is far cheaper than parsing, so that case stops
        // here. An applied sync is planned again only when the directory
        // (its settings, such as the inactive-user policy) changed after it.
        let last = last_settled_record(self, &directory).await?;
        if let Some(last) = &last {
            let settings_unchanged = directory.updated_at <= last.finished_at;
            let verdict_stands = last.status != SyncStatus::Applied || settings_unchanged;
            if verdict_stands && files_match_record(self, &directory, &chosen, last).await {
                return Ok(ReconcileOutcome::Unchanged(last.clone()));
            }
        }

        let snapshot = match read_chosen(self, &directory, &chosen).await {
            Ok(snapshot) => snapshot,
            Err(ReadFailure(reason)) => {
                record.status = SyncStatus::Failed;
                record.reason = Some(reason);
                record.finished_at = Timestamp::now();
                self.store.save_sync_record(&record).await?;
                let report_error = write_report(self, &directory, &record).await;
                return Ok(ReconcileOutcome::Synced {
                    record,
                    report_error,
                });
            }
        };

        // Same files as the last settled sync, read in full: a held, rejected
        // or discarded verdict would repeat, and an applied one is kept when
        // planning again changes nothing.
        let same_files = last
            .as_ref()
            .is_some_and(|last| file_signature(&last.files) == file_signature(&snapshot.files));
        if same_files {
            if let Some(last) = &last {
                if last.status != SyncStatus::Applied {
                    return Ok(ReconcileOutcome::Unchanged(last.clone()));
                }
            }
        }

        let state = self.store.load_state(&directory.id).await?;
        let context = PlanContext {
            directory: &directory,
            now: Timestamp::now(),
            event_seed: sync_id.as_str().as_bytes(),
            approved: false,
        };
        let plan = plan(&state, &snapshot, &context);
        drop(state);

        if same_files && plan.steps.is_empty() {
            if let Some(last) = last {
                return Ok(ReconcileOutcome::Unchanged(last));
            }
        }

        record.files = snapshot.files;
        record.errors = snapshot.errors;
        record.warnings = snapshot.warnings;
        record.counts = plan.counts.clone();
        record.counts.skipped_rows = snapshot.skipped_rows;
        // The planner's hold reason names the approve command with a
        // placeholder; the record carries the real id.
        record.reason = plan
            .reason
            .as_ref()
            .map(|reason| reason.replace("SYNC_ID", sync_id.as_str()));
        record.finished_at = Timestamp::now();
        record.status = match plan.status {
            PlanStatus::Applied => SyncStatus::Applied,
            PlanStatus::Held => SyncStatus::Held,
            PlanStatus::Rejected => SyncStatus::Rejected,
        };

        if record.status == SyncStatus::Applied {
            self.store.commit_sync(&plan, &record).await?;
        } else {
            self.store.save_sync_record(&record).await?;
        }

        let report_error = write_report(self, &directory, &record).await;
        write_superseded_reports(self, &directory, &record).await;
        Ok(ReconcileOutcome::Synced {
            record,
            report_error,
        })
    }
}

/// Rewrites the reports of the held syncs that the store marked discarded
/// ("superseded by sync ID") when `record` was applied or held. Best effort:
/// the store's records are the source of truth.
async fn write_superseded_reports(services: &Services, directory: &Directory, record: &SyncRecord) {
    if !matches!(record.status, SyncStatus::Applied | SyncStatus::Held) {
        return;
    }
    let reason = format!("superseded by sync {}", record.id);
    let mut page = PageRequest {
        limit: 100,
        order: Order::Desc,
        before: None,
        after: Some(record.id.to_string()),
    };
    loop {
        let Ok(records) = services.store.list_syncs(&directory.id, &page).await else {
            return;
        };
        for superseded in records.data.iter().filter(|older| {
            older.status == SyncStatus::Discarded
                && older.reason.as_deref() == Some(reason.as_str())
        }) {
            let _ = write_report(services, directory, superseded).await;
        }
        match records.after {
            Some(after) => page.after = Some(after),
            None => return,
        }
    }
}

async fn require_held(
    services: &Services,
    sync: &SyncId,
) -> Result<(SyncRecord, Directory), ServiceError> {
    let record = services
        .store
        .get_sync(sync)
        .await?
        .ok_or_else(|| ServiceError::NotFound {
            what: "sync",
            id: sync.to_string(),
        })?;
    if record.status != SyncStatus::Held {
        let why = match (&record.status, &record.reason) {
            (SyncStatus::Discarded, Some(reason)) => format!(" ({reason})"),
            _ => String::new(),
        };
        return Err(ServiceError::Conflict(format!(
            "sync {sync} is {}{why}; only a held sync can be approved or discarded",
            record.status.as_str()
        )));
    }
    let directory = services
        .require_live_directory(&record.directory_id)
        .await?;
    Ok((record, directory))
}

/// Applies a held sync: re-reads the same files, checks they are unchanged
/// and that no newer sync was applied, and commits the plan with the guard off.
pub(crate) async fn approve(
    services: &Services,
    sync: &SyncId,
) -> Result<SyncRecord, ServiceError> {
    let (held, directory) = require_held(services, sync).await?;

    // A newer applied sync means the held plan's starting point is gone.
    let newer = PageRequest {
        limit: 100,
        order: Order::Desc,
        before: Some(sync.to_string()),
        after: None,
    };
    let mut page = newer;
    loop {
        let records = services.store.list_syncs(&directory.id, &page).await?;
        if let Some(applied) = records
            .data
            .iter()
            .find(|record| record.status == SyncStatus::Applied)
        {
            return Err(ServiceError::Conflict(format!(
                "sync {} was applied after sync {sync} was held; the held sync is out of date, discard it",
                applied.id
            )));
        }
        match records.before {
            Some(before) => page.before = Some(before),
            None => break,
        }
    }

    // Re-read exactly the files the held sync read.
    let uploads = services.files.list_uploads(&directory).await?;
    let mut chosen = BTreeMap::new();
    for file in &held.files {
        let Some(stored) = uploads.iter().find(|upload| upload.name == file.name) else {
            return Err(ServiceError::Conflict(format!(
                "{} was removed from the SFTP folder after sync {sync} was held; upload it again",
                file.name
            )));
        };
        chosen.insert(file.kind, stored.clone());
    }
    let snapshot = read_chosen(services, &directory, &chosen)
        .await
        .map_err(|ReadFailure(reason)| ServiceError::Conflict(reason))?;
    if file_signature(&snapshot.files) != file_signature(&held.files) {
        return Err(ServiceError::Conflict(format!(
            "the files of sync {sync} changed after it was held (their SHA-256 differs); \
             the new upload is processed on its own, so discard this sync"
        )));
    }

    let state = services.store.load_state(&directory.id).await?;
    let now = Timestamp::now();
    let context = PlanContext {
        directory: &directory,
        now,
        event_seed: sync.as_str().as_bytes(),
        approved: true,
    };
    let plan = plan(&state, &snapshot, &context);
    drop(state);

    // started_at stays the hold time: commit_sync then also refuses the
    // approval when anything was committed to the directory since.
    let mut record = held;
    record.counts = plan.counts.clone();
    record.counts.skipped_rows = snapshot.skipped_rows;
    record.errors = snapshot.errors;
    record.warnings = snapshot.warnings;
    record.resolved_at = Some(now);
    record.finished_at = Timestamp::now();
    match plan.status {
        PlanStatus::Applied | PlanStatus::Held => {
            record.status = SyncStatus::Applied;
            record.reason = None;
            services
                .store
                .commit_sync(&plan, &record)
                .await
                .map_err(|error| match error {
                    StoreError::Conflict(message) => ServiceError::Conflict(format!(
                        "the directory changed after sync {sync} was held ({message}); discard it"
                    )),
                    other => ServiceError::Store(other),
                })?;
        }
        PlanStatus::Rejected => {
            record.status = SyncStatus::Rejected;
            record.reason = plan.reason.clone();
            services.store.save_sync_record(&record).await?;
        }
    }

    // The record in the store is the source of truth, so a report that cannot
    // be written does not fail the approval.
    let _ = write_report(services, &directory, &record).await;
    write_superseded_reports(services, &directory, &record).await;
    Ok(record)
}

/// Marks a held sync discarded; nothing is applied.
pub(crate) async fn discard(
    services: &Services,
    sync: &SyncId,
) -> Result<SyncRecord, ServiceError> {
    let (mut record, directory) = require_held(services, sync).await?;
    let now = Timestamp::now();
    record.status = SyncStatus::Discarded;
    record.resolved_at = Some(now);
    record.finished_at = now;
    services.store.save_sync_record(&record).await?;
    let _ = write_report(services, &directory, &record).await;
    Ok(record)
}
