//! The whole local flow through the real binary: create a directory, add a
//! key, upload with OpenSSH sftp, then read users, events, the report and
//! the HTTP API.

use std::process::Command;

use dsync_tests::{fixture, wait_for, Server};
use serde_json::Value;

fn names(syncs: &[Value], index: usize) -> Vec<String> {
    syncs[index]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn serve_flow_upload_creates_users_events_and_report() {
    let server = Server::start();
    let directory = server.linked_directory("org_flow");

    // key add prints the login the organization needs.
    let fingerprint = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(directory.key.with_extension("pub"))
        .output()
        .unwrap();
    let fingerprint = String::from_utf8(fingerprint.stdout).unwrap();
    assert!(
        fingerprint.contains(directory.added["fingerprint"].as_str().unwrap()),
        "{fingerprint}"
    );
    assert_eq!(directory.added["sftp"]["port"], server.sftp_port);
    assert_eq!(directory.added["sftp"]["host"], "127.0.0.1");
    assert_eq!(
        directory.added["sftp"]["username"],
        directory.username.as_str()
    );

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

    let syncs = wait_for("a sync of all three files", || {
        let syncs = server.syncs(&directory);
        let done =
            !syncs.is_empty() && names(&syncs, 0).len() == 3 && syncs[0]["status"] == "applied";
        done.then_some(syncs)
    });
    let latest = &syncs[0];

    let users = server.users(&directory);
    assert_eq!(users.len(), 3);
    let platform_members = users
        .iter()
        .filter(|user| {
            user["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|group| group["name"] == "Platform")
        })
        .count();
    assert_eq!(platform_members, 2);

    let events = server.events(&directory);
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "dsync.activated");
    assert_eq!(
        kinds
            .iter()
            .filter(|kind| **kind == "dsync.user.created")
            .count(),
        3
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|kind| **kind == "dsync.group.created")
            .count(),
        2
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|kind| **kind == "dsync.group.user_added")
            .count(),
        3
    );

    // The unknown member 9999 is reported with its row.
    let errors = latest["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|error| error["file"] == "user_groups.csv" && error["row"] == 4),
        "errors: {errors:?}"
    );

    // The report is in results/, downloadable over SFTP.
    let listing = server.sftp(&directory, "ls -1 results\n");
    let listing = String::from_utf8(listing.stdout).unwrap();
    let sync_id = latest["id"].as_str().unwrap();
    let report_name = listing
        .lines()
        .map(str::trim)
        .find(|line| line.ends_with(&format!("-{sync_id}.json")))
        .unwrap_or_else(|| panic!("no report for {sync_id} in: {listing}"))
        .to_owned();
    let downloaded = server.path().join("report.json");
    let get = server.sftp(
        &directory,
        &format!("get {} {}\n", report_name, downloaded.display()),
    );
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&downloaded).unwrap()).unwrap();
    assert_eq!(report["id"], sync_id);
    assert_eq!(report["status"], "applied");

    // The HTTP API serves the same users to an API key holder.
    let (status, body) = server.http_get(&format!(
        "/directory_users?directory={}&limit=10",
        directory.id
    ));
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(body["data"].as_array().unwrap().len(), 3);
}

#[test]
fn serve_flow_wrong_key_cannot_log_in() {
    let server = Server::start();
    let directory = server.linked_directory("org_wrong_key");
    let other = server.linked_directory("org_other_key");

    let output = server.sftp_with_key(&directory.username, &other.key, "ls\n");

    assert!(!output.status.success());
}

#[test]
fn serve_restart_keeps_host_key_keys_and_data() {
    let server = Server::start();
    let directory = server.linked_directory("org_restart");
    server.upload(&directory, &[(&fixture("users-four.csv"), "users.csv")]);
    server.wait_for_syncs(&directory, 1);
    let host_key = std::fs::read(server.data_dir().join("ssh_host_ed25519_key")).unwrap();

    let server = server.restart();

    assert_eq!(
        std::fs::read(server.data_dir().join("ssh_host_ed25519_key")).unwrap(),
        host_key
    );
    assert_eq!(server.users(&directory).len(), 4);
    // The start-up re-sync finds the same files and writes no new sync.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(server.syncs(&directory).len(), 1);
    let login = server.sftp(&directory, "ls\n");
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
}
