//! Finding uploads on the local disk: the files and folders given on the
//! command line, reduced to the newest upload of each kind as the service
//! would choose them.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{bail, Context};
use dsync_core::ports::StoredFile;
use dsync_core::report::FileKind;
use dsync_core::time::Timestamp;
use dsync_core::upload::{file_kind, newest_per_kind, Upload};
use serde::Serialize;

/// One upload chosen for reading.
#[derive(Clone, Debug)]
pub struct LocalUpload {
    pub path: PathBuf,
    pub kind: FileKind,
    /// Name, size and modification time, as a folder listing reports them.
    pub file: StoredFile,
}

/// A file that was looked at and not chosen, with the reason.
#[derive(Clone, Debug, Serialize)]
pub struct IgnoredFile {
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// The newest upload of each kind, users first.
    pub chosen: Vec<LocalUpload>,
    pub ignored: Vec<IgnoredFile>,
}

impl Selection {
    /// Opens the chosen files for [`dsync_core::upload::read_snapshot`].
    pub fn open(&self) -> anyhow::Result<Vec<Upload<'static>>> {
        let mut uploads = Vec::with_capacity(self.chosen.len());
        for upload in &self.chosen {
            let file = File::open(&upload.path)
                .with_context(|| format!("failed to open {}", upload.path.display()))?;
            uploads.push(
                Upload::with_kind(upload.file.name.clone(), upload.kind, file)
                    .size_bytes(upload.file.size_bytes),
            );
        }
        Ok(uploads)
    }
}

/// Chooses the uploads that files and folders hold.
///
/// A folder contributes the files at its root (subfolders such as `results/`
/// are not uploads). A file given by path must have an upload name, because
/// its name decides its kind. Over everything found, the newest non-empty
/// file of each kind is chosen, exactly as the service chooses from an SFTP
/// folder.
pub fn select_uploads(paths: &[PathBuf]) -> anyhow::Result<Selection> {
    let mut candidates: Vec<(PathBuf, StoredFile)> = Vec::new();
    let mut ignored: Vec<IgnoredFile> = Vec::new();

    for path in paths {
        let metadata =
            fs::metadata(path).with_context(|| format!("failed to read {}", path.display()))?;
        if metadata.is_dir() {
            scan_folder(path, &mut candidates, &mut ignored)?;
            continue;
        }

        let name = file_name(path)?;
        if file_kind(&name).is_none() {
            bail!(
                "{} is not an upload name; name the file users.csv, groups.csv or user_groups.csv (a suffix such as \
                 users_20261204.csv is fine)",
                path.display()
            );
        }
        candidates.push((path.clone(), stored_file(name, &metadata)));
    }

    let files: Vec<StoredFile> = candidates.iter().map(|(_, file)| file.clone()).collect();
    let newest = newest_per_kind(&files);

    let mut chosen: Vec<LocalUpload> = Vec::new();
    for (path, file) in candidates {
        let Some(kind) = file_kind(&file.name) else {
            continue;
        };
        if file.size_bytes == 0 {
            ignored.push(IgnoredFile {
                path,
                reason: "empty file (zero bytes)".to_owned(),
            });
            continue;
        }

        let winner = &newest[&kind];
        let already_chosen = chosen.iter().any(|upload| upload.kind == kind);
        if *winner == file && !already_chosen {
            chosen.push(LocalUpload { path, kind, file });
        } else {
            ignored.push(IgnoredFile {
                path,
                reason: format!("older {} file; {} is newer", kind.as_str(), winner.name),
            });
        }
    }
    chosen.sort_by_key(|upload| upload.kind);

    Ok(Selection { chosen, ignored })
}

/// Adds the files at the root of a folder, and notes what is not an upload.
fn scan_folder(
    folder: &Path,
    candidates: &mut Vec<(PathBuf, StoredFile)>,
    ignored: &mut Vec<IgnoredFile>,
) -> anyhow::Result<()> {
    let entries =
        fs::read_dir(folder).with_context(|| format!("failed to list {}", folder.display()))?;

    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", folder.display()))?;
        paths.push(entry.path());
    }
    paths.sort();

    for path in paths {
        let metadata =
            fs::metadata(&path).with_context(|| format!("failed to read {}", path.display()))?;
        if metadata.is_dir() {
            ignored.push(IgnoredFile {
                path,
                reason: "folder; only files at the root of an upload folder are read".to_owned(),
            });
            continue;
        }

        let name = file_name(&path)?;
        if file_kind(&name).is_none() {
            ignored.push(IgnoredFile {
                path,
                reason: "not an upload name (users.csv, groups.csv or user_groups.csv, optionally with a suffix), or a temporary name"
                    .to_owned(),
            });
            continue;
        }
        candidates.push((path, stored_file(name, &metadata)));
    }
    Ok(())
}

fn file_name(path: &Path) -> anyhow::Result<String> {
    match path.file_name().and_then(|name| name.to_str()) {
        Some(name) => Ok(name.to_owned()),
        None => bail!("{} has no file name that is valid Unicode", path.display()),
    }
}

fn stored_file(name: String, metadata: &fs::Metadata) -> StoredFile {
    // A file system without modification times makes every file equally old,
    // and the name then breaks the tie.
    let modified_ms = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map(|since| since.as_millis() as i64)
        .unwrap_or(0);

    StoredFile {
        name,
        size_bytes: metadata.len(),
        modified: Timestamp::from_millis(modified_ms),
    }
}
