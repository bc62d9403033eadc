//! The SFTP request handler of one session: file operations confined to the account's jail.

use std::collections::{HashMap, VecDeque};
use std::io::{self, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::Disconnect;
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::jail::{is_forbidden_in_name, Jail, JailError, JailPath};
use super::staging::StagingArea;
use super::upload::{Upload, UploadRegistry};
use super::SftpBackend;
use crate::files::RESULTS_FOLDER;

/// The OpenSSH extension whose RENAME replaces an existing target atomically.
const POSIX_RENAME: &str = "posix-rename@openssh.com";

/// The maximum number of file and folder handles open in one session, so a client cannot exhaust file descriptors.
const MAX_OPEN_HANDLES: usize = 64;

/// The largest READ reply in bytes; clients ask for 32 KiB, and a larger request gets a short read, as SFTP allows.
const MAX_READ_BYTES: u32 = 256 * 1024;

/// The folder entries sent per READDIR reply.
const READDIR_BATCH: usize = 128;

/// How long a session whose key was revoked waits before disconnecting, so the
/// status reply of the rejected request reaches the client first.
const REVOKED_DISCONNECT_DELAY: Duration = Duration::from_millis(200);

/// The per-session settings: the logged-in account, its jail, and the backend to report uploads to.
pub struct SessionContext {
    pub username: String,
    /// The SHA256 fingerprint of the key the session authenticated with, checked again before each change.
    pub fingerprint: String,
    /// The jail root that [`SftpBackend::authorize`] returned at login, before canonicalisation.
    pub authorized_root: PathBuf,
    pub peer: SocketAddr,
    /// The SSH connection, disconnected when the key is no longer authorized.
    pub connection: russh::server::Handle,
    pub jail: Jail,
    pub staging: StagingArea,
    pub backend: Arc<dyn SftpBackend>,
    pub uploads: UploadRegistry,
    pub max_upload_bytes: u64,
}

/// Handles the SFTP requests of one session.
///
/// Every path goes through [`Jail::resolve`]. A file opened for writing is written
/// to a staging file, which CLOSE renames over the target. Dropping the handler
/// (the session ended) with files still open for writing records those uploads as
/// failed and removes their staging files, as a failed CLOSE does.
pub struct SftpHandler {
    context: SessionContext,
    jail: Arc<Jail>,
    handles: HashMap<String, OpenHandle>,
    next_handle: u64,
    /// Set once the backend no longer authorizes the session's key: every later request fails.
    revoked: bool,
}

enum OpenHandle {
    File(Box<FileHandle>),
    Folder(VecDeque<File>),
}

struct FileHandle {
    /// The target file when opened for reading only, the staging file otherwise.
    file: tokio::fs::File,
    /// The client's path of the target, as CLOSE resolves it again.
    virtual_path: String,
    readable: bool,
    append: bool,
    /// Present when the file was opened for writing.
    upload: Option<StagedUpload>,
}

/// An upload in progress and the staging file that receives its data.
struct StagedUpload {
    upload: Upload,
    staging_path: PathBuf,
}

impl SftpHandler {
    /// Creates the handler for one authenticated session.
    pub fn new(context: SessionContext) -> Self {
        let jail = Arc::new(context.jail.clone());
        SftpHandler {
            context,
            jail,
            handles: HashMap::new(),
            next_handle: 0,
            revoked: false,
        }
    }

    async fn resolve(&self, client_path: String) -> Result<JailPath, StatusReply> {
        if self.revoked {
            return Err(revoked_reply());
        }
        let jail = Arc::clone(&self.jail);
        let path_for_log = client_path.clone();
        let resolved = tokio::task::spawn_blocking(move || jail.resolve(&client_path))
            .await
            .map_err(|_| {
                StatusCode::Failure.with_message("internal error while resolving the path")
            })?;

        resolved.map_err(|error| {
            match &error {
                JailError::Symlink(_) => tracing::warn!(
                    username = ?self.context.username,
                    peer = %self.context.peer,
                    path = ?path_for_log,
                    "sftp request rejected: path goes through a symbolic link"
                ),
                JailError::ForbiddenCharacter(_) => tracing::warn!(
                    username = ?self.context.username,
                    peer = %self.context.peer,
                    path = ?path_for_log,
                    "sftp request rejected: the file name contains a control or bidirectional formatting character"
                ),
                JailError::InvalidPath | JailError::Io(_) => {}
            }
            let code = match error {
                JailError::InvalidPath => StatusCode::BadMessage,
                JailError::ForbiddenCharacter(_) | JailError::Symlink(_) => {
                    StatusCode::PermissionDenied
                }
                JailError::Io(_) => StatusCode::Failure,
            };
            code.with_message(error.to_string())
        })
    }

    /// Resolves a path that the request changes (creates, writes, removes, renames):
    /// checks that the key is still authorized and that the path is outside `results/`.
    async fn resolve_for_change(
        &mut self,
        client_path: String,
        operation: &str,
    ) -> Result<JailPath, StatusReply> {
        let path = self.resolve(client_path).await?;
        if path.is_in_results() {
            tracing::warn!(
                username = ?self.context.username,
                peer = %self.context.peer,
                path = ?path.virtual_path(),
                operation,
                "sftp request rejected: the results folder is read-only"
            );
            return Err(StatusCode::PermissionDenied.with_message(format!(
                "{:?}: the {RESULTS_FOLDER} folder is read-only because dsync writes its sync reports there; upload files outside it and do not name a file or folder {RESULTS_FOLDER:?}",
                path.virtual_path()
            )));
        }
        self.ensure_authorized().await?;
        Ok(path)
    }

    /// Asks the backend whether the session's key still may log in to the same jail.
    ///
    /// When it no longer may, the session is marked revoked (every later request
    /// fails) and the connection is disconnected shortly after this request's reply.
    async fn ensure_authorized(&mut self) -> Result<(), StatusReply> {
        if self.revoked {
            return Err(revoked_reply());
        }
        let root = self
            .context
            .backend
            .authorize(&self.context.username, &self.context.fingerprint)
            .await;
        if root.as_ref() == Some(&self.context.authorized_root) {
            return Ok(());
        }

        self.revoked = true;
        tracing::warn!(
            username = ?self.context.username,
            peer = %self.context.peer,
            fingerprint = %self.context.fingerprint,
            "sftp session ended: its key is no longer authorized for this account"
        );
        let connection = self.context.connection.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REVOKED_DISCONNECT_DELAY).await;
            let _ = connection
                .disconnect(
                    Disconnect::ByApplication,
                    "the key of this session is no longer authorized".to_string(),
                    "en".to_string(),
                )
                .await;
        });
        Err(revoked_reply())
    }

    fn insert_handle(&mut self, handle: OpenHandle) -> Result<String, StatusReply> {
        if self.handles.len() >= MAX_OPEN_HANDLES {
            return Err(StatusCode::Failure.with_message(format!(
                "too many open files: close some of the {MAX_OPEN_HANDLES} open handles first"
            )));
        }
        self.next_handle += 1;
        let name = self.next_handle.to_string();
        self.handles.insert(name.clone(), handle);
        Ok(name)
    }

    fn file_handle(&mut self, handle: &str) -> Result<&mut FileHandle, StatusReply> {
        if self.revoked {
            return Err(revoked_reply());
        }
        match self.handles.get_mut(handle) {
            Some(OpenHandle::File(file)) => Ok(file),
            Some(OpenHandle::Folder(_)) => {
                Err(StatusCode::Failure.with_message("the handle is a folder, not a file"))
            }
            None => Err(invalid_handle()),
        }
    }

    /// Opens a staging file for an upload to `path` and starts tracking the upload.
    async fn open_for_writing(
        &mut self,
        path: &JailPath,
        pflags: OpenFlags,
    ) -> Result<(tokio::fs::File, StagedUpload), StatusReply> {
        let exists = path.metadata().is_some();
        if exists && pflags.contains(OpenFlags::CREATE | OpenFlags::EXCLUDE) {
            return Err(StatusCode::Failure
                .with_message(format!("{:?} already exists", path.virtual_path())));
        }
        if !exists && !pflags.contains(OpenFlags::CREATE) {
            return Err(not_found(path));
        }
        // The rename on CLOSE needs the folder; failing now saves sending the data.
        let parent_is_folder = path.host_path().parent().is_some_and(Path::is_dir);
        if !parent_is_folder {
            return Err(StatusCode::NoSuchFile.with_message(format!(
                "{:?}: the folder does not exist; create it with mkdir first",
                path.virtual_path()
            )));
        }

        // Without TRUNCATE the upload rewrites part of the existing file or appends
        // to it, so it starts from a copy. The file itself stays as it is until CLOSE.
        let starts_empty = !exists || pflags.contains(OpenFlags::TRUNCATE);
        let copy_from = (!starts_empty).then(|| path.host_path().to_path_buf());
        let staging = self.context.staging.clone();
        let created = tokio::task::spawn_blocking(move || staging.create(copy_from.as_deref()))
            .await
            .map_err(|_| {
                StatusCode::Failure.with_message("internal error while creating the upload")
            })?;
        let (staging_path, file) = created.map_err(|error| {
            tracing::error!(
                username = ?self.context.username,
                peer = %self.context.peer,
                path = ?path.virtual_path(),
                staging = ?self.context.staging.dir(),
                %error,
                "cannot create a staging file for an upload"
            );
            io_reply(&error, path.virtual_path())
        })?;

        let initial_len = if starts_empty {
            0
        } else {
            path.metadata().map_or(0, |m| m.len())
        };
        let upload = Upload::start(
            &self.context.uploads,
            &self.context.username,
            path.relative(),
            initial_len,
            self.context.max_upload_bytes,
        );
        Ok((
            tokio::fs::File::from_std(file),
            StagedUpload {
                upload,
                staging_path,
            },
        ))
    }

    /// Renames a file or folder inside the jail, replacing an existing target file.
    ///
    /// A regular file renamed into place counts as a completed upload (WinSCP writes
    /// `name.filepart` and renames it). A file this session still has open for
    /// writing moves with the rename, as an open file does on POSIX: its CLOSE then
    /// lands at, and reports, the new name.
    async fn rename_path(&mut self, old_path: String, new_path: String) -> Result<(), StatusReply> {
        let from = self.resolve_for_change(old_path, "rename").await?;
        let to = self.resolve_for_change(new_path, "rename").await?;
        if from.is_root() || to.is_root() {
            return Err(StatusCode::PermissionDenied
                .with_message("the root folder cannot be renamed or replaced"));
        }
        let open_here = self.handles.values().any(|handle| {
            matches!(handle, OpenHandle::File(file)
                if file.upload.as_ref().is_some_and(|staged| staged.upload.path() == from.relative()))
        });
        let Some(metadata) = from.metadata() else {
            if open_here {
                self.move_open_uploads(&from, &to);
                return Ok(());
            }
            return Err(not_found(&from));
        };
        let is_file = metadata.is_file();

        // Replacing a file is what clients that upload under a temporary name expect;
        // std::fs::rename (rename(2)) does that atomically.
        tokio::fs::rename(from.host_path(), to.host_path())
            .await
            .map_err(|error| io_reply(&error, to.virtual_path()))?;
        self.move_open_uploads(&from, &to);

        if is_file && !open_here {
            tracing::info!(
                username = ?self.context.username,
                peer = %self.context.peer,
                from = ?from.relative(),
                path = ?to.relative(),
                "upload completed by rename"
            );
            self.context
                .backend
                .upload_completed(&self.context.username, to.relative())
                .await;
        }
        Ok(())
    }

    /// Points this session's open uploads of `from` at `to`.
    fn move_open_uploads(&mut self, from: &JailPath, to: &JailPath) {
        for handle in self.handles.values_mut() {
            let OpenHandle::File(file) = handle else {
                continue;
            };
            if let Some(staged) = file.upload.as_mut() {
                if staged.upload.path() == from.relative() {
                    staged.upload.rename(to.relative());
                    file.virtual_path = to.virtual_path().to_string();
                }
            }
        }
    }

    /// Finishes an upload on CLOSE: flushes the staging file, checks the key and the
    /// target again, renames the staging file over the target, and calls the backend.
    async fn finish_upload(&mut self, handle: FileHandle) -> Result<(), StatusReply> {
        let FileHandle {
            mut file,
            virtual_path,
            upload,
            ..
        } = handle;
        let Some(StagedUpload {
            mut upload,
            staging_path,
        }) = upload
        else {
            return Ok(());
        };

        // Data handed to tokio's File is written by a background task; flush surfaces its errors.
        let flushed = match file.flush().await {
            Ok(()) => file.sync_all().await,
            Err(error) => Err(error),
        };
        drop(file);
        if let Err(error) = flushed {
            upload.fail(format!("cannot write {:?}: {error}", upload.path()));
        }

        if let Some(error) = upload.first_error().map(str::to_string) {
            discard_failed_upload(&self.context, upload, &staging_path, "upload failed");
            return Err(StatusCode::Failure.with_message(error));
        }

        // The target is resolved again: the key may have been revoked, or a folder
        // on the path replaced, since the file was opened.
        let target = match self.resolve_for_change(virtual_path, "close").await {
            Ok(target) => target,
            Err(reply) => {
                upload.fail(
                    reply
                        .error_message
                        .clone()
                        .unwrap_or_else(|| "the target is no longer writable".to_string()),
                );
                discard_failed_upload(&self.context, upload, &staging_path, "upload failed");
                return Err(reply);
            }
        };
        if target.metadata().is_some_and(|m| m.is_dir()) {
            upload.fail(format!("{:?} is a folder", target.virtual_path()));
            discard_failed_upload(&self.context, upload, &staging_path, "upload failed");
            return Err(StatusCode::Failure
                .with_message(format!("{:?} is a folder", target.virtual_path())));
        }
        if let Err(error) = tokio::fs::rename(&staging_path, target.host_path()).await {
            upload.fail(format!("cannot move the upload into place: {error}"));
            discard_failed_upload(&self.context, upload, &staging_path, "upload failed");
            return Err(io_reply(&error, target.virtual_path()));
        }
        sync_parent_folder(target.host_path()).await;

        let path = upload.path().to_string();
        let bytes = upload.bytes_written();
        let duration_ms = upload.duration().as_millis() as u64;

        // The upload leaves the registry before the backend hears of it, so a
        // re-scan running at the same time finds a finished file.
        drop(upload);
        tracing::info!(
            username = ?self.context.username,
            peer = %self.context.peer,
            path = ?path,
            bytes,
            duration_ms,
            "upload completed"
        );
        self.context
            .backend
            .upload_completed(&self.context.username, &path)
            .await;
        Ok(())
    }
}

