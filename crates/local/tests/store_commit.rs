//! commit_sync on a real SQLite file: all or nothing, event order, conflict
//! detection, and the webhook delivery rows written with the events.

mod support;

use std::time::Duration;

use dsync_core::event::EventKind;
use dsync_core::ids::{SyncId, WebhookEndpointId};
use dsync_core::ports::{
    DirectoryData, EventQuery, Events, StoreError, Syncs, WebhookEndpoint, WebhookEndpoints,
    WebhookStatus,
};
use dsync_core::time::Timestamp;
use dsync_local::store::database_path;
use support::{commit_files, plan_files, record, users_csv, TestStore};

async fn all_events(test: &TestStore) -> Vec<dsync_core::event::Event> {
    let query = EventQuery {
        limit: 100,
        ..EventQuery::default()
    };
    test.store().list_events(&query).await.unwrap().data
}

fn endpoint(events: &[&str], status: WebhookStatus) -> WebhookEndpoint {
    let now = Timestamp::now();
    WebhookEndpoint {
        id: WebhookEndpointId::generate(),
        endpoint_url: "http://127.0.0.1:9/hook".to_owned(),
        secret: "test-secret".to_owned(),
        status,
        events: events.iter().map(|name| (*name).to_owned()).collect(),
        created_at: now,
        updated_at: now,
    }
}

fn delivery_rows(test: &TestStore, endpoint: &WebhookEndpointId) -> Vec<(String, i64, String)> {
    // A second connection, as the webhook worker opens one.
    let connection = rusqlite::Connection::open(database_path(test.dir.path())).unwrap();
    let mut statement = connection
        .prepare("SELECT event_id, attempt, state FROM webhook_deliveries WHERE endpoint_id = ?1 ORDER BY id")
        .unwrap();
    statement
        .query_map([endpoint.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[tokio::test]
async fn commit_sync_failing_step_leaves_nothing_behind() {
    let test = TestStore::new();
    let directory = test.directory("org_atomic").await;
    commit_files(test.store(), &directory, &[("users.csv", &users_csv(5))]).await;
    let hook = endpoint(&[], WebhookStatus::Enabled);
    test.store().create_endpoint(&hook).await.unwrap();

    // Planned from users 1..5: create user 6 and delete user 1.
    let stale_id = SyncId::generate();
    let without_first =
        "user_id,first_name,last_name,email\n2,A,B,a2@example.test\n3,A,B,a3@example.test\n\
                         4,A,B,a4@example.test\n5,A,B,a5@example.test\n6,A,B,a6@example.test\n";
    let stale_plan = plan_files(
        test.store(),
        &directory,
        &[("users.csv", without_first)],
        Timestamp::now(),
        &stale_id,
    )
    .await;

    // Meanwhile another sync deletes user 1.
    commit_files(
        test.store(),
        &directory,
        &[(
            "users.csv",
            &users_csv(5)[..].replace("1,First1,Last1,user1@example.test\n", ""),
        )],
    )
    .await;
    let events_before = all_events(&test).await.len();
    let deliveries_before = delivery_rows(&test, &hook.id).len();

    // Started "after" the last commit, so only the step check can catch it.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let stale_record = record(
        &directory,
        stale_id.clone(),
        Timestamp::now(),
        stale_plan.counts.clone(),
    );
    let result = test.store().commit_sync(&stale_plan, &stale_record).await;

    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "got {result:?}"
    );
    let state = test.store().load_state(&directory.id).await.unwrap();
    assert!(
        !state.users.contains_key("6"),
        "user 6 was created by a failed commit"
    );
    assert_eq!(all_events(&test).await.len(), events_before);
    assert_eq!(delivery_rows(&test, &hook.id).len(), deliveries_before);
    assert!(test.store().get_sync(&stale_id).await.unwrap().is_none());
}

#[tokio::test]
async fn commit_sync_rejects_stale_start() {
    let test = TestStore::new();
    let directory = test.directory("org_race").await;

    let started_at = Timestamp::now();
    let id = SyncId::generate();
    let plan = plan_files(
        test.store(),
        &directory,
        &[("users.csv", &users_csv(3))],
        Timestamp::now(),
        &id,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    commit_files(test.store(), &directory, &[("users.csv", &users_csv(2))]).await;

    let result = test
        .store()
        .commit_sync(
            &plan,
            &record(&directory, id, started_at, plan.counts.clone()),
        )
        .await;

    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "got {result:?}"
    );
    assert_eq!(
        test.store()
            .load_state(&directory.id)
            .await
            .unwrap()
            .users
            .len(),
        2
    );
}

#[tokio::test]
async fn commit_sync_restamps_older_event_ids() {
    let test = TestStore::new();
    let directory = test.directory("org_order").await;
    commit_files(test.store(), &directory, &[("users.csv", &users_csv(3))]).await;

    // A plan stamped ten seconds in the past: its ids sort before the stored events.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let started_at = Timestamp::now();
    let id = SyncId::generate();
    let past = Timestamp::from_millis(started_at.millis() - 10_000);
    let plan = plan_files(
        test.store(),
        &directory,
        &[("users.csv", &users_csv(5))],
        past,
        &id,
    )
    .await;
    test.store()
        .commit_sync(
            &plan,
            &record(&directory, id, started_at, plan.counts.clone()),
        )
        .await
        .unwrap();

    let events = all_events(&test).await;
    let ids: Vec<String> = events.iter().map(|event| event.id.to_string()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        ids, sorted,
        "event ids must be unique and increasing in commit order"
    );

    // Commit order is kept: the later sync's creates (users 4 and 5) come last.
    let last_two: Vec<&str> = events[events.len() - 2..]
        .iter()
        .map(|event| event.data["idp_id"].as_str().unwrap())
        .collect();
    assert_eq!(last_two, ["4", "5"]);
}

#[tokio::test]
async fn commit_sync_queues_subscribed_deliveries() {
    let test = TestStore::new();
    let directory = test.directory("org_hooks").await;
    let every = endpoint(&[], WebhookStatus::Enabled);
    let deletes_only = endpoint(&["dsync.user.deleted"], WebhookStatus::Enabled);
    let disabled = endpoint(&[], WebhookStatus::Disabled);
    for hook in [&every, &deletes_only, &disabled] {
        test.store().create_endpoint(hook).await.unwrap();
    }

    commit_files(test.store(), &directory, &[("users.csv", &users_csv(3))]).await;

    let events = all_events(&test).await;
    let rows = delivery_rows(&test, &every.id);
    let event_ids: Vec<String> = events.iter().map(|event| event.id.to_string()).collect();
    let delivered: Vec<String> = rows
        .iter()
        .map(|(event_id, _, _)| event_id.clone())
        .collect();
    assert_eq!(delivered, event_ids);
    assert!(rows
        .iter()
        .all(|(_, attempt, state)| *attempt == 0 && state == "pending"));
    assert!(delivery_rows(&test, &deletes_only.id).is_empty());
    assert!(delivery_rows(&test, &disabled.id).is_empty());
}

#[tokio::test]
async fn append_events_queues_deliveries_by_event_name() {
    let test = TestStore::new();
    let directory = test.directory("org_activation").await;
    let activations = endpoint(&["dsync.activated"], WebhookStatus::Enabled);
    test.store().create_endpoint(&activations).await.unwrap();

    let key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test";
    test.services().add_key(&directory.id, key).await.unwrap();

    let events = all_events(&test).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, EventKind::Activated);
    assert_eq!(delivery_rows(&test, &activations.id).len(), 1);
}

