//! The application services over the SQLite store and the filesystem file
//! store: reconcile, held syncs, offboarding.

mod support;

use std::time::Duration;

use dsync_core::event::EventKind;
use dsync_core::model::DirectoryStatus;
use dsync_core::ports::{
    Directories, DirectoryData, EventQuery, Events, Order, PageRequest, SshKeys, Syncs,
};
use dsync_core::report::SyncStatus;
use dsync_core::service::{ReconcileOutcome, ServiceError};
use support::{put_upload, users_csv, TestStore};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test";

async fn events_of(test: &TestStore, kind: EventKind) -> usize {
    let query = EventQuery {
        kinds: vec![kind],
        limit: 100,
        ..EventQuery::default()
    };
    test.store().list_events(&query).await.unwrap().data.len()
}

async fn sync_count(test: &TestStore, directory: &dsync_core::model::Directory) -> usize {
    let page = PageRequest {
        limit: 100,
        order: Order::Desc,
        before: None,
        after: None,
    };
    test.store()
        .list_syncs(&directory.id, &page)
        .await
        .unwrap()
        .data
        .len()
}

async fn synced(outcome: Result<ReconcileOutcome, ServiceError>) -> dsync_core::report::SyncRecord {
    match outcome.unwrap() {
        ReconcileOutcome::Synced {
            record,
            report_error,
        } => {
            assert!(
                report_error.is_none(),
                "report not written: {report_error:?}"
            );
            record
        }
        other => panic!("expected a new sync, got {other:?}"),
    }
}

#[tokio::test]
async fn reconcile_same_files_writes_nothing() {
    let test = TestStore::new();
    let directory = test.directory("org_idempotent").await;
    put_upload(&test, &directory, "users.csv", &users_csv(4)).await;

    let first = synced(test.services().reconcile_outcome(&directory.id).await).await;
    let events_after_first = events_of(&test, EventKind::UserCreated).await;
    let second = test
        .services()
        .reconcile_outcome(&directory.id)
        .await
        .unwrap();

    assert_eq!(first.status, SyncStatus::Applied);
    assert_eq!(first.counts.created, 4);
    assert!(matches!(second, ReconcileOutcome::Unchanged(ref record) if record.id == first.id));
    assert_eq!(
        events_of(&test, EventKind::UserCreated).await,
        events_after_first
    );
    assert_eq!(sync_count(&test, &directory).await, 1);
}

