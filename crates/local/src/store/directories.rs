//! The `Directories` port: directory rows and offboarding purge.

use async_trait::async_trait;
use dsync_core::event::EventKind;
use dsync_core::ids::DirectoryId;
use dsync_core::model::{Directory, DirectoryStatus};
use dsync_core::ports::{Directories, DirectoryFilter, Page, PageRequest, StoreError, StoreResult};
use dsync_core::settings::DirectorySettings;
use dsync_core::time::Timestamp;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::pagination::page_query;
use super::{json_error, sql_error, SqliteStore};

const COLUMNS: &str = "id, organization_id, external_key, name, status, domain, sftp_username, \
                       settings_json, created_at_ms, updated_at_ms";

fn directory_from_row(row: &Row<'_>) -> rusqlite::Result<(Directory, String)> {
    let status: String = row.get(4)?;
    let settings_json: String = row.get(7)?;
    let directory = Directory {
        id: DirectoryId::from_stored(row.get::<_, String>(0)?),
        organization_id: row.get(1)?,
        external_key: row.get(2)?,
        name: row.get(3)?,
        status: DirectoryStatus::parse(&status).unwrap_or(DirectoryStatus::Deleting),
        domain: row.get(5)?,
        sftp_username: row.get(6)?,
        settings: DirectorySettings::default(),
        created_at: Timestamp::from_millis(row.get(8)?),
        updated_at: Timestamp::from_millis(row.get(9)?),
    };
    Ok((directory, settings_json))
}

fn with_settings((mut directory, settings_json): (Directory, String)) -> StoreResult<Directory> {
    directory.settings = serde_json::from_str(&settings_json).map_err(json_error)?;
    Ok(directory)
}

/// Reads one directory inside any connection or transaction.
pub(crate) fn select_directory(
    connection: &Connection,
    id: &str,
) -> StoreResult<Option<Directory>> {
    let sql = format!("SELECT {COLUMNS} FROM directories WHERE id = ?1");
    let found = connection
        .query_row(&sql, [id], directory_from_row)
        .optional()
        .map_err(sql_error)?;
    found.map(with_settings).transpose()
}

