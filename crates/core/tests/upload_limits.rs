//! Size and row limits, and reading large inputs that are generated while they stream.

use std::io::{self, Cursor, Read};

use dsync_core::report::FileKind;
use dsync_core::snapshot::KindSnapshot;
use dsync_core::upload::{read_snapshot, read_snapshot_with_progress, ReadLimits, Upload};

const HEADER: &str = "user_id,first_name,last_name,email\n";

/// A users file of `rows` rows generated on the fly, so the test itself
/// never keeps the whole file in memory.
struct GeneratedUsers {
    rows: u64,
    next_row: u64,
    pending: Vec<u8>,
    position: usize,
    /// Row whose last name is written in Windows-1252 (`Mädler`), if any.
    cp1252_row: Option<u64>,
    /// A (row, id) pair: that row repeats the id of an earlier row.
    repeat: Option<(u64, u64)>,
}

impl GeneratedUsers {
    fn new(rows: u64) -> Self {
        Self {
            rows,
            next_row: 0,
            pending: HEADER.as_bytes().to_vec(),
            position: 0,
            cp1252_row: None,
            repeat: None,
        }
    }
}

impl Read for GeneratedUsers {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.pending.len() {
            if self.next_row == self.rows {
                return Ok(0);
            }
            self.pending.clear();
            self.position = 0;
            let row = self.next_row + 1;
            let id = match self.repeat {
                Some((repeat_row, repeated_id)) if repeat_row == row => repeated_id,
                _ => row,
            };
            let last_name: &[u8] = if self.cp1252_row == Some(row) {
                b"M\xE4dler"
            } else {
                b"Sample"
            };
            self.pending
                .extend_from_slice(format!("{id},Person{id},").as_bytes());
            self.pending.extend_from_slice(last_name);
            self.pending
                .extend_from_slice(format!(",person{id}@example.org\r\n").as_bytes());
            self.next_row += 1;
        }
        let count = (self.pending.len() - self.position).min(buf.len());
        buf[..count].copy_from_slice(&self.pending[self.position..self.position + count]);
        self.position += count;
        Ok(count)
    }
}

fn users_upload(text: &str) -> Upload<'static> {
    Upload::with_kind(
        "users.csv",
        FileKind::Users,
        Cursor::new(text.as_bytes().to_vec()),
    )
}

#[test]
fn row_limit_rejects_file() {
    let limits = ReadLimits {
        max_rows: 2,
        ..ReadLimits::default()
    };
    let text = format!("{HEADER}1,A,B,a@example.org\n2,C,D,c@example.org\n3,E,F,e@example.org\n");
    let snapshot = read_snapshot(vec![users_upload(&text)], &limits).unwrap();
    assert_eq!(snapshot.users, KindSnapshot::Rejected);
    assert!(snapshot.errors[0].message.contains("more than 2 data rows"));
    assert_eq!(snapshot.files[0].size_bytes, text.len() as u64);
}

#[test]
fn row_limit_allows_exact_count() {
    let limits = ReadLimits {
        max_rows: 2,
        ..ReadLimits::default()
    };
    let text = format!("{HEADER}1,A,B,a@example.org\n\n2,C,D,c@example.org\n\n");
    let snapshot = read_snapshot(vec![users_upload(&text)], &limits).unwrap();
    assert!(matches!(snapshot.users, KindSnapshot::Accepted(_)));
}

#[test]
fn size_limit_rejects_while_streaming() {
    let limits = ReadLimits {
        max_file_bytes: 10_000,
        ..ReadLimits::default()
    };
    let upload = Upload::with_kind("users.csv", FileKind::Users, GeneratedUsers::new(100_000));
    let snapshot = read_snapshot(vec![upload], &limits).unwrap();
    assert_eq!(snapshot.users, KindSnapshot::Rejected);
    assert!(snapshot.errors[0].message.contains("10000 bytes"));
    assert_eq!(snapshot.files[0].sha256, "");
}

#[test]
fn size_limit_rejects_listed_size_unread() {
    let limits = ReadLimits {
        max_file_bytes: 10,
        ..ReadLimits::default()
    };
    let upload = Upload::with_kind("users.csv", FileKind::Users, io::empty()).size_bytes(11);
    let snapshot = read_snapshot(vec![upload], &limits).unwrap();
    assert_eq!(snapshot.users, KindSnapshot::Rejected);
    assert_eq!(snapshot.files[0].size_bytes, 11);
}

#[test]
fn large_generated_file_reads_fully() {
    let rows = 200_000;
    let upload = Upload::with_kind("users.csv", FileKind::Users, GeneratedUsers::new(rows));
    let mut updates = 0;
    let snapshot =
        read_snapshot_with_progress(vec![upload], &ReadLimits::default(), &mut |_| updates += 1)
            .unwrap();

    let KindSnapshot::Accepted(users) = &snapshot.users else {
        panic!("rejected: {:?}", snapshot.errors);
    };
    assert_eq!(users.users.len(), rows as usize);
    assert_eq!(snapshot.files[0].rows, rows);
    assert!(updates >= 3, "progress reported {updates} times");
}

