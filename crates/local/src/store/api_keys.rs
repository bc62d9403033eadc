//! The `ApiKeys` port. Only the SHA-256 of each secret is stored.

use async_trait::async_trait;
use dsync_core::ids::ApiKeyId;
use dsync_core::ports::{ApiKeyRecord, ApiKeys, StoreResult};
use dsync_core::time::Timestamp;
use rusqlite::{params, OptionalExtension, Row};

use super::{sql_error, SqliteStore};

const COLUMNS: &str = "id, name, secret_sha256, created_at_ms, revoked_at_ms";

fn api_key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: ApiKeyId::from_stored(row.get::<_, String>(0)?),
        name: row.get(1)?,
        secret_sha256: row.get(2)?,
        created_at: Timestamp::from_millis(row.get(3)?),
        revoked_at: row.get::<_, Option<i64>>(4)?.map(Timestamp::from_millis),
    })
}

#[async_trait]
impl ApiKeys for SqliteStore {
    async fn create_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let key = key.clone();
        self.run(move |connection| {
            connection
                .execute(
                    "INSERT INTO api_keys (id, name, secret_sha256, created_at_ms, revoked_at_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        key.id.as_str(),
                        key.name,
                        key.secret_sha256,
                        key.created_at.millis(),
                        key.revoked_at.map(|at| at.millis()),
                    ],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.run(move |connection| {
            let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY id");
            let mut statement = connection.prepare(&sql).map_err(sql_error)?;
            let keys = statement
                .query_map([], api_key_from_row)
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            Ok(keys)
        })
        .await
    }

    async fn revoke_api_key(&self, id: &ApiKeyId) -> StoreResult<bool> {
        let id = id.clone();
        self.run(move |connection| {
            let changed = connection
                .execute(
                    "UPDATE api_keys SET revoked_at_ms = ?2 WHERE id = ?1 AND revoked_at_ms IS NULL",
                    params![id.as_str(), Timestamp::now().millis()],
                )
                .map_err(sql_error)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn find_api_key(&self, secret_sha256: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let secret_sha256 = secret_sha256.to_owned();
        self.run(move |connection| {
            let sql = format!(
                "SELECT {COLUMNS} FROM api_keys WHERE secret_sha256 = ?1 AND revoked_at_ms IS NULL"
            );
            connection
                .query_row(&sql, [secret_sha256], api_key_from_row)
                .optional()
                .map_err(sql_error)
        })
        .await
    }
}
