//! Upload tracking: one transfer record per file handle opened for writing,
//! and the registry of uploads still in progress that other parts of dsync consult.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The uploads currently open for writing, across all SFTP sessions of one server.
///
/// Cloning is cheap and every clone reads the same uploads. Uploads are written to
/// staging files outside the jail, so the file visible at a path is always the
/// last complete one (or absent) and a re-scan may read it even while an upload
/// to that path is in progress. [`UploadRegistry::is_upload_in_progress`] tells
/// that a newer version of the file is on its way: the close callback
/// ([`super::SftpBackend::upload_completed`]) follows if that upload completes.
#[derive(Debug, Clone, Default)]
pub struct UploadRegistry {
    open: Arc<Mutex<HashMap<(String, String), usize>>>,
}

impl UploadRegistry {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns true while some session has `path` open for writing under `username`'s jail.
    ///
    /// The file at `path` itself stays the previous complete version until the
    /// upload's CLOSE renames the staged file over it.
    ///
    /// `path` is relative to the jail root and `/`-separated, as passed to
    /// `upload_completed` (`users.csv`, `in/users.csv`); a leading `/` is ignored.
    pub fn is_upload_in_progress(&self, username: &str, path: &str) -> bool {
        let key = (
            username.to_string(),
            path.trim_start_matches('/').to_string(),
        );
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.contains_key(&key)
    }

    fn begin(&self, username: &str, path: &str) {
        let key = (username.to_string(), path.to_string());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        *open.entry(key).or_insert(0) += 1;
    }

    fn end(&self, username: &str, path: &str) {
        let key = (username.to_string(), path.to_string());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

/// One file handle opened for writing: what was written, since when, and the first error.
///
/// The upload counts as in progress in the [`UploadRegistry`] from [`Upload::start`]
/// until the value is dropped, whatever the outcome, so a session that ends with
/// the file still open releases it too.
#[derive(Debug)]
pub struct Upload {
    registry: UploadRegistry,
    username: String,
    path: String,
    started: Instant,
    bytes_written: u64,
    /// The size the file has reached: its length when opened without truncation, then the end of the furthest write.
    end_offset: u64,
    max_bytes: u64,
    first_error: Option<String>,
}

impl Upload {
    /// Starts tracking an upload to `path` (relative to the jail root) of a file that is `initial_len` bytes long.
    pub fn start(
        registry: &UploadRegistry,
        username: &str,
        path: &str,
        initial_len: u64,
        max_bytes: u64,
    ) -> Self {
        registry.begin(username, path);
        Upload {
            registry: registry.clone(),
            username: username.to_string(),
            path: path.to_string(),
            started: Instant::now(),
            bytes_written: 0,
            end_offset: initial_len,
            max_bytes,
            first_error: None,
        }
    }

    /// Checks that writing `len` bytes at `offset` keeps the file within the size limit.
    ///
    /// A write past the limit fails the whole upload: later writes and the close fail too.
    pub fn check_write(&mut self, offset: u64, len: u64) -> Result<(), String> {
        if let Some(error) = &self.first_error {
            return Err(error.clone());
        }

        let end = offset.saturating_add(len);
        if end > self.max_bytes {
            let error = format!(
                "upload rejected: {:?} exceeds the upload limit of {} bytes; split the data into smaller files or ask the dsync operator to raise the limit",
                self.path, self.max_bytes
            );
            self.first_error = Some(error.clone());
            return Err(error);
        }
        Ok(())
    }

    /// Records `len` bytes written at `offset`.
    pub fn record_write(&mut self, offset: u64, len: u64) {
        self.bytes_written += len;
        self.end_offset = self.end_offset.max(offset.saturating_add(len));
    }

    /// Records an error; only the first one is kept, because later errors usually follow from it.
    pub fn fail(&mut self, error: String) {
        if self.first_error.is_none() {
            self.first_error = Some(error);
        }
    }

    /// Moves the upload to a new path, as when the client renames the file before closing it.
    pub fn rename(&mut self, new_path: &str) {
        self.registry.end(&self.username, &self.path);
        self.path = new_path.to_string();
        self.registry.begin(&self.username, &self.path);
    }

    /// Returns the path relative to the jail root.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Returns the bytes written through this handle.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Returns the current end of the file, where an append-mode write lands.
    pub fn end_offset(&self) -> u64 {
        self.end_offset
    }

    /// Returns the time since the file was opened.
    pub fn duration(&self) -> Duration {
        self.started.elapsed()
    }

    /// Returns the first error recorded, if any.
    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.registry.end(&self.username, &self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_tracks_upload_until_dropped() {
        let registry = UploadRegistry::new();

        let upload = Upload::start(&registry, "acme", "users.csv", 0, 100);
        assert!(registry.is_upload_in_progress("acme", "users.csv"));
        assert!(registry.is_upload_in_progress("acme", "/users.csv"));
        assert!(!registry.is_upload_in_progress("other", "users.csv"));

        drop(upload);
        assert!(!registry.is_upload_in_progress("acme", "users.csv"));
    }

    #[test]
    fn registry_counts_two_handles_on_same_path() {
        let registry = UploadRegistry::new();

        let first = Upload::start(&registry, "acme", "users.csv", 0, 100);
        let second = Upload::start(&registry, "acme", "users.csv", 0, 100);
        drop(first);

        assert!(registry.is_upload_in_progress("acme", "users.csv"));
        drop(second);
        assert!(!registry.is_upload_in_progress("acme", "users.csv"));
    }

    #[test]
    fn upload_rename_moves_registry_entry() {
        let registry = UploadRegistry::new();
        let mut upload = Upload::start(&registry, "acme", "users.csv.filepart", 0, 100);

        upload.rename("users.csv");

        assert!(!registry.is_upload_in_progress("acme", "users.csv.filepart"));
        assert!(registry.is_upload_in_progress("acme", "users.csv"));
    }

    #[test]
    fn upload_over_limit_fails_and_stays_failed() {
        let registry = UploadRegistry::new();
        let mut upload = Upload::start(&registry, "acme", "users.csv", 0, 10);

        assert!(upload.check_write(0, 10).is_ok());
        upload.record_write(0, 10);
        assert!(upload.check_write(10, 1).is_err());
        assert!(upload.check_write(0, 1).is_err());
        assert!(upload
            .first_error()
            .unwrap()
            .contains("exceeds the upload limit of 10 bytes"));
    }

    #[test]
    fn upload_keeps_first_error() {
        let registry = UploadRegistry::new();
        let mut upload = Upload::start(&registry, "acme", "users.csv", 0, 10);

        upload.fail("disk full".to_string());
        upload.fail("second".to_string());

        assert_eq!(upload.first_error(), Some("disk full"));
    }

    #[test]
    fn upload_end_offset_starts_at_initial_len() {
        let registry = UploadRegistry::new();
        let mut upload = Upload::start(&registry, "acme", "users.csv", 7, 100);

        upload.record_write(0, 3);

        assert_eq!(upload.end_offset(), 7);
        assert_eq!(upload.bytes_written(), 3);
    }
}
