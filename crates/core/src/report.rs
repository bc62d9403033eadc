//! Check and sync reports: diagnostics, file summaries, counts and status.

use serde::{Deserialize, Serialize};

use crate::ids::{DirectoryId, SyncId};
use crate::time::Timestamp;

/// One error or warning (the list that contains it tells which), located as precisely as the problem allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The upload's file name as received.
    pub file: String,
    /// 1-based data row (the header is not counted); `None` for file-level problems.
    pub row: Option<u64>,
    /// 1-based physical line where the row starts (the header is line 1).
    pub line: Option<u64>,
    /// Normalised column name, when one column is at fault.
    pub column: Option<String>,
    /// The problem and how to fix it. Never contains an HR field value
    /// beyond the row's `user_id`.
    pub message: String,
}

/// Upload kinds, recognised from file names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Users,
    Groups,
    UserGroups,
}

impl FileKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            FileKind::Users => "users",
            FileKind::Groups => "groups",
            FileKind::UserGroups => "user_groups",
        }
    }
}

/// The reading of one upload: its kind, encoding, delimiter and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSummary {
    pub name: String,
    pub kind: FileKind,
    /// `utf-8`, `utf-8-bom`, `utf-16le`, `utf-16be` or `windows-1252`.
    pub encoding: String,
    /// The detected delimiter as a string: `,` `;` `\t` or `|`.
    pub delimiter: String,
    /// Data rows read, blank lines excluded.
    pub rows: u64,
    pub size_bytes: u64,
    /// Lowercase hex SHA-256 of the file as uploaded.
    pub sha256: String,
    /// False when a file-level error rejected the file.
    pub accepted: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub skipped_rows: u64,
}

/// Outcome of a sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// The changes were committed.
    Applied,
    /// The mass-deletion guard stopped the sync; it waits for approve or discard.
    Held,
    /// No usable users file; nothing changed.
    Rejected,
    /// An internal error stopped the sync; nothing changed.
    Failed,
    /// An operator discarded a held sync.
    Discarded,
}

impl SyncStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            SyncStatus::Applied => "applied",
            SyncStatus::Held => "held",
            SyncStatus::Rejected => "rejected",
            SyncStatus::Failed => "failed",
            SyncStatus::Discarded => "discarded",
        }
    }
}

/// The stored record of one processed upload: the sync report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    pub object: String,
    pub id: SyncId,
    pub directory_id: DirectoryId,
    pub status: SyncStatus,
    /// The reason the sync was held, rejected or failed.
    pub reason: Option<String>,
    pub files: Vec<FileSummary>,
    pub counts: Counts,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// When an operator approved or discarded a held sync.
    pub resolved_at: Option<Timestamp>,
}
