//! The `WebhookEndpoints` port over the tables shared with the webhook worker.

use async_trait::async_trait;
use dsync_core::ids::{EventId, WebhookEndpointId};
use dsync_core::ports::{
    DeliveryAttempt, Page, PageRequest, StoreError, StoreResult, WebhookEndpoint, WebhookEndpoints,
    WebhookStatus,
};
use dsync_core::time::Timestamp;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, OptionalExtension, Row};

use super::pagination::page_query;
use super::{json_error, sql_error, SqliteStore};

const COLUMNS: &str = "id, endpoint_url, secret, status, events_json, created_at, updated_at";

fn status_text(status: WebhookStatus) -> &'static str {
    match status {
        WebhookStatus::Enabled => "enabled",
        WebhookStatus::Disabled => "disabled",
    }
}

/// Reads a timestamp stored as RFC 3339 text, or as Unix milliseconds by a
/// writer that chose integers.
fn timestamp_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    let parsed = match row.get_ref(index)? {
        ValueRef::Integer(ms) => Some(Timestamp::from_millis(ms)),
        ValueRef::Text(text) => std::str::from_utf8(text).ok().and_then(Timestamp::parse),
        _ => None,
    };
    parsed.ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            "invalid timestamp".into(),
        )
    })
}

fn endpoint_from_row(row: &Row<'_>) -> rusqlite::Result<(WebhookEndpoint, String)> {
    let status: String = row.get(3)?;
    let endpoint = WebhookEndpoint {
        id: WebhookEndpointId::from_stored(row.get::<_, String>(0)?),
        endpoint_url: row.get(1)?,
        secret: row.get(2)?,
        status: if status == "enabled" {
            WebhookStatus::Enabled
        } else {
            WebhookStatus::Disabled
        },
        events: Vec::new(),
        created_at: timestamp_at(row, 5)?,
        updated_at: timestamp_at(row, 6)?,
    };
    Ok((endpoint, row.get(4)?))
}

fn with_events(
    (mut endpoint, events_json): (WebhookEndpoint, String),
) -> StoreResult<WebhookEndpoint> {
    endpoint.events = serde_json::from_str(&events_json).map_err(json_error)?;
    Ok(endpoint)
}

#[async_trait]
impl WebhookEndpoints for SqliteStore {
    async fn create_endpoint(&self, endpoint: &WebhookEndpoint) -> StoreResult<()> {
        let endpoint = endpoint.clone();
        self.run(move |connection| {
            let events = serde_json::to_string(&endpoint.events).map_err(json_error)?;
            connection
                .execute(
                    "INSERT INTO webhook_endpoints (id, endpoint_url, secret, status, events_json, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        endpoint.id.as_str(),
                        endpoint.endpoint_url,
                        endpoint.secret,
                        status_text(endpoint.status),
                        events,
                        endpoint.created_at.to_string(),
                        endpoint.updated_at.to_string(),
                    ],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn get_endpoint(&self, id: &WebhookEndpointId) -> StoreResult<Option<WebhookEndpoint>> {
        let id = id.clone();
        self.run(move |connection| {
            let sql = format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE id = ?1");
            let found = connection
                .query_row(&sql, [id.as_str()], endpoint_from_row)
                .optional()
                .map_err(sql_error)?;
            found.map(with_events).transpose()
        })
        .await
    }

    async fn list_endpoints(&self, page: &PageRequest) -> StoreResult<Page<WebhookEndpoint>> {
        let query = page_query("id", page);
        self.run(move |connection| {
            let mut values = Vec::new();
            if let Some(cursor) = &query.cursor {
                values.push(cursor.clone());
            }
            values.push(Value::Integer(query.fetch_limit));
            let sql = format!(
                "SELECT {COLUMNS} FROM webhook_endpoints WHERE 1 = 1{} ORDER BY id {} LIMIT ?",
                query.condition, query.fetch_order
            );
            let mut statement = connection.prepare(&sql).map_err(sql_error)?;
            let rows = statement
                .query_map(rusqlite::params_from_iter(values), endpoint_from_row)
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            let endpoints = rows
                .into_iter()
                .map(with_events)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(query.finish(endpoints, |endpoint| endpoint.id.to_string()))
        })
        .await
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> StoreResult<()> {
        let endpoint = endpoint.clone();
        self.run(move |connection| {
            let events = serde_json::to_string(&endpoint.events).map_err(json_error)?;
            let changed = connection
                .execute(
                    "UPDATE webhook_endpoints SET endpoint_url = ?2, secret = ?3, status = ?4, events_json = ?5, \
                     updated_at = ?6 WHERE id = ?1",
                    params![
                        endpoint.id.as_str(),
                        endpoint.endpoint_url,
                        endpoint.secret,
                        status_text(endpoint.status),
                        events,
                        endpoint.updated_at.to_string(),
                    ],
                )
                .map_err(sql_error)?;
            if changed == 0 {
                return Err(StoreError::NotFound { what: "webhook endpoint", id: endpoint.id.to_string() });
            }
            Ok(())
        })
        .await
    }

    async fn delete_endpoint(&self, id: &WebhookEndpointId) -> StoreResult<bool> {
        let id = id.clone();
        self.run(move |connection| {
            let transaction = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            // Pending deliveries to a deleted endpoint would never succeed.
            transaction
                .execute(
                    "DELETE FROM webhook_deliveries WHERE endpoint_id = ?1",
                    [id.as_str()],
                )
                .map_err(sql_error)?;
            let changed = transaction
                .execute("DELETE FROM webhook_endpoints WHERE id = ?1", [id.as_str()])
                .map_err(sql_error)?;
            transaction.commit().map_err(sql_error)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn list_attempts(
        &self,
        id: &WebhookEndpointId,
        page: &PageRequest,
    ) -> StoreResult<Page<DeliveryAttempt>> {
        let id = id.clone();
        let mut query = page_query("rowid", page);
        self.run(move |connection| {
            // Attempts have no id of their own; the rowid is the cursor.
            let mut values = vec![Value::Text(id.to_string())];
            if let Some(Value::Text(cursor)) = query.cursor.take() {
                let rowid: i64 = cursor.parse().map_err(|_| StoreError::NotFound {
                    what: "delivery attempt cursor",
                    id: cursor.clone(),
                })?;
                values.push(Value::Integer(rowid));
            }
            values.push(Value::Integer(query.fetch_limit));
            let sql = format!(
                "SELECT rowid, endpoint_id, event_id, attempt, attempted_at, status_code, error, succeeded \
                 FROM webhook_attempts WHERE endpoint_id = ?{} ORDER BY rowid {} LIMIT ?",
                query.condition, query.fetch_order
            );
            let mut statement = connection.prepare(&sql).map_err(sql_error)?;
            let rows = statement
                .query_map(rusqlite::params_from_iter(values), |row| {
                    let attempt = DeliveryAttempt {
                        endpoint_id: WebhookEndpointId::from_stored(row.get::<_, String>(1)?),
                        event_id: EventId::from_stored(row.get::<_, String>(2)?),
                        attempt: row.get(3)?,
                        attempted_at: timestamp_at(row, 4)?,
                        status_code: row.get(5)?,
                        error: row.get(6)?,
                        succeeded: row.get::<_, i64>(7)? != 0,
                    };
                    Ok((row.get::<_, i64>(0)?, attempt))
                })
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            let page = query.finish(rows, |(rowid, _)| rowid.to_string());
            Ok(Page {
                data: page.data.into_iter().map(|(_, attempt)| attempt).collect(),
                before: page.before,
                after: page.after,
            })
        })
        .await
    }
}
