//! The SQLite store: every storage port of the local deployment.
//!
//! One connection, guarded by a mutex, does all the writing of one process;
//! each call runs on tokio's blocking pool. The database is in WAL mode with a
//! busy timeout, so other processes (operator commands) and the webhook
//! worker's own connection can use the same file while `dsync serve` runs.
//! Every write transaction is IMMEDIATE: it takes the write lock before its
//! first read, so two processes never deadlock upgrading a read lock, and
//! the busy timeout makes the second one wait instead of failing.

mod api_keys;
mod data;
mod directories;
mod events;
mod keys;
mod pagination;
pub mod schema;
mod syncs;
mod uploads;
mod webhooks_table;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dsync_core::ports::{StoreError, StoreResult};
use dsync_core::time::Timestamp;
use rusqlite::Connection;

pub use events::EVENT_RETENTION_DAYS;
pub use uploads::CompletedUpload;

/// Returns the database file of a data dir.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dsync.sqlite3")
}

/// The SQLite implementation of [`dsync_core::ports::Store`].
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (and creates when missing) the database of a data dir.
    ///
    /// The data dir is made private to its owner (0700) and the database
    /// files readable by the owner alone (0600), also when they exist with
    /// wider modes from an older version.
    pub fn open_data_dir(data_dir: &Path) -> StoreResult<Self> {
        create_private_dir(data_dir).map_err(|error| {
            StoreError::Backend(format!(
                "cannot create data dir {}: {error}",
                data_dir.display()
            ))
        })?;
        Self::open(&database_path(data_dir))
    }

    /// Opens (and creates when missing) the database at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        make_database_private(path).map_err(|error| {
            StoreError::Backend(format!(
                "cannot set owner-only permissions on database {}: {error}",
                path.display()
            ))
        })?;
        let connection = Connection::open(path).map_err(|error| {
            StoreError::Backend(format!("cannot open database {}: {error}", path.display()))
        })?;
        schema::prepare(&connection).map_err(|error| {
            StoreError::Backend(format!(
                "cannot prepare database {}: {error}",
                path.display()
            ))
        })?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` with the connection on the blocking pool.
    async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            // A panic in another call poisons the mutex; the connection itself
            // is still usable because every write runs in a transaction.
            let mut guard = match connection.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            work(&mut guard)
        })
        .await
        .map_err(|error| StoreError::Backend(format!("database task failed: {error}")))?
    }

    /// Deletes events created before `cutoff`, with their webhook deliveries
    /// and attempts. Returns the number of events deleted.
    pub async fn purge_events_before(&self, cutoff: Timestamp) -> StoreResult<usize> {
        self.run(move |connection| events::purge_before(connection, cutoff))
            .await
    }
}

/// Creates `dir` (and its parents) when missing and gives it mode 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Creates the database file with mode 0600 when missing, and narrows the
/// mode of an existing database and its `-wal` and `-shm` files to 0600.
/// SQLite creates the `-wal` and `-shm` files with the database's mode.
fn make_database_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = PathBuf::from(name);
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Maps a SQLite error to a store error; uniqueness violations become `Conflict`.
pub(crate) fn sql_error(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, message) = &error {
        if failure.code == rusqlite::ErrorCode::ConstraintViolation {
            let detail = message.clone().unwrap_or_else(|| failure.to_string());
            return StoreError::Conflict(detail);
        }
    }
    StoreError::Backend(error.to_string())
}

pub(crate) fn json_error(error: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("stored JSON is invalid: {error}"))
}
