//! Reading real-shaped upload files from `tests/fixtures/upload` into snapshots.

use std::io::Cursor;
use std::path::PathBuf;

use dsync_core::model::UserState;
use dsync_core::report::{Diagnostic, FileKind};
use dsync_core::snapshot::{
    GroupsSnapshot, KindSnapshot, MembershipsSnapshot, Snapshot, UsersSnapshot,
};
use dsync_core::upload::{read_snapshot, ReadLimits, Upload};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upload")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn upload(name: &str, kind: FileKind) -> Upload<'static> {
    Upload::with_kind(name, kind, Cursor::new(fixture(name)))
}

fn read_users(name: &str) -> Snapshot {
    read_snapshot(vec![upload(name, FileKind::Users)], &ReadLimits::default())
        .expect("fixtures are readable")
}

fn users(snapshot: &Snapshot) -> &UsersSnapshot {
    match &snapshot.users {
        KindSnapshot::Accepted(users) => users,
        other => panic!(
            "users were not accepted: {other:?}; errors: {:#?}",
            snapshot.errors
        ),
    }
}

fn groups(snapshot: &Snapshot) -> &GroupsSnapshot {
    match &snapshot.groups {
        KindSnapshot::Accepted(groups) => groups,
        other => panic!(
            "groups were not accepted: {other:?}; errors: {:#?}",
            snapshot.errors
        ),
    }
}

fn memberships(snapshot: &Snapshot) -> &MembershipsSnapshot {
    match &snapshot.memberships {
        KindSnapshot::Accepted(memberships) => memberships,
        other => panic!(
            "memberships were not accepted: {other:?}; errors: {:#?}",
            snapshot.errors
        ),
    }
}

fn attribute<'a>(snapshot: &'a Snapshot, user_id: &str, column: &str) -> &'a str {
    let user = users(snapshot)
        .users
        .get(user_id)
        .unwrap_or_else(|| panic!("user {user_id} missing"));
    user.attributes
        .get(column)
        .unwrap_or_else(|| panic!("column {column} missing"))
}

/// Returns the single file-level error of a rejected users file.
fn rejection(snapshot: &Snapshot) -> &Diagnostic {
    assert_eq!(snapshot.users, KindSnapshot::Rejected);
    assert!(!snapshot.files[0].accepted);
    assert_eq!(snapshot.errors.len(), 1, "errors: {:#?}", snapshot.errors);
    &snapshot.errors[0]
}

#[test]
fn utf8_bom_crlf_reads_clean_ids() {
    let snapshot = read_users("users_utf8_bom_crlf.csv");
    assert_eq!(users(&snapshot).users.len(), 5);
    assert_eq!(attribute(&snapshot, "2001", "user_id"), "2001");
    assert_eq!(
        attribute(&snapshot, "2005", "email"),
        "tomasz.wojcik@example.org"
    );
    assert_eq!(snapshot.files[0].encoding, "utf-8-bom");
    assert!(snapshot.errors.is_empty());
}

#[test]
fn utf8_bom_crlf_leaves_no_carriage_return() {
    let snapshot = read_users("users_utf8_bom_crlf.csv");
    for record in users(&snapshot).users.values() {
        for (column, value) in record.attributes.iter() {
            assert!(
                !column.contains('\r') && !value.contains('\r'),
                "CR left in {column}"
            );
        }
    }
}

#[test]
fn utf16le_tab_keeps_names() {
    let snapshot = read_users("users_utf16le_bom_tab.csv");
    assert_eq!(users(&snapshot).users.len(), 5);
    assert_eq!(attribute(&snapshot, "2002", "first_name"), "Björn");
    assert_eq!(attribute(&snapshot, "2002", "last_name"), "Åkesson");
    assert_eq!(snapshot.files[0].encoding, "utf-16le");
    assert_eq!(snapshot.files[0].delimiter, "\\t");
}

#[test]
fn utf16be_reads() {
    let snapshot = read_users("users_utf16be_bom.csv");
    assert_eq!(users(&snapshot).users.len(), 5);
    assert_eq!(attribute(&snapshot, "2003", "last_name"), "Ñúñez");
    assert_eq!(snapshot.files[0].encoding, "utf-16be");
}

