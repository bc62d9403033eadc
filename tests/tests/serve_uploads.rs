//! Upload handling through the real binary: temporary names, offboarding.

use dsync_tests::{fixture, Server};

#[test]
fn serve_filepart_upload_then_rename_is_processed_once() {
    let server = Server::start();
    let directory = server.linked_directory("org_filepart");

    let output = server.sftp(
        &directory,
        &format!(
            "put {} users.csv.filepart\nrename users.csv.filepart users.csv\n",
            fixture("users-four.csv").display()
        ),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let syncs = server.wait_for_syncs(&directory, 1);
    // Give a wrongly triggered second sync time to show up.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let syncs_later = server.syncs(&directory);

    assert_eq!(syncs_later.len(), 1, "syncs: {syncs_later:?}");
    assert_eq!(syncs[0]["files"][0]["name"], "users.csv");
    assert_eq!(server.users(&directory).len(), 4);
}

#[test]
fn serve_offboarding_leaves_no_files_or_rows() {
    let server = Server::start();
    let directory = server.linked_directory("org_offboard");
    let kept = server.linked_directory("org_kept");
    server.upload(&directory, &[(&fixture("users-four.csv"), "users.csv")]);
    server.upload(&kept, &[(&fixture("users-three.csv"), "users.csv")]);
    server.wait_for_syncs(&directory, 1);
    server.wait_for_syncs(&kept, 1);

    let output = server.dsync(&["directory", "delete", &directory.id]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The folder is gone.
    assert!(!server
        .data_dir()
        .join("sftp")
        .join(&directory.username)
        .exists());
    assert!(!server
        .data_dir()
        .join("sftp")
        .join(".staging")
        .join(&directory.username)
        .exists());

    // No row of the directory is left in any table but the event log.
    let database = rusqlite::Connection::open(server.data_dir().join("dsync.sqlite3")).unwrap();
    for table in ["users", "groups", "memberships", "ssh_keys", "syncs"] {
        let count: i64 = database
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE directory_id = ?1"),
                [&directory.id],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(count, 0, "{table} still has rows of the deleted directory");
    }
    let directories: i64 = database
        .query_row(
            "SELECT count(*) FROM directories WHERE id = ?1",
            [&directory.id],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(directories, 0);
    let uploads: i64 = database
        .query_row(
            "SELECT count(*) FROM completed_uploads WHERE sftp_username = ?1",
            [&directory.username],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(uploads, 0);

    // dsync.deleted is the last event of the directory; the other directory is untouched.
    let events = server.dsync_json(&[
        "event",
        "list",
        "--directory",
        &directory.id,
        "--limit",
        "1000",
    ]);
    let events = events.as_array().unwrap();
    assert_eq!(events.last().unwrap()["event"], "dsync.deleted");
    assert_eq!(
        events
            .iter()
            .filter(|event| event["event"] == "dsync.deleted")
            .count(),
        1
    );
    assert_eq!(server.users(&kept).len(), 3);

    // The SFTP login is gone too.
    let login = server.sftp(&directory, "ls\n");
    assert!(!login.status.success());

    // Deleting again reports the directory as not found.
    let again = server.dsync(&["directory", "delete", &directory.id]);
    assert!(!again.status.success());
}

#[test]
fn serve_killed_client_upload_is_never_processed() {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let server = Server::start();
    let directory = server.linked_directory("org_killed");

    // About 13 MB sent at a capped rate (`-l`, in Kbit/s) so the transfer
    // is still running when the client is killed, however fast the machine.
    let mut rows = String::from("user_id,first_name,last_name,email,department_name\n");
    for index in 0..200_000 {
        rows.push_str(&format!(
            "{index},First{index},Last{index},person{index}@example.test,Department {}\n",
            index % 50
        ));
    }
    let local = server.local_file("users-large.csv", &rows);
    let full_size = rows.len() as u64;

    let batch = server.local_file("batch.txt", &format!("put {} users.csv\n", local.display()));
    let mut client = Command::new("sftp")
        .args(["-l", "16000", "-b"])
        .arg(&batch)
        .args(["-P", &server.sftp_port.to_string(), "-i"])
        .arg(&directory.key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
        ])
        .arg(format!("{}@127.0.0.1", directory.username))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();

    // Kill sftp and its ssh child (the whole process group) once part of the
    // file arrived in the server's staging folder.
    let staging = server
        .data_dir()
        .join("sftp")
        .join(".staging")
        .join(&directory.username);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let staged: u64 = std::fs::read_dir(&staging)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| entry.metadata().ok())
                    .map(|metadata| metadata.len())
                    .sum()
            })
            .unwrap_or(0);
        if staged > 0 && staged < full_size {
            break;
        }
        if let Some(status) = client.try_wait().unwrap() {
            panic!("sftp exited ({status}) before the client could be killed");
        }
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(2));
    }
    let group = format!("-{}", client.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = client.wait();

    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        server.syncs(&directory).is_empty(),
        "a cut-off upload was processed"
    );
    assert!(server.users(&directory).is_empty());
}