#[test]
fn late_cp1252_byte_switches_encoding() {
    let mut source = GeneratedUsers::new(100_000);
    source.cp1252_row = Some(90_000);
    let upload = Upload::with_kind("users.csv", FileKind::Users, source);
    let snapshot = read_snapshot(vec![upload], &ReadLimits::default()).unwrap();

    let KindSnapshot::Accepted(users) = &snapshot.users else {
        panic!("rejected: {:?}", snapshot.errors);
    };
    assert_eq!(
        users.users["90000"].attributes.get("last_name"),
        Some("Mädler")
    );
    assert_eq!(snapshot.files[0].encoding, "windows-1252");
    assert_eq!(snapshot.warnings.len(), 1);
}

#[test]
fn failing_reader_is_an_error() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "storage went away",
            ))
        }
    }
    let upload = Upload::with_kind("users.csv", FileKind::Users, Failing);
    let error = read_snapshot(vec![upload], &ReadLimits::default()).unwrap_err();
    assert_eq!(error.file, "users.csv");
    assert_eq!(error.source.kind(), io::ErrorKind::ConnectionReset);
}

#[test]
fn second_upload_of_kind_wins_with_warning() {
    let first = Upload::with_kind(
        "users_old.csv",
        FileKind::Users,
        Cursor::new(b"user_id,first_name,last_name,email\n".to_vec()),
    );
    let second = users_upload(&format!("{HEADER}1,A,B,a@example.org\n"));
    let snapshot = read_snapshot(vec![first, second], &ReadLimits::default()).unwrap();
    assert_eq!(snapshot.files.len(), 1);
    assert_eq!(snapshot.files[0].name, "users.csv");
    assert_eq!(snapshot.warnings[0].file, "users_old.csv");
}

#[test]
fn empty_file_has_no_header() {
    let snapshot = read_snapshot(vec![users_upload("\n\n  \n")], &ReadLimits::default()).unwrap();
    assert_eq!(snapshot.users, KindSnapshot::Rejected);
    assert!(snapshot.errors[0].message.contains("no header"));
}

#[test]
fn repeated_id_far_apart_reports_both_rows() {
    let mut source = GeneratedUsers::new(50_000);
    source.repeat = Some((45_000, 17));
    let upload = Upload::with_kind("users.csv", FileKind::Users, source);
    let snapshot = read_snapshot(vec![upload], &ReadLimits::default()).unwrap();

    let KindSnapshot::Accepted(users) = &snapshot.users else {
        panic!("rejected: {:?}", snapshot.errors);
    };
    assert_eq!(users.users.len(), 49_998);
    assert!(users.held.contains("17"));

    let rows: Vec<(Option<u64>, Option<u64>)> = snapshot
        .errors
        .iter()
        .map(|error| (error.row, error.line))
        .collect();
    assert_eq!(
        rows,
        vec![(Some(17), Some(18)), (Some(45_000), Some(45_001))]
    );
    assert_eq!(snapshot.skipped_rows, 2);
}

#[test]
fn membership_rows_may_be_ten_times_the_user_limit() {
    let limits = ReadLimits {
        max_rows: 2,
        ..ReadLimits::default()
    };
    assert_eq!(limits.max_rows_of(FileKind::Users), 2);
    assert_eq!(limits.max_rows_of(FileKind::Groups), 2);
    assert_eq!(limits.max_rows_of(FileKind::UserGroups), 20);
    assert_eq!(
        ReadLimits::default().max_rows_of(FileKind::UserGroups),
        20_000_000
    );

    let users = format!("{HEADER}1,A,B,a@example.org\n2,C,D,c@example.org\n");
    let memberships = |rows: usize| {
        let mut text = "group_name,user_id\n".to_owned();
        for index in 0..rows {
            text.push_str(&format!("team{index},{}\n", index % 2 + 1));
        }
        text
    };
    let read = |rows: usize| {
        let uploads = vec![
            users_upload(&users),
            Upload::with_kind(
                "user_groups.csv",
                FileKind::UserGroups,
                io::Cursor::new(memberships(rows).into_bytes()),
            ),
        ];
        read_snapshot(uploads, &limits).unwrap()
    };

    let within = read(20);
    assert!(matches!(within.memberships, KindSnapshot::Accepted(_)));
    let over = read(21);
    assert_eq!(over.memberships, KindSnapshot::Rejected);
    assert!(over.errors[0].message.contains("more than 20 data rows"));
}
