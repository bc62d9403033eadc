//! The listening server: binds, accepts connections, and stops on shutdown.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use russh::keys::HashAlg;
use russh::{Disconnect, MethodKind, MethodSet, SshId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::guarded_stream::{CutOnDrop, GuardedStream};
use super::host_key;
use super::login_limit::{PendingLogin, PendingLogins, Refusal};
use super::session::{Connection, ConnectionState, ServerShared};
use super::staging;
use super::throttle::AuthThrottle;
use super::upload::UploadRegistry;
use super::{SftpBackend, SftpConfig};

/// How long shutdown waits for open connections to end after telling them to disconnect.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long the accept loop pauses after a failed accept (for example, out of file descriptors).
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The shortest time between two log lines about connections refused by the unauthenticated-connection limits.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The constant time every rejected authentication takes, so replies do not
/// reveal which usernames exist; it also slows down guessing.
const AUTH_REJECTION_TIME: Duration = Duration::from_secs(1);

/// A bound SFTP server that has not started accepting yet.
///
/// Bind first to learn the port (useful with port 0 in tests), then call [`SftpServer::run`].
pub struct SftpServer {
    listener: TcpListener,
    config: SftpConfig,
    ssh_config: Arc<russh::server::Config>,
    host_key_fingerprint: String,
    uploads: UploadRegistry,
}

impl SftpServer {
    /// Loads or generates the host key and binds the listening socket.
    pub async fn bind(config: SftpConfig) -> anyhow::Result<SftpServer> {
        let host_key = host_key::load_or_generate(&config.host_key_path)?;
        let host_key_fingerprint = host_key
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string();

        let ssh_config = russh::server::Config {
            server_id: SshId::Standard(Cow::Borrowed("SSH-2.0-dsync")),
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            auth_rejection_time: AUTH_REJECTION_TIME,
            // OpenSSH clients start with a "none" request to learn the methods. Rejecting it
            // at once keeps logins fast and reveals nothing.
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![host_key],
            inactivity_timeout: Some(config.idle_timeout),
            nodelay: true,
            ..Default::default()
        };

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen for SFTP on {}", config.listen))?;

        Ok(SftpServer {
            listener,
            config,
            ssh_config: Arc::new(ssh_config),
            host_key_fingerprint,
            uploads: UploadRegistry::new(),
        })
    }

    /// Returns the address the server listens on, with the real port when bound to port 0.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Returns the host key's SHA256 fingerprint, as `ssh-keygen -l` prints it.
    pub fn host_key_fingerprint(&self) -> &str {
        &self.host_key_fingerprint
    }

    /// Returns the registry of uploads in progress; clone it before [`SftpServer::run`]
    /// to ask [`UploadRegistry::is_upload_in_progress`] while the server runs.
    pub fn uploads(&self) -> UploadRegistry {
        self.uploads.clone()
    }

    /// Accepts connections until `shutdown` resolves, then disconnects every client.
    ///
    /// Uploads still open when a client is disconnected are recorded as failed.
    pub async fn run(
        self,
        backend: Arc<dyn SftpBackend>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let local_addr = self.local_addr()?;
        let shared = Arc::new(ServerShared {
            backend,
            throttle: AuthThrottle::new(self.config.max_auth_failures_per_minute),
            uploads: self.uploads.clone(),
            max_upload_bytes: self.config.max_upload_bytes,
            staging_instance: staging::new_instance_id(),
        });
        let pending_logins = PendingLogins::new(
            self.config.max_unauthenticated_connections,
            self.config.max_unauthenticated_connections_per_ip,
        );
        let login_grace = self.config.login_grace.min(self.config.idle_timeout);
        let mut refusals = RefusalLog::default();
        let (stop_sender, stop_receiver) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut next_connection_id: u64 = 0;

        tracing::info!(
            listen = %local_addr,
            host_key_fingerprint = %self.host_key_fingerprint,
            max_upload_bytes = self.config.max_upload_bytes,
            idle_timeout_secs = self.config.idle_timeout.as_secs(),
            login_grace_secs = login_grace.as_secs(),
            max_unauthenticated_connections = self.config.max_unauthenticated_connections,
            max_unauthenticated_connections_per_ip = self.config.max_unauthenticated_connections_per_ip,
            "sftp server started"
        );

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        let accepted_at = tokio::time::Instant::now();
                        if shared.throttle.is_blocked(peer.ip()) {
                            tracing::debug!(%peer, "sftp connection refused: too many failed authentications from this address");
                            continue;
                        }
                        let pending = match pending_logins.admit(peer.ip()) {
                            Ok(pending) => pending,
                            Err(refusal) => {
                                // Dropping the socket closes it before any byte is sent.
                                drop(socket);
                                refusals.record(peer, refusal);
                                continue;
                            }
                        };
                        next_connection_id += 1;
                        connections.spawn(serve_connection(
                            next_connection_id,
                            socket,
                            peer,
                            LoginLimits { deadline: accepted_at + login_grace, pending },
                            Arc::clone(&self.ssh_config),
                            Arc::clone(&shared),
                            stop_receiver.clone(),
                        ));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accepting an sftp connection failed; retrying");
                        tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    }
                },
                // Reap finished connections so the set does not grow for the server's lifetime.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }

        tracing::info!(open_connections = connections.len(), "sftp server stopping");
        drop(self.listener);
        let _ = stop_sender.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                open_connections = connections.len(),
                "sftp connections still open after the shutdown grace period; aborting them"
            );
            connections.shutdown().await;
        }
        tracing::info!("sftp server stopped");
        Ok(())
    }
}

