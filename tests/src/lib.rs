//! Harness of the end-to-end tests in `tests/tests/`: runs the real `dsync`
//! binary on free loopback ports in a temporary data dir, and drives it with
//! its own operator commands, OpenSSH `ssh-keygen` and `sftp`, and plain HTTP.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The API key every test server is started with (through `DSYNC_API_KEY`).
pub const API_KEY: &str = "sk_e2e_test_key_0123456789abcdefghijklmnop";

/// The quiet period after an upload before test servers sync (shorter than
/// the default 2 s, to keep the tests fast).
pub const SYNC_DEBOUNCE_MS: u64 = 500;

/// How long a test waits for an asynchronous result (a sync after an upload).
pub const WAIT: Duration = Duration::from_secs(20);

/// Returns the `dsync` binary: `DSYNC_BIN`, or the one beside this test in
/// the target dir.
///
/// Note that `cargo test --workspace` builds it; `cargo test -p dsync-tests`
/// alone does not, so run `cargo build -p dsync-cli` first in that case. (The
/// test cannot build it itself: cargo holds the target dir lock while tests run.)
pub fn dsync_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Ok(path) = std::env::var("DSYNC_BIN") {
                return PathBuf::from(path);
            }
            // The test runs from <target>/debug/deps/; the binary sits in <target>/debug/.
            let exe = std::env::current_exe().expect("test executable path");
            let binary = exe
                .parent()
                .and_then(Path::parent)
                .expect("target profile dir")
                .join("dsync");
            assert!(
                binary.exists(),
                "{} is missing: run `cargo build -p dsync-cli` (or `cargo test --workspace`) first",
                binary.display()
            );
            binary
        })
        .clone()
}

/// Returns a free loopback port: bound to port 0, then released for the server.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().unwrap().port()
}

/// Polls `check` until it returns `Some`, or panics after [`WAIT`].
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `dsync serve` in its own temporary data dir; killed on drop.
pub struct Server {
    /// The temporary dir; `None` only while [`Server::restart`] moves it.
    dir: Option<tempfile::TempDir>,
    pub sftp_port: u16,
    pub http_port: u16,
    child: Child,
}

impl Server {
    pub fn start() -> Server {
        Self::start_in(tempfile::tempdir().expect("temp dir"), API_KEY)
    }

    /// Stops the server with SIGTERM and starts a new one on the same data dir.
    pub fn restart(self) -> Server {
        self.restart_with_api_key(API_KEY)
    }

    /// Like [`Server::restart`], with `api_key` in `DSYNC_API_KEY`.
    pub fn restart_with_api_key(mut self, api_key: &str) -> Server {
        self.terminate();
        let dir = self.dir.take().expect("server dir");
        Self::start_in(dir, api_key)
    }

    /// The `dsync serve` command line of this server's data dir, without
    /// the listen addresses.
    pub fn serve_command(&self) -> Command {
        let mut command = Command::new(dsync_binary());
        command.arg("serve").arg("--data-dir").arg(self.data_dir());
        command
    }

    fn start_in(dir: tempfile::TempDir, api_key: &str) -> Server {
        let sftp_port = free_port();
        let http_port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("serve.log"))
            .unwrap();
        let child = Command::new(dsync_binary())
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--sftp-listen", &format!("127.0.0.1:{sftp_port}")])
            .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
            .args(["--resync-interval-secs", "3600"])
            .args(["--sync-debounce-ms", &SYNC_DEBOUNCE_MS.to_string()])
            .env("DSYNC_API_KEY", api_key)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dsync serve");
        let server = Server {
            dir: Some(dir),
            sftp_port,
            http_port,
            child,
        };

