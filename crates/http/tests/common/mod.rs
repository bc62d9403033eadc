//! A real API server for the integration tests: the router over the SQLite
//! store in a temporary data dir, served on 127.0.0.1 with real HTTP.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsync_core::ids::{ApiKeyId, DirectoryId};
use dsync_core::model::Directory;
use dsync_core::ports::{ApiKeyRecord, ApiKeys, Directories};
use dsync_core::service::Services;
use dsync_core::time::Timestamp;
use dsync_http::{hash_api_key, router, ApiConfig};
use dsync_local::files::{LocalAccounts, LocalFiles};
use dsync_local::store::SqliteStore;
use serde_json::{json, Value};
use tempfile::TempDir;

pub const SFTP_HOST: &str = "127.0.0.1";
pub const SFTP_PORT: u16 = 2222;

pub struct TestServer {
    pub base_url: String,
    pub api_key: String,
    pub client: reqwest::Client,
    pub store: SqliteStore,
    pub files: LocalFiles,
    pub services: Services,
    pub data_dir: TempDir,
}

impl TestServer {
    /// Starts a server that accepts webhook URLs on 127.0.0.1, where the
    /// tests' receivers listen.
    pub async fn start() -> Self {
        Self::start_with(|config| config.allow_private_webhook_urls = true).await
    }

    /// Starts a server with the default config changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut ApiConfig)) -> Self {
        let data_dir = tempfile::tempdir().expect("create temp data dir");
        let store = SqliteStore::open_data_dir(data_dir.path()).expect("open store");
        let files = LocalFiles::new(data_dir.path());
        let accounts = LocalAccounts::new(files.clone(), SFTP_HOST.to_owned(), SFTP_PORT);
        let services = Services {
            store: Arc::new(store.clone()),
            files: Arc::new(files.clone()),
            accounts: Arc::new(accounts),
        };

        let api_key = format!("sk_test_{}", ulid::Ulid::new());
        store
            .create_api_key(&ApiKeyRecord {
                id: ApiKeyId::generate(),
                name: "integration test".to_owned(),
                secret_sha256: hash_api_key(&api_key),
                created_at: Timestamp::now(),
                revoked_at: None,
            })
            .await
            .expect("store API key");

        let mut config = ApiConfig::new(SFTP_HOST, SFTP_PORT);
        configure(&mut config);
        let app = router(services.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind API port");
        let address = listener.local_addr().expect("API address");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve API");
        });

        Self {
            base_url: format!("http://{address}"),
            api_key,
            client: reqwest::Client::new(),
            store,
            files,
            services,
            data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends an authenticated request and returns the status and the JSON
    /// body (`Value::Null` for an empty body).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.api_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send request");
        read(response).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// Creates a directory and registers a fresh ed25519 key, which links it
    /// and emits `dsync.activated`.
    pub async fn linked_directory(&self, organization_id: &str, name: &str) -> Directory {
        let (status, created) = self
            .post(
                "/directories",
                json!({ "organization_id": organization_id, "name": name }),
            )
            .await;
        assert_eq!(status, 201, "create directory: {created}");
        let id = created["id"].as_str().expect("directory id").to_owned();

        let public_key = generate_public_key(self.data_dir.path());
        let (status, key) = self
            .post(
                &format!("/directories/{id}/ssh_keys"),
                json!({ "public_key": public_key }),
            )
            .await;
        assert_eq!(status, 201, "add key: {key}");

        self.store
            .get_directory(&DirectoryId::parse(&id).expect("valid id"))
            .await
            .expect("read directory")
            .expect("directory exists")
    }

    /// Writes uploads into the directory's SFTP folder, requests a sync
    /// through the API, and waits until a new sync report appears.
    pub async fn upload_and_sync(
        &self,
        directory: &Directory,
        uploads: &[(&str, String)],
    ) -> Value {
        let folder = self.files.folder(directory).expect("directory folder");
        std::fs::create_dir_all(&folder).expect("create folder");
        for (name, content) in uploads {
            std::fs::write(folder.join(name), content).expect("write upload");
        }

        let syncs_path = format!("/directories/{}/syncs?limit=100", directory.id);
        let (_, before) = self.get(&syncs_path).await;
        let known = before["data"].as_array().map_or(0, Vec::len);

        let (status, queued) = self
            .post(&format!("/directories/{}/sync", directory.id), json!({}))
            .await;
        assert_eq!(status, 202, "sync: {queued}");
        assert_eq!(queued, json!({ "status": "queued" }));

        wait_for("a new sync report", || async {
            let (_, after) = self.get(&syncs_path).await;
            let reports = after["data"].as_array().cloned().unwrap_or_default();
            (reports.len() > known).then(|| reports[0].clone())
        })
        .await
    }
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("read body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|error| {
            panic!(
                "body of a {status} response is not JSON ({error}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, body)
}

/// Polls `check` every 50 ms for up to 20 s.
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Generates an ed25519 key pair with the real `ssh-keygen` and returns the
/// public key line.
pub fn generate_public_key(folder: &Path) -> String {
    let path = folder.join(format!("key_{}", ulid::Ulid::new()));
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@dsync", "-f"])
        .arg(&path)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
    std::fs::read_to_string(path.with_extension("pub"))
        .expect("read public key")
        .trim()
        .to_owned()
}

/// `users.csv` with `count` users `E0001`.., and `user_groups.csv` putting
/// every even user in `Engineering` and every third in `Support`.
pub fn users_and_groups(count: usize) -> Vec<(&'static str, String)> {
    let mut users = String::from("user_id,first_name,last_name,email,job_title\n");
    let mut memberships = String::from("group_name,user_id\n");
    for index in 1..=count {
        users.push_str(&format!(
            "E{index:04},Given{index},Family{index},person{index}@example.test,Analyst\n"
        ));
        if index % 2 == 0 {
            memberships.push_str(&format!("Engineering,E{index:04}\n"));
        }
        if index % 3 == 0 {
            memberships.push_str(&format!("Support,E{index:04}\n"));
        }
    }
    vec![("users.csv", users), ("user_groups.csv", memberships)]
}
