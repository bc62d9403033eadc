//! Safety of the planner against uploads that would delete users by
//! mistake: rows read with the wrong delimiter, header-only files and
//! syncs that remove every user. Each test reads real CSV text and plans
//! against a stored state.

#[path = "fixtures/plan/support.rs"]
mod support;

use std::io::Cursor;

use dsync_core::model::DirectoryState;
use dsync_core::plan::{plan, Change, Plan, PlanStatus};
use dsync_core::report::FileKind;
use dsync_core::settings::DirectorySettings;
use dsync_core::snapshot::{KindSnapshot, Snapshot};
use dsync_core::upload::{read_snapshot, ReadLimits, Upload};

use support::*;

const HEADER: &str = "user_id,first_name,last_name,email,department,state";

/// Twelve users of an invented company, as `users.csv` rows.
fn team_rows() -> Vec<String> {
    [
        ("u101", "Aino", "Varga"),
        ("u102", "Rafe", "Ndiaye"),
        ("u103", "Lise", "Okoro"),
        ("u104", "Bo", "Kettering"),
        ("u105", "Cleo", "Marsh"),
        ("u106", "Dev", "Ansari"),
        ("u107", "Eda", "Lund"),
        ("u108", "Finn", "Castell"),
        ("u109", "Gia", "Moreau"),
        ("u110", "Hal", "Brennan"),
        ("u111", "Ivo", "Sato"),
        ("u112", "Juno", "Reyes"),
    ]
    .iter()
    .map(|(id, first, last)| {
        format!(
            "{id},{first},{last},{}.{}@bravo.example,Eng,active",
            first.to_lowercase(),
            last.to_lowercase()
        )
    })
    .collect()
}

