//! `dsync serve --backend aws`: the embedded SFTP server and the HTTP API
//! over the AWS adapters (DynamoDB for state, one S3 bucket per directory).
//!
//! It runs the AWS data path on one machine, against real AWS or an
//! emulator such as moto (`AWS_ENDPOINT_URL`). Transfer Family is not used:
//! the embedded SFTP server takes the uploads into a local folder per
//! directory, copies each completed file into the directory's bucket and
//! reconciles. Webhooks and EventBridge events are the `publish` function's
//! job on AWS, so this mode does not deliver them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use dsync_aws::{Clients, Deployment};
use dsync_core::ids::{ApiKeyId, DirectoryId};
use dsync_core::model::{Directory, DirectoryStatus};
use dsync_core::ports::{
    ApiKeyRecord, ApiKeys, Directories, DirectoryFilter, Order, PageRequest, SftpAccounts,
    SshKeyRecord, SshKeys, StoreError, StoreResult,
};
use dsync_core::service::Services;
use dsync_core::time::Timestamp;
use dsync_core::upload::file_kind;
use dsync_local::app::{self, host_key_path, SyncWorker};
use dsync_local::sftp::{SftpBackend, SftpConfig, SftpServer};
use dsync_local::store::create_private_dir;
use tokio::sync::watch;

use crate::operator::{generate_api_secret, secret_sha256};
use crate::serve::{termination_signal, Args};

/// The name of the API key registered from `DSYNC_API_KEY`, as the local backend names it.
const ENV_API_KEY_NAME: &str = "DSYNC_API_KEY";

/// How long shutdown waits for running syncs.
const SYNC_DRAIN_LIMIT: Duration = Duration::from_secs(30);

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

fn env_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value.trim().to_owned(),
        _ => default.to_owned(),
    }
}

/// Reads the settings this mode needs: the table, the bucket prefix and the
/// retention from the environment; the SFTP endpoint is the local server.
fn settings(host: &str, port: u16) -> anyhow::Result<dsync_aws::AwsSettings> {
    let table = env_or("DSYNC_TABLE", "dsync");
    let bucket_prefix = env_or("DSYNC_BUCKET_PREFIX", "dsync-dir");
    if bucket_prefix.len() > 30
        || !bucket_prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        anyhow::bail!(
            "DSYNC_BUCKET_PREFIX must be at most 30 lowercase letters, digits and hyphens, got {bucket_prefix:?}"
        );
    }
    let retention = env_or("DSYNC_UPLOAD_RETENTION_DAYS", "30");
    let upload_retention_days = retention
        .parse::<i32>()
        .ok()
        .filter(|days| *days > 0)
        .with_context(|| {
            format!(
                "DSYNC_UPLOAD_RETENTION_DAYS must be a positive number of days, got {retention:?}"
            )
        })?;
    Ok(dsync_aws::AwsSettings {
        table,
        bucket_prefix,
        upload_retention_days,
        transfer_server_id: String::new(),
        transfer_role_arn: String::new(),
        sftp_host: host.to_owned(),
        sftp_port: port,
        event_bus: String::new(),
        webhook_queue_url: String::new(),
        ingest_queue_url: String::new(),
    })
}

/// Returns the local folder a directory's SFTP account is jailed to.
fn upload_folder(data_dir: &Path, directory: &DirectoryId) -> PathBuf {
    data_dir.join("aws-uploads").join(directory.as_str())
}

/// [`SftpAccounts`] for the embedded SFTP server: the account is the
/// directory's bucket (created on the first key) and a local upload folder;
/// keys live in the store, where [`AwsSftpBackend::authorize`] reads them.
struct EmbeddedAccounts {
    deployment: Deployment,
    data_dir: PathBuf,
    /// The endpoint is an emulator reached over plain HTTP. The buckets'
    /// TLS-only policy would reject every request there, so it is removed.
    plain_http: bool,
}