impl Drop for SftpHandler {
    fn drop(&mut self) {
        for (_, handle) in self.handles.drain() {
            let OpenHandle::File(file_handle) = handle else {
                continue;
            };
            let FileHandle {
                file,
                upload: Some(staged),
                ..
            } = *file_handle
            else {
                continue;
            };
            drop(file);
            discard_failed_upload(
                &self.context,
                staged.upload,
                &staged.staging_path,
                "upload failed: the session ended before the file was closed",
            );
        }
    }
}

/// Logs a failed upload and removes its staging file; the target file, if any,
/// is left exactly as it was before the upload began.
fn discard_failed_upload(
    context: &SessionContext,
    upload: Upload,
    staging_path: &Path,
    reason: &str,
) {
    let path = upload.path().to_string();
    let bytes = upload.bytes_written();
    let duration_ms = upload.duration().as_millis() as u64;
    let error = upload.first_error().unwrap_or("none").to_string();

    let staging_file_removed = match std::fs::remove_file(staging_path) {
        Ok(()) => true,
        Err(remove_error) if remove_error.kind() == io::ErrorKind::NotFound => false,
        Err(remove_error) => {
            tracing::error!(
                username = ?context.username,
                staging_file = ?staging_path,
                error = %remove_error,
                "cannot remove the staging file of a failed upload"
            );
            false
        }
    };
    drop(upload);
    tracing::warn!(
        username = ?context.username,
        peer = %context.peer,
        path = ?path,
        bytes,
        duration_ms,
        error = ?error,
        staging_file_removed,
        "{reason}"
    );
}