#[tokio::test]
async fn purge_events_deletes_old_events() {
    let test = TestStore::new();
    let directory = test.directory("org_retention").await;
    let hook = endpoint(&[], WebhookStatus::Enabled);
    test.store().create_endpoint(&hook).await.unwrap();
    commit_files(test.store(), &directory, &[("users.csv", &users_csv(2))]).await;
    // The purge removes events strictly older than the cutoff, so the cutoff
    // must fall in a later millisecond than the first sync's events.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    commit_files(test.store(), &directory, &[("users.csv", &users_csv(3))]).await;

    let deleted = test.store().purge_events_before(cutoff).await.unwrap();

    assert_eq!(deleted, 2);
    let events = all_events(&test).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data["idp_id"], "3");
    assert_eq!(delivery_rows(&test, &hook.id).len(), 1);
}

#[tokio::test]
async fn stored_body_json_is_the_wire_envelope() {
    let test = TestStore::new();
    let directory = test.directory("org_body").await;
    commit_files(test.store(), &directory, &[("users.csv", &users_csv(2))]).await;

    let connection = rusqlite::Connection::open(database_path(test.dir.path())).unwrap();
    for event in all_events(&test).await {
        let body: String = connection
            .query_row(
                "SELECT body_json FROM events WHERE id = ?1",
                [event.id.as_str()],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(body, serde_json::to_string(&event.to_json()).unwrap());
    }
}
