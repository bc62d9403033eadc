//! Exactly-once into the event log on DynamoDB: duplicated and shuffled
//! notifications, a crash after any transaction chunk, resumable offboarding.

mod common;

use std::collections::BTreeMap;

use common::*;
use dsync_core::event::Event;
use dsync_core::ids::DirectoryId;
use dsync_core::ports::{Directories, FileStore, SftpAccounts, SshKeys};
use rand::seq::SliceRandom;
use serde_json::{json, Value};

fn events_of(events: &[Event], directory: &str) -> Vec<Event> {
    events
        .iter()
        .filter(|e| {
            e.directory_id
                .as_ref()
                .is_some_and(|d| d.as_str() == directory)
        })
        .cloned()
        .collect()
}

/// Replays user events and checks each is possible (no create of an existing
/// user, no update or delete of a missing one). Returns idp_id -> job title.
fn replay(events: &[Event]) -> BTreeMap<String, String> {
    let mut users = BTreeMap::new();
    for event in events {
        let idp = event.data["idp_id"].as_str().unwrap_or_default().to_owned();
        let title = event.data["job_title"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match event.event.as_str() {
            "dsync.user.created" => assert!(
                users.insert(idp.clone(), title).is_none(),
                "duplicate create of {idp}"
            ),
            "dsync.user.updated" => assert!(
                users.insert(idp.clone(), title).is_some(),
                "update of missing {idp}"
            ),
            "dsync.user.deleted" => {
                assert!(users.remove(&idp).is_some(), "delete of missing {idp}")
            }
            _ => {}
        }
    }
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_shuffled_notifications_give_each_event_once() {
    let Some(endpoint) = endpoint("duplicated_and_shuffled_notifications_give_each_event_once")
    else {
        return;
    };
    let harness = Harness::new(&endpoint).await;
    let (id, bucket) = harness.linked_directory("Orchard Labs").await;
    let mut rng = rand::thread_rng();

    // Twelve uploads; each version moves the window of users and retitles some.
    let mut pending: Vec<(String, String, u64)> = Vec::new();
    let mut last = String::new();
    for version in 1..=12usize {
        let csv = users_csv(version..version + 20, |n| {
            format!("Title {}", (n + version) % 4)
        });
        let name = format!("users_{version:04}.csv");
        harness.put_upload(&bucket, &name, &csv).await;
        last = csv.clone();
        // Each notification goes out one to three times.
        for _ in 0..rng.gen_range_inclusive(1, 3) {
            pending.push((bucket.clone(), name.clone(), csv.len() as u64));
        }
        // Deliver a shuffled part of what is pending, sometimes nothing.
        pending.shuffle(&mut rng);
        let take = rng.gen_range_inclusive(0, pending.len());
        let batch: Vec<_> = pending.drain(..take).collect();
        if !batch.is_empty() {
            let answer = harness.deliver(&batch).await;
            assert_eq!(answer, json!({"batchItemFailures": []}));
        }
    }
    pending.shuffle(&mut rng);
    for batch in pending.chunks(10) {
        let answer = harness.deliver(batch).await;
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }
    // And once more after everything: nothing new may appear.
    let before = all_events(&harness.store()).await.len();
    harness
        .deliver(&[(bucket.clone(), "users_0012.csv".into(), last.len() as u64)])
        .await;
    assert_eq!(
        all_events(&harness.store()).await.len(),
        before,
        "a repeated notification wrote events"
    );

    let events = events_of(&all_events(&harness.store()).await, &id);
    let mut ids: Vec<_> = events.iter().map(|e| e.id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "event ids are unique");
    let replayed = replay(&events);
    let expected: BTreeMap<String, String> = (12..32usize)
        .map(|n| (format!("e{n:06}"), format!("Title {}", (n + 12) % 4)))
        .collect();
    assert_eq!(replayed, expected, "the log replays to the newest upload");
}

trait RangeExt {
    fn gen_range_inclusive(&mut self, low: usize, high: usize) -> usize;
}

impl<R: rand::Rng> RangeExt for R {
    fn gen_range_inclusive(&mut self, low: usize, high: usize) -> usize {
        self.gen_range(low..=high)
    }
}

/// The event log without ids, directory ids and times, for comparing runs.
fn normalized(events: &[Event]) -> Vec<Value> {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for key in [
                    "id",
                    "directory_id",
                    "organization_id",
                    "external_key",
                    "created_at",
                    "updated_at",
                ] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    events
        .iter()
        .map(|event| {
            let mut data = event.data.clone();
            strip(&mut data);
            json!({"event": event.event.as_str(), "data": data})
        })
        .collect()
}

/// Runs two syncs (150 creates, then updates, deletes and creates) in a new
/// directory; `fail_at` = (sync number, chunk) crashes that sync right
/// after that chunk, and the retry is a plain second reconcile.
async fn two_syncs(harness: &Harness, fail_at: Option<(usize, usize)>) -> Vec<Event> {
    let (id, bucket) = harness.linked_directory("Quarry Works").await;
    let directory = DirectoryId::from_stored(&id);
    let services = harness.deployment.services();
    let first = users_csv(1..=150, |n| format!("Analyst {}", n % 3));
    let second = users_csv(21..=160, |n| {
        if n % 5 == 0 {
            format!("Lead {n}")
        } else {
            format!("Analyst {}", n % 3)
        }
    });
    for (sync, (name, csv)) in [("users_0001.csv", first), ("users_0002.csv", second)]
        .into_iter()
        .enumerate()
    {
        harness.put_upload(&bucket, name, &csv).await;
        if let Some((fail_sync, chunk)) = fail_at {
            if fail_sync == sync + 1 {
                harness.store().fail_after_chunks(chunk);
                let crashed = services.reconcile(&directory).await;
                assert!(crashed.is_err(), "the injected failure must stop the sync");
                let partial = events_of(&all_events(&harness.store()).await, &id);
                assert!(
                    !partial.is_empty(),
                    "chunk {chunk} was applied before the failure"
                );
            }
        }
        services.reconcile(&directory).await.expect("reconcile");
    }
    // A further reconcile with the same files is a no-op that writes nothing.
    harness.counter.reset();
    services.reconcile(&directory).await.expect("reconcile");
    let writes = harness.counter.writes();
    assert_eq!(
        writes.requests, 0,
        "a no-op reconcile writes nothing: {writes:?}"
    );
    events_of(&all_events(&harness.store()).await, &id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_any_chunk_then_a_retry_gives_the_clean_log() {
    let Some(endpoint) = endpoint("a_crash_after_any_chunk_then_a_retry_gives_the_clean_log")
    else {
        return;
    };
    let harness = Harness::new(&endpoint).await;
    let clean = two_syncs(&harness, None).await;
    assert!(clean.len() > 150 + 20);
    let clean = normalized(&clean);
    // 150 users and 150 events and the record: 301 writes in 4 chunks of 98.
    for fail_at in [(1, 1), (1, 3), (2, 1)] {
        let crashed = two_syncs(&harness, Some(fail_at)).await;
        let mut ids: Vec<_> = crashed.iter().map(|e| e.id.clone()).collect();
        ids.dedup();
        assert_eq!(
            ids.len(),
            crashed.len(),
            "unique ids after a crash at {fail_at:?}"
        );
        let crashed = normalized(&crashed);
        let first_difference = crashed.iter().zip(&clean).position(|(a, b)| a != b);
        assert_eq!(
            (crashed.len(), first_difference),
            (clean.len(), None),
            "event log after a crash at {fail_at:?} differs from the clean run"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offboarding_cut_off_halfway_finishes_and_leaves_nothing() {
    let Some(endpoint) = endpoint("offboarding_cut_off_halfway_finishes_and_leaves_nothing") else {
        return;
    };
    let harness = Harness::new(&endpoint).await;
    let (id, bucket) = harness.linked_directory("Birch Transit").await;
    let directory_id = DirectoryId::from_stored(&id);
    harness
        .register(
            json!({"action": "add_key", "directory_id": id, "public_key": ed25519_key_line()}),
        )
        .await;
    // Adding a key re-applies the bucket settings (idempotent), policy included.
    harness
        .deployment
        .clients
        .s3
        .delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    // Rotation: the first key goes, its Transfer Family key with it.
    let keys = harness.store().list_keys(&directory_id).await.unwrap();
    assert_eq!(keys.len(), 2);
    let first_key = &keys[0];
    let mapping = format!("TK#{}", first_key.id);
    assert!(harness
        .store()
        .get_item(&format!("DIR#{id}"), &mapping)
        .await
        .unwrap()
        .is_some());
    harness
        .register(json!({"action": "remove_key", "directory_id": id, "key_id": first_key.id}))
        .await;
    assert!(harness
        .store()
        .get_item(&format!("DIR#{id}"), &mapping)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        harness
            .store()
            .list_keys(&directory_id)
            .await
            .unwrap()
            .len(),
        1
    );

    let csv = users_csv(1..=12, |_| "Clerk".into());
    harness.put_upload(&bucket, "users.csv", &csv).await;
    harness
        .deliver(&[(bucket.clone(), "users.csv".into(), csv.len() as u64)])
        .await;
    let directory = harness
        .store()
        .get_directory(&directory_id)
        .await
        .unwrap()
        .unwrap();

    // The first half of an offboarding: account and files gone, data still there.
    harness
        .deployment
        .accounts
        .delete_account(&directory)
        .await
        .unwrap();
    harness
        .deployment
        .files
        .delete_all(&directory)
        .await
        .unwrap();
    assert!(
        harness
            .store()
            .count_partition(&directory_id)
            .await
            .unwrap()
            > 12
    );

    harness
        .register(json!({"action": "delete_directory", "directory_id": id}))
        .await;
    let leftovers = harness
        .store()
        .leftovers(&directory_id, &directory.sftp_username, Some(&bucket))
        .await
        .unwrap();
    assert!(leftovers.is_empty(), "items left: {leftovers:?}");
    assert!(harness
        .deployment
        .clients
        .s3
        .head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .is_err());
    let events = events_of(&all_events(&harness.store()).await, &id);
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["dsync.deleted"],
        "only the offboarding event stays in the log"
    );
}
