//! Helpers shared by the store tests: a store in a temporary data dir, and
//! plans made by the real reader and planner from CSV text.

#![allow(dead_code)]

use dsync_core::ids::SyncId;
use dsync_core::model::Directory;
use dsync_core::plan::{plan, Plan, PlanContext};
use dsync_core::ports::{DirectoryData, Syncs};
use dsync_core::report::{Counts, SyncRecord, SyncStatus};
use dsync_core::service::Services;
use dsync_core::snapshot::Snapshot;
use dsync_core::time::Timestamp;
use dsync_core::upload::{read_snapshot, ReadLimits, Upload};
use dsync_local::app::{LocalDeployment, SftpEndpoint};
use dsync_local::store::SqliteStore;

pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub deployment: LocalDeployment,
}

impl TestStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let deployment = LocalDeployment::open(dir.path(), SftpEndpoint::default()).unwrap();
        Self { dir, deployment }
    }

    pub fn store(&self) -> &SqliteStore {
        &self.deployment.store
    }

    pub fn services(&self) -> &Services {
        &self.deployment.services
    }

    pub async fn directory(&self, organization: &str) -> Directory {
        self.services()
            .create_directory(organization, "Test directory")
            .await
            .unwrap()
    }
}

/// `users.csv` text with users `1..=count`.
pub fn users_csv(count: usize) -> String {
    let mut text = String::from("user_id,first_name,last_name,email\n");
    for index in 1..=count {
        text.push_str(&format!(
            "{index},First{index},Last{index},user{index}@example.test\n"
        ));
    }
    text
}

pub fn snapshot(files: &[(&str, &str)]) -> Snapshot {
    let uploads = files
        .iter()
        .map(|(name, text)| Upload::new(*name, text.as_bytes()).unwrap())
        .collect();
    read_snapshot(uploads, &ReadLimits::default()).unwrap()
}

/// Plans `files` against the directory's stored state at `now`.
pub async fn plan_files(
    store: &SqliteStore,
    directory: &Directory,
    files: &[(&str, &str)],
    now: Timestamp,
    seed: &SyncId,
) -> Plan {
    let state = store.load_state(&directory.id).await.unwrap();
    let snapshot = snapshot(files);
    let context = PlanContext {
        directory,
        now,
        event_seed: seed.as_str().as_bytes(),
        approved: false,
    };
    plan(&state, &snapshot, &context)
}

pub fn record(
    directory: &Directory,
    id: SyncId,
    started_at: Timestamp,
    counts: Counts,
) -> SyncRecord {
    SyncRecord {
        object: "sync".to_owned(),
        id,
        directory_id: directory.id.clone(),
        status: SyncStatus::Applied,
        reason: None,
        files: Vec::new(),
        counts,
        errors: Vec::new(),
        warnings: Vec::new(),
        started_at,
        finished_at: started_at,
        resolved_at: None,
    }
}

/// Plans and commits `files` as one applied sync started now.
pub async fn commit_files(
    store: &SqliteStore,
    directory: &Directory,
    files: &[(&str, &str)],
) -> Plan {
    // The optimistic check wants the start after the previous commit's millisecond.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let started_at = Timestamp::now();
    let id = SyncId::generate();
    let plan = plan_files(store, directory, files, Timestamp::now(), &id).await;
    let record = record(directory, id, started_at, plan.counts.clone());
    store.commit_sync(&plan, &record).await.unwrap();
    plan
}

/// Writes an upload into the directory's folder and records it as completed,
/// as the SFTP backend does when a client closes the file.
pub async fn put_upload(test: &TestStore, directory: &Directory, name: &str, text: &str) {
    let folder = test.deployment.files.folder(directory).unwrap();
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(name);
    std::fs::write(&path, text).unwrap();
    let metadata = std::fs::metadata(&path).unwrap();
    let modified_ms = metadata
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let upload = dsync_local::store::CompletedUpload {
        path: name.to_owned(),
        size_bytes: metadata.len(),
        modified_ms,
    };
    test.store()
        .record_completed_upload(&directory.sftp_username, upload)
        .await
        .unwrap();
}