#[async_trait]
impl SftpAccounts for EmbeddedAccounts {
    async fn ensure_account(&self, directory: &Directory) -> StoreResult<()> {
        let store = &self.deployment.store;
        // The name is recorded before the bucket exists, so a retry reuses it.
        let bucket = match store.bucket_of(&directory.id).await? {
            Some(bucket) => bucket,
            None => {
                let bucket =
                    dsync_aws::transfer::new_bucket_name(&self.deployment.settings.bucket_prefix);
                store.set_bucket(&directory.id, &bucket).await?;
                bucket
            }
        };
        let s3 = &self.deployment.clients.s3;
        dsync_aws::s3::create_directory_bucket(
            s3,
            &bucket,
            self.deployment.settings.upload_retention_days,
        )
        .await?;
        if self.plain_http {
            s3.delete_bucket_policy()
                .bucket(&bucket)
                .send()
                .await
                .map_err(|error| {
                    StoreError::Backend(format!(
                        "removing the TLS-only policy of bucket {bucket}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&error)
                    ))
                })?;
        }
        Ok(())
    }

    async fn add_key(&self, _directory: &Directory, _key: &SshKeyRecord) -> StoreResult<()> {
        Ok(())
    }

    async fn remove_key(&self, _directory: &Directory, _key: &SshKeyRecord) -> StoreResult<()> {
        Ok(())
    }

    async fn delete_account(&self, directory: &Directory) -> StoreResult<()> {
        let folder = upload_folder(&self.data_dir, &directory.id);
        match std::fs::remove_dir_all(&folder) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(StoreError::Backend(format!(
                "deleting the upload folder {}: {error}",
                folder.display()
            ))),
        }
    }

    fn endpoint(&self) -> (String, u16) {
        (
            self.deployment.settings.sftp_host.clone(),
            self.deployment.settings.sftp_port,
        )
    }
}

/// The embedded SFTP server's view of the AWS backend.
struct AwsSftpBackend {
    deployment: Deployment,
    data_dir: PathBuf,
    worker: SyncWorker,
    /// One lock per directory, so copies into its bucket run one at a time
    /// and the last copy always carries the newest file.
    copying: Mutex<HashMap<DirectoryId, Arc<tokio::sync::Mutex<()>>>>,
}

impl AwsSftpBackend {
    fn copy_lock(&self, directory: &DirectoryId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .copying
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.entry(directory.clone()).or_default().clone()
    }
}

#[async_trait]
impl SftpBackend for AwsSftpBackend {
    async fn authorize(&self, username: &str, fingerprint: &str) -> Option<PathBuf> {
        let store = &self.deployment.store;
        let directory = match store.find_directory_by_username(username).await {
            Ok(Some(directory)) => directory,
            Ok(None) => return None,
            Err(error) => {
                tracing::error!(%error, "cannot look up the SFTP user's directory");
                return None;
            }
        };
        if directory.status != DirectoryStatus::Linked {
            return None;
        }
        let key = match store.find_key_by_fingerprint(fingerprint).await {
            Ok(key) => key?,
            Err(error) => {
                tracing::error!(directory_id = %directory.id, %error, "cannot look up the SSH key");
                return None;
            }
        };
        if key.directory_id != directory.id {
            return None;
        }
        let folder = upload_folder(&self.data_dir, &directory.id);
        if let Err(error) = create_private_dir(&folder) {
            tracing::error!(directory_id = %directory.id, %error, "cannot create the upload folder");
            return None;
        }
        Some(folder)
    }

