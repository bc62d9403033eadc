//! Completed uploads: the files the SFTP server saw fully written.

use dsync_core::ports::{StoreResult, StoredFile};
use dsync_core::time::Timestamp;
use rusqlite::params;

use super::{sql_error, SqliteStore};

/// A file as it was when the SFTP server reported it complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedUpload {
    /// Relative to the upload folder, `/`-separated.
    pub path: String,
    pub size_bytes: u64,
    pub modified_ms: i64,
}

impl CompletedUpload {
    /// True when `file` is still exactly the file that was completed.
    pub fn matches(&self, file: &StoredFile) -> bool {
        self.path == file.name
            && self.size_bytes == file.size_bytes
            && self.modified_ms == file.modified.millis()
    }
}

impl SqliteStore {
    /// Records that `upload` was completely written to `username`'s folder,
    /// replacing what was recorded for the same path.
    pub async fn record_completed_upload(
        &self,
        username: &str,
        upload: CompletedUpload,
    ) -> StoreResult<()> {
        let username = username.to_owned();
        self.run(move |connection| {
            connection
                .execute(
                    "INSERT INTO completed_uploads (sftp_username, path, size_bytes, modified_ms, completed_at_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (sftp_username, path) DO UPDATE SET size_bytes = excluded.size_bytes, \
                     modified_ms = excluded.modified_ms, completed_at_ms = excluded.completed_at_ms",
                    params![
                        username,
                        upload.path,
                        upload.size_bytes as i64,
                        upload.modified_ms,
                        Timestamp::now().millis(),
                    ],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    /// Lists the completed uploads recorded for `username`.
    pub async fn completed_uploads(&self, username: &str) -> StoreResult<Vec<CompletedUpload>> {
        let username = username.to_owned();
        self.run(move |connection| {
            let mut statement = connection
                .prepare("SELECT path, size_bytes, modified_ms FROM completed_uploads WHERE sftp_username = ?1")
                .map_err(sql_error)?;
            let uploads = statement
                .query_map([username], |row| {
                    Ok(CompletedUpload {
                        path: row.get(0)?,
                        size_bytes: row.get::<_, i64>(1)? as u64,
                        modified_ms: row.get(2)?,
                    })
                })
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            Ok(uploads)
        })
        .await
    }
}
