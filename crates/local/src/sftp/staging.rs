//! Staging files: where an upload is written until its CLOSE succeeds.
//!
//! Each account's staging folder is `<parent of the jail root>/.staging/<jail folder name>`,
//! outside the jail, so the client can neither see nor name it. It sits on the
//! same filesystem as the jail (unless an operator mounts something in between),
//! so a successful CLOSE moves the staged file over its target with one
//! `rename(2)`: readers of the target see either the previous file or the new
//! one, never a partial file. A failed upload only loses its staging file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The folder, beside the jail roots, that holds one staging folder per account.
const STAGING_FOLDER: &str = ".staging";

/// The suffix of every staging file name.
const STAGING_SUFFIX: &str = ".part";

/// One account's staging folder, as used by one server process.
#[derive(Debug, Clone)]
pub struct StagingArea {
    dir: PathBuf,
    /// The name prefix of this server process's staging files; files with another
    /// prefix were left by an earlier process that stopped mid-upload.
    instance: String,
}

impl StagingArea {
    /// Creates (if missing) the staging folder of the jail at `jail_root` and
    /// removes the staging files that an earlier server process left behind.
    ///
    /// NOTE: two server processes serving the same jails would remove each
    /// other's staging files; dsync runs one server per data dir.
    pub fn prepare(jail_root: &Path, instance: &str) -> io::Result<StagingArea> {
        let (Some(parent), Some(name)) = (jail_root.parent(), jail_root.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the jail root {} has no parent folder to hold a staging folder",
                    jail_root.display()
                ),
            ));
        };
        let dir = parent.join(STAGING_FOLDER).join(name);
        fs::create_dir_all(&dir)?;

        let own_prefix = format!("{instance}-");
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            let is_stale =
                file_name.ends_with(STAGING_SUFFIX) && !file_name.starts_with(&own_prefix);
            if is_stale && entry.file_type()?.is_file() {
                // Best effort: a file that cannot be removed now is retried by the next session.
                let _ = fs::remove_file(entry.path());
            }
        }

        Ok(StagingArea {
            dir,
            instance: instance.to_string(),
        })
    }

    /// Returns the staging folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a new staging file, opened for reading and writing, that starts as a
    /// copy of `copy_from` when given (an upload that resumes or rewrites part of a
    /// file) and empty otherwise.
    ///
    /// On error no staging file is left behind.
    pub fn create(&self, copy_from: Option<&Path>) -> io::Result<(PathBuf, fs::File)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join(format!("{}-{number}{STAGING_SUFFIX}", self.instance));

        let created = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut file| {
                if let Some(source) = copy_from {
                    let mut source = fs::File::open(source)?;
                    io::copy(&mut source, &mut file)?;
                }
                Ok(file)
            });
        match created {
            Ok(file) => Ok((path, file)),
            Err(error) => {
                let _ = fs::remove_file(&path);
                Err(error)
            }
        }
    }
}

/// Returns a name prefix for staging files that differs between server processes.
pub fn new_instance_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_folder_is_outside_jail() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("acme");

        let staging = StagingArea::prepare(&root, "aa").unwrap();

        assert_eq!(staging.dir(), dir.path().join(".staging/acme"));
        assert!(!staging.dir().starts_with(&root));
    }

    #[test]
    fn create_copies_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("users.csv");
        std::fs::write(&source, b"id\nu-1\n").unwrap();
        let staging = StagingArea::prepare(&dir.path().join("acme"), "aa").unwrap();

        let (path, _file) = staging.create(Some(&source)).unwrap();

        assert_eq!(std::fs::read(path).unwrap(), b"id\nu-1\n");
    }

    #[test]
    fn prepare_removes_files_of_earlier_process() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("acme");
        let earlier = StagingArea::prepare(&root, "aa").unwrap();
        let (stale, _) = earlier.create(None).unwrap();
        let current = StagingArea::prepare(&root, "bb").unwrap();
        let (own, _) = current.create(None).unwrap();

        StagingArea::prepare(&root, "bb").unwrap();

        assert!(!stale.exists());
        assert!(own.exists());
    }
}
