//! Reading uploads: file kinds, decoding, delimiter detection, parsing and validation.
//!
//! [`read_snapshot`] turns the newest upload of each kind into a
//! [`Snapshot`]. Problems come in two sizes. A file-level problem (missing
//! required column, duplicate header, binary or undecodable content, an
//! unclosed quote, size or row limit) rejects the file, and its kind keeps the
//! stored state. A row-level problem skips the row and puts the record it
//! names into the kind's `held` set, so a bad row never creates, changes or
//! deletes anything.
//!
//! Reading streams: memory grows with the kept records, not with the file,
//! because the decoder and the parser work on fixed-size chunks.

mod columns;
mod decode;
mod error;
mod groups;
mod memberships;
mod name;
mod source;
mod table;
mod user_map;
mod users;

use std::fmt;
use std::io::{self, Read};

use crate::model::NameInterner;
use crate::ports::StoredFile;
use crate::report::{Diagnostic, FileKind, FileSummary};
use crate::snapshot::{KindSnapshot, Snapshot};

pub use name::{file_kind, newest_per_kind};
pub use users::{is_valid_email, parse_user_state};

use groups::GroupsSink;
use memberships::MembershipsSink;
use table::{read_table, FileReport, RowSink, TableSummary};
use users::UsersSink;

/// Limits that protect the service from oversized uploads. A file over a
/// limit is rejected as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest upload read, in bytes.
    pub max_file_bytes: u64,
    /// Most data rows read from one `users.csv` or `groups.csv` (blank lines
    /// and the header excluded). `user_groups.csv` may have ten times as
    /// many, because each user is usually in several groups.
    pub max_rows: u64,
}

impl ReadLimits {
    /// Most data rows read from one file of `kind`.
    pub fn max_rows_of(&self, kind: FileKind) -> u64 {
        match kind {
            FileKind::UserGroups => self
                .max_rows
                .saturating_mul(memberships::MEMBERSHIP_ROWS_PER_USER),
            FileKind::Users | FileKind::Groups => self.max_rows,
        }
    }
}

impl Default for ReadLimits {
    /// 1 GiB and 2,000,000 rows (20,000,000 for `user_groups.csv`): room
    /// for the largest HR exports (a users row is typically 100 to 500
    /// bytes, and 1,000,000 users in 3 groups each make 3,000,000
    /// memberships) while bounding one sync's memory.
    fn default() -> Self {
        Self {
            max_file_bytes: 1024 * 1024 * 1024,
            max_rows: 2_000_000,
        }
    }
}

/// One uploaded file to read.
pub struct Upload<'a> {
    /// The file name as received, used in reports and diagnostics.
    pub name: String,
    pub kind: FileKind,
    /// Size from the folder listing, when known. A file over the size limit
    /// is then rejected without reading it.
    pub size_bytes: Option<u64>,
    /// The file's bytes, read once from start to end.
    pub reader: Box<dyn Read + Send + 'a>,
}

impl<'a> Upload<'a> {
    /// Creates an upload whose kind comes from its name; `None` when
    /// [`file_kind`] does not recognise the name.
    pub fn new(name: impl Into<String>, reader: impl Read + Send + 'a) -> Option<Self> {
        let name = name.into();
        let kind = file_kind(&name)?;
        Some(Self::with_kind(name, kind, reader))
    }

    /// Creates an upload of a given kind, whatever its name.
    pub fn with_kind(
        name: impl Into<String>,
        kind: FileKind,
        reader: impl Read + Send + 'a,
    ) -> Self {
        Self {
            name: name.into(),
            kind,
            size_bytes: None,
            reader: Box::new(reader),
        }
    }

    /// Sets the size known from the listing.
    pub fn size_bytes(mut self, size_bytes: u64) -> Self {
        self.size_bytes = Some(size_bytes);
        self
    }
}

/// Progress of [`read_snapshot_with_progress`], reported every 65,536 rows
/// and at the end of each file.
#[derive(Clone, Copy, Debug)]
pub struct ReadProgress<'a> {
    pub file: &'a str,
    /// Bytes of the file read so far, as uploaded (before decoding).
    pub bytes_read: u64,
    /// Data rows of the file read so far.
    pub rows: u64,
}

