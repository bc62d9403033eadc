//! Counts DynamoDB requests as they leave the SDK client, for cost figures.
//!
//! The emulators keep no CloudWatch metrics, so the count is taken on the
//! client: an interceptor sees every HTTP request, retries included, reads the
//! operation from the `X-Amz-Target` header and counts the items a write
//! request carries from its JSON body.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;

/// Requests and written items per DynamoDB operation.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter {
    inner: Arc<Mutex<BTreeMap<String, OperationCount>>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperationCount {
    pub requests: u64,
    /// Items written: one for PutItem/UpdateItem/DeleteItem, each
    /// Put/Update/Delete/ConditionCheck of a transaction, each request of a batch.
    pub items: u64,
}

const WRITE_OPERATIONS: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

impl RequestCounter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> BTreeMap<String, OperationCount> {
        self.inner.lock().map(|map| map.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut map) = self.inner.lock() {
            map.clear();
        }
    }

    /// Write requests and written items over every write operation.
    pub fn writes(&self) -> OperationCount {
        let map = self.snapshot();
        let mut total = OperationCount::default();
        for name in WRITE_OPERATIONS {
            if let Some(count) = map.get(name) {
                total.requests += count.requests;
                total.items += count.items;
            }
        }
        total
    }

    fn record(&self, operation: &str, body: Option<&[u8]>) {
        let items = match operation {
            "PutItem" | "UpdateItem" | "DeleteItem" => 1,
            "TransactWriteItems" => body
                .and_then(|b| {
                    count_items(b, |v| v.get("TransactItems")?.as_array().map(|a| a.len()))
                })
                .unwrap_or(0),
            "BatchWriteItem" => body
                .and_then(|b| {
                    count_items(b, |v| {
                        Some(
                            v.get("RequestItems")?
                                .as_object()?
                                .values()
                                .filter_map(|r| r.as_array())
                                .map(|r| r.len())
                                .sum(),
                        )
                    })
                })
                .unwrap_or(0),
            _ => 0,
        };
        if let Ok(mut map) = self.inner.lock() {
            let entry = map.entry(operation.to_owned()).or_default();
            entry.requests += 1;
            entry.items += items as u64;
        }
    }
}

fn count_items(body: &[u8], read: impl Fn(&serde_json::Value) -> Option<usize>) -> Option<usize> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    read(&value)
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "dsync-request-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|target| target.rsplit('.').next())
            .unwrap_or("unknown")
            .to_owned();
        self.record(&operation, request.body().bytes());
        Ok(())
    }
}
