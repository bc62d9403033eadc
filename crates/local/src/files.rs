//! The filesystem `FileStore` and `SftpAccounts` of the local deployment.
//!
//! Each directory's uploads live in `<data dir>/sftp/<sftp username>/`, the
//! folder the embedded SFTP server jails that username to. Sync reports go to
//! its `results/` subfolder, where the uploader can download them.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use dsync_core::model::Directory;
use dsync_core::ports::{
    FileStore, SftpAccounts, SshKeyRecord, StoreError, StoreResult, StoredFile,
};
use dsync_core::time::Timestamp;

/// The folder that receives dsync's own reports inside each upload folder.
pub const RESULTS_FOLDER: &str = "results";

/// The SFTP server's staging folder inside the SFTP root (see `crate::sftp`).
const STAGING_FOLDER: &str = ".staging";

/// Folders deeper than this below an upload folder are not listed.
const MAX_LISTING_DEPTH: usize = 8;

/// Decides which listed files a sync may read (see [`crate::app`]: only
/// files the SFTP server reported complete and that no session is writing).
#[async_trait]
pub trait UploadFilter: Send + Sync {
    /// Returns the readable subset of `files` from `username`'s folder.
    async fn retain_readable(
        &self,
        username: &str,
        files: Vec<StoredFile>,
    ) -> StoreResult<Vec<StoredFile>>;
}

/// The upload folders of every directory under one data dir.
#[derive(Clone)]
pub struct LocalFiles {
    sftp_root: PathBuf,
    filter: Option<Arc<dyn UploadFilter>>,
}

/// Returns the root of every directory's upload folder inside a data dir.
pub fn sftp_root(data_dir: &Path) -> PathBuf {
    data_dir.join("sftp")
}

impl LocalFiles {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            sftp_root: sftp_root(data_dir),
            filter: None,
        }
    }

    /// Makes `list_uploads` return only the files `filter` keeps.
    pub fn with_filter(mut self, filter: Arc<dyn UploadFilter>) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Returns the upload folder of a directory, which is also its SFTP jail root.
    pub fn folder_of_username(&self, username: &str) -> StoreResult<PathBuf> {
        // Usernames are generated (`d-` and a lowercase ULID), but the folder
        // name still must not be able to leave the root.
        let valid = !username.is_empty()
            && username
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            return Err(StoreError::Backend(format!(
                "invalid SFTP username {username:?}"
            )));
        }
        Ok(self.sftp_root.join(username))
    }

    pub fn folder(&self, directory: &Directory) -> StoreResult<PathBuf> {
        self.folder_of_username(&directory.sftp_username)
    }
}

fn io_error(action: &str, path: &Path, error: io::Error) -> StoreError {
    StoreError::Backend(format!("cannot {action} {}: {error}", path.display()))
}

/// Checks an upload name from the caller: relative, `/`-separated, no `..`.
fn relative_path(name: &str) -> StoreResult<PathBuf> {
    let path = Path::new(name);
    let plain = !name.is_empty()
        && path
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if !plain {
        return Err(StoreError::Backend(format!("invalid upload name {name:?}")));
    }
    Ok(path.to_owned())
}

fn list_folder(
    root: &Path,
    relative: &str,
    depth: usize,
    files: &mut Vec<StoredFile>,
) -> io::Result<()> {
    let folder = if relative.is_empty() {
        root.to_owned()
    } else {
        root.join(relative)
    };
    for entry in fs::read_dir(&folder)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = if relative.is_empty() {
            name.clone()
        } else {
            format!("{relative}/{name}")
        };
        // symlink_metadata: a link is never followed, whatever it points at.
        let metadata = entry.path().symlink_metadata()?;
        if metadata.is_dir() {
            if relative.is_empty() && name == RESULTS_FOLDER {
                continue;
            }
            if depth < MAX_LISTING_DEPTH {
                list_folder(root, &path, depth + 1, files)?;
            }
            continue;
        }
        if !metadata.is_file() {
            continue;
        }
        let modified_ms = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |duration| duration.as_millis() as i64);
        files.push(StoredFile {
            name: path,
            size_bytes: metadata.len(),
            modified: Timestamp::from_millis(modified_ms),
        });
    }
    Ok(())
}