/// A failure to read an upload's bytes (a storage or network error), as
/// opposed to a problem with its content. Nothing should be applied; retrying
/// may succeed.
#[derive(Debug)]
pub struct ReadError {
    pub file: String,
    pub source: io::Error,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to read upload {}: {}", self.file, self.source)
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Reads and validates uploads into the snapshot a sync applies.
///
/// Pass the newest upload of each kind (see [`newest_per_kind`]). When
/// several uploads share a kind, the last one in `uploads` is read and the
/// others are listed as warnings. `users.csv` is read first whatever the
/// order, because memberships are checked against it.
///
/// Content problems never make this fail: they end up in the snapshot as
/// rejected kinds, errors and warnings. Each [`FileSummary`] has the size and
/// SHA-256 of the whole file, even when it was rejected, except for a file
/// over [`ReadLimits::max_file_bytes`], whose `sha256` is empty because it was
/// not read to its end. The error is only for a reader that fails.
///
/// # Example
///
/// ```
/// use dsync_core::snapshot::KindSnapshot;
/// use dsync_core::upload::{read_snapshot, ReadLimits, Upload};
///
/// let users = "user_id,first_name,last_name,email\n\
///              1001,Ana,Lima,ana.lima@example.com\n\
///              1002,Kai,,kai.tanaka@example.com\n";
/// let uploads = vec![Upload::new("users.csv", users.as_bytes()).unwrap()];
///
/// let snapshot = read_snapshot(uploads, &ReadLimits::default()).unwrap();
///
/// let KindSnapshot::Accepted(read) = &snapshot.users else { panic!("users.csv was rejected") };
/// assert_eq!(read.users.len(), 1);
/// assert!(read.held.contains("1002"));
/// assert_eq!(snapshot.errors[0].row, Some(2));
/// assert_eq!(snapshot.errors[0].column.as_deref(), Some("last_name"));
/// assert_eq!(snapshot.skipped_rows, 1);
/// ```
pub fn read_snapshot(uploads: Vec<Upload<'_>>, limits: &ReadLimits) -> Result<Snapshot, ReadError> {
    read_snapshot_with_progress(uploads, limits, &mut |_| {})
}

/// Reads listed uploads, as the sync service opens them from a
/// [`FileStore`](crate::ports::FileStore), with the default limits.
/// The error is a [`ReadError`] as text.
pub fn read_snapshot_from(
    inputs: Vec<(FileKind, StoredFile, Box<dyn Read + Send>)>,
) -> Result<Snapshot, String> {
    let uploads = inputs
        .into_iter()
        .map(|(kind, file, reader)| {
            Upload::with_kind(file.name, kind, reader).size_bytes(file.size_bytes)
        })
        .collect();
    read_snapshot(uploads, &ReadLimits::default()).map_err(|error| error.to_string())
}

/// Like [`read_snapshot`], calling `on_progress` as it goes.
pub fn read_snapshot_with_progress(
    uploads: Vec<Upload<'_>>,
    limits: &ReadLimits,
    on_progress: &mut dyn FnMut(ReadProgress<'_>),
) -> Result<Snapshot, ReadError> {
    let mut snapshot = Snapshot {
        users: KindSnapshot::Absent,
        groups: KindSnapshot::Absent,
        memberships: KindSnapshot::Absent,
        files: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        skipped_rows: 0,
    };

    let chosen = choose_one_per_kind(uploads, &mut snapshot.warnings);
    let mut interner = NameInterner::default();

    for upload in chosen {
        let name = upload.name.clone();
        let mut report = FileReport::new(&name);
        let mut file_progress = |bytes_read: u64, rows: u64| {
            on_progress(ReadProgress {
                file: &name,
                bytes_read,
                rows,
            });
        };

        match upload.kind {
            FileKind::Users => {
                let mut sink = UsersSink::default();
                let read = read_one(
                    upload,
                    limits,
                    &mut sink,
                    &mut report,
                    &mut interner,
                    &mut file_progress,
                )?;
                snapshot.users = kind_snapshot(&read, || sink.finish());
                if let KindSnapshot::Accepted(users) = &snapshot.users {
                    unidentified_warning(&mut report, users.unidentified_rows, USERS_KEPT);
                }
                finish_file(&mut snapshot, FileKind::Users, &name, read, report);
            }
            FileKind::Groups => {
                let mut sink = GroupsSink::default();
                let read = read_one(
                    upload,
                    limits,
                    &mut sink,
                    &mut report,
                    &mut interner,
                    &mut file_progress,
                )?;
                snapshot.groups = kind_snapshot(&read, || sink.finish());
                if let KindSnapshot::Accepted(groups) = &snapshot.groups {
                    unidentified_warning(&mut report, groups.unidentified_rows, GROUPS_KEPT);
                }
                finish_file(&mut snapshot, FileKind::Groups, &name, read, report);
            }
            FileKind::UserGroups => {
                let users = match &snapshot.users {
                    KindSnapshot::Accepted(users) => Some(users),
                    _ => None,
                };
                let mut sink = MembershipsSink::new(users);
                let read = read_one(
                    upload,
                    limits,
                    &mut sink,
                    &mut report,
                    &mut interner,
                    &mut file_progress,
                )?;
                let memberships = kind_snapshot(&read, || sink.finish());
                if let KindSnapshot::Accepted(memberships) = &memberships {
                    unidentified_warning(
                        &mut report,
                        memberships.unidentified_rows,
                        MEMBERSHIPS_KEPT,
                    );
                }
                snapshot.memberships = memberships;
                finish_file(&mut snapshot, FileKind::UserGroups, &name, read, report);
            }
        }
    }

    Ok(snapshot)
}

/// Keeps the last upload of each kind, users first.
fn choose_one_per_kind<'a>(
    uploads: Vec<Upload<'a>>,
    warnings: &mut Vec<Diagnostic>,
) -> Vec<Upload<'a>> {
    let mut chosen: Vec<Upload<'a>> = Vec::new();
    for upload in uploads {
        if let Some(index) = chosen
            .iter()
            .position(|earlier| earlier.kind == upload.kind)
        {
            let ignored = chosen.remove(index);
            warnings.push(Diagnostic {
                file: ignored.name.clone(),
                row: None,
                line: None,
                column: None,
                message: format!(
                    "not read: {} is also a {} file and only one file of each kind is read",
                    upload.name,
                    upload.kind.as_str()
                ),
            });
        }
        chosen.push(upload);
    }
    chosen.sort_by_key(|upload| upload.kind);
    chosen
}

