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
use sftp_support::{ClientKey, TestServer};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

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