#[test]
fn cp1252_semicolon_warns_with_encoding() {
    let snapshot = read_users("users_cp1252_semicolon.csv");
    assert_eq!(users(&snapshot).users.len(), 5);
    assert_eq!(attribute(&snapshot, "2004", "first_name"), "Chloé");
    assert_eq!(
        attribute(&snapshot, "2001", "department_name"),
        "Einkauf & Lager"
    );
    assert_eq!(snapshot.files[0].encoding, "windows-1252");
    assert_eq!(snapshot.files[0].delimiter, ";");
    assert!(snapshot.errors.is_empty());
    assert_eq!(snapshot.warnings.len(), 1);
    assert!(snapshot.warnings[0].message.contains("Windows-1252"));
}

#[test]
fn quoted_newline_stays_in_value() {
    let snapshot = read_users("users_quoted_newline.csv");
    assert_eq!(users(&snapshot).users.len(), 3);
    assert_eq!(
        attribute(&snapshot, "2001", "work_address_street"),
        "Rua Augusta 12\nApt 3"
    );
    assert_eq!(
        attribute(&snapshot, "2002", "work_address_street"),
        "Storgatan 4\nBack entrance"
    );
    assert_eq!(
        attribute(&snapshot, "2003", "work_address_street"),
        "Calle \"Mayor\" 7"
    );
    assert!(snapshot.errors.is_empty());
}

#[test]
fn quoted_newline_rows_keep_physical_lines() {
    let bytes = b"user_id,first_name,last_name,email\n2001,Mirela,\"Costa\nda Silva\",m@example.org\n2002,Bo,,b@example.org\n";
    let upload = Upload::with_kind("users.csv", FileKind::Users, Cursor::new(bytes.to_vec()));
    let snapshot = read_snapshot(vec![upload], &ReadLimits::default()).unwrap();
    assert_eq!(snapshot.errors.len(), 1);
    assert_eq!(snapshot.errors[0].row, Some(2));
    assert_eq!(snapshot.errors[0].line, Some(4));
}

#[test]
fn trailing_delimiter_and_blank_lines_ignored() {
    let snapshot = read_users("users_trailing_delimiter_blank_lines.csv");
    assert_eq!(users(&snapshot).users.len(), 5);
    assert_eq!(snapshot.files[0].rows, 5);
    assert!(snapshot.errors.is_empty(), "errors: {:#?}", snapshot.errors);
    assert!(
        snapshot.warnings.is_empty(),
        "warnings: {:#?}",
        snapshot.warnings
    );
    assert_eq!(users(&snapshot).users["2001"].attributes.len(), 4);
}

#[test]
fn header_variants_recognised() {
    let snapshot = read_users("users_header_variants_nbsp.csv");
    assert_eq!(users(&snapshot).users.len(), 5);
    assert_eq!(
        attribute(&snapshot, "2001", "email"),
        "mirela.costa@example.org"
    );
    assert_eq!(attribute(&snapshot, "2001", "first_name"), "Mirela");
    assert_eq!(attribute(&snapshot, "2001", "job_title"), "Analyst");
}

#[test]
fn leading_zero_ids_stay_distinct() {
    let snapshot = read_users("users_leading_zero_ids.csv");
    let read = users(&snapshot);
    assert_eq!(read.users.len(), 2);
    assert_eq!(attribute(&snapshot, "00417", "first_name"), "Rhea");
    assert_eq!(attribute(&snapshot, "417", "first_name"), "Omar");
}

#[test]
fn duplicate_user_id_holds_every_copy() {
    let snapshot = read_users("users_duplicate_user_id.csv");
    let read = users(&snapshot);
    assert_eq!(read.users.len(), 4);
    assert!(!read.users.contains_key("2003"));
    assert!(read.held.contains("2003"));
    assert_eq!(snapshot.skipped_rows, 2);

    let rows: Vec<(Option<u64>, Option<u64>)> = snapshot
        .errors
        .iter()
        .map(|error| (error.row, error.line))
        .collect();
    assert_eq!(rows, vec![(Some(3), Some(4)), (Some(6), Some(7))]);
    assert!(snapshot
        .errors
        .iter()
        .all(|error| error.column.as_deref() == Some("user_id")));
    assert!(snapshot.errors[0].message.contains("2003"));
}

