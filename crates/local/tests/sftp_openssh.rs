//! The embedded SFTP server driven by the real OpenSSH `sftp` client in batch mode.

mod sftp_support;

use std::time::Duration;

use sftp_support::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CSV: &[u8] = b"id,email\nu-1,ada@example.test\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_uploads_file_and_reports_it() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    server.write_local("users.csv", CSV);

    let run = server.sftp(&key, "acme", "put users.csv\n").await;

    assert!(run.succeeded(), "{}", run.describe());
    assert_eq!(
        std::fs::read(server.jail("acme").join("users.csv")).unwrap(),
        CSV
    );
    assert_eq!(server.backend.completed_paths("acme"), vec!["users.csv"]);
    assert!(!server.uploads.is_upload_in_progress("acme", "users.csv"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_downloads_own_file() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    std::fs::create_dir_all(server.jail("acme").join("results")).unwrap();
    std::fs::write(
        server.jail("acme").join("results/report.json"),
        b"{\"ok\":true}",
    )
    .unwrap();

    let run = server
        .sftp(&key, "acme", "get results/report.json report.json\n")
        .await;

    assert!(run.succeeded(), "{}", run.describe());
    assert_eq!(
        std::fs::read(server.local().join("report.json")).unwrap(),
        b"{\"ok\":true}"
    );
    assert!(server.backend.completed().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_lists_jail_root_and_pwd_is_slash() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    std::fs::create_dir_all(server.jail("acme").join("results")).unwrap();
    std::fs::write(server.jail("acme").join("groups.csv"), b"id\n").unwrap();

    let run = server.sftp(&key, "acme", "pwd\nls -l\n").await;

    assert!(run.succeeded(), "{}", run.describe());
    let stdout = run.stdout();
    assert!(stdout.contains("Remote working directory: /\n"), "{stdout}");
    assert!(stdout.contains("groups.csv"), "{stdout}");
    assert!(stdout.contains("results"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkdir_rename_rm_rmdir_work_in_jail() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    server.write_local("users.csv", CSV);
    let jail = server.jail("acme");

    let run = server
        .sftp(
            &key,
            "acme",
            "put users.csv\nmkdir archive\nrename users.csv archive/users.csv\nls archive\n",
        )
        .await;

    assert!(run.succeeded(), "{}", run.describe());
    assert!(jail.join("archive/users.csv").is_file());
    assert!(!jail.join("users.csv").exists());
    assert_eq!(
        server.backend.completed_paths("acme"),
        vec!["users.csv", "archive/users.csv"]
    );

    let run = server
        .sftp(&key, "acme", "rm archive/users.csv\nrmdir archive\n")
        .await;

    assert!(run.succeeded(), "{}", run.describe());
    assert!(!jail.join("archive").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_with_preserve_times_succeeds() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    server.write_local("users.csv", CSV);

    let run = server.sftp(&key, "acme", "put -p users.csv\n").await;

    assert!(run.succeeded(), "{}", run.describe());
    assert_eq!(server.backend.completed_paths("acme"), vec!["users.csv"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filepart_upload_then_rename_reports_final_name_once() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    server.write_local("users.csv", CSV);

    let run = server
        .sftp(
            &key,
            "acme",
            "put users.csv users.csv.filepart\nrename users.csv.filepart users.csv\n",
        )
        .await;

    assert!(run.succeeded(), "{}", run.describe());
    let completed = server.backend.completed_paths("acme");
    let final_name_reports = completed.iter().filter(|p| *p == "users.csv").count();
    assert_eq!(final_name_reports, 1, "{completed:?}");
    // The close of the temporary name is reported too; the backend ignores such names.
    assert_eq!(completed, vec!["users.csv.filepart", "users.csv"]);
    assert_eq!(
        std::fs::read(server.jail("acme").join("users.csv")).unwrap(),
        CSV
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_replaces_existing_file() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    std::fs::create_dir_all(server.jail("acme")).unwrap();
    std::fs::write(server.jail("acme").join("users.csv"), b"old\n").unwrap();
    server.write_local("users.csv", CSV);

    let run = server
        .sftp(
            &key,
            "acme",
            "put users.csv users.csv.filepart\nrename users.csv.filepart users.csv\n",
        )
        .await;

    assert!(run.succeeded(), "{}", run.describe());
    assert_eq!(
        std::fs::read(server.jail("acme").join("users.csv")).unwrap(),
        CSV
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_and_ecdsa_keys_authenticate() {
    let server = TestServer::start(|_| {}).await;

    for (username, type_args) in [
        ("rsa-user", &["-t", "rsa", "-b", "3072"][..]),
        ("ecdsa-user", &["-t", "ecdsa", "-b", "256"][..]),
    ] {
        let key = server.make_key_of_type(username, type_args);
        server
            .backend
            .register(username, &key.fingerprint, server.jail(username));

        let run = server.sftp(&key, username, "pwd\n").await;

        assert!(run.succeeded(), "{username}: {}", run.describe());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_rejected() {
    let server = TestServer::start(|_| {}).await;
    server.add_account("acme");
    let stranger = server.make_key("stranger");
    server.write_local("users.csv", CSV);

    let run = server.sftp(&stranger, "acme", "put users.csv\n").await;

    assert!(!run.succeeded(), "{}", run.describe());
    assert!(
        run.stderr().contains("Permission denied"),
        "{}",
        run.describe()
    );
    assert!(!server.jail("acme").join("users.csv").exists());
    assert!(server.backend.completed().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_username_with_this_key_is_rejected() {
    let server = TestServer::start(|_| {}).await;
    let acme_key = server.add_account("acme");
    server.add_account("globex");
    server.write_local("users.csv", CSV);

    let run = server.sftp(&acme_key, "globex", "put users.csv\n").await;

    assert!(!run.succeeded(), "{}", run.describe());
    assert!(
        run.stderr().contains("Permission denied"),
        "{}",
        run.describe()
    );
    assert!(!server.jail("globex").join("users.csv").exists());
    assert!(server.backend.completed().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_folder_stays_at_jail_root() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");

    let run = server
        .sftp(&key, "acme", "cd ..\ncd ../..\npwd\nls\n")
        .await;

    assert!(run.succeeded(), "{}", run.describe());
    assert!(
        run.stdout().contains("Remote working directory: /\n"),
        "{}",
        run.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_host_path_cannot_be_read() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");

    let run = server.sftp(&key, "acme", "get /etc/passwd passwd\n").await;

    assert!(!run.succeeded(), "{}", run.describe());
    assert!(!server.local().join("passwd").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_with_parent_path_lands_inside_jail() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    server.write_local("x.csv", CSV);

    let run = server
        .sftp(&key, "acme", "put x.csv ../../escape.csv\n")
        .await;

    assert!(run.succeeded(), "{}", run.describe());
    assert!(server.jail("acme").join("escape.csv").is_file());
    assert!(!server.dir.path().join("escape.csv").exists());
    assert!(!server.dir.path().join("jails/escape.csv").exists());
    assert_eq!(server.backend.completed_paths("acme"), vec!["escape.csv"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_path_maps_to_jail_root() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    server.write_local("x.csv", CSV);
    let outside = server.dir.path().join("outside-absolute.csv");

    let run = server
        .sftp(
            &key,
            "acme",
            &format!("put x.csv /users.csv\n-put x.csv {}\n", outside.display()),
        )
        .await;

    assert!(run.succeeded(), "{}", run.describe());
    assert!(server.jail("acme").join("users.csv").is_file());
    assert!(!outside.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_symlink_is_not_followed() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    let jail = server.jail("acme");
    let outside = server.dir.path().join("outside");
    std::fs::create_dir_all(&jail).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, jail.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), jail.join("leak.txt")).unwrap();
    server.write_local("x.csv", CSV);

    let run = server
        .sftp(
            &key,
            "acme",
            "-get link/secret.txt a.txt\n-get leak.txt b.txt\n-ls link\n-put x.csv link/new.csv\n-cd link\n-rm leak.txt\n-symlink /etc/passwd made\nls -la\n",
        )
        .await;

    assert!(run.succeeded(), "{}", run.describe());
    assert!(!server.local().join("a.txt").exists());
    assert!(!server.local().join("b.txt").exists());
    assert!(!outside.join("new.csv").exists());
    assert!(jail.join("leak.txt").symlink_metadata().is_ok());
    assert!(jail.join("made").symlink_metadata().is_err());
    let stdout = run.stdout();
    let listing = stdout.split("sftp> ls -la").nth(1).unwrap();
    assert!(!listing.contains("leak.txt"), "{}", run.describe());
    assert!(server.backend.completed().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_over_size_limit_fails_without_report() {
    let server = TestServer::start(|config| config.max_upload_bytes = 1000).await;
    let key = server.add_account("acme");
    server.write_local("big.csv", &vec![b'x'; 5000]);
    server.write_local("small.csv", CSV);

    let run = server.sftp(&key, "acme", "put big.csv\n").await;

    assert!(!run.succeeded(), "{}", run.describe());
    assert!(server.backend.completed().is_empty());
    server.wait_upload_released("acme", "big.csv").await;
    assert!(!server.jail("acme").join("big.csv").exists());
    assert!(server.staging_files("acme").is_empty());

    let run = server.sftp(&key, "acme", "put small.csv\n").await;

    assert!(run.succeeded(), "{}", run.describe());
    assert_eq!(server.backend.completed_paths("acme"), vec!["small.csv"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_killed_mid_upload_is_not_reported() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    let big = server.local().join("big.csv");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(512 * 1024 * 1024)
        .unwrap();
    let batch = server.dir.path().join("batch-big");
    std::fs::write(&batch, "put big.csv\n").unwrap();
    let uploaded = server.jail("acme").join("big.csv");

    let mut child = server.sftp_command(&key, "acme", &batch).spawn().unwrap();
    let mut seen_in_progress = false;
    let mut seen_in_jail = false;
    for _ in 0..3000 {
        if server.uploads.is_upload_in_progress("acme", "big.csv") {
            seen_in_progress = true;
            seen_in_jail = uploaded.exists();
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().await.unwrap();

    assert!(seen_in_progress, "the upload never showed as in progress");
    assert!(
        !seen_in_jail,
        "the upload in progress was visible in the jail"
    );
    server.wait_upload_released("acme", "big.csv").await;
    assert!(server.backend.completed().is_empty());
    assert!(!uploaded.exists(), "the partial file was left behind");
    assert!(server.staging_files("acme").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_auth_throttle_rejects_good_key_after_limit() {
    let server = TestServer::start(|config| config.max_auth_failures_per_minute = 2).await;
    let key = server.add_account("acme");
    let stranger = server.make_key("stranger");
    let before = server.sftp(&key, "acme", "ls\n").await;
    assert!(before.succeeded(), "{}", before.describe());

    for _ in 0..2 {
        let run = server.sftp(&stranger, "acme", "ls\n").await;
        assert!(!run.succeeded(), "{}", run.describe());
    }
    let run = server.sftp(&key, "acme", "ls\n").await;

    assert!(!run.succeeded(), "{}", run.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_is_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let host_key_path = dir.path().join("sftp_host_ed25519");

    let mut first = TestServer::start(|config| config.host_key_path = host_key_path.clone()).await;
    let first_fingerprint = first.host_key_fingerprint.clone();
    first.stop().await;
    let second = TestServer::start(|config| config.host_key_path = host_key_path.clone()).await;

    assert_eq!(first_fingerprint, second.host_key_fingerprint);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_is_closed() {
    let server = TestServer::start(|config| config.idle_timeout = Duration::from_secs(1)).await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    socket.write_all(b"SSH-2.0-idle_test\r\n").await.unwrap();

    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut buffer)).await;

    assert!(
        read.is_ok(),
        "the server kept an idle connection open for 10 s"
    );
}

/// Opens a TCP connection from `source` (an address in 127.0.0.0/8), sends an SSH
/// banner and returns the stream with the first bytes the server sent back.
async fn raw_connection(port: u16, source: [u8; 4]) -> (tokio::net::TcpStream, Vec<u8>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::from(source), 0).into())
        .unwrap();
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let _ = stream.write_all(b"SSH-2.0-raw_test\r\n").await;
    let mut buffer = vec![0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("the server neither answered nor closed within 5 s");
    let read = read.unwrap_or(0);
    buffer.truncate(read);
    (stream, buffer)
}

fn is_ssh_banner(received: &[u8]) -> bool {
    received.starts_with(b"SSH-2.0-")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banner_only_connection_closed_after_login_grace() {
    let server = TestServer::start(|config| config.login_grace = Duration::from_secs(2)).await;
    let started = std::time::Instant::now();
    let (mut stream, received) = raw_connection(server.port, [127, 0, 0, 1]).await;
    assert!(is_ssh_banner(&received), "{received:?}");

    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;

    assert!(
        read.is_ok(),
        "the unauthenticated connection stayed open for 10 s"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "closed after {:?}, before the login grace",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_capped_per_ip() {
    let server = TestServer::start(|config| {
        config.max_unauthenticated_connections = 10;
        config.max_unauthenticated_connections_per_ip = 2;
    })
    .await;

    let (_first, first_received) = raw_connection(server.port, [127, 0, 0, 1]).await;
    let (_second, second_received) = raw_connection(server.port, [127, 0, 0, 1]).await;
    let (_third, third_received) = raw_connection(server.port, [127, 0, 0, 1]).await;
    let (_other, other_received) = raw_connection(server.port, [127, 0, 0, 2]).await;

    assert!(is_ssh_banner(&first_received), "{first_received:?}");
    assert!(is_ssh_banner(&second_received), "{second_received:?}");
    assert!(third_received.is_empty(), "{third_received:?}");
    assert!(is_ssh_banner(&other_received), "{other_received:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_capped_in_total() {
    let server = TestServer::start(|config| {
        config.max_unauthenticated_connections = 3;
        config.max_unauthenticated_connections_per_ip = 2;
    })
    .await;
    let (_first, _) = raw_connection(server.port, [127, 0, 0, 1]).await;
    let (_second, _) = raw_connection(server.port, [127, 0, 0, 2]).await;
    let (third, third_received) = raw_connection(server.port, [127, 0, 0, 3]).await;
    assert!(is_ssh_banner(&third_received), "{third_received:?}");

    let (_refused, refused_received) = raw_connection(server.port, [127, 0, 0, 4]).await;
    drop(third);
    let mut admitted_after_close = false;
    for _ in 0..50 {
        let (_stream, received) = raw_connection(server.port, [127, 0, 0, 5]).await;
        if is_ssh_banner(&received) {
            admitted_after_close = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(refused_received.is_empty(), "{refused_received:?}");
    assert!(
        admitted_after_close,
        "a closed connection did not free its place"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_and_exec_are_refused() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");

    let output = tokio::process::Command::new("ssh")
        .arg("-p")
        .arg(server.port.to_string())
        .arg("-i")
        .arg(&key.private_key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "acme@127.0.0.1",
            "cat /etc/passwd",
        ])
        .stdin(std::process::Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .expect("ssh hung on a refused exec request")
        .unwrap();

    assert!(!output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("root:"));
}
