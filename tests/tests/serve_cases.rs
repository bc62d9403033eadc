//! Hard upload cases through the real upload path (sftp into `dsync serve`).

use dsync_tests::{fixture, Server};
use serde_json::Value;

fn user<'a>(users: &'a [Value], idp_id: &str) -> &'a Value {
    users
        .iter()
        .find(|user| user["idp_id"] == idp_id)
        .unwrap_or_else(|| panic!("no user {idp_id}"))
}

#[test]
fn serve_duplicate_user_id_keeps_user() {
    let server = Server::start();
    let directory = server.linked_directory("org_duplicates");
    server.upload(&directory, &[(&fixture("users-four.csv"), "users.csv")]);
    server.wait_for_syncs(&directory, 1);
    let before = server.users(&directory);

    server.upload(
        &directory,
        &[(&fixture("users-duplicate-id.csv"), "users_second.csv")],
    );
    let syncs = server.wait_for_syncs(&directory, 2);
    let after = server.users(&directory);

    let errors = syncs[0]["errors"].as_array().unwrap();
    let rows: Vec<u64> = errors
        .iter()
        .filter(|error| error["message"].as_str().unwrap().contains("2002"))
        .filter_map(|error| error["row"].as_u64())
        .collect();
    assert_eq!(rows, [2, 4], "errors: {errors:?}");
    assert_eq!(after.len(), 4);
    assert_eq!(user(&after, "2002"), user(&before, "2002"));
    assert_eq!(user(&after, "2004")["last_name"], "Dahl-Holm");
}

#[test]
fn serve_header_only_export_is_held_until_approved() {
    let server = Server::start();
    let directory = server.linked_directory("org_header_only");
    server.upload(&directory, &[(&fixture("users-40.csv"), "users.csv")]);
    server.wait_for_syncs(&directory, 1);

    server.upload(
        &directory,
        &[(&fixture("users-header-only.csv"), "users_empty.csv")],
    );
    let syncs = server.wait_for_syncs(&directory, 2);
    let held = &syncs[0];
    assert_eq!(held["status"], "held");
    assert_eq!(server.users(&directory).len(), 40);

    let held_id = held["id"].as_str().unwrap();
    let approved = server.dsync_json(&["sync", "approve", held_id]);

    assert_eq!(approved["status"], "applied");
    assert_eq!(server.users(&directory).len(), 0);
    let deleted = server
        .events(&directory)
        .iter()
        .filter(|event| event["event"] == "dsync.user.deleted")
        .count();
    assert_eq!(deleted, 40);
}

#[test]
fn serve_email_case_keeps_user_id() {
    let server = Server::start();
    let directory = server.linked_directory("org_email_case");
    server.upload(
        &directory,
        &[(&fixture("users-email-plain.csv"), "users.csv")],
    );
    server.wait_for_syncs(&directory, 1);
    let before = server.users(&directory);

    server.upload(
        &directory,
        &[(
            &fixture("users-email-case-and-spaces.csv"),
            "users_resent.csv",
        )],
    );
    server.wait_for_syncs(&directory, 2);
    let after = server.users(&directory);

    assert_eq!(user(&after, "1101")["id"], user(&before, "1101")["id"]);
    assert_eq!(user(&after, "1101")["email"], "Mia.Berg@Northwind.TEST");
    let kinds: Vec<String> = server
        .events(&directory)
        .iter()
        .map(|event| event["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !kinds.iter().any(|kind| kind == "dsync.user.deleted"),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .filter(|kind| *kind == "dsync.user.updated")
            .count()
            <= 1,
        "{kinds:?}"
    );
}

#[test]
fn serve_groups_metadata_and_unknown_member() {
    let server = Server::start();
    let directory = server.linked_directory("org_groups");
    server.upload(
        &directory,
        &[
            (&fixture("users-three.csv"), "users.csv"),
            (&fixture("groups-with-cost-center.csv"), "groups.csv"),
            (
                &fixture("user_groups-with-unknown-user.csv"),
                "user_groups.csv",
            ),
        ],
    );
    dsync_tests::wait_for("the memberships", || {
        let syncs = server.syncs(&directory);
        (syncs
            .first()
            .is_some_and(|sync| sync["files"].as_array().unwrap().len() == 3))
        .then_some(())
    });

    let groups = server.dsync_json(&["group", "list", &directory.id]);
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert!(
        groups
            .iter()
            .all(|group| group["raw_attributes"]["cost_center"].is_string()),
        "{groups:?}"
    );
    let memberships: usize = server
        .users(&directory)
        .iter()
        .map(|user| user["groups"].as_array().unwrap().len())
        .sum();
    assert_eq!(memberships, 3);
}
