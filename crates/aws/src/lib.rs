//! AWS adapters for dsync: the storage ports on DynamoDB, the file store on
//! S3 (one bucket per directory), SFTP accounts on Transfer Family, and the
//! EventBridge/SQS publisher, plus the Lambda handlers built on them.
//!
//! The AWS SDK is compiled only into this crate and the `functions/*`
//! binaries, so the default workspace build stays free of it.

pub mod counter;
pub mod dynamo;
pub mod handlers;
pub mod items;
pub mod publish;
pub mod s3;
pub mod settings;
pub mod setup;
pub mod transfer;

use std::path::Path;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use dsync_core::ids::DirectoryId;
use dsync_core::ports::{StoreError, StoreResult};
use dsync_core::service::Services;

pub use counter::RequestCounter;
pub use dynamo::DynamoStore;
pub use s3::S3Files;
pub use settings::AwsSettings;
pub use transfer::TransferAccounts;

/// The SDK clients one deployment uses.
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub transfer: aws_sdk_transfer::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Clients {
    /// Builds the clients from an SDK configuration. With a custom endpoint
    /// (moto, LocalStack) S3 uses path-style addressing. `counter`, when
    /// given, sees every DynamoDB request.
    pub fn new(config: &SdkConfig, counter: Option<RequestCounter>) -> Self {
        let mut dynamo = aws_sdk_dynamodb::config::Builder::from(config);
        if let Some(counter) = counter {
            dynamo = dynamo.interceptor(counter);
        }
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamo.build()),
            s3: aws_sdk_s3::Client::from_conf(s3),
            transfer: aws_sdk_transfer::Client::new(config),
            eventbridge: aws_sdk_eventbridge::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
        }
    }
}

/// Loads the SDK configuration from the environment (credentials chain,
/// `AWS_REGION`, `AWS_ENDPOINT_URL` for an emulator).
pub async fn load_sdk_config() -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    let config = loader.load().await;
    if config.region().is_none() {
        return aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .load()
            .await;
    }
    config
}

/// Everything a function needs: the settings, the clients and the ports.
#[derive(Clone)]
pub struct Deployment {
    pub settings: AwsSettings,
    pub clients: Clients,
    pub store: Arc<DynamoStore>,
    pub files: Arc<S3Files>,
    pub accounts: Arc<TransferAccounts>,
}

impl Deployment {
    pub fn new(settings: AwsSettings, clients: Clients) -> Self {
        let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), &settings.table));
        let files = Arc::new(S3Files::new(clients.s3.clone(), store.clone()));
        let accounts = Arc::new(TransferAccounts::new(
            clients.transfer.clone(),
            clients.s3.clone(),
            store.clone(),
            settings.clone(),
        ));
        Self {
            settings,
            clients,
            store,
            files,
            accounts,
        }
    }

    /// Reads the settings and the SDK configuration from the environment.
    pub async fn from_env() -> anyhow::Result<Self> {
        let settings = AwsSettings::from_env()?;
        let config = load_sdk_config().await;
        Ok(Self::new(settings, Clients::new(&config, None)))
    }

    /// The event publisher (EventBridge and webhook deliveries).
    pub fn publisher(&self) -> publish::Publisher {
        publish::Publisher {
            store: self.store.clone(),
            eventbridge: self.clients.eventbridge.clone(),
            sqs: self.clients.sqs.clone(),
            event_bus: self.settings.event_bus.clone(),
            webhook_queue_url: self.settings.webhook_queue_url.clone(),
            http: reqwest::Client::new(),
        }
    }

    pub fn services(&self) -> Services {
        Services {
            store: self.store.clone(),
            files: self.files.clone(),
            accounts: self.accounts.clone(),
        }
    }
}

/// Builds the application services on DynamoDB, S3 and Transfer Family from
/// the environment (`AWS_ENDPOINT_URL` selects an emulator). For
/// `dsync serve --backend aws`.
pub async fn aws_services() -> anyhow::Result<Services> {
    Ok(Deployment::from_env().await?.services())
}

/// Copies a completed upload from local disk into the directory's bucket, so
/// that a reconcile sees it. For the embedded SFTP server running with the
/// AWS backend.
pub async fn upload_to_bucket(
    deployment: &Deployment,
    directory: &DirectoryId,
    name: &str,
    path: &Path,
) -> StoreResult<()> {
    let bucket = deployment
        .store
        .bucket_of(directory)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "bucket of directory",
            id: directory.to_string(),
        })?;
    let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
        .await
        .map_err(|error| StoreError::Backend(format!("reading {}: {error}", path.display())))?;
    deployment
        .clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(name)
        .body(body)
        .send()
        .await
        .map_err(|error| {
            StoreError::Backend(format!("uploading {name}: {}", s3::describe(&error)))
        })?;
    Ok(())
}