/// Flushes the folder entry of a renamed file to disk, so the new file survives a crash.
async fn sync_parent_folder(path: &Path) {
    let Some(parent) = path.parent().map(Path::to_path_buf) else {
        return;
    };
    let _ = tokio::task::spawn_blocking(move || std::fs::File::open(parent)?.sync_all()).await;
}

impl russh_sftp::server::Handler for SftpHandler {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.with_message("operation not supported by this server")
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        let mut version = Version::new();
        version
            .extensions
            .insert(POSIX_RENAME.to_string(), "1".to_string());
        Ok(version)
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let writable = pflags.intersects(OpenFlags::WRITE | OpenFlags::APPEND);
        let readable = pflags.contains(OpenFlags::READ);
        if !writable && !readable {
            return Err(
                StatusCode::BadMessage.with_message("open flags must include read or write")
            );
        }
        if self.handles.len() >= MAX_OPEN_HANDLES {
            return Err(StatusCode::Failure.with_message(format!(
                "too many open files: close some of the {MAX_OPEN_HANDLES} open handles first"
            )));
        }

        let path = if writable {
            self.resolve_for_change(filename, "open for writing")
                .await?
        } else {
            self.resolve(filename).await?
        };
        if let Some(metadata) = path.metadata() {
            if metadata.is_dir() {
                return Err(StatusCode::Failure
                    .with_message(format!("{:?} is a folder", path.virtual_path())));
            }
            if !metadata.is_file() {
                return Err(StatusCode::PermissionDenied
                    .with_message(format!("{:?} is not a regular file", path.virtual_path())));
            }
        }

