//! The `Syncs` port: sync records and the all-or-nothing commit of a plan.

use async_trait::async_trait;
use dsync_core::ids::{DirectoryId, SyncId};
use dsync_core::model::DirectoryStatus;
use dsync_core::plan::Plan;
use dsync_core::ports::{Page, PageRequest, StoreError, StoreResult, Syncs};
use dsync_core::report::{SyncRecord, SyncStatus};
use dsync_core::time::Timestamp;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::data::apply_change;
use super::events::insert_events;
use super::pagination::page_query;
use super::{json_error, sql_error, SqliteStore};

fn upsert_record(connection: &Connection, record: &SyncRecord) -> StoreResult<()> {
    let json = serde_json::to_string(record).map_err(json_error)?;
    connection
        .execute(
            "INSERT INTO syncs (id, directory_id, status, record_json) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, record_json = excluded.record_json",
            params![record.id.as_str(), record.directory_id.as_str(), record.status.as_str(), json],
        )
        .map_err(sql_error)?;
    Ok(())
}

/// Marks the held syncs of `record`'s directory that are older than it
/// `discarded`, with the reason "superseded by sync ID", when `record` is
/// applied or held: an older held plan can no longer be approved then.
/// Runs inside the caller's transaction.
fn supersede_older_held(connection: &Connection, record: &SyncRecord) -> StoreResult<()> {
    if !matches!(record.status, SyncStatus::Applied | SyncStatus::Held) {
        return Ok(());
    }
    let older: Vec<String> = {
        let mut statement = connection
            .prepare(
                "SELECT record_json FROM syncs WHERE directory_id = ?1 AND status = ?2 AND id < ?3",
            )
            .map_err(sql_error)?;
        let rows = statement
            .query_map(
                params![
                    record.directory_id.as_str(),
                    SyncStatus::Held.as_str(),
                    record.id.as_str()
                ],
                |row| row.get(0),
            )
            .map_err(sql_error)?;
        rows.collect::<Result<_, _>>().map_err(sql_error)?
    };
    let now = Timestamp::now();
    for json in older {
        let mut held = record_from_json(json)?;
        held.status = SyncStatus::Discarded;
        held.reason = Some(format!("superseded by sync {}", record.id));
        held.resolved_at = Some(now);
        upsert_record(connection, &held)?;
    }
    Ok(())
}

/// Commits `plan` for `record.directory_id` in one immediate transaction.
///
/// The optimistic check: `record.started_at` is taken before the sync loads
/// the stored state, and every commit stamps the directory with its wall
/// time. A commit stamped at or after this sync's start means this plan may
/// rest on stale state, so the commit fails with `Conflict` and the caller
/// re-plans. (A commit in the very millisecond the sync started is a false
/// alarm that a retry clears.)
fn commit(connection: &mut Connection, plan: &Plan, record: &SyncRecord) -> StoreResult<()> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    let directory_id = record.directory_id.as_str();

    let row: Option<(String, i64)> = transaction
        .query_row(
            "SELECT status, last_commit_at_ms FROM directories WHERE id = ?1",
            [directory_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(sql_error)?;
    let Some((status, last_commit_at_ms)) = row else {
        return Err(StoreError::NotFound {
            what: "directory",
            id: directory_id.to_owned(),
        });
    };
    if status == DirectoryStatus::Deleting.as_str() {
        return Err(StoreError::Conflict(format!(
            "directory {directory_id} is being deleted"
        )));
    }
    if last_commit_at_ms >= record.started_at.millis() {
        return Err(StoreError::Conflict(format!(
            "another sync of directory {directory_id} committed while sync {} ran; reconcile again",
            record.id
        )));
    }

    for step in &plan.steps {
        apply_change(&transaction, directory_id, &step.change)?;
    }
    insert_events(
        &transaction,
        plan.steps.iter().filter_map(|step| step.event.as_ref()),
    )?;
    upsert_record(&transaction, record)?;
    supersede_older_held(&transaction, record)?;

    let committed_at_ms = Timestamp::now().millis().max(record.started_at.millis());
    transaction
        .execute(
            "UPDATE directories SET last_commit_at_ms = ?2 WHERE id = ?1",
            params![directory_id, committed_at_ms],
        )
        .map_err(sql_error)?;
    transaction.commit().map_err(sql_error)
}

fn record_from_json(json: String) -> StoreResult<SyncRecord> {
    serde_json::from_str(&json).map_err(json_error)
}

#[async_trait]
impl Syncs for SqliteStore {
    async fn commit_sync(&self, plan: &Plan, record: &SyncRecord) -> StoreResult<()> {
        let plan = plan.clone();
        let record = record.clone();
        self.run(move |connection| commit(connection, &plan, &record))
            .await
    }

    async fn save_sync_record(&self, record: &SyncRecord) -> StoreResult<()> {
        let record = record.clone();
        self.run(move |connection| {
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            upsert_record(&transaction, &record)?;
            supersede_older_held(&transaction, &record)?;
            transaction.commit().map_err(sql_error)
        })
        .await
    }

    async fn get_sync(&self, id: &SyncId) -> StoreResult<Option<SyncRecord>> {
        let id = id.clone();
        self.run(move |connection| {
            let json: Option<String> = connection
                .query_row(
                    "SELECT record_json FROM syncs WHERE id = ?1",
                    [id.as_str()],
                    |row| row.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            json.map(record_from_json).transpose()
        })
        .await
    }

    async fn list_syncs(
        &self,
        directory: &DirectoryId,
        page: &PageRequest,
    ) -> StoreResult<Page<SyncRecord>> {
        let directory = directory.clone();
        let query = page_query("id", page);
        self.run(move |connection| {
            let mut values = vec![Value::Text(directory.to_string())];
            if let Some(cursor) = &query.cursor {
                values.push(cursor.clone());
            }
            values.push(Value::Integer(query.fetch_limit));
            let sql = format!(
                "SELECT record_json FROM syncs WHERE directory_id = ?{} ORDER BY id {} LIMIT ?",
                query.condition, query.fetch_order
            );
            let mut statement = connection.prepare(&sql).map_err(sql_error)?;
            let rows = statement
                .query_map(rusqlite::params_from_iter(values), |row| {
                    row.get::<_, String>(0)
                })
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            let records = rows
                .into_iter()
                .map(record_from_json)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(query.finish(records, |record| record.id.to_string()))
        })
        .await
    }
}
