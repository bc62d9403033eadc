//! The embedded SFTP server of the local deployment.
//!
//! HR systems log in with a public key registered to a directory and upload CSV
//! files into that directory's folder. The server:
//!
//! - offers only `publickey` authentication and passes the key's SHA256
//!   fingerprint to [`SftpBackend::authorize`]. Rejected attempts are counted per
//!   source IP, and an address over [`SftpConfig::max_auth_failures_per_minute`]
//!   is turned away for up to a minute;
//! - confines each account to its root folder: paths are normalised lexically
//!   with `/` as the root, and any path through a symbolic link is rejected
//!   ([`jail`]);
//! - writes every upload into a staging file outside the jail ([`staging`]) and
//!   moves it over its target with one rename when the client's CLOSE succeeds,
//!   so the visible file is always the previous complete one or the new complete
//!   one. An upload cut off (client killed, connection dropped, idle timeout,
//!   size limit exceeded) is logged as failed, never reported, and loses only
//!   its staging file;
//! - tracks each file opened for writing ([`upload`]) and calls
//!   [`SftpBackend::upload_completed`] only when such a file is closed without
//!   error, or when a regular file is renamed into place;
//! - asks [`SftpBackend::authorize`] again before every change to the jail
//!   (open for writing, close of an upload, rename, remove, mkdir, rmdir), and
//!   ends the session when the key is no longer registered;
//! - rejects file names with control or bidirectional formatting characters,
//!   and keeps the reports folder `results/` read-only for clients;
//! - closes connections that have not authenticated within the login grace time
//!   and caps how many unauthenticated connections it holds ([`login_limit`]);
//! - accepts SETSTAT and FSETSTAT as no-ops, so clients that preserve times succeed.
//!
//! Every closed upload is reported, whatever its name: a `users.csv.filepart`
//! written by WinSCP is reported on close, then `users.csv` on the rename. The
//! backend decides which names it processes, so the naming rules live in one place.

mod guarded_stream;
mod handler;
mod host_key;
pub mod jail;
mod login_limit;
mod server;
mod session;
mod staging;
mod throttle;
pub mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use server::SftpServer;
pub use upload::UploadRegistry;

/// What the SFTP server asks of the rest of dsync.
#[async_trait::async_trait]
pub trait SftpBackend: Send + Sync + 'static {
    /// Returns the jail root folder for `username` when `fingerprint` (SHA256:... as ssh-keygen -l prints) is a key registered to that username's directory; None otherwise.
    async fn authorize(&self, username: &str, fingerprint: &str) -> Option<PathBuf>;

    /// Called once a file was completely written and closed, or renamed into place. `path` is relative to the jail root, '/'-separated.
    ///
    /// The client's CLOSE or RENAME reply waits for this call, so long work
    /// (parsing, applying a sync) should be handed to another task.
    async fn upload_completed(&self, username: &str, path: &str);
}

/// Settings of the embedded SFTP server.
#[derive(Debug, Clone)]
pub struct SftpConfig {
    /// The address to listen on; port 0 picks a free port (see [`SftpServer::local_addr`]).
    pub listen: SocketAddr,
    /// The host key file: an Ed25519 key is generated there (mode 0600) on first start and reused afterwards.
    pub host_key_path: PathBuf,
    /// The largest file an upload may produce, in bytes; a write past it fails the upload.
    pub max_upload_bytes: u64,
    /// How long a connection may stay silent before it is closed.
    pub idle_timeout: Duration,
    /// Rejected authentications allowed per source IP address per minute before that address is turned away; 0 turns throttling off.
    pub max_auth_failures_per_minute: u32,
    /// How long a connection may take from TCP accept to a successful authentication
    /// (as sshd's `LoginGraceTime`); the idle timeout applies instead when shorter.
    pub login_grace: Duration,
    /// The most connections that may be open without having authenticated; further ones are closed at once.
    pub max_unauthenticated_connections: usize,
    /// The most unauthenticated connections one source IP address may hold.
    pub max_unauthenticated_connections_per_ip: usize,
}

impl SftpConfig {
    /// The default upload size limit: 1 GiB.
    pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 1024 * 1024 * 1024;
    /// The default idle timeout: 10 minutes.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
    /// The default failed-authentication limit per source IP per minute.
    pub const DEFAULT_MAX_AUTH_FAILURES_PER_MINUTE: u32 = 10;
    /// The default login grace time: 60 seconds.
    pub const DEFAULT_LOGIN_GRACE: Duration = Duration::from_secs(60);
    /// The default limit of unauthenticated connections in total.
    pub const DEFAULT_MAX_UNAUTHENTICATED_CONNECTIONS: usize = 64;
    /// The default limit of unauthenticated connections per source IP address.
    pub const DEFAULT_MAX_UNAUTHENTICATED_CONNECTIONS_PER_IP: usize = 16;

    /// Creates a configuration with the default limits.
    pub fn new(listen: SocketAddr, host_key_path: PathBuf) -> Self {
        SftpConfig {
            listen,
            host_key_path,
            max_upload_bytes: Self::DEFAULT_MAX_UPLOAD_BYTES,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_auth_failures_per_minute: Self::DEFAULT_MAX_AUTH_FAILURES_PER_MINUTE,
            login_grace: Self::DEFAULT_LOGIN_GRACE,
            max_unauthenticated_connections: Self::DEFAULT_MAX_UNAUTHENTICATED_CONNECTIONS,
            max_unauthenticated_connections_per_ip:
                Self::DEFAULT_MAX_UNAUTHENTICATED_CONNECTIONS_PER_IP,
        }
    }
}

/// Binds and serves until `shutdown` resolves.
///
/// To learn the bound port (when listening on port 0) or to consult the uploads
/// in progress, use [`SftpServer::bind`], [`SftpServer::local_addr`],
/// [`SftpServer::uploads`] and [`SftpServer::run`] instead.
pub async fn serve(
    config: SftpConfig,
    backend: Arc<dyn SftpBackend>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    SftpServer::bind(config).await?.run(backend, shutdown).await
}