#[tokio::test]
async fn reconcile_writes_the_report_into_results() {
    let test = TestStore::new();
    let directory = test.directory("org_report").await;
    put_upload(&test, &directory, "users.csv", &users_csv(2)).await;

    let record = synced(test.services().reconcile_outcome(&directory.id).await).await;

    let results = test
        .deployment
        .files
        .folder(&directory)
        .unwrap()
        .join("results");
    let names: Vec<String> = std::fs::read_dir(&results)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(
        names[0].ends_with(&format!("-{}.json", record.id)),
        "{names:?}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join(&names[0])).unwrap()).unwrap();
    assert_eq!(report["status"], "applied");
}

#[tokio::test]
async fn reconcile_ignores_a_file_that_was_never_completed() {
    let test = TestStore::new();
    let directory = test.directory("org_partial").await;
    put_upload(&test, &directory, "users.csv", &users_csv(3)).await;
    synced(test.services().reconcile_outcome(&directory.id).await).await;

    // A newer file written without a completion record (a cut-off upload).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let folder = test.deployment.files.folder(&directory).unwrap();
    std::fs::write(
        folder.join("users_2.csv"),
        "user_id,first_name,last_name,email\n1,A,B,a@example.test\n",
    )
    .unwrap();
    let outcome = test
        .services()
        .reconcile_outcome(&directory.id)
        .await
        .unwrap();

    assert!(
        matches!(outcome, ReconcileOutcome::Unchanged(_)),
        "got {outcome:?}"
    );
    assert_eq!(
        test.store()
            .load_state(&directory.id)
            .await
            .unwrap()
            .users
            .len(),
        3
    );
}

async fn held_directory(
    test: &TestStore,
) -> (dsync_core::model::Directory, dsync_core::report::SyncRecord) {
    let directory = test.directory("org_guard").await;
    put_upload(test, &directory, "users.csv", &users_csv(12)).await;
    synced(test.services().reconcile_outcome(&directory.id).await).await;

    tokio::time::sleep(Duration::from_millis(5)).await;
    put_upload(
        test,
        &directory,
        "users_header_only.csv",
        "user_id,first_name,last_name,email\n",
    )
    .await;
    let held = synced(test.services().reconcile_outcome(&directory.id).await).await;
    (directory, held)
}

#[tokio::test]
async fn reconcile_header_only_file_is_held() {
    let test = TestStore::new();
    let (directory, held) = held_directory(&test).await;

    assert_eq!(held.status, SyncStatus::Held);
    assert!(held.reason.is_some());
    assert_eq!(
        test.store()
            .load_state(&directory.id)
            .await
            .unwrap()
            .users
            .len(),
        12
    );
    assert_eq!(events_of(&test, EventKind::UserDeleted).await, 0);

    // A periodic re-sync of the same files does not hold them again.
    let again = test
        .services()
        .reconcile_outcome(&directory.id)
        .await
        .unwrap();
    assert!(matches!(again, ReconcileOutcome::Unchanged(ref record) if record.id == held.id));
}

#[tokio::test]
async fn approve_applies_the_held_sync() {
    let test = TestStore::new();
    let (directory, held) = held_directory(&test).await;

    let approved = test.services().approve_sync(&held.id).await.unwrap();

    assert_eq!(approved.id, held.id);
    assert_eq!(approved.status, SyncStatus::Applied);
    assert!(approved.resolved_at.is_some());
    assert_eq!(
        test.store()
            .load_state(&directory.id)
            .await
            .unwrap()
            .users
            .len(),
        0
    );
    assert_eq!(events_of(&test, EventKind::UserDeleted).await, 12);
    let second = test.services().approve_sync(&held.id).await;
    assert!(
        matches!(second, Err(ServiceError::Conflict(_))),
        "got {second:?}"
    );
}

#[tokio::test]
async fn approve_fails_when_the_held_file_changed() {
    let test = TestStore::new();
    let (directory, held) = held_directory(&test).await;
    let folder = test.deployment.files.folder(&directory).unwrap();
    std::fs::write(
        folder.join("users_header_only.csv"),
        "user_id,first_name,last_name,email\n1,A,B,a@example.test\n",
    )
    .unwrap();
    put_upload(
        &test,
        &directory,
        "users_header_only.csv",
        "user_id,first_name,last_name,email\n1,A,B,a@example.test\n",
    )
    .await;

    let result = test.services().approve_sync(&held.id).await;

    assert!(
        matches!(result, Err(ServiceError::Conflict(ref message)) if message.contains("changed")),
        "got {result:?}"
    );
    assert_eq!(
        test.store()
            .load_state(&directory.id)
            .await
            .unwrap()
            .users
            .len(),
        12
    );
}

#[tokio::test]
async fn discard_keeps_state_and_skips_files() {
    let test = TestStore::new();
    let (directory, held) = held_directory(&test).await;

    let discarded = test.services().discard_sync(&held.id).await.unwrap();
    let again = test
        .services()
        .reconcile_outcome(&directory.id)
        .await
        .unwrap();

    assert_eq!(discarded.status, SyncStatus::Discarded);
    assert!(
        matches!(again, ReconcileOutcome::Unchanged(_)),
        "got {again:?}"
    );
    assert_eq!(
        test.store()
            .load_state(&directory.id)
            .await
            .unwrap()
            .users
            .len(),
        12
    );
}

#[tokio::test]
async fn add_key_rejects_key_of_other_directory() {
    let test = TestStore::new();
    let first = test.directory("org_one").await;
    let second = test.directory("org_two").await;

    test.services().add_key(&first.id, KEY).await.unwrap();
    let duplicate = test.services().add_key(&second.id, KEY).await;

    assert!(
        matches!(duplicate, Err(ServiceError::Conflict(_))),
        "got {duplicate:?}"
    );
    let linked = test
        .store()
        .get_directory(&first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(linked.status, DirectoryStatus::Linked);
    assert_eq!(events_of(&test, EventKind::Activated).await, 1);
}

#[tokio::test]
async fn add_key_invalid_key_names_field() {
    let test = TestStore::new();
    let directory = test.directory("org_badkey").await;

    let result = test
        .services()
        .add_key(&directory.id, "ssh-dss AAAAB3NzaC1kc3MAAACBAP")
        .await;

    assert!(
        matches!(result, Err(ServiceError::Invalid { ref field, .. }) if field == "public_key"),
        "got {result:?}"
    );
}

#[tokio::test]
async fn delete_directory_resumes_after_crash() {
    let test = TestStore::new();
    let directory = test.directory("org_offboard").await;
    test.services().add_key(&directory.id, KEY).await.unwrap();
    put_upload(&test, &directory, "users.csv", &users_csv(3)).await;
    synced(test.services().reconcile_outcome(&directory.id).await).await;

    // A crash right after the first step: the status is deleting and nothing else happened.
    let mut deleting = test
        .store()
        .get_directory(&directory.id)
        .await
        .unwrap()
        .unwrap();
    deleting.status = DirectoryStatus::Deleting;
    test.store().update_directory(&deleting).await.unwrap();
    let blocked = test.services().reconcile_outcome(&directory.id).await;
    assert!(
        matches!(blocked, Err(ServiceError::Conflict(_))),
        "got {blocked:?}"
    );

    test.services()
        .delete_directory(&directory.id)
        .await
        .unwrap();

    assert_eq!(events_of(&test, EventKind::Deleted).await, 1);
    assert!(test
        .store()
        .get_directory(&directory.id)
        .await
        .unwrap()
        .is_none());
    assert!(test
        .store()
        .list_keys(&directory.id)
        .await
        .unwrap()
        .is_empty());
    assert!(test
        .store()
        .load_state(&directory.id)
        .await
        .unwrap()
        .users
        .is_empty());
    assert!(!test.deployment.files.folder(&directory).unwrap().exists());
    assert_eq!(sync_count(&test, &directory).await, 0);
}

#[tokio::test]
async fn reconcile_same_files_replans_after_settings_change() {
    let test = TestStore::new();
    let directory = test.directory("org_policy").await;
    let users = "user_id,first_name,last_name,email,state\n\
                 1,Aino,Aalto,aino@example.test,active\n\
                 2,Bram,Berg,bram@example.test,terminated\n";
    put_upload(&test, &directory, "users.csv", users).await;
    synced(test.services().reconcile_outcome(&directory.id).await).await;
    assert_eq!(
        test.store()
            .load_state(&directory.id)
            .await
            .unwrap()
            .users
            .len(),
        1
    );

    let mut settings = directory.settings.clone();
    settings.inactive_users = dsync_core::settings::InactiveUserPolicy::Keep;
    tokio::time::sleep(Duration::from_millis(2)).await;
    test.services()
        .update_settings(&directory.id, settings)
        .await
        .unwrap();
    let record = synced(test.services().reconcile_outcome(&directory.id).await).await;

    let state = test.store().load_state(&directory.id).await.unwrap();
    assert_eq!(record.counts.created, 1);
    assert_eq!(
        state.users["2"].state,
        dsync_core::model::UserState::Inactive
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reconciles_emit_each_event_once() {
    let test = TestStore::new();
    let directory = test.directory("org_concurrent").await;
    put_upload(&test, &directory, "users.csv", &users_csv(30)).await;

    let services = test.services().clone();
    let (first, second, third) = tokio::join!(
        services.reconcile_outcome(&directory.id),
        services.reconcile_outcome(&directory.id),
        services.reconcile_outcome(&directory.id),
    );

    for outcome in [first, second, third] {
        assert!(outcome.is_ok(), "got {outcome:?}");
    }
    assert_eq!(events_of(&test, EventKind::UserCreated).await, 30);
    assert_eq!(
        test.store()
            .load_state(&directory.id)
            .await
            .unwrap()
            .users
            .len(),
        30
    );
}

#[tokio::test]
async fn approve_fails_after_newer_applied_sync() {
    let test = TestStore::new();
    let (directory, held) = held_directory(&test).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    put_upload(&test, &directory, "users_next.csv", &users_csv(13)).await;
    let newer = synced(test.services().reconcile_outcome(&directory.id).await).await;
    assert_eq!(newer.status, SyncStatus::Applied);

    let result = test.services().approve_sync(&held.id).await;

    assert!(
        matches!(result, Err(ServiceError::Conflict(ref message)) if message.contains(newer.id.as_str())),
        "got {result:?}"
    );
    assert_eq!(
        test.store()
            .load_state(&directory.id)
            .await
            .unwrap()
            .users
            .len(),
        13
    );
}

/// Reads one SQL count from the data dir's database through a second connection.
fn count(test: &TestStore, sql: &str) -> i64 {
    let connection = rusqlite::Connection::open(test.store().path()).unwrap();
    connection.query_row(sql, [], |row| row.get(0)).unwrap()
}

fn results_report(
    test: &TestStore,
    directory: &dsync_core::model::Directory,
    id: &dsync_core::ids::SyncId,
) -> serde_json::Value {
    let results = test
        .deployment
        .files
        .folder(directory)
        .unwrap()
        .join("results");
    let name = std::fs::read_dir(&results)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .find(|name| name.ends_with(&format!("-{id}.json")))
        .unwrap_or_else(|| panic!("no report of {id} in {}", results.display()));
    serde_json::from_slice(&std::fs::read(results.join(name)).unwrap()).unwrap()
}

#[tokio::test]
async fn delete_directory_purges_its_events_deliveries_and_wal() {
    let test = TestStore::new();
    let marker = "offboard-marker@example.test";
    let directory = test.directory("org_purge").await;
    test.services().add_key(&directory.id, KEY).await.unwrap();
    let users = format!("user_id,first_name,last_name,email\n1,Vilja,Quern,{marker}\n");
    put_upload(&test, &directory, "users.csv", &users).await;
    synced(test.services().reconcile_outcome(&directory.id).await).await;
    let kept = test.directory("org_kept").await;
    put_upload(&test, &kept, "users.csv", &users_csv(2)).await;
    synced(test.services().reconcile_outcome(&kept.id).await).await;

    // Deliveries and attempts of every event, as the webhook worker leaves them.
    {
        let connection = rusqlite::Connection::open(test.store().path()).unwrap();
        connection
            .execute_batch(
                "INSERT INTO webhook_deliveries (endpoint_id, event_id, attempt, next_attempt_at_ms, state) \
                 SELECT 'we_test', id, 1, 0, 'pending' FROM events; \
                 INSERT INTO webhook_attempts (endpoint_id, event_id, attempt, attempted_at, succeeded) \
                 SELECT 'we_test', id, 1, created_at, 0 FROM events;",
            )
            .unwrap();
    }
    let kept_events = count(
        &test,
        &format!(
            "SELECT count(*) FROM events WHERE directory_id = '{}'",
            kept.id
        ),
    );
    assert!(kept_events > 0);

    test.services()
        .delete_directory(&directory.id)
        .await
        .unwrap();

    let left = |sql: &str| count(&test, &sql.replace("DIR", directory.id.as_str()));
    assert_eq!(
        left("SELECT count(*) FROM events WHERE directory_id = 'DIR'"),
        1
    );
    assert_eq!(
        left("SELECT count(*) FROM events WHERE directory_id = 'DIR' AND kind = 'dsync.deleted'"),
        1
    );
    assert_eq!(
        left(
            "SELECT count(*) FROM webhook_deliveries WHERE event_id NOT IN (SELECT id FROM events)"
        ),
        0
    );
    assert_eq!(
        left("SELECT count(*) FROM webhook_attempts WHERE event_id NOT IN (SELECT id FROM events)"),
        0
    );
    assert_eq!(
        left(&format!(
            "SELECT count(*) FROM completed_uploads WHERE sftp_username = '{}'",
            directory.sftp_username
        )),
        0
    );
    assert_eq!(
        count(
            &test,
            &format!(
                "SELECT count(*) FROM events WHERE directory_id = '{}'",
                kept.id
            )
        ),
        kept_events
    );

    // Neither the database file nor its WAL still contains the deleted e-mail.
    let database = test.store().path().to_owned();
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    for file in [database.clone(), std::path::PathBuf::from(wal)] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes
                .windows(marker.len())
                .any(|window| window == marker.as_bytes()),
            "{} still contains the deleted e-mail",
            file.display()
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn data_dir_modes_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;

    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let store = dsync_local::store::SqliteStore::open_data_dir(&data_dir).unwrap();
    let database = store.path().to_owned();
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(mode(&database), 0o600);
    drop(store);

    // Modes widened by hand (or by an older version) are narrowed at the next start.
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = dsync_local::store::SqliteStore::open_data_dir(&data_dir).unwrap();
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(mode(&database), 0o600);
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::path::PathBuf::from(wal);
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600);
    }
    drop(store);
}

#[tokio::test]
async fn applied_sync_discards_older_held_syncs() {
    let test = TestStore::new();
    let (directory, held) = held_directory(&test).await;
    assert!(
        held.reason.as_deref().unwrap().contains(held.id.as_str())
            && !held.reason.as_deref().unwrap().contains("SYNC_ID"),
        "{:?}",
        held.reason
    );

    tokio::time::sleep(Duration::from_millis(5)).await;
    put_upload(&test, &directory, "users_next.csv", &users_csv(13)).await;
    let newer = synced(test.services().reconcile_outcome(&directory.id).await).await;
    assert_eq!(newer.status, SyncStatus::Applied);

    let stale = test.store().get_sync(&held.id).await.unwrap().unwrap();
    let reason = format!("superseded by sync {}", newer.id);
    assert_eq!(stale.status, SyncStatus::Discarded);
    assert_eq!(stale.reason.as_deref(), Some(reason.as_str()));
    assert!(stale.resolved_at.is_some());
    let report = results_report(&test, &directory, &held.id);
    assert_eq!(report["status"], "discarded");
    assert_eq!(report["reason"], reason.as_str());
}

#[tokio::test]
async fn new_held_sync_discards_the_older_held_one() {
    let test = TestStore::new();
    let (directory, held) = held_directory(&test).await;

    tokio::time::sleep(Duration::from_millis(5)).await;
    put_upload(&test, &directory, "users_one.csv", &users_csv(1)).await;
    let second = synced(test.services().reconcile_outcome(&directory.id).await).await;
    assert_eq!(second.status, SyncStatus::Held);

    let stale = test.store().get_sync(&held.id).await.unwrap().unwrap();
    assert_eq!(stale.status, SyncStatus::Discarded);
    assert_eq!(
        stale.reason,
        Some(format!("superseded by sync {}", second.id))
    );
    let still_held = test.store().get_sync(&second.id).await.unwrap().unwrap();
    assert_eq!(still_held.status, SyncStatus::Held);
    let refused = test.services().approve_sync(&held.id).await;
    assert!(
        matches!(refused, Err(ServiceError::Conflict(ref message)) if message.contains(second.id.as_str())),
        "got {refused:?}"
    );
}
