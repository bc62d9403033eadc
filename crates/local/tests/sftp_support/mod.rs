//! Shared set-up for the SFTP server tests: a fake backend standing in for the
//! rest of dsync, a server on 127.0.0.1 port 0, client keys made by `ssh-keygen`,
//! and the real OpenSSH `sftp` client in batch mode.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsync_local::sftp::{SftpBackend, SftpConfig, SftpServer, UploadRegistry};
use tokio::sync::oneshot;

/// A test double for the rest of dsync: a table of registered keys and a log of upload callbacks.
#[derive(Default)]
pub struct FakeBackend {
    /// (username, fingerprint) → jail root.
    keys: Mutex<HashMap<(String, String), PathBuf>>,
    completed: Mutex<Vec<(String, String)>>,
}

impl FakeBackend {
    pub fn register(&self, username: &str, fingerprint: &str, root: PathBuf) {
        self.keys
            .lock()
            .unwrap()
            .insert((username.to_string(), fingerprint.to_string()), root);
    }

    /// Removes a registered key, as `dsync key remove` does; sessions already open with it stay connected.
    pub fn revoke(&self, username: &str, fingerprint: &str) {
        self.keys
            .lock()
            .unwrap()
            .remove(&(username.to_string(), fingerprint.to_string()));
    }

    /// Returns every `upload_completed` call so far, in order, as (username, path).
    pub fn completed(&self) -> Vec<(String, String)> {
        self.completed.lock().unwrap().clone()
    }

    /// Returns the paths reported for `username`, in order.
    pub fn completed_paths(&self, username: &str) -> Vec<String> {
        self.completed()
            .into_iter()
            .filter(|(user, _)| user == username)
            .map(|(_, path)| path)
            .collect()
    }
}

#[async_trait::async_trait]
impl SftpBackend for FakeBackend {
    async fn authorize(&self, username: &str, fingerprint: &str) -> Option<PathBuf> {
        self.keys
            .lock()
            .unwrap()
            .get(&(username.to_string(), fingerprint.to_string()))
            .cloned()
    }

    async fn upload_completed(&self, username: &str, path: &str) {
        self.completed
            .lock()
            .unwrap()
            .push((username.to_string(), path.to_string()));
    }
}

/// A client key pair made by `ssh-keygen`, with the fingerprint `ssh-keygen -l` prints.
pub struct ClientKey {
    pub private_key: PathBuf,
    pub fingerprint: String,
}

/// A running server with its own temporary folder, stopped when dropped.
pub struct TestServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub backend: Arc<FakeBackend>,
    pub uploads: UploadRegistry,
    pub host_key_fingerprint: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts a server with default limits changed by `configure`.
    pub async fn start(configure: impl FnOnce(&mut SftpConfig)) -> TestServer {
        // The server's log lines show in the output of a failing test.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("dsync_local=debug")
            .try_init();

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("local")).unwrap();
        let mut config = SftpConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            dir.path().join("state/sftp_host_ed25519"),
        );
        configure(&mut config);
        Self::start_in(dir, config).await
    }

    async fn start_in(dir: tempfile::TempDir, config: SftpConfig) -> TestServer {
        let server = SftpServer::bind(config).await.unwrap();
        let port = server.local_addr().unwrap().port();
        let uploads = server.uploads();
        let host_key_fingerprint = server.host_key_fingerprint().to_string();
        let backend = Arc::new(FakeBackend::default());
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(backend.clone(), async move {
            let _ = stop.await;
        }));

        TestServer {
            port,
            dir,
            backend,
            uploads,
            host_key_fingerprint,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Returns the jail root of `username` (not created: the server creates it on first login).
    pub fn jail(&self, username: &str) -> PathBuf {
        self.dir.path().join("jails").join(username)
    }

    /// Returns the staging folder of `username`, where uploads are written until their CLOSE.
    pub fn staging(&self, username: &str) -> PathBuf {
        self.dir.path().join("jails/.staging").join(username)
    }

    /// Returns the names of the files in `username`'s staging folder.
    pub fn staging_files(&self, username: &str) -> Vec<String> {
        match std::fs::read_dir(self.staging(username)) {
            Ok(entries) => entries
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Returns the client's local working folder, where `put` reads and `get` writes.
    pub fn local(&self) -> PathBuf {
        self.dir.path().join("local")
    }

    /// Makes a key with `ssh-keygen` and registers it for `username`.
    pub fn add_account(&self, username: &str) -> ClientKey {
        let key = self.make_key(username);
        self.backend
            .register(username, &key.fingerprint, self.jail(username));
        key
    }

    /// Makes an ed25519 key with `ssh-keygen -t ed25519 -N ''` without registering it.
    pub fn make_key(&self, name: &str) -> ClientKey {
        self.make_key_of_type(name, &["-t", "ed25519"])
    }

    /// Makes a key with `ssh-keygen`, `type_args` choosing its type (`-t rsa -b 3072`).
    pub fn make_key_of_type(&self, name: &str, type_args: &[&str]) -> ClientKey {
        let keys = self.dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let private_key = keys.join(format!("{name}_ed25519"));
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", name])
            .args(type_args)
            .arg("-f")
            .arg(&private_key)
            .status()
            .expect("ssh-keygen must be installed (Debian package openssh-client)");
        assert!(status.success(), "ssh-keygen failed for {name}");

        let listing = std::process::Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(private_key.with_extension("pub"))
            .output()
            .unwrap();
        let listing = String::from_utf8(listing.stdout).unwrap();
        let fingerprint = listing.split_whitespace().nth(1).unwrap().to_string();
        assert!(fingerprint.starts_with("SHA256:"), "{listing}");

        ClientKey {
            private_key,
            fingerprint,
        }
    }

    /// Writes `contents` to a file in the client's local folder.
    pub fn write_local(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.local().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Builds the `sftp` command for a batch file, with the options the brief of these tests fixes.
    pub fn sftp_command(
        &self,
        key: &ClientKey,
        username: &str,
        batch: &Path,
    ) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("sftp");
        command
            .current_dir(self.local())
            .arg("-b")
            .arg(batch)
            .arg("-P")
            .arg(self.port.to_string())
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
                "IdentityAgent=none",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("{username}@127.0.0.1"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs `commands` (one batch-file line each) with the real OpenSSH `sftp` client.
    pub async fn sftp(&self, key: &ClientKey, username: &str, commands: &str) -> SftpRun {
        let batch = self.dir.path().join(format!("batch-{}", rand_suffix()));
        std::fs::write(&batch, commands).unwrap();

        let child = self.sftp_command(key, username, &batch).spawn().unwrap();
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("sftp did not finish within 60 s")
            .unwrap();
        SftpRun { output }
    }

    /// Waits until no upload is in progress for `username`'s `path`, as after a session ended.
    pub async fn wait_upload_released(&self, username: &str, path: &str) {
        for _ in 0..500 {
            if !self.uploads.is_upload_in_progress(username, path) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("upload of {path} still in progress after 5 s");
    }

    /// Stops the server and waits for it; the temporary folder stays until the value is dropped.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The result of one `sftp` run.
pub struct SftpRun {
    pub output: Output,
}

impl SftpRun {
    pub fn succeeded(&self) -> bool {
        self.output.status.success()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Describes the run for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "exit: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.output.status.code(),
            self.stdout(),
            self.stderr()
        )
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