#[test]
fn header_only_is_accepted_and_empty() {
    let snapshot = read_users("users_header_only.csv");
    assert!(users(&snapshot).users.is_empty());
    assert_eq!(snapshot.files[0].rows, 0);
    assert!(snapshot.errors.is_empty());
}

#[test]
fn cr_only_line_ends_read() {
    let snapshot = read_users("users_cr_only.csv");
    assert_eq!(users(&snapshot).users.len(), 5);
    assert_eq!(
        attribute(&snapshot, "2005", "email"),
        "tomasz.wojcik@example.org"
    );
}

#[test]
fn cr_only_line_numbers() {
    let bytes =
        b"user_id,first_name,last_name,email\r2001,A,B,a@example.org\r2002,C,,c@example.org\r";
    let upload = Upload::with_kind("users.csv", FileKind::Users, Cursor::new(bytes.to_vec()));
    let snapshot = read_snapshot(vec![upload], &ReadLimits::default()).unwrap();
    assert_eq!(snapshot.errors[0].line, Some(3));
}

#[test]
fn email_trimmed_case_kept() {
    let snapshot = read_users("users_email_spaces_case.csv");
    assert_eq!(
        attribute(&snapshot, "2001", "email"),
        "Mirela.Costa@Example.ORG"
    );
    assert_eq!(
        attribute(&snapshot, "2002", "email"),
        "bjorn.akesson@example.org"
    );
    assert!(snapshot.errors.is_empty());
}

#[test]
fn memberships_check_users_and_groups_keep_metadata() {
    let uploads = vec![
        upload("user_groups_unknown_user.csv", FileKind::UserGroups),
        upload("groups_with_metadata.csv", FileKind::Groups),
        upload("users_utf8_bom_crlf.csv", FileKind::Users),
    ];
    let snapshot = read_snapshot(uploads, &ReadLimits::default()).unwrap();

    let read_groups = groups(&snapshot);
    assert_eq!(read_groups.groups.len(), 2);
    assert_eq!(
        read_groups.groups["Finance"].get("cost_center"),
        Some("CC-310")
    );
    assert_eq!(
        read_groups.groups["Finance"].get("owner_email"),
        Some("finance-lead@example.org")
    );
    assert_eq!(read_groups.groups["Finance"].get("group_name"), None);

    let read_memberships = memberships(&snapshot);
    assert_eq!(read_memberships.memberships.len(), 3);
    assert_eq!(read_memberships.held.len(), 1);

    assert_eq!(snapshot.errors.len(), 1);
    let error = &snapshot.errors[0];
    assert_eq!(error.file, "user_groups_unknown_user.csv");
    assert_eq!(error.row, Some(4));
    assert_eq!(error.line, Some(5));
    assert_eq!(error.column.as_deref(), Some("user_id"));
    assert!(error.message.contains("8888"));
}

#[test]
fn memberships_unchecked_without_users() {
    let uploads = vec![upload("user_groups_unknown_user.csv", FileKind::UserGroups)];
    let snapshot = read_snapshot(uploads, &ReadLimits::default()).unwrap();
    assert_eq!(memberships(&snapshot).memberships.len(), 4);
    assert!(snapshot.errors.is_empty());
}

#[test]
fn files_listed_users_first() {
    let uploads = vec![
        upload("groups_with_metadata.csv", FileKind::Groups),
        upload("users_header_only.csv", FileKind::Users),
    ];
    let snapshot = read_snapshot(uploads, &ReadLimits::default()).unwrap();
    let kinds: Vec<FileKind> = snapshot.files.iter().map(|file| file.kind).collect();
    assert_eq!(kinds, vec![FileKind::Users, FileKind::Groups]);
}

#[test]
fn binary_zip_rejected() {
    let snapshot = read_users("users_binary_xlsx.csv");
    let error = rejection(&snapshot);
    assert!(error.message.contains("xlsx"));
    assert_eq!(
        snapshot.files[0].size_bytes,
        fixture("users_binary_xlsx.csv").len() as u64
    );
}

#[test]
fn binary_nul_rejected() {
    let snapshot = read_users("users_binary_nul.csv");
    let error = rejection(&snapshot);
    assert!(error.message.contains("NUL"));
}