    async fn upload_completed(&self, username: &str, path: &str) {
        // Temporary names (`users.csv.filepart`) are not uploads. Their
        // rename into a recognised name reports the file again.
        if file_kind(path).is_none() {
            return;
        }
        let directory = match self
            .deployment
            .store
            .find_directory_by_username(username)
            .await
        {
            Ok(Some(directory)) => directory,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%error, "cannot look up the directory of a completed upload");
                return;
            }
        };

        let lock = self.copy_lock(&directory.id);
        let deployment = self.deployment.clone();
        let worker = self.worker.clone();
        let local = upload_folder(&self.data_dir, &directory.id).join(path);
        let name = path.to_owned();

        // The copy and the reconcile run on their own task so the client's
        // CLOSE reply is not held up by S3.
        tokio::spawn(async move {
            let copied = {
                let _guard = lock.lock().await;
                dsync_aws::upload_to_bucket(&deployment, &directory.id, &name, &local).await
            };
            match copied {
                Ok(()) => {
                    tracing::info!(directory_id = %directory.id, file = %name, "copied the upload into the directory's bucket");
                    worker.request_after_upload(directory.id);
                }
                Err(error) => {
                    // NOTE: nothing retries a failed copy, so the file reaches
                    // the bucket only when the uploader sends it again.
                    tracing::error!(directory_id = %directory.id, file = %name, %error, "cannot copy the upload into the directory's bucket; upload the file again")
                }
            }
        });
    }
}

/// Registers `DSYNC_API_KEY` when set, else creates a first key when none is
/// active and prints it once to stdout.
async fn bootstrap_api_key(store: &dyn ApiKeys) -> anyhow::Result<()> {
    let create = |name: &str, secret: &str| ApiKeyRecord {
        id: ApiKeyId::generate(),
        name: name.to_owned(),
        secret_sha256: secret_sha256(secret),
        created_at: Timestamp::now(),
        revoked_at: None,
    };
    if let Ok(secret) = std::env::var("DSYNC_API_KEY") {
        if !secret.starts_with("sk_") || secret.len() < 20 {
            anyhow::bail!("DSYNC_API_KEY must start with sk_ and be at least 20 characters long");
        }
        let hash = secret_sha256(&secret);
        if store.find_api_key(&hash).await?.is_none() {
            let keys = store.list_api_keys().await?;
            if keys.iter().any(|key| key.secret_sha256 == hash) {
                anyhow::bail!(
                    "the key in DSYNC_API_KEY was revoked; set a new key or unset DSYNC_API_KEY"
                );
            }
            let record = create(ENV_API_KEY_NAME, &secret);
            store.create_api_key(&record).await?;
            tracing::info!(api_key_id = %record.id, "registered the API key from DSYNC_API_KEY");
        }
        return Ok(());
    }
    let active = store
        .list_api_keys()
        .await?
        .iter()
        .any(|key| key.revoked_at.is_none());
    if !active {
        let secret = generate_api_secret();
        let record = create("initial", &secret);
        store.create_api_key(&record).await?;
        tracing::info!(api_key_id = %record.id, "created the first API key; its secret is printed once on stdout");
        crate::operator::out!("API key (shown once; keep it): {secret}");
    }
    Ok(())
}

