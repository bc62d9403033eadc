//! `publish`: two sources. The DynamoDB stream of the table (filtered to
//! event inserts) puts each event on EventBridge and queues its webhook
//! deliveries; the webhook queue's messages are the deliveries themselves.
//! Both answer with partial batch failures so that only the failed records
//! are retried.

use serde_json::{json, Value};

use crate::publish::{Delivery, Publisher};

pub async fn handle(publisher: &Publisher, event: Value) -> Value {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let from_stream = records
        .first()
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        .is_some_and(|source| source == "aws:dynamodb");
    if from_stream {
        handle_stream(publisher, &records).await
    } else {
        handle_deliveries(publisher, &records).await
    }
}

fn failures(ids: Vec<String>) -> Value {
    json!({ "batchItemFailures": ids.into_iter().map(|id| json!({ "itemIdentifier": id })).collect::<Vec<_>>() })
}

async fn handle_stream(publisher: &Publisher, records: &[Value]) -> Value {
    // For a stream, the first failed record's sequence number is enough:
    // Lambda retries from there, in order.
    let mut parsed = Vec::new();
    for record in records {
        let sequence = record
            .pointer("/dynamodb/SequenceNumber")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match crate::publish::event_from_stream_record(record) {
            Ok(Some(event)) => parsed.push((sequence, event)),
            Ok(None) => {}
            Err(reason) => {
                tracing::error!(sequence = %sequence, reason = %reason, "unreadable stream record");
                return failures(vec![sequence]);
            }
        }
    }
    let events: Vec<_> = parsed.iter().map(|(_, event)| event.clone()).collect();
    let failed = publisher.put_on_bus(&events).await;
    for (sequence, event) in &parsed {
        if failed.contains(&event.id) {
            tracing::error!(event_id = %event.id, "putting the event on EventBridge failed");
            return failures(vec![sequence.clone()]);
        }
        if let Err(error) = publisher.fan_out(event).await {
            tracing::error!(event_id = %event.id, error = %error, "queueing webhook deliveries failed");
            return failures(vec![sequence.clone()]);
        }
        tracing::info!(event_id = %event.id, event = event.event.as_str(), "event published");
    }
    failures(Vec::new())
}

async fn handle_deliveries(publisher: &Publisher, records: &[Value]) -> Value {
    let mut failed = Vec::new();
    for record in records {
        let message_id = record
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let attempt = record
            .pointer("/attributes/ApproximateReceiveCount")
            .and_then(Value::as_str)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(1);
        let delivery: Delivery = match record
            .get("body")
            .and_then(Value::as_str)
            .map(serde_json::from_str)
        {
            Some(Ok(delivery)) => delivery,
            _ => {
                tracing::error!(message_id = %message_id, "unreadable webhook delivery message");
                failed.push(message_id);
                continue;
            }
        };
        match publisher.deliver(&delivery, attempt).await {
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(event_id = %delivery.event_id, endpoint_id = %delivery.endpoint_id, attempt, error = %error, "webhook delivery failed");
                // Wait before the next attempt by hiding the message.
                if let (Some(receipt), Some(queue)) = (
                    record.get("receiptHandle").and_then(Value::as_str),
                    queue_url(record, &publisher.webhook_queue_url),
                ) {
                    let _ = publisher
                        .sqs
                        .change_message_visibility()
                        .queue_url(queue)
                        .receipt_handle(receipt)
                        .visibility_timeout(Publisher::backoff_seconds(attempt))
                        .send()
                        .await;
                }
                failed.push(message_id);
            }
        }
    }
    failures(failed)
}

fn queue_url(_record: &Value, configured: &str) -> Option<String> {
    (!configured.is_empty()).then(|| configured.to_owned())
}