        let (file, upload) = if writable {
            let (file, upload) = self.open_for_writing(&path, pflags).await?;
            (file, Some(upload))
        } else {
            let file = tokio::fs::File::open(path.host_path())
                .await
                .map_err(|error| io_reply(&error, path.virtual_path()))?;
            (file, None)
        };

        let handle = self.insert_handle(OpenHandle::File(Box::new(FileHandle {
            file,
            virtual_path: path.virtual_path().to_string(),
            readable,
            append: pflags.contains(OpenFlags::APPEND),
            upload,
        })))?;
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        let Some(open) = self.handles.remove(&handle) else {
            return Err(invalid_handle());
        };

        if let OpenHandle::File(file) = open {
            self.finish_upload(*file).await?;
        }
        Ok(ok_status(id))
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let FileHandle {
            file,
            virtual_path,
            readable,
            ..
        } = self.file_handle(&handle)?;
        if !*readable {
            return Err(
                StatusCode::PermissionDenied.with_message("the file was not opened for reading")
            );
        }

        let mut buffer = vec![0u8; len.min(MAX_READ_BYTES) as usize];
        let read = async {
            file.seek(SeekFrom::Start(offset)).await?;
            file.read(&mut buffer).await
        }
        .await
        .map_err(|error| io_reply(&error, virtual_path))?;

