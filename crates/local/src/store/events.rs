//! The `Events` port: the event log, its ordering rule, and the webhook
//! delivery rows created with each event.

use async_trait::async_trait;
use dsync_core::event::{Event, EventKind};
use dsync_core::ids::{DirectoryId, EventId};
use dsync_core::ports::{EventQuery, Events, Page, StoreError, StoreResult};
use dsync_core::time::Timestamp;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};
use ulid::Ulid;

use super::{json_error, sql_error, SqliteStore};

/// Events older than this are deleted by [`SqliteStore::purge_events_before`]
/// when `dsync serve` runs its retention pass.
pub const EVENT_RETENTION_DAYS: i64 = 90;

/// Inserts events in the given order inside `transaction`-scoped `connection`,
/// plus one pending webhook delivery per subscribed enabled endpoint.
///
/// Event ids must sort in commit order, because readers page with an
/// exclusive `after` cursor and would skip an event that appears behind it.
/// The planner derives ids from the sync's `now`, so a slower sync that
/// started earlier, or two events of one plan inside the same millisecond,
/// could produce an id that sorts at or before the newest stored one. Such an
/// event is re-stamped with the next ULID after the previous id (same
/// millisecond, random part plus one); its `created_at` is kept.
pub(crate) fn insert_events<'a>(
    connection: &Connection,
    events: impl IntoIterator<Item = &'a Event>,
) -> StoreResult<()> {
    let newest: Option<String> = connection
        .query_row(
            "SELECT id FROM events ORDER BY id DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    let mut previous: Option<Ulid> = newest.and_then(|id| EventId::from_stored(id).ulid());

    let endpoints = subscribed_endpoints(connection)?;
    let now_ms = Timestamp::now().millis();

    for event in events {
        let mut ulid = event.id.ulid().ok_or_else(|| {
            StoreError::Backend(format!("event id {} is not a prefixed ULID", event.id))
        })?;
        if let Some(previous_ulid) = previous {
            if ulid <= previous_ulid {
                ulid = previous_ulid.increment().ok_or_else(|| {
                    StoreError::Backend(
                        "event id space of this millisecond is exhausted".to_owned(),
                    )
                })?;
            }
        }
        previous = Some(ulid);
        let id = EventId::from_ulid(ulid);

        // The data is serialised once and the envelope assembled around it,
        // in the key order of Event::to_json. Ids, event names and
        // timestamps contain no character that JSON escapes.
        let data = serde_json::to_string(&event.data).map_err(json_error)?;
        let created_at = event.created_at.to_string();
        let body = format!(
            r#"{{"object":"event","id":"{id}","event":"{}","data":{data},"created_at":"{created_at}"}}"#,
            event.event.as_str()
        );
        connection
            .prepare_cached(
                "INSERT INTO events (id, kind, directory_id, organization_id, data_json, created_at, body_json) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(sql_error)?
            .execute(params![
                id.as_str(),
                event.event.as_str(),
                event.directory_id.as_ref().map(|directory| directory.as_str()),
                event.organization_id,
                data,
                created_at,
                body,
            ])
            .map_err(sql_error)?;

        for (endpoint_id, subscribed) in &endpoints {
            let subscribed_to_event =
                subscribed.is_empty() || subscribed.iter().any(|name| name == event.event.as_str());
            if !subscribed_to_event {
                continue;
            }
            connection
                .prepare_cached(
                    "INSERT INTO webhook_deliveries (endpoint_id, event_id, attempt, next_attempt_at_ms, state) \
                     VALUES (?1, ?2, 0, ?3, 'pending')",
                )
                .map_err(sql_error)?
                .execute(params![endpoint_id, id.as_str(), now_ms])
                .map_err(sql_error)?;
        }
    }
    Ok(())
}

/// Enabled endpoints with their subscribed event names (empty = all).
fn subscribed_endpoints(connection: &Connection) -> StoreResult<Vec<(String, Vec<String>)>> {
    let mut statement = connection
        .prepare_cached(
            "SELECT id, events_json FROM webhook_endpoints WHERE status = 'enabled' ORDER BY id",
        )
        .map_err(sql_error)?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    rows.into_iter()
        .map(|(id, events_json)| {
            let events: Vec<String> = serde_json::from_str(&events_json).map_err(json_error)?;
            Ok((id, events))
        })
        .collect()
}

fn event_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<(
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn build_event(
    (id, kind, directory_id, organization_id, data, created_at): (
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        String,
    ),
) -> StoreResult<Event> {
    let event = EventKind::parse(&kind)
        .ok_or_else(|| StoreError::Backend(format!("stored event {id} has unknown kind {kind}")))?;
    let created_at = Timestamp::parse(&created_at)
        .ok_or_else(|| StoreError::Backend(format!("stored event {id} has invalid created_at")))?;
    Ok(Event {
        id: EventId::from_stored(id),
        event,
        directory_id: directory_id.map(DirectoryId::from_stored),
        organization_id,
        data: serde_json::from_str(&data).map_err(json_error)?,
        created_at,
    })
}

pub(crate) fn purge_before(connection: &mut Connection, cutoff: Timestamp) -> StoreResult<usize> {
    let cutoff = cutoff.to_string();
    let transaction = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    transaction
        .execute(
            "DELETE FROM webhook_deliveries WHERE event_id IN (SELECT id FROM events WHERE created_at < ?1)",
            [&cutoff],
        )
        .map_err(sql_error)?;
    transaction
        .execute(
            "DELETE FROM webhook_attempts WHERE event_id IN (SELECT id FROM events WHERE created_at < ?1)",
            [&cutoff],
        )
        .map_err(sql_error)?;
    let deleted = transaction
        .execute("DELETE FROM events WHERE created_at < ?1", [&cutoff])
        .map_err(sql_error)?;
    transaction.commit().map_err(sql_error)?;
    Ok(deleted)
}

#[async_trait]
impl Events for SqliteStore {
    async fn append_events(&self, events: &[Event]) -> StoreResult<()> {
        let events = events.to_vec();
        self.run(move |connection| {
            let transaction = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            insert_events(&transaction, &events)?;
            transaction.commit().map_err(sql_error)
        })
        .await
    }

    async fn list_events(&self, query: &EventQuery) -> StoreResult<Page<Event>> {
        let query = query.clone();
        self.run(move |connection| {
            let mut conditions = String::new();
            let mut values: Vec<Value> = Vec::new();

            if !query.kinds.is_empty() {
                let marks = vec!["?"; query.kinds.len()].join(", ");
                conditions.push_str(&format!(" AND kind IN ({marks})"));
                values.extend(
                    query
                        .kinds
                        .iter()
                        .map(|kind| Value::Text(kind.as_str().to_owned())),
                );
            }
            if let Some(organization_id) = &query.organization_id {
                conditions.push_str(" AND organization_id = ?");
                values.push(Value::Text(organization_id.clone()));
            }
            if let Some(directory_id) = &query.directory_id {
                conditions.push_str(" AND directory_id = ?");
                values.push(Value::Text(directory_id.to_string()));
            }
            // created_at is fixed-width RFC 3339 text in UTC, so text order is time order.
            if let Some(start) = query.range_start {
                conditions.push_str(" AND created_at >= ?");
                values.push(Value::Text(start.to_string()));
            }
            if let Some(end) = query.range_end {
                conditions.push_str(" AND created_at <= ?");
                values.push(Value::Text(end.to_string()));
            }
            if let Some(after) = &query.after {
                conditions.push_str(" AND id > ?");
                values.push(Value::Text(after.to_string()));
            }
            let limit = query.limit.clamp(1, 100);
            values.push(Value::Integer(limit as i64 + 1));

            let sql = format!(
                "SELECT id, kind, directory_id, organization_id, data_json, created_at FROM events \
                 WHERE 1 = 1{conditions} ORDER BY id ASC LIMIT ?"
            );
            let mut statement = connection.prepare(&sql).map_err(sql_error)?;
            let rows = statement
                .query_map(rusqlite::params_from_iter(values), event_from_row)
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            let mut events = rows
                .into_iter()
                .map(build_event)
                .collect::<StoreResult<Vec<_>>>()?;

            let more = events.len() > limit;
            events.truncate(limit);
            let after = if more {
                events.last().map(|event| event.id.to_string())
            } else {
                None
            };
            let before = query
                .after
                .as_ref()
                .and(events.first().map(|event| event.id.to_string()));
            Ok(Page {
                data: events,
                before,
                after,
            })
        })
        .await
    }
}