#[test]
fn unclosed_quote_at_end_rejected() {
    let snapshot = read_users("users_unclosed_quote_at_end.csv");
    let error = rejection(&snapshot);
    assert_eq!(error.row, Some(6));
    assert_eq!(error.line, Some(7));
    assert_eq!(error.column.as_deref(), Some("first_name"));
    assert!(error.message.contains("never closed"));
}

#[test]
fn unclosed_quote_after_multiline_value_names_its_line() {
    let snapshot = read_users_text(
        "user_id,first_name,last_name,email,note\n\
         3001,Oda,Rask,oda.rask@example.org,\"two\nlines\"\n\
         3002,Per,Lund,per.lund@example.org,ok\n\
         3003,\"Ulla\nBerg\",Berg,ulla.berg@example.org,\"open\n\
         3004,Ada,Holm,ada.holm@example.org,x\n",
    );
    let error = rejection(&snapshot);
    assert_eq!(error.row, Some(3));
    assert_eq!(error.line, Some(6));
    assert_eq!(error.column.as_deref(), Some("note"));
}

#[test]
fn unbalanced_quote_mid_file_rejected() {
    let snapshot = read_users("users_unbalanced_quote_mid_file.csv");
    let error = rejection(&snapshot);
    assert_eq!(error.row, Some(1));
    assert_eq!(error.line, Some(2));
}

#[test]
fn missing_required_column_rejected() {
    let snapshot = read_users("users_missing_email_column.csv");
    let error = rejection(&snapshot);
    assert!(error.message.contains("email"));
    assert!(error.message.contains("mail"));
}

#[test]
fn duplicate_header_rejected() {
    let snapshot = read_users("users_duplicate_header.csv");
    let error = rejection(&snapshot);
    assert_eq!(error.column.as_deref(), Some("first_name"));
    assert!(error.message.contains("columns 2 and 5"));
}

#[test]
fn mixed_encoding_rejected() {
    let snapshot = read_users("users_mixed_utf8_then_cp1252.csv");
    let error = rejection(&snapshot);
    assert!(error.message.contains("mixes encodings"));
}

#[test]
fn rejected_file_still_hashed() {
    let bytes = fixture("users_duplicate_header.csv");
    let snapshot = read_users("users_duplicate_header.csv");
    assert_eq!(snapshot.files[0].size_bytes, bytes.len() as u64);
    assert_eq!(snapshot.files[0].sha256.len(), 64);
}

#[test]
fn wrong_field_count_rows_are_unidentified() {
    let snapshot = read_users("users_too_many_fields.csv");
    let read = users(&snapshot);
    let mut kept: Vec<&str> = read.users.keys().map(|id| id.as_str()).collect();
    kept.sort();
    assert_eq!(kept, vec!["2001", "2003"]);
    // Their values are in the wrong columns, so neither row names a user.
    assert!(read.held.is_empty());
    assert_eq!(read.unidentified_rows, 2);
    assert_eq!(snapshot.skipped_rows, 2);

    let messages: Vec<(Option<u64>, Option<u64>, Option<&str>, &str)> = snapshot
        .errors
        .iter()
        .map(|error| {
            (
                error.row,
                error.line,
                error.column.as_deref(),
                error.message.as_str(),
            )
        })
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0].0, Some(2));
    assert_eq!(messages[0].1, Some(3));
    assert!(messages[0]
        .3
        .starts_with("row has 5 fields but the header has 4; check the delimiter"));
    assert_eq!(messages[1].0, Some(4));
    assert!(messages[1]
        .3
        .starts_with("row has 2 fields but the header has 4"));
    for error in &snapshot.errors {
        assert_eq!(error.file, "users_too_many_fields.csv");
        assert_eq!(error.column, None);
        for value in ["2002", "2004", "kesson", "Chlo"] {
            assert!(!error.message.contains(value), "{}", error.message);
        }
    }
    assert!(snapshot.warnings.iter().any(|warning| warning
        .message
        .starts_with("2 rows of this file do not have")));
}

