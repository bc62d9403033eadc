//! `dsync serve`: the whole local deployment in one process.
//!
//! Starts the embedded SFTP server, the HTTP API, the sync worker, the
//! periodic re-sync, the event retention purge and the webhook sender over
//! one data dir, and stops them cleanly on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dsync_core::ports::ApiKeys;
use dsync_local::app::{
    self, host_key_path, LocalDeployment, LocalSftpBackend, SftpEndpoint, SyncWorker,
};
use dsync_local::sftp::{SftpConfig, SftpServer};
use dsync_local::store::{create_private_dir, database_path};
use tokio::sync::watch;

use crate::operator::{generate_api_secret, secret_sha256, store_api_key};

/// How often old events are purged.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// How long shutdown waits for running syncs.
const SYNC_DRAIN_LIMIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// Data dir: the database, the host key and every directory's upload folder.
    #[arg(long, default_value = "./dsync-data", env = "DSYNC_DATA_DIR")]
    pub(crate) data_dir: PathBuf,

    /// SFTP listen address; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:2222")]
    pub(crate) sftp_listen: SocketAddr,

    /// HTTP API listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) http_listen: SocketAddr,

    /// Host name printed to operators for SFTP logins; defaults to the listen address's IP.
    #[arg(long)]
    pub(crate) sftp_host: Option<String>,

    /// Seconds between re-syncs of every linked directory (catches up after failures and restarts).
    #[arg(long, default_value_t = 1800)]
    pub(crate) resync_interval_secs: u64,

    /// Largest accepted upload, in bytes.
    #[arg(long, default_value_t = SftpConfig::DEFAULT_MAX_UPLOAD_BYTES)]
    pub(crate) max_upload_bytes: u64,

    /// Refuse webhook endpoints on loopback and private networks (10/8,
    /// 172.16/12, 192.168/16, 100.64/10, 127/8, ::1, fc00::/7, localhost).
    /// Without it they are allowed, as a local service's receivers usually
    /// run on the same machine or network.
    #[arg(long)]
    pub(crate) deny_private_webhook_urls: bool,

    /// Quiet period after an upload, in milliseconds: the directory is
    /// synced once no further upload to it completed for this long, so
    /// users.csv, groups.csv and user_groups.csv sent together make one sync.
    #[arg(long, default_value_t = 2000)]
    pub(crate) sync_debounce_ms: u64,

    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,

    /// Where state lives: `local` (SQLite in the data dir) or `aws`
    /// (DynamoDB and S3; see docs/aws.md, "Run locally against moto").
    #[arg(long, value_enum, default_value_t = Backend::Local)]
    backend: Backend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Local,
    Aws,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colors = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colors);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    if args.backend == Backend::Aws {
        #[cfg(feature = "aws")]
        return crate::serve_aws::run(args);
        #[cfg(not(feature = "aws"))]
        anyhow::bail!("this dsync was built without the AWS backend; build it with `cargo build --release -p dsync-cli --features aws`");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The name of the API key registered from `DSYNC_API_KEY`; it marks the
/// keys that a restart with another `DSYNC_API_KEY` revokes.
pub const ENV_API_KEY_NAME: &str = "DSYNC_API_KEY";

/// Makes sure an API key exists: `DSYNC_API_KEY` is registered when set,
/// otherwise a first start creates one and prints it once to stdout.
///
/// A start with a different `DSYNC_API_KEY` than before is a rotation: the
/// key registered from the previous value is revoked. Keys made with
/// `dsync api-key create` are left alone.
async fn bootstrap_api_key(deployment: &LocalDeployment) -> anyhow::Result<()> {
    let store = &deployment.store;
    if let Ok(secret) = std::env::var("DSYNC_API_KEY") {
        if !secret.starts_with("sk_") || secret.len() < 20 {
            anyhow::bail!("DSYNC_API_KEY must start with sk_ and be at least 20 characters long");
        }
        let hash = secret_sha256(&secret);
        if store.find_api_key(&hash).await?.is_none() {
            let revoked = store
                .list_api_keys()
                .await?
                .into_iter()
                .any(|key| key.secret_sha256 == hash);
            if revoked {
                anyhow::bail!(
                    "the key in DSYNC_API_KEY was revoked; set a new key or unset DSYNC_API_KEY"
                );
            }
            let record = store_api_key(store, ENV_API_KEY_NAME, &secret).await?;
            tracing::info!(api_key_id = %record.id, "registered the API key from DSYNC_API_KEY");
        }
        let previous: Vec<_> = store
            .list_api_keys()
            .await?
            .into_iter()
            .filter(|key| {
                key.name == ENV_API_KEY_NAME
                    && key.revoked_at.is_none()
                    && key.secret_sha256 != hash
            })
            .collect();
        for key in previous {
            if store.revoke_api_key(&key.id).await? {
                tracing::info!(api_key_id = %key.id, "revoked the API key of the previous DSYNC_API_KEY");
            }
        }
        return Ok(());
    }

    let active = store
        .list_api_keys()
        .await?
        .into_iter()
        .any(|key| key.revoked_at.is_none());
    if !active {
        let secret = generate_api_secret();
        let record = store_api_key(store, "initial", &secret).await?;
        tracing::info!(api_key_id = %record.id, "created the first API key; its secret is printed once on stdout");
        crate::operator::out!("API key (shown once; keep it): {secret}");
    }
    Ok(())
}

/// Takes the data dir's lock file, so a second `dsync serve` on the same
/// data dir stops instead of running two sync workers over one database.
/// The lock lasts as long as the returned file is open.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("dsync.lock");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another dsync serve is already running on data dir {}; stop it first or pass another --data-dir",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    create_private_dir(&args.data_dir)
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    let _lock = lock_data_dir(&args.data_dir)?;

    let mut sftp_config = SftpConfig::new(args.sftp_listen, host_key_path(&args.data_dir));
    sftp_config.max_upload_bytes = args.max_upload_bytes;
    let sftp_server = SftpServer::bind(sftp_config)
        .await
        .with_context(|| format!("cannot start the SFTP server on {}", args.sftp_listen))?;
    let sftp_addr = sftp_server.local_addr()?;

    let mut endpoint = SftpEndpoint::from_addr(sftp_addr);
    if let Some(host) = &args.sftp_host {
        endpoint.host = host.clone();
    } else if sftp_addr.ip().is_unspecified() {
        // 0.0.0.0 is where the server listens, not an address clients can use.
        endpoint.host = "localhost".to_owned();
        tracing::warn!(sftp = %sftp_addr, "SFTP listens on all addresses; pass --sftp-host with the name clients should use (showing localhost)");
    }
    endpoint
        .save(&args.data_dir)
        .context("cannot record the SFTP endpoint in the data dir")?;

    let deployment = LocalDeployment::open(&args.data_dir, endpoint.clone())?;
    bootstrap_api_key(&deployment).await?;

    let http_listener = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", args.http_listen))?;
    let http_addr = http_listener.local_addr()?;

    let (stop_sender, stop_receiver) = watch::channel(false);
    let worker = SyncWorker::new(deployment.services.clone())
        .with_debounce(Duration::from_millis(args.sync_debounce_ms));
    let backend = Arc::new(LocalSftpBackend::new(deployment.clone(), worker.clone()));

    let sftp_task = tokio::spawn(sftp_server.run(backend, app::stopped(stop_receiver.clone())));

    // Re-syncs requested through the API go through the same per-directory
    // queue as uploads, so one directory never runs two reconciles at once.
    let mut api_config = dsync_http::ApiConfig::new(endpoint.host.clone(), endpoint.port);
    let trigger_worker = worker.clone();
    api_config.sync_trigger = Some(Arc::new(move |directory| trigger_worker.request(directory)));
    api_config.allow_private_webhook_urls = !args.deny_private_webhook_urls;
    let api = dsync_http::router(deployment.services.clone(), api_config);
    let http_stop = app::stopped(stop_receiver.clone());
    let http_task = tokio::spawn(async move {
        axum::serve(http_listener, api)
            .with_graceful_shutdown(http_stop)
            .await
    });

    let resync_task = tokio::spawn(app::run_periodic_resync(
        deployment.store.clone(),
        worker.clone(),
        Duration::from_secs(args.resync_interval_secs.max(1)),
        stop_receiver.clone(),
    ));
    let retention_task = tokio::spawn(app::run_retention(
        deployment.store.clone(),
        RETENTION_INTERVAL,
        stop_receiver.clone(),
    ));
    let webhook_options = dsync_local::webhooks::WorkerOptions {
        allow_private_targets: !args.deny_private_webhook_urls,
        ..Default::default()
    };
    let webhook_task = tokio::spawn(dsync_local::webhooks::run_with_options(
        database_path(&args.data_dir),
        webhook_options,
        app::stopped(stop_receiver.clone()),
    ));

    tracing::info!(
        sftp = %sftp_addr,
        http = %http_addr,
        data_dir = %args.data_dir.display(),
        resync_interval_secs = args.resync_interval_secs,
        "dsync serve started"
    );

    termination_signal().await;
    tracing::info!("stopping: finishing running syncs and requests");
    let _ = stop_sender.send(true);

    match sftp_task.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::error!(error = %format!("{error:#}"), "SFTP server stopped with an error")
        }
        Err(error) => tracing::error!(%error, "SFTP server task failed"),
    }
    match http_task.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "HTTP server stopped with an error"),
        Err(error) => tracing::error!(%error, "HTTP server task failed"),
    }
    let _ = resync_task.await;
    let _ = retention_task.await;
    match webhook_task.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::error!(error = %format!("{error:#}"), "webhook worker stopped with an error")
        }
        Err(error) => tracing::error!(%error, "webhook worker task failed"),
    }
    worker.drain(SYNC_DRAIN_LIMIT).await;
    if worker.is_busy() {
        tracing::error!(
            "stopped with a sync still running; the next start re-syncs that directory"
        );
    }
    tracing::info!("dsync serve stopped");
    Ok(())
}
