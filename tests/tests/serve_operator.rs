//! Operator-facing behaviour of the real binary: offboarding removes HR
//! data, operator commands need an existing database, output survives a
//! closed pipe and control characters, uploads sent together make one sync,
//! `DSYNC_API_KEY` rotates, and one data dir runs one server.

use std::process::{Command, Stdio};
use std::time::Duration;

use dsync_tests::{dsync_binary, Server, API_KEY, SYNC_DEBOUNCE_MS};
use serde_json::Value;

fn event_names(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"))
        .iter()
        .map(|event| event["event"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn directory_delete_removes_its_events_except_dsync_deleted() {
    let server = Server::start();
    let directory = server.linked_directory("org_offboarded");
    let users = server.local_file(
        "users-offboard.csv",
        "user_id,first_name,last_name,email\n7,Orla,Vance,orla.vance@example.test\n",
    );
    server.upload(&directory, &[(&users, "users.csv")]);
    server.wait_for_syncs(&directory, 1);

    let (status, before) = server.http_get("/events?organization_id=org_offboarded&limit=100");
    assert_eq!(status, 200, "{before}");
    assert!(
        event_names(&before).contains(&"dsync.user.created".to_owned()),
        "{before}"
    );

    let output = server.dsync(&["directory", "delete", &directory.id]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let (status, after) = server.http_get("/events?organization_id=org_offboarded&limit=100");
    assert_eq!(status, 200, "{after}");
    assert_eq!(event_names(&after), vec!["dsync.deleted".to_owned()]);
    assert!(!after.to_string().contains("orla.vance"), "{after}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: std::path::PathBuf| {
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode(server.data_dir()), 0o700);
        assert_eq!(mode(server.data_dir().join("dsync.sqlite3")), 0o600);
        assert_eq!(mode(server.data_dir().join("dsync.sqlite3-wal")), 0o600);
        assert_eq!(mode(server.data_dir().join("dsync.sqlite3-shm")), 0o600);
    }
}

#[test]
fn operator_commands_refuse_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("elsewhere");
    let key = dir.path().join("key.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test\n",
    )
    .unwrap();
    let directory = "directory_01HZZZZZZZZZZZZZZZZZZZZZZZ";
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "directory",
            "create",
            "--organization",
            "org_x",
            "--name",
            "X",
        ],
        vec!["directory", "list"],
        vec!["key", "add", directory, key.to_str().unwrap()],
        vec!["api-key", "create"],
        vec!["sync", "list", directory],
    ];
    for args in &commands {
        let output = Command::new(dsync_binary())
            .args(args)
            .arg("--data-dir")
            .arg(&missing)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no dsync database")
                && stderr.contains(missing.to_str().unwrap())
                && stderr.contains("dsync serve"),
            "{args:?}: {stderr}"
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }

    // The default data dir, relative to the working directory, is not created either.
    let output = Command::new(dsync_binary())
        .args([
            "directory",
            "create",
            "--organization",
            "org_x",
            "--name",
            "X",
        ])
        .env_remove("DSYNC_DATA_DIR")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(!dir.path().join("dsync-data").exists());
}

#[test]
fn operator_output_closed_pipe_and_control_chars() {
    let server = Server::start();
    let directory = server.linked_directory("org_output");
    let users = server.local_file(
        "users-control.csv",
        "user_id,first_name,last_name,email\n1,Ines,\"Line1\nLine2\",ines@example.test\n",
    );
    server.upload(&directory, &[(&users, "users.csv")]);
    server.wait_for_syncs(&directory, 1);

    let output = server.dsync(&["user", "list", &directory.id]);
    let table = String::from_utf8(output.stdout).unwrap();
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains("Line1\\nLine2"), "{table}");

    let output = server.dsync(&["sync", "list", &directory.id]);
    let table = String::from_utf8(output.stdout).unwrap();
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("USERS+") && header.contains("USERS~") && header.contains("USERS-"),
        "{header}"
    );

    // The reader goes away before dsync writes: a quiet exit 0, no panic.
    let mut child = Command::new(dsync_binary())
        .args(["sync", "list", &directory.id, "--data-dir"])
        .arg(server.data_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn three_uploads_in_one_session_make_one_sync() {
    let server = Server::start();
    let directory = server.linked_directory("org_batch");
    let users = server.local_file(
        "users-batch.csv",
        "user_id,first_name,last_name,email\n1,Rhea,Mott,rhea@example.test\n2,Ivo,Stern,ivo@example.test\n",
    );
    let groups = server.local_file("groups-batch.csv", "group_name\nHarbour\n");
    let memberships = server.local_file("user_groups-batch.csv", "user_id,group_name\n1,Harbour\n");
    server.upload(
        &directory,
        &[
            (&users, "users.csv"),
            (&groups, "groups.csv"),
            (&memberships, "user_groups.csv"),
        ],
    );

    let syncs = server.wait_for_syncs(&directory, 1);
    // Longer than the quiet period: a second sync would have started by now.
    std::thread::sleep(Duration::from_millis(SYNC_DEBOUNCE_MS * 3));
    let syncs_later = server.syncs(&directory);
    assert_eq!(syncs_later.len(), 1, "{syncs_later:?}\n{}", server.log());
    let files: Vec<&str> = syncs[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["name"].as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(syncs[0]["status"], "applied", "{}", syncs[0]);
    let members: usize = server
        .users(&directory)
        .iter()
        .filter(|user| !user["groups"].as_array().unwrap().is_empty())
        .count();
    assert_eq!(members, 1);
}

#[test]
fn api_key_rotation_revokes_previous_env_key() {
    let server = Server::start();
    let created = server.dsync_json(&["api-key", "create", "--name", "ci"]);
    let operator_key = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(server.http_status_with_key("/directories", API_KEY), 200);

    let rotated = "sk_e2e_rotated_key_9876543210zyxwvutsrq";
    let server = server.restart_with_api_key(rotated);

    assert_eq!(server.http_status_with_key("/directories", rotated), 200);
    assert_eq!(server.http_status_with_key("/directories", API_KEY), 401);
    assert_eq!(
        server.http_status_with_key("/directories", &operator_key),
        200
    );
    let log = server.log();
    assert!(
        log.contains("revoked the API key of the previous DSYNC_API_KEY"),
        "{log}"
    );
    assert!(!log.contains(API_KEY));
    assert!(!log.contains(rotated));

    // The reserved name cannot be taken by an operator key.
    let output = server.dsync(&["api-key", "create", "--name", "DSYNC_API_KEY"]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn serve_second_instance_exits_1() {
    let server = Server::start();
    let output = server
        .serve_command()
        .args([
            "--sftp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .env("DSYNC_API_KEY", API_KEY)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("already running") && stderr.contains(server.data_dir().to_str().unwrap()),
        "{stderr}"
    );
    // The first server still responds.
    assert_eq!(server.http_status_with_key("/directories", API_KEY), 200);
}
