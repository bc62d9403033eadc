//! Upload file names: which kind a name is, and which file of each kind is newest.

use std::collections::BTreeMap;

use crate::ports::StoredFile;
use crate::report::FileKind;

/// Temporary-name suffixes that SFTP clients and editors write before the
/// final rename (WinSCP writes `.filepart`, browsers and rsync-like tools `.part`).
const TEMPORARY_SUFFIXES: &[&str] = &[".filepart", ".part", ".tmp"];

/// Kind words in the order they must be tried: `user_groups` before `users`,
/// because both start with `user`.
const KIND_STEMS: &[(&str, FileKind)] = &[
    ("user_groups", FileKind::UserGroups),
    ("users", FileKind::Users),
    ("groups", FileKind::Groups),
];

/// Recognises an upload's kind from its name, case-insensitively.
///
/// Accepted: `users.csv`, `groups.csv`, `user_groups.csv`, each optionally
/// followed by a suffix that starts with `_`, `-`, `.` or a space
/// (`users_20261204.csv`, `Users-2026-12-04.CSV`). Returns `None` for
/// temporary names (`*.filepart`, `*.part`, `*.tmp`, a leading `.` or `~$`),
/// folder markers, unknown names and anything in a subfolder.
///
/// Note that only files at the root of the upload folder are uploads, so
/// dsync's own `results/` folder and any archive folder an operator creates
/// are never read. A copy moved into a subfolder gets a new modification time
/// on S3, and reading it would make an old export look newest.
pub fn file_kind(name: &str) -> Option<FileKind> {
    if name.is_empty() || name.contains('/') || name.contains('\\') {
        return None;
    }
    if name.starts_with('.') || name.starts_with("~$") {
        return None;
    }

    let lower = name.to_lowercase();
    if TEMPORARY_SUFFIXES
        .iter()
        .any(|suffix| lower.ends_with(suffix))
    {
        return None;
    }

    let stem = lower.strip_suffix(".csv")?;
    for (word, kind) in KIND_STEMS {
        let Some(rest) = stem.strip_prefix(word) else {
            continue;
        };
        if rest.is_empty() || rest.starts_with(['_', '-', '.', ' ']) {
            return Some(*kind);
        }
    }
    None
}

/// Picks the newest file of each kind that counts as an upload.
///
/// Files whose name [`file_kind`] does not recognise and zero-byte files are
/// skipped. Newest means the latest `modified`. Equal times are broken by
/// the greater name, so the choice is deterministic and `users_20261205.csv`
/// beats `users_20261204.csv` when both arrive in the same millisecond.
pub fn newest_per_kind(files: &[StoredFile]) -> BTreeMap<FileKind, StoredFile> {
    let mut newest: BTreeMap<FileKind, StoredFile> = BTreeMap::new();

    for file in files {
        if file.size_bytes == 0 {
            continue;
        }
        let Some(kind) = file_kind(&file.name) else {
            continue;
        };

        let replace = match newest.get(&kind) {
            None => true,
            Some(current) => (file.modified, &file.name) > (current.modified, &current.name),
        };
        if replace {
            newest.insert(kind, file.clone());
        }
    }

    newest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    #[test]
    fn file_kind_plain_names() {
        assert_eq!(file_kind("users.csv"), Some(FileKind::Users));
        assert_eq!(file_kind("groups.csv"), Some(FileKind::Groups));
        assert_eq!(file_kind("user_groups.csv"), Some(FileKind::UserGroups));
    }

    #[test]
    fn file_kind_ignores_case() {
        assert_eq!(file_kind("USERS.CSV"), Some(FileKind::Users));
        assert_eq!(file_kind("User_Groups.Csv"), Some(FileKind::UserGroups));
    }

    #[test]
    fn file_kind_accepts_suffixes() {
        assert_eq!(file_kind("users_20261204.csv"), Some(FileKind::Users));
        assert_eq!(file_kind("Users-2026-12-04.CSV"), Some(FileKind::Users));
        assert_eq!(file_kind("groups.2026.csv"), Some(FileKind::Groups));
        assert_eq!(file_kind("user_groups_x.csv"), Some(FileKind::UserGroups));
        assert_eq!(file_kind("user_groups-1.csv"), Some(FileKind::UserGroups));
    }

    #[test]
    fn file_kind_rejects_glued_suffix() {
        assert_eq!(file_kind("usersx.csv"), None);
        assert_eq!(file_kind("groupsales.csv"), None);
        assert_eq!(file_kind("user.csv"), None);
        assert_eq!(file_kind("old_users.csv"), None);
    }

    #[test]
    fn file_kind_rejects_temporary_names() {
        assert_eq!(file_kind("users.csv.filepart"), None);
        assert_eq!(file_kind("users.csv.part"), None);
        assert_eq!(file_kind("users.csv.tmp"), None);
        assert_eq!(file_kind("users.tmp"), None);
        assert_eq!(file_kind(".users.csv"), None);
        assert_eq!(file_kind("~$users.csv"), None);
    }

    #[test]
    fn file_kind_rejects_subfolders() {
        assert_eq!(file_kind("results/users.csv"), None);
        assert_eq!(file_kind("archive/users.csv"), None);
        assert_eq!(file_kind("results/"), None);
        assert_eq!(file_kind(""), None);
    }

    #[test]
    fn file_kind_rejects_other_extensions() {
        assert_eq!(file_kind("users.xlsx"), None);
        assert_eq!(file_kind("users"), None);
        assert_eq!(file_kind("notes.csv"), None);
    }

    fn stored(name: &str, size_bytes: u64, modified_ms: i64) -> StoredFile {
        StoredFile {
            name: name.to_owned(),
            size_bytes,
            modified: Timestamp::from_millis(modified_ms),
        }
    }

    #[test]
    fn newest_per_kind_takes_latest_time() {
        let files = [
            stored("users_b.csv", 10, 1_000),
            stored("users_a.csv", 10, 2_000),
        ];
        let newest = newest_per_kind(&files);
        assert_eq!(newest[&FileKind::Users].name, "users_a.csv");
    }

    #[test]
    fn newest_per_kind_breaks_ties_by_name() {
        let files = [
            stored("users_20261205.csv", 10, 1_000),
            stored("users_20261204.csv", 10, 1_000),
        ];
        let newest = newest_per_kind(&files);
        assert_eq!(newest[&FileKind::Users].name, "users_20261205.csv");
    }

    #[test]
    fn newest_per_kind_skips_empty_and_unknown() {
        let files = [
            stored("users.csv", 10, 1_000),
            stored("users_new.csv", 0, 9_000),
            stored("users.csv.filepart", 10, 9_000),
            stored("notes.csv", 10, 9_000),
            stored("groups.csv", 5, 500),
        ];
        let newest = newest_per_kind(&files);
        assert_eq!(newest.len(), 2);
        assert_eq!(newest[&FileKind::Users].name, "users.csv");
        assert_eq!(newest[&FileKind::Groups].name, "groups.csv");
    }
}