/// The login limits of one connection: when it must have authenticated, and its
/// place among the unauthenticated connections, given up once it authenticates.
struct LoginLimits {
    deadline: tokio::time::Instant,
    pending: PendingLogin,
}

/// Runs one SSH connection until the client leaves, the idle timeout or login grace fires, or the server stops.
async fn serve_connection(
    connection_id: u64,
    socket: TcpStream,
    peer: SocketAddr,
    limits: LoginLimits,
    ssh_config: Arc<russh::server::Config>,
    shared: Arc<ServerShared>,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(connection_id, %peer, "sftp connection opened");
    let (socket, cutter) = GuardedStream::new(socket);
    // russh runs the session in a task of its own: cutting the stream is what ends
    // it when this task gives up on the connection or is aborted.
    let _cut_on_drop = CutOnDrop(cutter.clone());
    let state = Arc::new(ConnectionState::new(limits.pending));
    let handler = Connection::new(shared, peer, Arc::clone(&state));
    let login_deadline = limits.deadline;

    let started = tokio::time::timeout_at(
        login_deadline,
        russh::server::run_stream(ssh_config, socket, handler),
    )
    .await;
    let outcome = match started {
        Ok(Ok(mut session)) => {
            let handle = session.handle();
            let login_timer = tokio::time::sleep_until(login_deadline);
            tokio::pin!(login_timer);
            let mut logged_in = false;
            loop {
                tokio::select! {
                    result = &mut session => break result,
                    _ = &mut login_timer, if !logged_in => {
                        if state.username().is_some() {
                            logged_in = true;
                            continue;
                        }
                        cutter.cut();
                        break Err(anyhow::anyhow!("authentication timed out"));
                    }
                    _ = wait_for_stop(&mut stop) => {
                        let _ = handle
                            .disconnect(Disconnect::ByApplication, "server shutting down".to_string(), "en".to_string())
                            .await;
                        break (&mut session).await;
                    }
                }
            }
        }
        Ok(Err(error)) => Err(error),
        Err(_) => Err(anyhow::anyhow!(
            "authentication timed out before the SSH identification"
        )),
    };

    let username = state.username().unwrap_or_default();
    match outcome {
        Ok(()) => {
            tracing::info!(connection_id, %peer, username = ?username, "sftp connection closed")
        }
        Err(error) => tracing::info!(
            connection_id,
            %peer,
            username = ?username,
            reason = %error,
            "sftp connection closed"
        ),
    }
}

/// Logs connections refused by the unauthenticated-connection limits, at most once per
/// [`REFUSAL_LOG_INTERVAL`], with the count since the previous line.
#[derive(Default)]
struct RefusalLog {
    refused_since_log: u64,
    refused_total: u64,
    last_logged: Option<tokio::time::Instant>,
}

impl RefusalLog {
    fn record(&mut self, peer: SocketAddr, refusal: Refusal) {
        self.refused_since_log += 1;
        self.refused_total += 1;

        let now = tokio::time::Instant::now();
        let due = self
            .last_logged
            .is_none_or(|last| now.duration_since(last) >= REFUSAL_LOG_INTERVAL);
        if !due {
            return;
        }
        let limit = match refusal {
            Refusal::TotalLimit => "the server holds its maximum of unauthenticated connections",
            Refusal::PerIpLimit => "this address holds its maximum of unauthenticated connections",
        };
        tracing::warn!(
            %peer,
            refused = self.refused_since_log,
            refused_total = self.refused_total,
            "sftp connection refused: {limit}"
        );
        self.refused_since_log = 0;
        self.last_logged = Some(now);
    }
}

/// Resolves once the server asked its connections to stop, or the server task is gone.
async fn wait_for_stop(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