#[async_trait]
impl Directories for SqliteStore {
    async fn create_directory(&self, directory: &Directory) -> StoreResult<()> {
        let directory = directory.clone();
        self.run(move |connection| {
            let settings = serde_json::to_string(&directory.settings).map_err(json_error)?;
            connection
                .execute(
                    "INSERT INTO directories (id, organization_id, external_key, name, status, domain, \
                     sftp_username, settings_json, created_at_ms, updated_at_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        directory.id.as_str(),
                        directory.organization_id,
                        directory.external_key,
                        directory.name,
                        directory.status.as_str(),
                        directory.domain,
                        directory.sftp_username,
                        settings,
                        directory.created_at.millis(),
                        directory.updated_at.millis(),
                    ],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn get_directory(&self, id: &DirectoryId) -> StoreResult<Option<Directory>> {
        let id = id.clone();
        self.run(move |connection| select_directory(connection, id.as_str()))
            .await
    }

    async fn find_directory_by_username(&self, username: &str) -> StoreResult<Option<Directory>> {
        let username = username.to_owned();
        self.run(move |connection| {
            let sql = format!("SELECT {COLUMNS} FROM directories WHERE sftp_username = ?1");
            let found = connection
                .query_row(&sql, [username], directory_from_row)
                .optional()
                .map_err(sql_error)?;
            found.map(with_settings).transpose()
        })
        .await
    }

    async fn list_directories(
        &self,
        filter: &DirectoryFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Directory>> {
        let filter = filter.clone();
        let query = page_query("id", page);
        self.run(move |connection| {
            let mut conditions = String::new();
            let mut values: Vec<Value> = Vec::new();
            if let Some(organization_id) = filter.organization_id {
                conditions.push_str(" AND organization_id = ?");
                values.push(Value::Text(organization_id));
            }
            if let Some(search) = filter.search {
                // instr on lowercased text: a substring match with no LIKE wildcards to escape.
                conditions.push_str(" AND instr(lower(name), lower(?)) > 0");
                values.push(Value::Text(search));
            }
            if let Some(cursor) = &query.cursor {
                values.push(cursor.clone());
            }
            values.push(Value::Integer(query.fetch_limit));

            let sql = format!(
                "SELECT {COLUMNS} FROM directories WHERE 1 = 1{conditions}{} ORDER BY id {} LIMIT ?",
                query.condition, query.fetch_order
            );
            let mut statement = connection.prepare(&sql).map_err(sql_error)?;
            let rows = statement
                .query_map(rusqlite::params_from_iter(values), directory_from_row)
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            let directories = rows.into_iter().map(with_settings).collect::<StoreResult<Vec<_>>>()?;
            Ok(query.finish(directories, |directory| directory.id.to_string()))
        })
        .await
    }

    async fn update_directory(&self, directory: &Directory) -> StoreResult<()> {
        let directory = directory.clone();
        self.run(move |connection| {
            let settings = serde_json::to_string(&directory.settings).map_err(json_error)?;
            let changed = connection
                .execute(
                    "UPDATE directories SET name = ?2, status = ?3, domain = ?4, settings_json = ?5, \
                     updated_at_ms = ?6 WHERE id = ?1",
                    params![
                        directory.id.as_str(),
                        directory.name,
                        directory.status.as_str(),
                        directory.domain,
                        settings,
                        directory.updated_at.millis(),
                    ],
                )
                .map_err(sql_error)?;
            if changed == 0 {
                return Err(StoreError::NotFound { what: "directory", id: directory.id.to_string() });
            }
            Ok(())
        })
        .await
    }

    async fn purge_directory(&self, id: &DirectoryId) -> StoreResult<()> {
        let id = id.clone();
        self.run(move |connection| {
            let transaction = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            transaction
                .execute(
                    "DELETE FROM completed_uploads WHERE sftp_username IN \
                     (SELECT sftp_username FROM directories WHERE id = ?1)",
                    [id.as_str()],
                )
                .map_err(sql_error)?;
            // Offboarding removes the directory's events (their payloads hold
            // names and e-mail addresses) with their webhook deliveries and
            // attempts. Only dsync.deleted stays: its payload is directory
            // metadata, and it marks the directory as gone for consumers.
            for sql in [
                "DELETE FROM webhook_attempts WHERE event_id IN \
                 (SELECT id FROM events WHERE directory_id = ?1 AND kind <> ?2)",
                "DELETE FROM webhook_deliveries WHERE event_id IN \
                 (SELECT id FROM events WHERE directory_id = ?1 AND kind <> ?2)",
                "DELETE FROM events WHERE directory_id = ?1 AND kind <> ?2",
            ] {
                transaction
                    .execute(sql, params![id.as_str(), EventKind::Deleted.as_str()])
                    .map_err(sql_error)?;
            }
            // Explicit deletes rather than relying on ON DELETE CASCADE alone,
            // so a database opened without foreign keys is purged too.
            for table in [
                "memberships",
                "users",
                "groups",
                "ssh_keys",
                "syncs",
                "directories",
            ] {
                let column = if table == "directories" {
                    "id"
                } else {
                    "directory_id"
                };
                let sql = format!("DELETE FROM {table} WHERE {column} = ?1");
                transaction
                    .execute(&sql, [id.as_str()])
                    .map_err(sql_error)?;
            }
            transaction.commit().map_err(sql_error)?;
            // Copy the purge into the database file and empty the WAL, so
            // the deleted rows do not linger in it (secure_delete has zeroed
            // them in the pages). Busy readers can keep the WAL from being
            // reset; the next checkpoint finishes the job then.
            connection
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(sql_error)
        })
        .await
    }
}
