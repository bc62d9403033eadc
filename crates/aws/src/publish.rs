//! Publishing committed events: the DynamoDB stream of event items goes to
//! EventBridge (detail-type = event name) and fans out into one webhook
//! delivery message per subscribed endpoint; deliveries retry with backoff
//! through the SQS message visibility, then land in the dead-letter queue.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use dsync_core::event::Event;
use dsync_core::ids::{EventId, WebhookEndpointId};
use dsync_core::ports::{
    DeliveryAttempt, StoreError, StoreResult, WebhookEndpoints, WebhookStatus,
};
use dsync_core::time::Timestamp;
use dsync_core::webhook::{retry_delay, signature_header, SIGNATURE_HEADER};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dynamo::DynamoStore;
use crate::items::EVENTS;

/// The `source` of every event dsync puts on its bus.
pub const EVENT_SOURCE: &str = "dsync";

/// One webhook delivery waiting in the queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub endpoint_id: WebhookEndpointId,
    pub event_id: EventId,
}

/// Reads the event from a DynamoDB stream record's new image, or `None`
/// for records that are not event inserts.
pub fn event_from_stream_record(record: &Value) -> Result<Option<Event>, String> {
    if record.get("eventName").and_then(Value::as_str) != Some("INSERT") {
        return Ok(None);
    }
    let image = record
        .pointer("/dynamodb/NewImage")
        .ok_or("stream record has no NewImage; the table stream must include new images")?;
    let text = |name: &str| image.pointer(&format!("/{name}/S")).and_then(Value::as_str);
    if text("pk") != Some(EVENTS) {
        return Ok(None);
    }
    let doc = text("doc").ok_or("event item has no doc")?;
    let mut event: Event =
        serde_json::from_str(doc).map_err(|error| format!("event doc unreadable: {error}"))?;
    event.directory_id = text("dir").map(dsync_core::ids::DirectoryId::from_stored);
    event.organization_id = text("org").map(str::to_owned);
    Ok(Some(event))
}

pub struct Publisher {
    pub store: Arc<DynamoStore>,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Empty: no EventBridge publishing.
    pub event_bus: String,
    /// Empty: no webhooks.
    pub webhook_queue_url: String,
    pub http: reqwest::Client,
}

impl Publisher {
    /// Puts events on the bus, 10 per request. Returns the events that failed.
    pub async fn put_on_bus(&self, events: &[Event]) -> Vec<EventId> {
        let mut failed = Vec::new();
        if self.event_bus.is_empty() {
            return failed;
        }
        for chunk in events.chunks(10) {
            let entries: Vec<PutEventsRequestEntry> = chunk
                .iter()
                .map(|event| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.event_bus)
                        .source(EVENT_SOURCE)
                        .detail_type(event.event.as_str())
                        .detail(event.to_json().to_string())
                        .time(aws_sdk_eventbridge::primitives::DateTime::from_millis(
                            event.created_at.millis(),
                        ))
                        .build()
                })
                .collect();
            match self
                .eventbridge
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    for (event, entry) in chunk.iter().zip(out.entries()) {
                        if entry.error_code().is_some() {
                            failed.push(event.id.clone());
                        }
                    }
                }
                Err(_) => failed.extend(chunk.iter().map(|event| event.id.clone())),
            }
        }
        failed
    }

    /// Queues one delivery per enabled endpoint subscribed to the event.
    pub async fn fan_out(&self, event: &Event) -> StoreResult<()> {
        if self.webhook_queue_url.is_empty() {
            return Ok(());
        }
        for endpoint in self.store.all_endpoints().await? {
            let subscribed = endpoint.events.is_empty()
                || endpoint
                    .events
                    .iter()
                    .any(|name| name == event.event.as_str());
            if endpoint.status != WebhookStatus::Enabled || !subscribed {
                continue;
            }
            let body = serde_json::to_string(&Delivery {
                endpoint_id: endpoint.id.clone(),
                event_id: event.id.clone(),
            })
            .unwrap_or_default();
            self.sqs
                .send_message()
                .queue_url(&self.webhook_queue_url)
                .message_body(body)
                .send()
                .await
                .map_err(|error| {
                    StoreError::Backend(format!(
                        "queueing a webhook delivery failed: {}",
                        crate::s3::describe(&error)
                    ))
                })?;
        }
        Ok(())
    }

    /// Sends one delivery attempt, signed now, and records it. `Ok(true)` on
    /// a 2xx answer; `Ok(false)` when the endpoint or event is gone.
    pub async fn deliver(&self, delivery: &Delivery, attempt: u32) -> StoreResult<bool> {
        let Some(endpoint) = self.store.get_endpoint(&delivery.endpoint_id).await? else {
            return Ok(false);
        };
        let Some(event) = self.store.get_event(&delivery.event_id).await? else {
            return Ok(false);
        };
        if endpoint.status != WebhookStatus::Enabled {
            return Ok(false);
        }
        let body = event.to_json().to_string();
        let now = Timestamp::now();
        let response = self
            .http
            .post(&endpoint.endpoint_url)
            .header("Content-Type", "application/json")
            .header(
                SIGNATURE_HEADER,
                signature_header(&endpoint.secret, now.millis(), body.as_bytes()),
            )
            .timeout(Duration::from_secs(10))
            .body(body)
            .send()
            .await;
        let (status_code, error) = match &response {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(error) => (
                None,
                Some(if error.is_timeout() {
                    "timed out".to_owned()
                } else {
                    "connection failed".to_owned()
                }),
            ),
        };
        let succeeded = status_code.is_some_and(|code| (200..300).contains(&code));
        self.store
            .record_attempt(&DeliveryAttempt {
                endpoint_id: endpoint.id.clone(),
                event_id: event.id.clone(),
                attempt,
                attempted_at: now,
                status_code,
                error,
                succeeded,
            })
            .await?;
        if succeeded {
            Ok(true)
        } else {
            Err(StoreError::Backend(format!(
                "delivery of {} to {} failed (attempt {attempt})",
                event.id, endpoint.id
            )))
        }
    }

    /// Seconds until the next attempt after `attempt` failed, from the
    /// shared schedule; SQS caps a message's visibility at 12 hours.
    pub fn backoff_seconds(attempt: u32) -> i32 {
        retry_delay(attempt + 1)
            .map(|d| d.as_secs().min(43_200) as i32)
            .unwrap_or(0)
    }
}
