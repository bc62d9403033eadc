//! Webhook delivery through the publish handler: the stream record of an
//! event queues one delivery per subscribed endpoint on SQS, and the
//! delivery message sends the signed event to a receiver on 127.0.0.1.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::routing::post;
use common::*;
use dsync_core::ids::WebhookEndpointId;
use dsync_core::ports::{PageRequest, WebhookEndpoint, WebhookEndpoints, WebhookStatus};
use dsync_core::time::Timestamp;
use dsync_core::webhook::{verify_signature, DEFAULT_TOLERANCE_MS, SIGNATURE_HEADER};
use serde_json::{json, Value};

type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

async fn receiver(status: u16) -> (String, Received) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let signature = headers
                    .get(SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                sink.lock().unwrap().push((signature, body.to_vec()));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), received)
}

fn endpoint_record(url: &str, events: Vec<String>) -> WebhookEndpoint {
    WebhookEndpoint {
        id: WebhookEndpointId::generate(),
        endpoint_url: url.to_owned(),
        secret: "whsec_test_secret_0123456789abcdef".to_owned(),
        status: WebhookStatus::Enabled,
        events,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivery_is_signed_and_recorded() {
    let Some(endpoint) = endpoint("webhook_delivery_is_signed_and_recorded") else {
        return;
    };
    let harness = Harness::new(&endpoint).await;
    let store = harness.store();
    let (ok_url, ok_received) = receiver(200).await;
    let (failing_url, failing_received) = receiver(500).await;
    let subscribed = endpoint_record(&ok_url, vec!["dsync.user.created".into()]);
    let failing = endpoint_record(&failing_url, vec![]);
    let other = endpoint_record(&ok_url, vec!["dsync.group.created".into()]);
    for e in [&subscribed, &failing, &other] {
        store.create_endpoint(e).await.unwrap();
    }

    // Three users arrive, so three user.created events.
    let (_, bucket) = harness.linked_directory("Harbor Mills").await;
    let csv = users_csv(1..=3, |_| "Pilot".into());
    harness.put_upload(&bucket, "users.csv", &csv).await;
    harness
        .deliver(&[(bucket.clone(), "users.csv".into(), csv.len() as u64)])
        .await;
    let events: Vec<_> = all_events(&store)
        .await
        .into_iter()
        .filter(|e| e.event.as_str() == "dsync.user.created")
        .collect();
    assert_eq!(events.len(), 3);

    let publisher = harness.deployment.publisher();
    let records: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(n, event)| {
            let mut record: Value = serde_json::from_str(include_str!("fixtures/dynamodb-stream-insert.json")).unwrap();
            record["dynamodb"]["NewImage"] = json!({
                "pk": {"S": "EVENTS"}, "sk": {"S": event.id}, "doc": {"S": event.to_json().to_string()},
            });
            record["dynamodb"]["SequenceNumber"] = json!(format!("{:021}", n + 1));
            record
        })
        .collect();
    let answer =
        dsync_aws::handlers::publish::handle(&publisher, json!({ "Records": records })).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));

    // Two endpoints take user.created: six deliveries queued.
    let queue = &harness.deployment.settings.webhook_queue_url;
    let mut messages = Vec::new();
    for _ in 0..10 {
        let out = harness
            .deployment
            .clients
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        messages.extend(out.messages().iter().cloned());
        if messages.len() >= 6 {
            break;
        }
    }
    assert_eq!(messages.len(), 6);
    let sqs_records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs",
            })
        })
        .collect();
    let answer =
        dsync_aws::handlers::publish::handle(&publisher, json!({ "Records": sqs_records })).await;
    let failed = answer["batchItemFailures"].as_array().unwrap();
    assert_eq!(
        failed.len(),
        3,
        "the failing endpoint's three deliveries are retried: {answer}"
    );

    let delivered = ok_received.lock().unwrap().clone();
    assert_eq!(delivered.len(), 3);
    for (signature, body) in &delivered {
        verify_signature(
            signature,
            body,
            &subscribed.secret,
            Timestamp::now().millis(),
            DEFAULT_TOLERANCE_MS,
        )
        .expect("signature verifies with the endpoint secret");
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(event["event"], json!("dsync.user.created"));
    }
    assert_eq!(failing_received.lock().unwrap().len(), 3);
    let attempts = store
        .list_attempts(
            &failing.id,
            &PageRequest {
                limit: 10,
                ..PageRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(attempts.data.len(), 3);
    assert!(attempts
        .data
        .iter()
        .all(|a| !a.succeeded && a.status_code == Some(500)));
    let attempts = store
        .list_attempts(&subscribed.id, &PageRequest::default())
        .await
        .unwrap();
    assert!(attempts.data.iter().all(|a| a.succeeded));
    // The backoff schedule grows and stays under SQS's 12-hour visibility cap.
    assert!(
        dsync_aws::publish::Publisher::backoff_seconds(1)
            < dsync_aws::publish::Publisher::backoff_seconds(5)
    );
    assert!(dsync_aws::publish::Publisher::backoff_seconds(15) <= 43_200);
}