#[async_trait]
impl FileStore for LocalFiles {
    async fn list_uploads(&self, directory: &Directory) -> StoreResult<Vec<StoredFile>> {
        let root = self.folder(directory)?;
        let listed = tokio::task::spawn_blocking(move || {
            let mut files = Vec::new();
            match list_folder(&root, "", 0, &mut files) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(error) => return Err(io_error("list", &root, error)),
            }
            files.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(files)
        })
        .await
        .map_err(|error| StoreError::Backend(format!("listing task failed: {error}")))??;

        match &self.filter {
            Some(filter) => {
                filter
                    .retain_readable(&directory.sftp_username, listed)
                    .await
            }
            None => Ok(listed),
        }
    }

    async fn open_upload(
        &self,
        directory: &Directory,
        name: &str,
    ) -> StoreResult<Box<dyn Read + Send>> {
        let path = self.folder(directory)?.join(relative_path(name)?);
        let metadata =
            fs::symlink_metadata(&path).map_err(|error| io_error("open", &path, error))?;
        if !metadata.is_file() {
            return Err(StoreError::Backend(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let file = fs::File::open(&path).map_err(|error| io_error("open", &path, error))?;
        Ok(Box::new(io::BufReader::with_capacity(64 * 1024, file)))
    }

    async fn write_result(
        &self,
        directory: &Directory,
        name: &str,
        body: &[u8],
    ) -> StoreResult<()> {
        let folder = self.folder(directory)?.join(RESULTS_FOLDER);
        let target = folder.join(relative_path(name)?);
        let body = body.to_vec();
        tokio::task::spawn_blocking(move || {
            fs::create_dir_all(&folder).map_err(|error| io_error("create", &folder, error))?;
            // Written under a dot name, then renamed, so a client listing
            // results/ never downloads half a report.
            let file_name = target
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("report");
            let temporary = folder.join(format!(".{file_name}.tmp"));
            fs::write(&temporary, &body).map_err(|error| io_error("write", &temporary, error))?;
            fs::rename(&temporary, &target).map_err(|error| io_error("rename", &target, error))?;
            Ok(())
        })
        .await
        .map_err(|error| StoreError::Backend(format!("write task failed: {error}")))?
    }

    async fn delete_all(&self, directory: &Directory) -> StoreResult<()> {
        let folder = self.folder(directory)?;
        // The SFTP server writes uploads in progress to a staging folder
        // beside the upload folders; an interrupted one may have left a file there.
        let staging = self
            .sftp_root
            .join(STAGING_FOLDER)
            .join(&directory.sftp_username);
        tokio::task::spawn_blocking(move || {
            for path in [&folder, &staging] {
                match fs::remove_dir_all(path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(io_error("delete", path, error)),
                }
            }
            Ok(())
        })
        .await
        .map_err(|error| StoreError::Backend(format!("delete task failed: {error}")))?
    }
}

/// SFTP accounts of the embedded server: the server reads keys from the
/// store at login, so an account is only its folder.
#[derive(Clone)]
pub struct LocalAccounts {
    files: LocalFiles,
    host: String,
    port: u16,
}

impl LocalAccounts {
    /// `host` and `port` are what clients connect to, as printed to operators.
    pub fn new(files: LocalFiles, host: String, port: u16) -> Self {
        Self { files, host, port }
    }
}

#[async_trait]
impl SftpAccounts for LocalAccounts {
    async fn ensure_account(&self, directory: &Directory) -> StoreResult<()> {
        let folder = self.files.folder(directory)?;
        fs::create_dir_all(&folder).map_err(|error| io_error("create", &folder, error))
    }

    async fn add_key(&self, _directory: &Directory, _key: &SshKeyRecord) -> StoreResult<()> {
        Ok(())
    }

    async fn remove_key(&self, _directory: &Directory, _key: &SshKeyRecord) -> StoreResult<()> {
        Ok(())
    }

    async fn delete_account(&self, _directory: &Directory) -> StoreResult<()> {
        // The folder is the whole account; FileStore::delete_all removes it.
        Ok(())
    }

    fn endpoint(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }
}