        if read == 0 && !buffer.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        buffer.truncate(read);
        Ok(Data { id, data: buffer })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let username = self.context.username.clone();
        let peer = self.context.peer;
        let max_upload_bytes = self.context.max_upload_bytes;
        let FileHandle {
            file,
            virtual_path,
            append,
            upload,
            ..
        } = self.file_handle(&handle)?;
        let Some(StagedUpload { upload, .. }) = upload.as_mut() else {
            return Err(
                StatusCode::PermissionDenied.with_message("the file was not opened for writing")
            );
        };

        // With APPEND every write lands at the end of the file, whatever its offset.
        let position = if *append { upload.end_offset() } else { offset };
        let len = data.len() as u64;
        let already_failed = upload.first_error().is_some();
        if let Err(error) = upload.check_write(position, len) {
            if !already_failed {
                tracing::warn!(
                    username = ?username,
                    %peer,
                    path = ?upload.path(),
                    max_upload_bytes,
                    error = ?error,
                    "upload rejected: the file exceeds the upload limit"
                );
            }
            return Err(StatusCode::Failure.with_message(error));
        }

        let written = async {
            file.seek(SeekFrom::Start(position)).await?;
            file.write_all(&data).await
        }
        .await;
        if let Err(error) = written {
            upload.fail(format!("cannot write {:?}: {error}", upload.path()));
            return Err(io_reply(&error, virtual_path));
        }

