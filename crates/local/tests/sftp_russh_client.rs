//! The embedded SFTP server driven by a russh client. These tests do what the
//! OpenSSH `sftp` command cannot do on request: write at chosen offsets, keep a
//! file open while the test checks the server, drop the connection with a file
//! open, and read the channel messages that end a session.

mod sftp_support;

use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{load_secret_key, PrivateKeyWithHashAlg};
use russh::ChannelMsg;
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::OpenFlags;
use sftp_support::{ClientKey, TestServer};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

struct AcceptAnyHostKey;

impl client::Handler for AcceptAnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

async fn connect(server: &TestServer, key: &ClientKey, username: &str) -> Handle<AcceptAnyHostKey> {
    let config = Arc::new(client::Config::default());
    let mut handle = client::connect(config, ("127.0.0.1", server.port), AcceptAnyHostKey)
        .await
        .unwrap();
    let private_key = load_secret_key(&key.private_key, None).unwrap();
    let auth = handle
        .authenticate_publickey(
            username,
            PrivateKeyWithHashAlg::new(Arc::new(private_key), None),
        )
        .await
        .unwrap();
    assert!(auth.success(), "authentication as {username} failed");
    handle
}

async fn open_sftp(handle: &Handle<AcceptAnyHostKey>) -> SftpSession {
    let channel = handle.channel_open_session().await.unwrap();
    channel.request_subsystem(true, "sftp").await.unwrap();
    SftpSession::new(channel.into_stream()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_eof_gets_eof_exit_status_and_close() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    let handle = connect(&server, &key, "acme").await;
    let mut channel = handle.channel_open_session().await.unwrap();
    channel.request_subsystem(true, "sftp").await.unwrap();

    // A client that sends EOF and then waits for the server to close, as JSch does.
    channel.eof().await.unwrap();
    let mut received = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = channel.wait().await {
            let done = matches!(message, ChannelMsg::Close);
            received.push(message);
            if done {
                break;
            }
        }
    })
    .await;

    assert!(
        waited.is_ok(),
        "no CLOSE within 10 s; received {received:?}"
    );
    assert!(
        matches!(received.first(), Some(ChannelMsg::Success)),
        "{received:?}"
    );
    let eof = received.iter().position(|m| matches!(m, ChannelMsg::Eof));
    let exit = received
        .iter()
        .position(|m| matches!(m, ChannelMsg::ExitStatus { exit_status: 0 }));
    let close = received.iter().position(|m| matches!(m, ChannelMsg::Close));
    assert!(eof.is_some(), "{received:?}");
    assert!(eof < exit, "{received:?}");
    assert!(exit < close, "{received:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_at_offsets_assemble_file() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    let handle = connect(&server, &key, "acme").await;
    let sftp = open_sftp(&handle).await;

    let mut file = sftp.create("users.csv").await.unwrap();
    file.seek(std::io::SeekFrom::Start(6)).await.unwrap();
    file.write_all(b"world\n").await.unwrap();
    file.seek(std::io::SeekFrom::Start(0)).await.unwrap();
    file.write_all(b"hello ").await.unwrap();
    file.flush().await.unwrap();

    assert!(server.uploads.is_upload_in_progress("acme", "users.csv"));
    assert!(server.backend.completed().is_empty());

    file.shutdown().await.unwrap();
    drop(file);
    sftp.close().await.unwrap();

    assert_eq!(
        std::fs::read(server.jail("acme").join("users.csv")).unwrap(),
        b"hello world\n"
    );
    assert!(!server.uploads.is_upload_in_progress("acme", "users.csv"));
    assert_eq!(server.backend.completed_paths("acme"), vec!["users.csv"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_with_open_file_is_not_reported() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    let handle = connect(&server, &key, "acme").await;
    let sftp = open_sftp(&handle).await;

    let mut file = sftp.create("users.csv").await.unwrap();
    file.write_all(&vec![b'x'; 100_000]).await.unwrap();
    file.flush().await.unwrap();
    assert!(server.uploads.is_upload_in_progress("acme", "users.csv"));

    // Leave without closing the file: the connection goes away under it.
    handle
        .disconnect(russh::Disconnect::ByApplication, "test", "en")
        .await
        .unwrap();
    drop(handle);
    std::mem::forget(file);

    server.wait_upload_released("acme", "users.csv").await;
    assert!(server.backend.completed().is_empty());
    assert!(!server.jail("acme").join("users.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_fails_open_upload() {
    let mut server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    let handle = connect(&server, &key, "acme").await;
    let sftp = open_sftp(&handle).await;
    let mut file = sftp.create("users.csv").await.unwrap();
    file.write_all(b"id,email\n").await.unwrap();
    file.flush().await.unwrap();
    assert!(server.uploads.is_upload_in_progress("acme", "users.csv"));

    let stopped = tokio::time::timeout(Duration::from_secs(10), server.stop()).await;

    assert!(stopped.is_ok(), "the server did not stop within 10 s");
    server.wait_upload_released("acme", "users.csv").await;
    assert!(server.backend.completed().is_empty());
    assert!(!server.jail("acme").join("users.csv").exists());
    std::mem::forget(file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_in_progress_leaves_old_file_visible() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    std::fs::create_dir_all(server.jail("acme")).unwrap();
    let target = server.jail("acme").join("users.csv");
    std::fs::write(&target, b"id,email\nu-1,old@example.test\n").unwrap();
    let handle = connect(&server, &key, "acme").await;
    let sftp = open_sftp(&handle).await;

    let mut file = sftp.create("users.csv").await.unwrap();
    file.write_all(b"id,email\nu-1,new@").await.unwrap();
    file.flush().await.unwrap();
    let reader = open_sftp(&handle).await;
    let mut seen = String::new();
    reader
        .open("users.csv")
        .await
        .unwrap()
        .read_to_string(&mut seen)
        .await
        .unwrap();
    let seen_size = reader.metadata("users.csv").await.unwrap().size;

    assert!(server.uploads.is_upload_in_progress("acme", "users.csv"));
    assert_eq!(seen, "id,email\nu-1,old@example.test\n");
    assert_eq!(seen_size, Some(seen.len() as u64));
    assert_eq!(std::fs::read(&target).unwrap(), seen.as_bytes());

    file.write_all(b"example.test\n").await.unwrap();
    file.shutdown().await.unwrap();
    drop(file);

    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"id,email\nu-1,new@example.test\n"
    );
    assert_eq!(server.backend.completed_paths("acme"), vec!["users.csv"]);
    assert!(server.staging_files("acme").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_without_truncate_starts_from_copy() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    std::fs::create_dir_all(server.jail("acme")).unwrap();
    let target = server.jail("acme").join("users.csv");
    std::fs::write(&target, b"hello world\n").unwrap();
    let handle = connect(&server, &key, "acme").await;
    let sftp = open_sftp(&handle).await;

    let mut file = sftp
        .open_with_flags("users.csv", OpenFlags::WRITE)
        .await
        .unwrap();
    file.write_all(b"HELLO").await.unwrap();
    file.flush().await.unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"hello world\n");
    file.shutdown().await.unwrap();
    drop(file);
    let mut appended = sftp
        .open_with_flags("users.csv", OpenFlags::WRITE | OpenFlags::APPEND)
        .await
        .unwrap();
    appended.write_all(b"more\n").await.unwrap();
    appended.shutdown().await.unwrap();
    drop(appended);

    assert_eq!(std::fs::read(&target).unwrap(), b"HELLO world\nmore\n");
    assert_eq!(
        server.backend.completed_paths("acme"),
        vec!["users.csv", "users.csv"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_key_cannot_open_for_writing() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    let handle = connect(&server, &key, "acme").await;
    let sftp = open_sftp(&handle).await;
    let mut before = sftp.create("groups.csv").await.unwrap();
    before.write_all(b"id\n").await.unwrap();
    before.shutdown().await.unwrap();
    drop(before);

    server.backend.revoke("acme", &key.fingerprint);
    let opened = sftp.create("users.csv").await;
    let disconnected = tokio::time::timeout(Duration::from_secs(10), async {
        while !handle.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    assert!(opened.is_err(), "a revoked key opened a file for writing");
    assert!(disconnected.is_ok(), "the revoked session stayed connected");
    assert!(!server.jail("acme").join("users.csv").exists());
    assert_eq!(server.backend.completed_paths("acme"), vec!["groups.csv"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_key_close_keeps_old_file() {
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    std::fs::create_dir_all(server.jail("acme")).unwrap();
    let target = server.jail("acme").join("users.csv");
    std::fs::write(&target, b"id\nold\n").unwrap();
    let handle = connect(&server, &key, "acme").await;
    let sftp = open_sftp(&handle).await;
    let mut file = sftp.create("users.csv").await.unwrap();
    file.write_all(b"id\nnew\n").await.unwrap();
    file.flush().await.unwrap();

    server.backend.revoke("acme", &key.fingerprint);
    let closed = file.shutdown().await;

    assert!(closed.is_err(), "a revoked key completed an upload");
    assert_eq!(std::fs::read(&target).unwrap(), b"id\nold\n");
    assert!(server.backend.completed().is_empty());
    server.wait_upload_released("acme", "users.csv").await;
    assert!(server.staging_files("acme").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_session_frees_unauthenticated_place() {
    let server = TestServer::start(|config| {
        config.max_unauthenticated_connections = 1;
        config.max_unauthenticated_connections_per_ip = 1;
    })
    .await;
    let key = server.add_account("acme");
    let _handle = connect(&server, &key, "acme").await;

    // The logged-in connection stays open; a new one must still get the server's banner.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let mut banner = vec![0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut banner)).await;

    assert!(matches!(read, Ok(Ok(_))), "{read:?}");
    assert_eq!(banner, b"SSH-2.0-");
}
