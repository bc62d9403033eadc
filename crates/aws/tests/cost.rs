//! DynamoDB write requests for a 1% change of a 100,000-user directory,
//! counted on the SDK client (moto keeps no CloudWatch metrics): every
//! request leaving the DynamoDB client passes a [`dsync_aws::RequestCounter`]
//! interceptor, which reads the operation from `X-Amz-Target` and the item
//! count from the body. Retries would be counted too.
//!
//! Slow, so it is ignored by default:
//! `DSYNC_TEST_AWS_ENDPOINT=... cargo test -p dsync-aws --test cost -- --ignored --nocapture`.
//! `DSYNC_COST_USERS` sets the directory size (default 100,000).
//!
//! NOTE: moto 5.2.1 deep-copies the whole table for every item of a
//! TransactWriteItems call (its rollback copy), so the commit's time grows
//! with items x table size: 100 changes of 10,000 users take about 90 s there,
//! and 1,000 changes of 100,000 users would take hours. The counts do not
//! depend on the directory size, only on the number of changes.

mod common;

use std::time::Instant;

use common::*;
use dsync_aws::items::user_item;
use dsync_core::ids::{DirectoryId, SyncId};
use dsync_core::model::DirectoryState;
use dsync_core::plan::{plan, Change, PlanContext};
use dsync_core::ports::Directories;
use dsync_core::time::Timestamp;
use dsync_core::upload::{read_snapshot, ReadLimits, Upload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "loads 100,000 users into moto; run with --ignored"]
async fn writes_for_a_one_percent_change_of_100k_users() {
    let Some(endpoint) = endpoint("writes_for_a_one_percent_change_of_100k_users") else {
        return;
    };
    let users: usize = std::env::var("DSYNC_COST_USERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let changed = users / 100;
    let harness = Harness::new(&endpoint).await;
    let (id, bucket) = harness.linked_directory("Cost Directory").await;
    let directory = DirectoryId::from_stored(&id);
    let services = harness.deployment.services();

    // Seeding: moto copies every table for each TransactWriteItems call (to
    // roll back), so loading 100,000 users through transactions takes hours
    // there. The test plans the initial upload with the real reader and
    // planner and writes the resulting user items with BatchWriteItem.
    let started = Instant::now();
    let first = users_csv(1..=users, |_| "Engineer".into());
    harness.put_upload(&bucket, "users_0001.csv", &first).await;
    let directory_record = harness
        .store()
        .get_directory(&directory)
        .await
        .unwrap()
        .unwrap();
    let upload = Upload::new("users_0001.csv", first.as_bytes()).expect("recognised name");
    let snapshot = read_snapshot(vec![upload], &ReadLimits::default()).expect("read");
    let sync = SyncId::generate();
    let context = PlanContext {
        directory: &directory_record,
        now: Timestamp::now(),
        event_seed: sync.as_str().as_bytes(),
        approved: true,
    };
    let plan = plan(&DirectoryState::default(), &snapshot, &context);
    let items: Vec<_> = plan
        .steps
        .iter()
        .filter_map(|step| match &step.change {
            Change::PutUser(user) => Some(user_item(&directory, user)),
            _ => None,
        })
        .collect();
    assert_eq!(items.len(), users);
    harness.store().batch_put(&items).await.expect("seed users");
    eprintln!("seeded {users} users in {:?}", started.elapsed());

    // 1%: every hundredth user gets a new job title.
    harness.counter.reset();
    let started = Instant::now();
    let csv = users_csv(1..=users, |n| {
        if n % 100 == 0 {
            "Staff Engineer".into()
        } else {
            "Engineer".into()
        }
    });
    harness.put_upload(&bucket, "users_0002.csv", &csv).await;
    let record = services.reconcile(&directory).await.expect("1% change");
    assert_eq!(record.counts.updated as usize, changed);
    let writes = harness.counter.writes();
    let by_operation = harness.counter.snapshot();
    eprintln!(
        "1% change ({changed} updates of {users}): {} write requests, {} items written, in {:?}; by operation: {by_operation:?}",
        writes.requests,
        writes.items,
        started.elapsed()
    );
    // Each change writes its user item and its event item, plus the record:
    // 2C + 1 writes in chunks of 98. The commit writes one log item per
    // chunk, then a transaction (head, commit stamp, directory check), then
    // one transaction per chunk (its writes and the head update), then one
    // BatchWriteItem per 25 log items to delete them; the lease costs a
    // PutItem and a DeleteItem.
    let data_items = 2 * changed as u64 + 1;
    let chunks = data_items.div_ceil(98);
    let expected_requests = chunks + 1 + chunks + chunks.div_ceil(25) + 2;
    let expected_items = chunks + 3 + (data_items + chunks) + chunks + 2;
    assert_eq!(
        (writes.requests, writes.items),
        (expected_requests, expected_items),
        "{by_operation:?}"
    );
}