#[test]
fn trailing_empty_fields_are_not_a_wrong_count() {
    let snapshot = read_users_text(
        "user_id,first_name,last_name,email\n\
         3001,Oda,Rask,oda.rask@example.org,, ,\n",
    );
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert_eq!(users(&snapshot).unidentified_rows, 0);
    assert_eq!(users(&snapshot).users.len(), 1);
}

#[test]
fn most_rows_with_wrong_count_reject_the_file() {
    let snapshot = read_users_text(
        "user_id,first_name,last_name,email\n\
         3001;Oda;Rask;oda.rask@example.org\n\
         3002;Per;Lund;per.lund@example.org\n\
         3003,Ulla,Berg,ulla.berg@example.org\n",
    );
    assert_eq!(snapshot.users, KindSnapshot::Rejected);
    let error = rejection(&snapshot);
    assert_eq!(error.row, None);
    assert!(error
        .message
        .starts_with("2 of the 3 data rows do not have the header's 4 fields"));
    assert!(!error.message.contains("3001"));
}

#[test]
fn long_user_id_is_cut_in_messages() {
    let id = "x".repeat(300);
    let snapshot = read_users_text(&format!(
        "user_id,first_name,last_name,email\n{id},,Rask,oda.rask@example.org\n"
    ));
    let message = &snapshot.errors[0].message;
    assert!(
        message.contains(&format!("user_id {}…;", "x".repeat(64))),
        "{message}"
    );
    assert!(!message.contains(&"x".repeat(65)));
    assert!(users(&snapshot).held.contains(id.as_str()));
}

#[test]
fn excel_sep_line_sets_the_delimiter() {
    let snapshot = read_users_text(
        "sep=;\n\
         user_id;first_name;last_name;email\n\
         3001;Oda;Rask;oda.rask@example.org\n\
         3002;Per;;per.lund@example.org\n",
    );
    assert_eq!(snapshot.files[0].delimiter, ";");
    assert_eq!(snapshot.files[0].rows, 2);
    assert!(users(&snapshot).users.contains_key("3001"));
    assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
    assert_eq!(snapshot.errors[0].row, Some(2));
    assert_eq!(snapshot.errors[0].line, Some(4));
    assert_eq!(snapshot.errors[0].column.as_deref(), Some("last_name"));
}

#[test]
fn excel_sep_line_overrides_header_detection() {
    // The header alone would be read as comma-separated.
    let snapshot = read_users_text(
        "SEP=|\r\n\
         user_id|first_name|last_name|email|note\r\n\
         3001|Oda|Rask|oda.rask@example.org|a, b, c\r\n",
    );
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert_eq!(snapshot.files[0].delimiter, "|");
    assert_eq!(users(&snapshot).users.len(), 1);
}

#[test]
fn row_errors_hold_named_users() {
    let snapshot = read_users("users_row_errors.csv");
    let read = users(&snapshot);
    assert_eq!(read.users.len(), 1);
    let mut held: Vec<&str> = read.held.iter().map(|id| id.as_str()).collect();
    held.sort();
    assert_eq!(held, vec!["2002", "2003", "2005", "2006"]);
    assert_eq!(snapshot.skipped_rows, 5);

    let located: Vec<(Option<u64>, Option<&str>)> = snapshot
        .errors
        .iter()
        .map(|error| (error.row, error.column.as_deref()))
        .collect();
    assert_eq!(
        located,
        vec![
            (Some(2), Some("first_name")),
            (Some(3), Some("email")),
            (Some(4), Some("user_id")),
            (Some(5), Some("state")),
            (Some(6), Some("email")),
        ]
    );
}

#[test]
fn row_errors_never_show_values() {
    let snapshot = read_users("users_row_errors.csv");
    for error in &snapshot.errors {
        for value in [
            "inigo nunez",
            "Chloé",
            "retired",
            "lena.vogel@example",
            "Åkesson",
        ] {
            assert!(
                !error.message.contains(value),
                "{value} leaked into: {}",
                error.message
            );
        }
    }
}

#[test]
fn state_words_mapped() {
    let snapshot = read_users("users_state_words.csv");
    let read = users(&snapshot);
    assert_eq!(read.users["2001"].state, UserState::Inactive);
    assert_eq!(read.users["2002"].state, UserState::Active);
    assert_eq!(read.users["2003"].state, UserState::Inactive);
    assert_eq!(read.users["2004"].state, UserState::Inactive);
    assert_eq!(read.users["2005"].state, UserState::Active);
    assert_eq!(attribute(&snapshot, "2001", "badge_colour"), "red");
    assert_eq!(attribute(&snapshot, "2001", "state"), "Terminated");
}

