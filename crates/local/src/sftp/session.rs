//! One SSH connection: public-key authentication and the start of the `sftp` subsystem.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::keys::{HashAlg, PublicKey};
use russh::server::{
    Auth, ChannelOpenHandle, Handle, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, MethodKind, MethodSet};

use super::handler::{SessionContext, SftpHandler};
use super::jail::Jail;
use super::login_limit::PendingLogin;
use super::staging::StagingArea;
use super::throttle::{AuthThrottle, FailureOutcome};
use super::upload::UploadRegistry;
use super::SftpBackend;

/// Bytes buffered between the SSH channel and the SFTP request loop.
const BRIDGE_BUFFER_BYTES: usize = 256 * 1024;

/// The maximum username length passed to the backend; longer names are rejected without asking it.
const MAX_USERNAME_BYTES: usize = 128;

/// The state shared by every connection of one server.
pub struct ServerShared {
    pub backend: Arc<dyn SftpBackend>,
    pub throttle: AuthThrottle,
    pub uploads: UploadRegistry,
    pub max_upload_bytes: u64,
    /// The name prefix of this server process's staging files.
    pub staging_instance: String,
}

/// The connection state that the accept loop reads for the login timer and its closing log line.
#[derive(Debug)]
pub struct ConnectionState {
    username: Mutex<Option<String>>,
    /// The connection's place among the unauthenticated ones, freed on authentication.
    pending_login: Mutex<Option<PendingLogin>>,
}

impl ConnectionState {
    /// Creates the state of a connection that holds `pending_login` until it authenticates.
    pub fn new(pending_login: PendingLogin) -> Self {
        ConnectionState {
            username: Mutex::new(None),
            pending_login: Mutex::new(Some(pending_login)),
        }
    }

    /// Returns the authenticated username, if authentication succeeded.
    pub fn username(&self) -> Option<String> {
        self.username
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_username(&self, username: &str) {
        *self.username.lock().unwrap_or_else(|e| e.into_inner()) = Some(username.to_string());
        self.pending_login
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

struct Account {
    username: String,
    fingerprint: String,
    root: PathBuf,
}

/// The russh handler of one connection.
pub struct Connection {
    shared: Arc<ServerShared>,
    peer: SocketAddr,
    state: Arc<ConnectionState>,
    account: Option<Account>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl Connection {
    pub fn new(shared: Arc<ServerShared>, peer: SocketAddr, state: Arc<ConnectionState>) -> Self {
        Connection {
            shared,
            peer,
            state,
            account: None,
            channels: HashMap::new(),
        }
    }

    /// Checks with the backend whether `key` may log in as `username`.
    ///
    /// Called twice per successful login: once when the key is offered, and once
    /// after its signature was verified. Only the second call logs the user in.
    async fn check_key(&mut self, username: &str, key: &PublicKey, verified: bool) -> Auth {
        let ip = self.peer.ip();
        if self.shared.throttle.is_blocked(ip) {
            tracing::debug!(peer = %self.peer, "authentication rejected: too many failures from this address");
            return reject();
        }

        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let root = if is_plausible_username(username) {
            self.shared.backend.authorize(username, &fingerprint).await
        } else {
            None
        };

        let Some(root) = root else {
            tracing::warn!(
                peer = %self.peer,
                username = ?username,
                fingerprint = %fingerprint,
                "authentication failed: key not registered for this username"
            );
            if self.shared.throttle.record_failure(ip) == FailureOutcome::Blocked {
                tracing::warn!(
                    peer = %self.peer,
                    "too many failed authentications from this address in the last minute; rejecting it for up to a minute"
                );
            }
            return reject();
        };

        if verified {
            tracing::info!(
                peer = %self.peer,
                username = ?username,
                fingerprint = %fingerprint,
                "authentication succeeded"
            );
            self.state.set_username(username);
            self.account = Some(Account {
                username: username.to_string(),
                fingerprint,
                root,
            });
        }
        Auth::Accept
    }

    /// Creates the account's root folder if missing and returns it without symlinks,
    /// with the account's staging folder beside it.
    async fn prepare_jail(
        root: &PathBuf,
        staging_instance: &str,
    ) -> std::io::Result<(Jail, StagingArea)> {
        tokio::fs::create_dir_all(root).await?;
        let canonical = tokio::fs::canonicalize(root).await?;
        let staging_root = canonical.clone();
        let staging_instance = staging_instance.to_string();
        let staging = tokio::task::spawn_blocking(move || {
            StagingArea::prepare(&staging_root, &staging_instance)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok((Jail::new(canonical), staging))
    }
}

impl russh::server::Handler for Connection {
    type Error = anyhow::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.check_key(user, offer.public_key, false).await)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.check_key(user, key.public_key, true).await)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(account), true) = (self.account.as_ref(), name == "sftp") else {
            tracing::info!(peer = %self.peer, subsystem = ?name, "subsystem request rejected: only sftp is served");
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        let Some(channel) = self.channels.remove(&channel_id) else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };

        let (jail, staging) =
            match Self::prepare_jail(&account.root, &self.shared.staging_instance).await {
                Ok(prepared) => prepared,
                Err(error) => {
                    tracing::error!(
                        peer = %self.peer,
                        username = ?account.username,
                        root = ?account.root,
                        %error,
                        "cannot create the account's root or staging folder; sftp session refused"
                    );
                    session.channel_failure(channel_id)?;
                    return Ok(());
                }
            };

        session.channel_success(channel_id)?;
        tracing::debug!(peer = %self.peer, username = ?account.username, "sftp session started");

        let handler = SftpHandler::new(SessionContext {
            username: account.username.clone(),
            fingerprint: account.fingerprint.clone(),
            authorized_root: account.root.clone(),
            peer: self.peer,
            connection: session.handle(),
            jail,
            staging,
            backend: Arc::clone(&self.shared.backend),
            uploads: self.shared.uploads.clone(),
            max_upload_bytes: self.shared.max_upload_bytes,
        });
        tokio::spawn(run_subsystem(channel, handler, session.handle()));
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // A channel closed before it started a subsystem would otherwise stay here until the connection ends.
        self.channels.remove(&channel);
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }
}

/// Runs the SFTP request loop over `channel` and closes the channel properly once it ends.
///
/// The loop runs on one end of an in-memory pipe and this task copies between the
/// pipe and the channel, so that this task alone decides how the channel ends: EOF,
/// exit status 0, then CLOSE, as OpenSSH's sshd does. Java clients (JSch) wait for
/// the server's CLOSE and hang without it.
async fn run_subsystem(channel: Channel<Msg>, handler: SftpHandler, handle: Handle) {
    let channel_id = channel.id();
    let (sftp_end, mut bridge_end) = tokio::io::duplex(BRIDGE_BUFFER_BYTES);
    russh_sftp::server::run(sftp_end, handler).await;

    // The copy ends when the client sent EOF (or the connection dropped) and the
    // request loop, having read that EOF, dropped its end of the pipe. Shutting the
    // channel's write side down on the way sends our EOF.
    let mut stream = channel.into_stream();
    let copied = tokio::io::copy_bidirectional(&mut stream, &mut bridge_end).await;
    if copied.is_err() {
        let _ = handle.eof(channel_id).await;
    }

    // Errors here mean the connection is already gone, which needs no closing.
    let _ = handle.exit_status_request(channel_id, 0).await;
    let _ = handle.close(channel_id).await;
}

fn reject() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
        partial_success: false,
    }
}

/// Returns false for names no backend could know: empty, too long, or with control characters.
fn is_plausible_username(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= MAX_USERNAME_BYTES
        && !username.chars().any(char::is_control)
}