fn csv(header: &str, rows: &[String]) -> String {
    let mut text = format!("{header}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text
}

fn read(text: &str) -> Snapshot {
    let upload = Upload::with_kind(
        "users.csv",
        FileKind::Users,
        Cursor::new(text.as_bytes().to_vec()),
    );
    read_snapshot(vec![upload], &ReadLimits::default()).expect("text is readable")
}

fn stored(directory: &dsync_core::model::Directory, text: &str) -> DirectoryState {
    let first = read(text);
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    state_from(directory, &first)
}

fn deleted_ids(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .filter_map(|step| match &step.change {
            Change::DeleteUser(id) => Some(id.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn semicolon_row_keeps_its_user_and_echoes_no_values() {
    let directory = directory();
    let state = stored(&directory, &csv(HEADER, &team_rows()));

    let mut rows = team_rows();
    rows[3] = "u104;Bo;Kettering;bo.kettering@bravo.example;Eng;active".to_owned();
    // A valid change in the same upload still applies.
    rows[0] = "u101,Aino,Varga,aino.varga@bravo.example,Ops,active".to_owned();
    let snapshot = read(&csv(HEADER, &rows));

    assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
    let error = &snapshot.errors[0];
    assert_eq!(error.file, "users.csv");
    assert_eq!(error.row, Some(4));
    assert_eq!(error.line, Some(5));
    assert_eq!(error.column, None);
    assert!(
        error
            .message
            .contains("row has 1 fields but the header has 6; check the delimiter and quoting"),
        "{}",
        error.message
    );
    for value in ["u104", "Kettering", "bravo.example"] {
        assert!(!error.message.contains(value), "{}", error.message);
    }
    let KindSnapshot::Accepted(users) = &snapshot.users else {
        panic!("users.csv was rejected: {:?}", snapshot.errors);
    };
    assert_eq!(users.unidentified_rows, 1);
    assert!(users.held.is_empty());
    assert_eq!(snapshot.skipped_rows, 1);
    assert!(
        snapshot
            .warnings
            .iter()
            .any(|warning| warning.message.contains("1 row of this file")
                && warning.message.contains("deletes no user")),
        "{:?}",
        snapshot.warnings
    );

    let plan = second_plan(&directory, &state, &snapshot);
    assert_eq!(plan.status, PlanStatus::Applied);
    assert!(deleted_ids(&plan).is_empty());
    assert_eq!(plan.counts.deleted, 0);
    assert_eq!(plan.counts.updated, 1);
    assert_eq!(plan.counts.unchanged, 11);
}

#[test]
fn unidentified_rows_keep_every_missing_user_and_their_memberships() {
    let directory = directory();
    let memberships = "group_name,user_id\nEng,u102\nEng,u105\n";
    let mut first = read(&csv(HEADER, &team_rows()));
    let upload = Upload::with_kind(
        "user_groups.csv",
        FileKind::UserGroups,
        Cursor::new(memberships.as_bytes().to_vec()),
    );
    let groups = read_snapshot(vec![upload], &ReadLimits::default()).unwrap();
    first.memberships = groups.memberships;
    let state = state_from(&directory, &first);
    assert_eq!(state.memberships.len(), 2);

    // u105 has a bad row; u102 is simply missing, and only the unreadable
    // row could tell whether it should be.
    let mut rows = team_rows();
    rows[4] = "u105;Cleo;Marsh;cleo.marsh@bravo.example;Eng;active".to_owned();
    rows.remove(1);
    let mut second = read(&csv(HEADER, &rows));
    let upload = Upload::with_kind(
        "user_groups.csv",
        FileKind::UserGroups,
        Cursor::new(b"group_name,user_id\nEng,u101\n".to_vec()),
    );
    second.memberships = read_snapshot(vec![upload], &ReadLimits::default())
        .unwrap()
        .memberships;

    let plan = second_plan(&directory, &state, &second);
    assert_eq!(plan.status, PlanStatus::Applied);
    assert!(deleted_ids(&plan).is_empty());
    let removed: Vec<_> = plan
        .steps
        .iter()
        .filter(|step| matches!(step.change, Change::RemoveMembership(..)))
        .collect();
    assert!(removed.is_empty(), "{removed:?}");
    assert!(plan
        .steps
        .iter()
        .any(|step| matches!(&step.change, Change::AddMembership(_, id) if id.as_str() == "u101")));
}

#[test]
fn identified_file_still_deletes_missing_users() {
    let directory = directory();
    let state = stored(&directory, &csv(HEADER, &team_rows()));
    let mut rows = team_rows();
    rows.remove(3);

    let plan = second_plan(&directory, &state, &read(&csv(HEADER, &rows)));

    assert_eq!(plan.status, PlanStatus::Applied);
    assert_eq!(deleted_ids(&plan), vec!["u104"]);
}

#[test]
fn header_and_rows_with_different_delimiters_reject_the_file() {
    let directory = directory();
    let state = stored(&directory, &csv(HEADER, &team_rows()));

    let snapshot = read(&csv(&HEADER.replace(',', ";"), &team_rows()));

    assert_eq!(snapshot.users, KindSnapshot::Rejected);
    assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
    let message = &snapshot.errors[0].message;
    assert!(
        message.contains("12 of the 12 data rows do not have the header's 6 fields"),
        "{message}"
    );
    assert!(!message.contains("u10"), "{message}");
    let plan = second_plan(&directory, &state, &snapshot);
    assert_eq!(plan.status, PlanStatus::Rejected);
    assert!(plan.steps.is_empty());
}

#[test]
fn header_only_file_is_held_on_a_small_directory() {
    let directory = directory();
    let state = stored(&directory, &csv(HEADER, &team_rows()[..4]));

    let snapshot = read(&format!("{HEADER}\n"));
    let plan = second_plan(&directory, &state, &snapshot);

    assert_eq!(plan.status, PlanStatus::Held);
    let reason = plan.reason.as_deref().unwrap();
    assert!(reason.contains("has no data rows"), "{reason}");
    assert!(reason.contains("all 4 users"), "{reason}");
}

#[test]
fn header_only_file_is_held_whatever_the_minimum() {
    let directory = directory_with(DirectorySettings {
        deletion_minimum_users: 1000,
        ..DirectorySettings::default()
    });
    let state = stored(&directory, &csv(HEADER, &team_rows()));

    let plan = second_plan(&directory, &state, &read(&format!("{HEADER}\n\n")));

    assert_eq!(plan.status, PlanStatus::Held);
}

#[test]
fn header_only_file_applies_when_approved_or_directory_empty() {
    let directory = directory();
    let empty = read(&format!("{HEADER}\n"));

    let first = plan(
        &DirectoryState::default(),
        &empty,
        &context(&directory, SECOND_SYNC_MS, b"first"),
    );
    assert_eq!(first.status, PlanStatus::Applied);

    let state = stored(&directory, &csv(HEADER, &team_rows()[..3]));
    let mut approved = context(&directory, SECOND_SYNC_MS, b"approved");
    approved.approved = true;
    let plan = plan(&state, &empty, &approved);
    assert_eq!(plan.status, PlanStatus::Applied);
    assert_eq!(plan.counts.deleted, 3);
}

#[test]
fn replacing_every_user_of_a_small_directory_is_held() {
    let directory = directory();
    let state = stored(&directory, &csv(HEADER, &team_rows()[..3]));

    let plan = second_plan(&directory, &state, &read(&csv(HEADER, &team_rows()[3..5])));

    assert_eq!(plan.status, PlanStatus::Held);
    let reason = plan.reason.as_deref().unwrap();
    assert!(reason.contains("all 3 users"), "{reason}");
    // The same upload keeping one stored user applies.
    let plan = second_plan(&directory, &state, &read(&csv(HEADER, &team_rows()[2..5])));
    assert_eq!(plan.status, PlanStatus::Applied);
    assert_eq!(plan.counts.deleted, 2);
}

fn read_kinds(files: &[(&str, FileKind, &str)]) -> Snapshot {
    let uploads = files
        .iter()
        .map(|(name, kind, text)| {
            Upload::with_kind(*name, *kind, Cursor::new(text.as_bytes().to_vec()))
        })
        .collect();
    read_snapshot(uploads, &ReadLimits::default()).expect("text is readable")
}

#[test]
fn unidentified_group_and_membership_rows_remove_nothing() {
    let directory = directory();
    let users = csv(HEADER, &team_rows());
    let groups = "group_name,description\nKiln,Firing\nGlaze,Colour\nShop,Sales\n";
    let pairs = "group_name,user_id\nKiln,u101\nGlaze,u102\nShop,u103\n";
    let first = read_kinds(&[
        ("users.csv", FileKind::Users, &users),
        ("groups.csv", FileKind::Groups, groups),
        ("user_groups.csv", FileKind::UserGroups, pairs),
    ]);
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let state = state_from(&directory, &first);
    assert_eq!(state.groups.len(), 3);
    assert_eq!(state.memberships.len(), 3);

    // Glaze is on an unreadable row and Shop is missing; one pair is on an
    // unreadable row and another is missing.
    let groups = "group_name,description\nKiln,Firing\nGlaze;Colour\nNew,Fresh\n";
    let pairs = "group_name,user_id\nKiln,u101\nGlaze;u102\nNew,u104\n";
    let second = read_kinds(&[
        ("users.csv", FileKind::Users, &users),
        ("groups.csv", FileKind::Groups, groups),
        ("user_groups.csv", FileKind::UserGroups, pairs),
    ]);
    assert_eq!(second.errors.len(), 2, "{:?}", second.errors);
    assert_eq!(second.warnings.len(), 2, "{:?}", second.warnings);
    assert!(second.warnings[0].message.contains("deletes no group"));
    assert!(second.warnings[1].message.contains("removes no membership"));

    let plan = second_plan(&directory, &state, &second);
    assert_eq!(plan.status, PlanStatus::Applied);
    let removals: Vec<&Change> = plan
        .steps
        .iter()
        .map(|step| &step.change)
        .filter(|change| {
            matches!(
                change,
                Change::DeleteGroup(_) | Change::RemoveMembership(..) | Change::DeleteUser(_)
            )
        })
        .collect();
    assert!(removals.is_empty(), "{removals:?}");
    let added: Vec<&Change> = plan
        .steps
        .iter()
        .map(|step| &step.change)
        .filter(|change| matches!(change, Change::PutGroup(_) | Change::AddMembership(..)))
        .collect();
    assert_eq!(added.len(), 2, "{added:?}");
}