/// Requests a reconcile of every linked directory now and every `interval`.
async fn run_periodic_resync(
    store: Arc<dsync_aws::DynamoStore>,
    worker: SyncWorker,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = app::stopped(shutdown);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticker.tick() => {}
        }
        let mut page = PageRequest {
            limit: 100,
            order: Order::Asc,
            before: None,
            after: None,
        };
        loop {
            match store
                .list_directories(&DirectoryFilter::default(), &page)
                .await
            {
                Ok(directories) => {
                    for directory in &directories.data {
                        if directory.status == DirectoryStatus::Linked {
                            worker.request(directory.id.clone());
                        }
                    }
                    match directories.after {
                        Some(after) => page.after = Some(after),
                        None => break,
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "periodic re-sync cannot list directories");
                    break;
                }
            }
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    create_private_dir(&args.data_dir)
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;

    let mut sftp_config = SftpConfig::new(args.sftp_listen, host_key_path(&args.data_dir));
    sftp_config.max_upload_bytes = args.max_upload_bytes;
    let sftp_server = SftpServer::bind(sftp_config)
        .await
        .with_context(|| format!("cannot start the SFTP server on {}", args.sftp_listen))?;
    let sftp_addr = sftp_server.local_addr()?;
    let sftp_host = match &args.sftp_host {
        Some(host) => host.clone(),
        None if sftp_addr.ip().is_unspecified() => "localhost".to_owned(),
        None => sftp_addr.ip().to_string(),
    };

    let sdk_config = dsync_aws::load_sdk_config().await;
    let emulator = sdk_config.endpoint_url().map(str::to_owned);
    let settings = settings(&sftp_host, sftp_addr.port())?;
    let deployment = Deployment::new(settings, Clients::new(&sdk_config, None));
    if emulator.is_some() {
        dsync_aws::setup::ensure_table(&deployment.clients.dynamodb, &deployment.settings.table)
            .await
            .with_context(|| {
                format!(
                    "cannot create the DynamoDB table {}",
                    deployment.settings.table
                )
            })?;
    }
    let plain_http = emulator
        .as_deref()
        .is_some_and(|url| url.starts_with("http://"));
    if plain_http {
        tracing::warn!(
            "AWS_ENDPOINT_URL is plain HTTP: new directory buckets get no TLS-only bucket policy"
        );
    }
    let accounts = EmbeddedAccounts {
        deployment: deployment.clone(),
        data_dir: args.data_dir.clone(),
        plain_http,
    };
    let services = Services {
        store: deployment.store.clone(),
        files: deployment.files.clone(),
        accounts: Arc::new(accounts),
    };
    bootstrap_api_key(deployment.store.as_ref())
        .await
        .with_context(|| {
            format!(
                "cannot set up the API key in table {}",
                deployment.settings.table
            )
        })?;

    let http_listener = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", args.http_listen))?;
    let http_addr = http_listener.local_addr()?;

    let (stop_sender, stop_receiver) = watch::channel(false);
    let worker = SyncWorker::new(services.clone())
        .with_debounce(Duration::from_millis(args.sync_debounce_ms));
    let backend = Arc::new(AwsSftpBackend {
        deployment: deployment.clone(),
        data_dir: args.data_dir.clone(),
        worker: worker.clone(),
        copying: Mutex::default(),
    });
    let sftp_task = tokio::spawn(sftp_server.run(backend, app::stopped(stop_receiver.clone())));

    let mut api_config = dsync_http::ApiConfig::new(sftp_host.clone(), sftp_addr.port());
    let trigger_worker = worker.clone();
    api_config.sync_trigger = Some(Arc::new(move |directory| trigger_worker.request(directory)));
    api_config.allow_private_webhook_urls = !args.deny_private_webhook_urls;
    let api = dsync_http::router(services.clone(), api_config);
    let http_stop = app::stopped(stop_receiver.clone());
    let http_task = tokio::spawn(async move {
        axum::serve(http_listener, api)
            .with_graceful_shutdown(http_stop)
            .await
    });
    let resync_task = tokio::spawn(run_periodic_resync(
        deployment.store.clone(),
        worker.clone(),
        Duration::from_secs(args.resync_interval_secs.max(1)),
        stop_receiver.clone(),
    ));

    tracing::warn!(
        "webhooks are not delivered with --backend aws: on AWS the publish function delivers them"
    );
    tracing::info!(
        sftp = %sftp_addr,
        http = %http_addr,
        table = %deployment.settings.table,
        bucket_prefix = %deployment.settings.bucket_prefix,
        endpoint = emulator.as_deref().unwrap_or("AWS"),
        data_dir = %args.data_dir.display(),
        "dsync serve --backend aws started"
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
    worker.drain(SYNC_DRAIN_LIMIT).await;
    if worker.is_busy() {
        tracing::error!(
            "stopped with a sync still running; the next start re-syncs that directory"
        );
    }
    tracing::info!("dsync serve stopped");
    Ok(())
}