        upload.record_write(position, len);
        Ok(ok_status(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let path = self.resolve(path).await?;
        match path.metadata() {
            Some(metadata) => Ok(Attrs {
                id,
                attrs: FileAttributes::from(metadata),
            }),
            None => Err(not_found(&path)),
        }
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        // Symlinks are rejected while resolving, so STAT and LSTAT see the same file.
        self.lstat(id, path).await
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let file = self.file_handle(&handle)?;
        let metadata = file
            .file
            .metadata()
            .await
            .map_err(|error| io_reply(&error, &file.virtual_path))?;
        Ok(Attrs {
            id,
            attrs: FileAttributes::from(&metadata),
        })
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        // Accepted and ignored, so clients that preserve times or modes (`put -p`)
        // do not fail; dsync does not use file modes or times set by clients.
        // Inside results/ it is rejected like every other change.
        self.resolve_for_change(path, "setstat").await?;
        Ok(ok_status(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        if !self.handles.contains_key(&handle) {
            return Err(invalid_handle());
        }
        Ok(ok_status(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let path = self.resolve(path).await?;
        match path.metadata() {
            Some(metadata) if metadata.is_dir() => {}
            Some(_) => {
                return Err(StatusCode::Failure
                    .with_message(format!("{:?} is not a folder", path.virtual_path())))
            }
            None => return Err(not_found(&path)),
        }

        let host_path = path.host_path().to_path_buf();
        let entries = tokio::task::spawn_blocking(move || list_folder(&host_path))
            .await
            .map_err(|_| {
                StatusCode::Failure.with_message("internal error while listing the folder")
            })?
            .map_err(|error| io_reply(&error, path.virtual_path()))?;

        let handle = self.insert_handle(OpenHandle::Folder(entries))?;
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let entries = match self.handles.get_mut(&handle) {
            Some(OpenHandle::Folder(entries)) => entries,
            Some(OpenHandle::File(_)) => {
                return Err(StatusCode::Failure.with_message("the handle is a file, not a folder"))
            }
            None => return Err(invalid_handle()),
        };
        if entries.is_empty() {
            return Err(StatusCode::Eof.into());
        }

        let count = entries.len().min(READDIR_BATCH);
        let files = entries.drain(..count).collect();
        Ok(Name { id, files })
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let path = self.resolve_for_change(filename, "remove").await?;
        match path.metadata() {
            Some(metadata) if metadata.is_dir() => {
                return Err(StatusCode::Failure.with_message(format!(
                    "{:?} is a folder: remove it with rmdir",
                    path.virtual_path()
                )))
            }
            Some(_) => {}
            None => return Err(not_found(&path)),
        }

        tokio::fs::remove_file(path.host_path())
            .await
            .map_err(|error| io_reply(&error, path.virtual_path()))?;
        Ok(ok_status(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let path = self.resolve_for_change(path, "mkdir").await?;
        tokio::fs::create_dir(path.host_path())
            .await
            .map_err(|error| io_reply(&error, path.virtual_path()))?;
        Ok(ok_status(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        let path = self.resolve_for_change(path, "rmdir").await?;
        if path.is_root() {
            return Err(
                StatusCode::PermissionDenied.with_message("the root folder cannot be removed")
            );
        }
        tokio::fs::remove_dir(path.host_path())
            .await
            .map_err(|error| io_reply(&error, path.virtual_path()))?;
        Ok(ok_status(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let normalized = Jail::normalize(&path).map_err(|error| {
            let code = match error {
                JailError::ForbiddenCharacter(_) => StatusCode::PermissionDenied,
                _ => StatusCode::BadMessage,
            };
            code.with_message(error.to_string())
        })?;
        Ok(Name {
            id,
            files: vec![File::dummy(normalized)],
        })
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        self.rename_path(oldpath, newpath).await?;
        Ok(ok_status(id))
    }

    async fn readlink(&mut self, _id: u32, path: String) -> Result<Name, Self::Error> {
        Err(StatusCode::OpUnsupported
            .with_message(format!("{path:?}: symbolic links are not supported")))
    }

    async fn symlink(
        &mut self,
        _id: u32,
        linkpath: String,
        _targetpath: String,
    ) -> Result<Status, Self::Error> {
        tracing::warn!(
            username = %self.context.username,
            peer = %self.context.peer,
            path = ?linkpath,
            "sftp request rejected: symbolic link creation"
        );
        Err(StatusCode::PermissionDenied.with_message("creating symbolic links is not allowed"))
    }

    async fn extended(
        &mut self,
        id: u32,
        request: String,
        data: Vec<u8>,
    ) -> Result<Packet, Self::Error> {
        if request != POSIX_RENAME {
            return Err(StatusCode::OpUnsupported
                .with_message(format!("extension {request:?} is not supported")));
        }

        let mut rest = data.as_slice();
        let old_path = read_ssh_string(&mut rest);
        let new_path = read_ssh_string(&mut rest);
        let (Some(old_path), Some(new_path)) = (old_path, new_path) else {
            return Err(StatusCode::BadMessage.with_message("posix-rename needs two UTF-8 paths"));
        };

        self.rename_path(old_path, new_path).await?;
        Ok(Packet::Status(ok_status(id)))
    }
}

/// Lists a folder's regular files and subfolders. Symlinks, special files and names
/// with forbidden characters are left out, since no operation would accept them.
fn list_folder(folder: &std::path::Path) -> io::Result<VecDeque<File>> {
    let mut files = VecDeque::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        // DirEntry::metadata does not follow symlinks.
        let metadata = entry.metadata()?;
        if !metadata.is_file() && !metadata.is_dir() {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.chars().any(is_forbidden_in_name) {
            continue;
        }
        files.push_back(File::new(name, FileAttributes::from(&metadata)));
    }
    Ok(files)
}

/// Reads one SSH wire string (a u32 big-endian length, then the bytes) as UTF-8.
fn read_ssh_string(data: &mut &[u8]) -> Option<String> {
    let (length, rest) = data.split_first_chunk::<4>()?;
    let length = u32::from_be_bytes(*length) as usize;
    if rest.len() < length {
        return None;
    }
    let (text, rest) = rest.split_at(length);
    *data = rest;
    String::from_utf8(text.to_vec()).ok()
}

fn ok_status(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".to_string(),
        language_tag: "en-US".to_string(),
    }
}

fn invalid_handle() -> StatusReply {
    StatusCode::Failure.with_message("invalid handle: it was closed or never opened")
}

fn not_found(path: &JailPath) -> StatusReply {
    StatusCode::NoSuchFile
        .with_message(format!("{:?}: no such file or folder", path.virtual_path()))
}

fn revoked_reply() -> StatusReply {
    StatusCode::PermissionDenied.with_message(
        "the key of this session is no longer authorized; the session is being closed",
    )
}

/// Maps an I/O error to an SFTP status, naming the client's path and never the host path.
fn io_reply(error: &io::Error, virtual_path: &str) -> StatusReply {
    let code = match error.kind() {
        io::ErrorKind::NotFound => StatusCode::NoSuchFile,
        io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    };
    code.with_message(format!("{virtual_path:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_ssh_string_reads_two_paths() {
        let mut data = Vec::new();
        for text in ["a.filepart", "a"] {
            data.extend_from_slice(&(text.len() as u32).to_be_bytes());
            data.extend_from_slice(text.as_bytes());
        }
        let mut rest = data.as_slice();

        assert_eq!(read_ssh_string(&mut rest).as_deref(), Some("a.filepart"));
        assert_eq!(read_ssh_string(&mut rest).as_deref(), Some("a"));
        assert!(rest.is_empty());
    }

    #[test]
    fn read_ssh_string_rejects_short_data() {
        let mut rest: &[u8] = &[0, 0, 0, 9, b'a'];

        assert_eq!(read_ssh_string(&mut rest), None);
    }
}
