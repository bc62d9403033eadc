//! The `SshKeys` port.

use async_trait::async_trait;
use dsync_core::ids::{DirectoryId, KeyId};
use dsync_core::ports::{SshKeyRecord, SshKeys, StoreError, StoreResult};
use dsync_core::time::Timestamp;
use rusqlite::{params, OptionalExtension, Row};

use super::{sql_error, SqliteStore};

const COLUMNS: &str = "id, directory_id, key_type, public_key, comment, fingerprint, created_at_ms";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<SshKeyRecord> {
    Ok(SshKeyRecord {
        id: KeyId::from_stored(row.get::<_, String>(0)?),
        directory_id: DirectoryId::from_stored(row.get::<_, String>(1)?),
        key_type: row.get(2)?,
        public_key: row.get(3)?,
        comment: row.get(4)?,
        fingerprint: row.get(5)?,
        created_at: Timestamp::from_millis(row.get(6)?),
    })
}

#[async_trait]
impl SshKeys for SqliteStore {
    async fn add_key(&self, key: &SshKeyRecord) -> StoreResult<()> {
        let key = key.clone();
        self.run(move |connection| {
            let result = connection.execute(
                "INSERT INTO ssh_keys (id, directory_id, key_type, public_key, comment, fingerprint, created_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    key.id.as_str(),
                    key.directory_id.as_str(),
                    key.key_type,
                    key.public_key,
                    key.comment,
                    key.fingerprint,
                    key.created_at.millis(),
                ],
            );
            match result.map_err(sql_error) {
                Ok(_) => Ok(()),
                Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
                    "the key {} is already registered",
                    key.fingerprint
                ))),
                Err(other) => Err(other),
            }
        })
        .await
    }

    async fn list_keys(&self, directory: &DirectoryId) -> StoreResult<Vec<SshKeyRecord>> {
        let directory = directory.clone();
        self.run(move |connection| {
            let sql = format!("SELECT {COLUMNS} FROM ssh_keys WHERE directory_id = ?1 ORDER BY id");
            let mut statement = connection.prepare(&sql).map_err(sql_error)?;
            let keys = statement
                .query_map([directory.as_str()], key_from_row)
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            Ok(keys)
        })
        .await
    }

    async fn remove_key(&self, directory: &DirectoryId, key: &KeyId) -> StoreResult<bool> {
        let directory = directory.clone();
        let key = key.clone();
        self.run(move |connection| {
            let changed = connection
                .execute(
                    "DELETE FROM ssh_keys WHERE directory_id = ?1 AND id = ?2",
                    [directory.as_str(), key.as_str()],
                )
                .map_err(sql_error)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn find_key_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> StoreResult<Option<SshKeyRecord>> {
        let fingerprint = fingerprint.to_owned();
        self.run(move |connection| {
            let sql = format!("SELECT {COLUMNS} FROM ssh_keys WHERE fingerprint = ?1");
            connection
                .query_row(&sql, [fingerprint], key_from_row)
                .optional()
                .map_err(sql_error)
        })
        .await
    }
}
