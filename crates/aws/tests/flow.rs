//! The whole AWS flow through the Lambda handlers, in process, against moto:
//! create a directory, add a key, upload users.csv into the bucket, deliver
//! the SQS-wrapped EventBridge notification, query the API, publish the
//! events to EventBridge and read them back from an SQS queue, offboard.

mod common;

use common::*;
use dsync_core::ids::DirectoryId;
use dsync_core::ports::SftpAccounts;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn api_get(router: &axum::Router, path: &str, query: &str, secret: &str) -> (u16, Value) {
    let fixture = include_str!("fixtures/apigw-http-v2.json")
        .replace(
            "\"rawPath\": \"PATH\"",
            &format!("\"rawPath\": {}", json!(path)),
        )
        .replace("\"path\": \"PATH\"", &format!("\"path\": {}", json!(path)))
        .replace(
            "\"rawQueryString\": \"QUERY\"",
            &format!("\"rawQueryString\": {}", json!(query)),
        )
        .replace(
            "\"authorization\": \"AUTH\"",
            &format!("\"authorization\": {}", json!(format!("Bearer {secret}"))),
        );
    let request = lambda_http::request::from_str(&fixture).expect("API Gateway v2 fixture parses");
    let request = request.map(|body| axum::body::Body::from(body.to_vec()));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_flow_through_the_handlers() {
    let Some(endpoint) = endpoint("whole_flow_through_the_handlers") else {
        return;
    };
    let harness = Harness::new(&endpoint).await;
    let clients = harness.deployment.clients.clone();

    let key = harness
        .register(json!({"action": "create_api_key", "name": "flow test"}))
        .await;
    let secret = key["secret"].as_str().unwrap().to_owned();

    let (id, bucket) = harness.linked_directory("Lumen Freight").await;
    let directory_id = DirectoryId::from_stored(&id);
    assert!(bucket.starts_with(&format!("{}-", harness.deployment.settings.bucket_prefix)));

    // The bucket was created locked down.
    let block = clients
        .s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(block.block_public_acls(), Some(true));
    assert_eq!(block.restrict_public_buckets(), Some(true));
    let encryption = clients
        .s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let rule = &encryption
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let lifecycle = clients
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let rule = &lifecycle.rules()[0];
    assert_eq!(rule.expiration().unwrap().days(), Some(30));
    assert!(rule.abort_incomplete_multipart_upload().is_some());
    // moto accepts PutBucketNotificationConfiguration with EventBridge on
    // but does not echo it back from GetBucketNotificationConfiguration, so
    // that part is checked only by the call succeeding.

    // Upload users.csv (with a space in the name, sent as `+`) and deliver
    // its notification, plus ignored objects.
    let csv = users_csv(1..=3, |n| format!("Role {n}"));
    harness.put_upload(&bucket, "users 2026.csv", &csv).await;
    let answer = harness
        .deliver(&[
            (bucket.clone(), "users 2026.csv".into(), csv.len() as u64),
            (bucket.clone(), "users.csv.filepart".into(), 10),
            (bucket.clone(), "archive/".into(), 0),
            (bucket.clone(), "results/old.json".into(), 5),
        ])
        .await;
    assert_eq!(answer, json!({"batchItemFailures": []}));

    // The report went back into the bucket.
    let results = clients
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("results/")
        .send()
        .await
        .unwrap();
    assert_eq!(results.contents().len(), 1, "one report in results/");

    // The API serves the users.
    let router = dsync_aws::handlers::api::router(&harness.deployment);
    let (status, users) = api_get(
        &router,
        "/directory_users",
        &format!("directory={id}&limit=10"),
        &secret,
    )
    .await;
    assert_eq!(status, 200, "{users}");
    assert_eq!(users["data"].as_array().unwrap().len(), 3);
    assert_eq!(users["list_metadata"]["after"], Value::Null);
    let (status, _) = api_get(
        &router,
        "/directory_users",
        &format!("directory={id}"),
        "sk_wrong",
    )
    .await;
    assert_eq!(status, 401);
    let (status, events) = api_get(
        &router,
        "/events",
        "events=dsync.user.created&limit=100",
        &secret,
    )
    .await;
    assert_eq!(status, 200, "{events}");
    assert_eq!(events["data"].as_array().unwrap().len(), 3);

    // Publish: stream records of the event items to EventBridge, where a
    // rule forwards them to an SQS queue.
    let queue = clients
        .sqs
        .create_queue()
        .queue_name(format!("{}-tap", harness.deployment.settings.table))
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap().to_owned();
    let queue_arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let bus = harness.deployment.settings.event_bus.clone();
    clients
        .eventbridge
        .put_rule()
        .name("dsync-tap")
        .event_bus_name(&bus)
        .event_pattern(r#"{"source": ["dsync"]}"#)
        .send()
        .await
        .unwrap();
    clients
        .eventbridge
        .put_targets()
        .rule("dsync-tap")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("tap")
                .arn(&queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let stored = all_events(&harness.store()).await;
    let records: Vec<Value> = stored
        .iter()
        .enumerate()
        .map(|(n, event)| stream_record(event, n))
        .collect();
    let publisher = harness.deployment.publisher();
    let answer =
        dsync_aws::handlers::publish::handle(&publisher, json!({ "Records": records })).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let mut received = Vec::new();
    for _ in 0..10 {
        let out = clients
            .sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for message in out.messages() {
            let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
            received.push((
                body["detail-type"].as_str().unwrap().to_owned(),
                body["detail"]["id"].as_str().unwrap().to_owned(),
            ));
        }
        if received.len() >= stored.len() {
            break;
        }
    }
    received.sort();
    let mut expected: Vec<(String, String)> = stored
        .iter()
        .map(|e| (e.event.as_str().to_owned(), e.id.to_string()))
        .collect();
    expected.sort();
    assert_eq!(
        received, expected,
        "every event reached EventBridge with detail-type = event name"
    );

    // Offboarding leaves no object, key or item.
    let directory = {
        use dsync_core::ports::Directories;
        harness
            .store()
            .get_directory(&directory_id)
            .await
            .unwrap()
            .unwrap()
    };
    harness
        .register(json!({"action": "delete_directory", "directory_id": id}))
        .await;
    let head = clients.s3.head_bucket().bucket(&bucket).send().await;
    assert!(head.is_err(), "bucket deleted");
    let leftovers = harness
        .store()
        .leftovers(&directory_id, &directory.sftp_username, Some(&bucket))
        .await
        .unwrap();
    assert!(leftovers.is_empty(), "items left: {leftovers:?}");
    let user = clients
        .transfer
        .delete_user()
        .server_id(&harness.deployment.settings.transfer_server_id)
        .user_name(&directory.sftp_username)
        .send()
        .await;
    assert!(user.is_err(), "Transfer user already deleted");
    // The directory is gone for good.
    let again = dsync_aws::handlers::register_key::handle(
        &harness.deployment,
        json!({"action": "delete_directory", "directory_id": id}),
    )
    .await;
    assert_eq!(again["code"], json!("not_found"), "{again}");
    assert_eq!(harness.deployment.accounts.endpoint().1, 22);
}

/// A DynamoDB stream INSERT record for a stored event, as Lambda delivers it.
fn stream_record(event: &dsync_core::event::Event, n: usize) -> Value {
    let mut record: Value =
        serde_json::from_str(include_str!("fixtures/dynamodb-stream-insert.json")).unwrap();
    let mut image = json!({
        "pk": {"S": "EVENTS"},
        "sk": {"S": event.id},
        "kind": {"S": event.event.as_str()},
        "doc": {"S": event.to_json().to_string()},
        "ts": {"N": event.created_at.millis().to_string()},
    });
    if let Some(dir) = &event.directory_id {
        image["dir"] = json!({"S": dir});
    }
    record["dynamodb"]["Keys"]["sk"] = json!({"S": event.id});
    record["dynamodb"]["NewImage"] = image;
    record["dynamodb"]["SequenceNumber"] = json!(format!("{:021}", n + 1));
    record
}