#[test]
fn pipe_delimiter_detected() {
    let snapshot = read_users("users_pipe_delimited.csv");
    assert_eq!(users(&snapshot).users.len(), 5);
    assert_eq!(snapshot.files[0].delimiter, "|");
}

#[test]
fn attribute_names_shared_between_users() {
    let snapshot = read_users("users_utf8_bom_crlf.csv");
    let read = users(&snapshot);
    let first: Vec<&str> = read.users["2001"]
        .attributes
        .iter()
        .map(|(name, _)| name)
        .collect();
    let second: Vec<&str> = read.users["2002"]
        .attributes
        .iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(first, vec!["email", "first_name", "last_name", "user_id"]);
    assert!(std::ptr::eq(first[0], second[0]));
}

fn read_users_text(text: &str) -> Snapshot {
    let upload = Upload::with_kind(
        "users.csv",
        FileKind::Users,
        Cursor::new(text.as_bytes().to_vec()),
    );
    read_snapshot(vec![upload], &ReadLimits::default()).unwrap()
}

#[test]
fn unclosed_quote_on_last_line_rejected() {
    let snapshot = read_users_text("user_id,first_name,last_name,email\n1,A,B,\"a@example.org");
    let error = rejection(&snapshot);
    assert_eq!(error.line, Some(2));
}

#[test]
fn closed_quote_at_end_of_file_accepted() {
    let snapshot = read_users_text("user_id,first_name,last_name,email\n1,A,B,\"a@example.org\"");
    assert_eq!(users(&snapshot).users.len(), 1);
}

#[test]
fn quoted_line_break_at_end_of_file_accepted() {
    let snapshot =
        read_users_text("user_id,first_name,last_name,email,notes\n1,A,B,a@example.org,\"x\n\"");
    assert_eq!(attribute(&snapshot, "1", "notes"), "x");
}

#[test]
fn unclosed_quote_in_header_rejected() {
    let snapshot = read_users_text("user_id,\"first_name,last_name,email\n");
    let error = rejection(&snapshot);
    assert_eq!(error.line, Some(1));
}

#[test]
fn invalid_repeat_holds_valid_copy() {
    let snapshot = read_users_text(
        "user_id,first_name,last_name,email\n1,A,B,a@example.org\n2,C,D,c@example.org\n1,A,,a@example.org\n",
    );
    let read = users(&snapshot);
    assert!(!read.users.contains_key("1"));
    assert!(read.held.contains("1"));
    assert!(read.users.contains_key("2"));

    let located: Vec<(Option<u64>, Option<&str>)> = snapshot
        .errors
        .iter()
        .map(|error| (error.row, error.column.as_deref()))
        .collect();
    assert_eq!(
        located,
        vec![(Some(1), Some("user_id")), (Some(3), Some("last_name"))]
    );
    assert_eq!(snapshot.skipped_rows, 2);
}

#[test]
fn triple_copy_reports_every_row() {
    let snapshot = read_users_text(
        "user_id,first_name,last_name,email\n7,A,B,a@example.org\n7,C,D,c@example.org\n7,E,F,e@example.org\n",
    );
    let rows: Vec<Option<u64>> = snapshot.errors.iter().map(|error| error.row).collect();
    assert_eq!(rows, vec![Some(1), Some(2), Some(3)]);
    assert!(users(&snapshot).users.is_empty());
    assert_eq!(snapshot.skipped_rows, 3);
}

#[test]
fn repeated_membership_kept_once() {
    let upload = Upload::with_kind(
        "user_groups.csv",
        FileKind::UserGroups,
        Cursor::new(b"group_name,user_id\nSales,1\nOps,2\nSales,1\n".to_vec()),
    );
    let snapshot = read_snapshot(vec![upload], &ReadLimits::default()).unwrap();
    assert_eq!(memberships(&snapshot).memberships.len(), 2);
    assert!(snapshot.errors.is_empty());
}
