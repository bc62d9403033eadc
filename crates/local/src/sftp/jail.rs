//! Jail path resolution: maps a client's path to a host path inside one account's root folder.
//!
//! Every client path is normalised lexically first (`.`, `..`, repeated slashes),
//! with `/` standing for the jail root and `..` at the root staying at the root,
//! as in a chroot. Only then is the host path built and each existing component
//! checked with `symlink_metadata`, so a symlink anywhere on the path is rejected
//! and never followed.
//!
//! NOTE: the checks run before the operation that uses the path, so a local
//! process that swaps a folder for a symlink between the check and the use could
//! still redirect it. SFTP clients cannot create symlinks (SYMLINK is rejected),
//! so only someone with a shell on the host could do that.

use std::fmt;
use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};

use crate::files::RESULTS_FOLDER;

/// One account's root folder. Every path a client names resolves inside it.
#[derive(Debug, Clone)]
pub struct Jail {
    root: PathBuf,
}

/// A client path resolved inside a [`Jail`].
#[derive(Debug, Clone)]
pub struct JailPath {
    /// The path as the client sees it: absolute, `/`-separated, normalised (`/`, `/in/users.csv`).
    virtual_path: String,
    host_path: PathBuf,
    /// The `symlink_metadata` of the last component, or `None` when nothing exists there yet.
    metadata: Option<Metadata>,
}

/// The reason a client path cannot be used.
#[derive(Debug)]
pub enum JailError {
    /// The path contains a NUL byte, which no file name may contain.
    InvalidPath,
    /// The path contains a control character or a bidirectional formatting
    /// character, which could forge or reorder log lines and listings.
    ForbiddenCharacter(char),
    /// A component of the path is a symbolic link; the value is the client-visible path of that link.
    Symlink(String),
    /// Reading a component's metadata failed for another reason than "not found".
    Io(io::Error),
}

impl fmt::Display for JailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JailError::InvalidPath => {
                write!(f, "invalid path: file names cannot contain a NUL byte")
            }
            JailError::ForbiddenCharacter(character) => write!(
                f,
                "invalid file name: it contains the character U+{:04X}; control characters and bidirectional formatting characters are not allowed, so rename the file with printable characters only",
                u32::from(*character)
            ),
            JailError::Symlink(path) => write!(f, "symbolic links are not allowed: {path:?}"),
            JailError::Io(error) => write!(f, "cannot read the path: {error}"),
        }
    }
}

impl std::error::Error for JailError {}

impl Jail {
    /// Creates a jail over `root`, which should be canonical (no symlinks in it),
    /// because everything below it is checked but the root itself is trusted.
    pub fn new(root: PathBuf) -> Self {
        Jail { root }
    }

    /// Returns the host folder that `/` maps to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Normalises a client path without touching the file system.
    ///
    /// Relative paths start at the jail root, because the root is each account's
    /// home folder. Returns an absolute, `/`-separated path without a trailing slash.
    pub fn normalize(client_path: &str) -> Result<String, JailError> {
        if client_path.contains('\0') {
            return Err(JailError::InvalidPath);
        }
        if let Some(character) = client_path.chars().find(|c| is_forbidden_in_name(*c)) {
            return Err(JailError::ForbiddenCharacter(character));
        }

        let mut components: Vec<&str> = Vec::new();
        for component in client_path.split('/') {
            match component {
                "" | "." => {}
                ".." => {
                    components.pop();
                }
                name => components.push(name),
            }
        }

        Ok(format!("/{}", components.join("/")))
    }

    /// Resolves a client path to a host path inside the jail, rejecting any path
    /// that passes through or ends at a symbolic link.
    pub fn resolve(&self, client_path: &str) -> Result<JailPath, JailError> {
        let virtual_path = Self::normalize(client_path)?;

        let mut host_path = self.root.clone();
        let mut metadata = Some(std::fs::symlink_metadata(&self.root).map_err(JailError::Io)?);
        let mut seen = String::new();
        for component in virtual_path.split('/').filter(|c| !c.is_empty()) {
            host_path.push(component);
            seen.push('/');
            seen.push_str(component);

            // Once a component is missing, the ones after it are missing too:
            // there is nothing left that could be a link.
            if metadata.is_none() {
                continue;
            }
            metadata = match std::fs::symlink_metadata(&host_path) {
                Ok(found) if found.file_type().is_symlink() => {
                    return Err(JailError::Symlink(seen));
                }
                Ok(found) => Some(found),
                Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                // A file used as a folder ("/users.csv/x"): the operation on it fails by itself.
                Err(error) if error.kind() == io::ErrorKind::NotADirectory => None,
                Err(error) => return Err(JailError::Io(error)),
            };
        }

        Ok(JailPath {
            virtual_path,
            host_path,
            metadata,
        })
    }
}

impl JailPath {
    /// Returns the client-visible absolute path (`/`, `/users.csv`).
    pub fn virtual_path(&self) -> &str {
        &self.virtual_path
    }

    /// Returns the path relative to the jail root, `/`-separated, empty for the root itself.
    pub fn relative(&self) -> &str {
        &self.virtual_path[1..]
    }

    /// Returns the host path inside the jail.
    pub fn host_path(&self) -> &Path {
        &self.host_path
    }

    /// Returns the metadata of the last component (never a symlink), or `None` when it does not exist.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// Returns true when the path is the jail root.
    pub fn is_root(&self) -> bool {
        self.virtual_path == "/"
    }