        wait_for("dsync serve to listen", || {
            let sftp = TcpStream::connect(("127.0.0.1", sftp_port)).is_ok();
            let http = TcpStream::connect(("127.0.0.1", http_port)).is_ok();
            (sftp && http).then_some(())
        });
        server
    }

    /// Returns the test's temporary dir (the data dir, keys and local files are inside).
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("server dir").path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    /// Returns the server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("serve.log")).unwrap_or_default()
    }

    /// Runs `dsync ARGS --data-dir <data dir>` and returns its output.
    pub fn dsync(&self, args: &[&str]) -> Output {
        Command::new(dsync_binary())
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .output()
            .expect("run dsync")
    }

    /// Runs an operator command with `--json` and parses what it prints.
    pub fn dsync_json(&self, args: &[&str]) -> Value {
        let mut with_json: Vec<&str> = args.to_vec();
        with_json.push("--json");
        let output = self.dsync(&with_json);
        assert!(
            output.status.success(),
            "dsync {args:?} failed: {}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        serde_json::from_slice(&output.stdout).expect("JSON output")
    }

    /// Creates a directory and registers a fresh Ed25519 key for it.
    pub fn linked_directory(&self, organization: &str) -> LinkedDirectory {
        let directory = self.dsync_json(&[
            "directory",
            "create",
            "--organization",
            organization,
            "--name",
            "E2E",
        ]);
        let id = directory["id"].as_str().unwrap().to_owned();
        let username = directory["sftp"]["username"].as_str().unwrap().to_owned();

        let key = self.path().join(format!("key-{organization}"));
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f"])
            .arg(&key)
            .status()
            .expect("run ssh-keygen");
        assert!(status.success());

        let public_key = key.with_extension("pub");
        let added = self.dsync_json(&["key", "add", &id, public_key.to_str().unwrap()]);
        LinkedDirectory {
            id,
            username,
            key,
            added,
        }
    }

    /// Runs `sftp -b -` with `commands` as the given directory's user.
    pub fn sftp(&self, directory: &LinkedDirectory, commands: &str) -> Output {
        self.sftp_with_key(&directory.username, &directory.key, commands)
    }

    pub fn sftp_with_key(&self, username: &str, key: &Path, commands: &str) -> Output {
        let mut child = Command::new("sftp")
            .args(["-b", "-", "-P", &self.sftp_port.to_string(), "-i"])
            .arg(key)
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
                "LogLevel=ERROR",
            ])
            .arg(format!("{username}@127.0.0.1"))
            .current_dir(self.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sftp");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(commands.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Writes `text` to a local file under the test dir, for `put`.
    pub fn local_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join("outbox").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Uploads local files (path, remote name) in one sftp session and checks it succeeded.
    pub fn upload(&self, directory: &LinkedDirectory, files: &[(&Path, &str)]) {
        let mut commands = String::new();
        for (local, remote) in files {
            commands.push_str(&format!("put {} {}\n", local.display(), remote));
        }
        let output = self.sftp(directory, &commands);
        assert!(
            output.status.success(),
            "sftp upload failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Lists the directory's sync records, newest first.
    pub fn syncs(&self, directory: &LinkedDirectory) -> Vec<Value> {
        self.dsync_json(&["sync", "list", &directory.id])
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until the directory has `count` sync records and returns them, newest first.
    pub fn wait_for_syncs(&self, directory: &LinkedDirectory, count: usize) -> Vec<Value> {
        wait_for(&format!("{count} syncs of {}", directory.id), || {
            let syncs = self.syncs(directory);
            (syncs.len() >= count).then_some(syncs)
        })
    }

    pub fn users(&self, directory: &LinkedDirectory) -> Vec<Value> {
        self.dsync_json(&["user", "list", &directory.id])
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn events(&self, directory: &LinkedDirectory) -> Vec<Value> {
        self.dsync_json(&[
            "event",
            "list",
            "--directory",
            &directory.id,
            "--limit",
            "1000",
        ])
        .as_array()
        .unwrap()
        .clone()
    }

    /// `GET path` on the HTTP API with the test API key; returns status and JSON body.
    pub fn http_get(&self, path: &str) -> (u16, Value) {
        self.http_request("GET", path, None)
    }

    /// `POST path` with a JSON body on the HTTP API; returns status and JSON body.
    pub fn http_post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.http_request("POST", path, Some(body))
    }

    /// `GET path` with another API key; returns the status alone.
    pub fn http_status_with_key(&self, path: &str, api_key: &str) -> u16 {
        self.http_request_with_key("GET", path, None, api_key).0
    }

    fn http_request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.http_request_with_key(method, path, body, API_KEY)
    }

    fn http_request_with_key(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        api_key: &str,
    ) -> (u16, Value) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.http_port)).expect("connect HTTP");
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {api_key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.http_port,
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let response = String::from_utf8(response).expect("UTF-8 response");
        let (head, body) = response.split_once("\r\n\r\n").expect("HTTP head and body");
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

fn dechunk(body: &str) -> String {
    let mut rest = body;
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

impl Server {
    /// Stops the server: SIGTERM first, as in production, then SIGKILL after 10 seconds.
    fn terminate(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A directory with a registered key.
pub struct LinkedDirectory {
    pub id: String,
    pub username: String,
    /// The private key file; the public key is beside it with `.pub`.
    pub key: PathBuf,
    /// What `dsync key add --json` printed.
    pub added: Value,
}

/// A fixture file of this crate (`tests/fixtures/...`).
pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}