fn read_one(
    upload: Upload<'_>,
    limits: &ReadLimits,
    sink: &mut dyn RowSink,
    report: &mut FileReport,
    interner: &mut NameInterner,
    on_progress: &mut dyn FnMut(u64, u64),
) -> Result<TableSummary, ReadError> {
    if let Some(size_bytes) = upload
        .size_bytes
        .filter(|&size| size > limits.max_file_bytes)
    {
        let error = error::FileError::TooLarge {
            max_file_bytes: limits.max_file_bytes,
        };
        report.reject(&error);
        return Ok(TableSummary {
            encoding: decode::Encoding::Utf8,
            delimiter: None,
            rows: 0,
            size_bytes,
            sha256: String::new(),
            rejected: Some(error),
        });
    }

    read_table(upload.reader, limits, sink, report, interner, on_progress).map_err(|source| {
        ReadError {
            file: upload.name,
            source,
        }
    })
}

/// Records each kind names, and what a sync keeps when its file has
/// unidentified rows.
const USERS_KEPT: (&str, &str) = (
    "users",
    "This sync deletes no user, and every user missing from the file keeps its stored data.",
);
const GROUPS_KEPT: (&str, &str) = (
    "groups",
    "This sync deletes no group, and every group missing from the file keeps its stored data.",
);
const MEMBERSHIPS_KEPT: (&str, &str) = (
    "memberships",
    "This sync removes no membership, and every stored membership missing from the file stays.",
);

/// Adds the warning for a file with `rows` rows that name no record reliably.
fn unidentified_warning(report: &mut FileReport, rows: u64, (records, kept): (&str, &str)) {
    if rows == 0 {
        return;
    }
    let (count, verb) = if rows == 1 {
        ("1 row".to_owned(), "does")
    } else {
        (format!("{rows} rows"), "do")
    };
    report.file_warning(format!(
        "{count} of this file {verb} not have the header's number of fields, so dsync cannot tell which {records} \
         the file lists. {kept} Fix the delimiter or quoting of the rows listed in the errors and upload the file again"
    ));
}

fn kind_snapshot<T>(read: &TableSummary, finish: impl FnOnce() -> T) -> KindSnapshot<T> {
    match read.rejected {
        Some(_) => KindSnapshot::Rejected,
        None => KindSnapshot::Accepted(finish()),
    }
}

fn finish_file(
    snapshot: &mut Snapshot,
    kind: FileKind,
    name: &str,
    read: TableSummary,
    report: FileReport,
) {
    if read.rejected.is_none() {
        snapshot.skipped_rows += report.skipped_rows();
    }
    snapshot.files.push(FileSummary {
        name: name.to_owned(),
        kind,
        encoding: read.encoding.label().to_owned(),
        delimiter: read.delimiter_label(),
        rows: read.rows,
        size_bytes: read.size_bytes,
        sha256: read.sha256,
        accepted: read.rejected.is_none(),
    });
    snapshot.errors.extend(report.errors);
    snapshot.warnings.extend(report.warnings);
}