    /// Returns true for the reports folder `/results` and anything below it.
    ///
    /// The name is compared without case, so a client cannot create `Results`
    /// beside it either (it would be the same folder on a case-insensitive filesystem).
    pub fn is_in_results(&self) -> bool {
        let first = self.relative().split('/').next().unwrap_or_default();
        first.eq_ignore_ascii_case(RESULTS_FOLDER)
    }
}

/// Returns true for characters no file name may contain: control characters (C0,
/// DEL, C1, which include `\n`, `\r`, TAB and ESC) and the bidirectional embedding,
/// override and isolate characters U+202A–U+202E and U+2066–U+2069.
pub fn is_forbidden_in_name(character: char) -> bool {
    character.is_control()
        || ('\u{202A}'..='\u{202E}').contains(&character)
        || ('\u{2066}'..='\u{2069}').contains(&character)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail_in(dir: &Path) -> Jail {
        Jail::new(dir.canonicalize().unwrap())
    }

    #[test]
    fn normalize_maps_root_forms_to_slash() {
        for path in ["", "/", ".", "./", "//", "/./.", ".."] {
            assert_eq!(Jail::normalize(path).unwrap(), "/", "client path {path:?}");
        }
    }

    #[test]
    fn normalize_treats_relative_and_absolute_alike() {
        assert_eq!(Jail::normalize("users.csv").unwrap(), "/users.csv");
        assert_eq!(Jail::normalize("/users.csv").unwrap(), "/users.csv");
    }

    #[test]
    fn normalize_collapses_repeated_slashes_and_dots() {
        assert_eq!(
            Jail::normalize("//in///./users.csv/").unwrap(),
            "/in/users.csv"
        );
    }

    #[test]
    fn normalize_clamps_parent_at_root() {
        assert_eq!(Jail::normalize("../../escape.csv").unwrap(), "/escape.csv");
        assert_eq!(
            Jail::normalize("/in/../../../etc/passwd").unwrap(),
            "/etc/passwd"
        );
        assert_eq!(Jail::normalize("in/sub/../x").unwrap(), "/in/x");
    }

    #[test]
    fn normalize_rejects_nul_byte() {
        assert!(matches!(
            Jail::normalize("a\0b"),
            Err(JailError::InvalidPath)
        ));
    }

    #[test]
    fn normalize_rejects_control_and_bidi_characters() {
        for name in [
            "a\nb.csv",
            "a\rb",
            "a\tb",
            "a\u{1b}[31m",
            "a\u{7f}",
            "a\u{85}",
            "a\u{202E}vsc.exe",
            "a\u{2066}b",
        ] {
            assert!(
                matches!(Jail::normalize(name), Err(JailError::ForbiddenCharacter(_))),
                "client path {name:?}"
            );
        }
    }

    #[test]
    fn normalize_accepts_non_ascii_letters() {
        assert_eq!(
            Jail::normalize("/équipe/users.csv").unwrap(),
            "/équipe/users.csv"
        );
    }

    #[test]
    fn results_folder_is_detected_without_case() {
        let dir = tempfile::tempdir().unwrap();
        let jail = jail_in(dir.path());

        for path in [
            "/results",
            "results/report.json",
            "/RESULTS",
            "/Results/x/y",
        ] {
            assert!(jail.resolve(path).unwrap().is_in_results(), "{path}");
        }
        for path in ["/", "/results.csv", "/in/results", "/resultsx/a"] {
            assert!(!jail.resolve(path).unwrap().is_in_results(), "{path}");
        }
    }

    #[test]
    fn resolve_stays_under_root() {
        let dir = tempfile::tempdir().unwrap();
        let jail = jail_in(dir.path());

        let resolved = jail.resolve("../../etc/passwd").unwrap();

        assert!(resolved.host_path().starts_with(jail.root()));
        assert_eq!(resolved.host_path(), jail.root().join("etc/passwd"));
        assert!(resolved.metadata().is_none());
    }

    #[test]
    fn resolve_returns_metadata_of_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users.csv"), "id\n").unwrap();
        let jail = jail_in(dir.path());

        let resolved = jail.resolve("/users.csv").unwrap();

        assert_eq!(resolved.relative(), "users.csv");
        assert!(resolved.metadata().unwrap().is_file());
    }

    #[test]
    fn resolve_root_is_root() {
        let dir = tempfile::tempdir().unwrap();
        let jail = jail_in(dir.path());

        let resolved = jail.resolve("/").unwrap();

        assert!(resolved.is_root());
        assert_eq!(resolved.relative(), "");
        assert!(resolved.metadata().unwrap().is_dir());
    }

    #[test]
    fn resolve_rejects_symlinked_folder() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let jail = jail_in(dir.path());

        let result = jail.resolve("/link/secret.txt");

        assert!(matches!(result, Err(JailError::Symlink(path)) if path == "/link"));
    }

    #[test]
    fn resolve_rejects_symlinked_file() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
        let jail = jail_in(dir.path());

        let result = jail.resolve("passwd");

        assert!(matches!(result, Err(JailError::Symlink(path)) if path == "/passwd"));
    }

    #[test]
    fn resolve_rejects_dangling_symlink() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/nonexistent/target", dir.path().join("dangling")).unwrap();
        let jail = jail_in(dir.path());

        assert!(matches!(
            jail.resolve("dangling"),
            Err(JailError::Symlink(_))
        ));
    }

    #[test]
    fn resolve_allows_missing_path_below_existing_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        let jail = jail_in(dir.path());

        let resolved = jail.resolve("in/new/users.csv").unwrap();

        assert_eq!(resolved.virtual_path(), "/in/new/users.csv");
        assert!(resolved.metadata().is_none());
    }
}
