//! `dsync serve --backend aws` against an AWS emulator (moto): a real
//! OpenSSH `sftp` upload becomes users in DynamoDB, served by the HTTP API.
//!
//! Runs only when `DSYNC_TEST_AWS_ENDPOINT` names the emulator (for example
//! `http://127.0.0.1:5055` after `bash infra/moto.sh start 5055`), and needs
//! a `dsync` built with the AWS backend. A workspace build of `dsync` leaves
//! the feature out, so keep the AWS build under another name:
//!
//!     cargo build -p dsync-cli --features aws
//!     cp target/debug/dsync target/debug/dsync-aws
//!     DSYNC_TEST_AWS_ENDPOINT=http://127.0.0.1:5055 cargo test -p dsync-tests --test serve_aws
//!
//! `DSYNC_AWS_BIN` (an absolute path) picks another binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dsync_tests::{dsync_binary, free_port, wait_for, API_KEY, SYNC_DEBOUNCE_MS};
use serde_json::{json, Value};

const USERS_CSV: &str = "user_id,first_name,last_name,email\n\
    7101,Odile,Ferrant,odile.ferrant@saltmarsh.test\n\
    7102,Bram,Okonjo,bram.okonjo@saltmarsh.test\n";

/// A `dsync serve --backend aws` on free loopback ports; killed on drop.
struct AwsServer {
    child: Child,
    dir: tempfile::TempDir,
    endpoint: String,
    table: String,
    http_port: u16,
    sftp_port: u16,
}

impl Drop for AwsServer {
    fn drop(&mut self) {
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

impl AwsServer {
    fn start(endpoint: &str) -> AwsServer {
        let dir = tempfile::tempdir().unwrap();
        // A table and bucket prefix of their own, so runs never share state.
        let unique = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000_000;
        let table = format!("dsync-e2e-{unique}");
        let prefix = format!("e2e-{unique}");

        let http_port = free_port();
        let binary = aws_binary();

        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(&binary)
            .args(["serve", "--backend", "aws", "--sftp-listen", "127.0.0.1:0"])
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--sync-debounce-ms")
            .arg(SYNC_DEBOUNCE_MS.to_string())
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("DSYNC_TABLE", &table)
            .env("DSYNC_BUCKET_PREFIX", &prefix)
            .env("DSYNC_API_KEY", API_KEY)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", binary.display()));

        let mut server = AwsServer {
            child,
            dir,
            endpoint: endpoint.to_owned(),
            table,
            http_port,
            sftp_port: 0,
        };
        server.sftp_port = wait_for("the server to start", || {
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = server.log();
                if log.contains("--features aws") {
                    panic!(
                        "{} was built without the AWS backend: run `cargo build -p dsync-cli --features aws && cp target/debug/dsync target/debug/dsync-aws` first",
                        binary.display()
                    );
                }
                panic!("dsync serve --backend aws exited with {status}:\n{log}");
            }
            let log = server.log();
            let started = log
                .lines()
                .find(|line| line.contains("dsync serve --backend aws started"))?;
            let port = started
                .split("sftp=127.0.0.1:")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            TcpStream::connect(("127.0.0.1", http_port)).ok()?;
            Some(port)
        });
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn http(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.http_port)).expect("connect HTTP");
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let response = String::from_utf8(response).expect("UTF-8 response");
        let (head, body) = response.split_once("\r\n\r\n").expect("HTTP head and body");
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn sftp(&self, username: &str, key: &Path, commands: &str) -> std::process::Output {
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
            .current_dir(self.dir.path())
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

    /// Reads the sort keys of the directory's user items from DynamoDB
    /// through the emulator with boto3, which comes with moto.
    fn dynamodb_user_keys(&self, directory: &str) -> Vec<String> {
        let script = r#"
import json, sys, boto3
endpoint, table, directory = sys.argv[1:4]
client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
keys, start = [], None
while True:
    args = {"TableName": table}
    if start:
        args["ExclusiveStartKey"] = start
    page = client.scan(**args)
    for item in page["Items"]:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if directory in pk and sk.startswith("U#"):
            keys.append(sk)
    start = page.get("LastEvaluatedKey")
    if not start:
        break
print(json.dumps(sorted(keys)))
"#;
        let output = Command::new("python3")
            .args(["-c", script, &self.endpoint, &self.table, directory])
            .output()
            .expect("run python3");
        assert!(
            output.status.success(),
            "reading DynamoDB with boto3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON list of keys")
    }
}

/// Returns the `dsync` built with the AWS backend: `DSYNC_AWS_BIN`, else
/// `dsync-aws` beside the test's `dsync` when present, else that `dsync`.
fn aws_binary() -> PathBuf {
    if let Ok(path) = std::env::var("DSYNC_AWS_BIN") {
        return PathBuf::from(path);
    }
    let default = dsync_binary();
    let copy = default.with_file_name("dsync-aws");
    if copy.exists() {
        copy
    } else {
        default
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

#[test]
fn sftp_upload_reaches_dynamodb_and_api() {
    let Ok(endpoint) = std::env::var("DSYNC_TEST_AWS_ENDPOINT") else {
        eprintln!(
            "\n*** SKIPPED serve_aws: DSYNC_TEST_AWS_ENDPOINT is not set. Start moto \
             (bash infra/moto.sh start 5055), build `cargo build -p dsync-cli --features aws && cp target/debug/dsync target/debug/dsync-aws` \
             and set DSYNC_TEST_AWS_ENDPOINT=http://127.0.0.1:5055 to run it. ***\n"
        );
        return;
    };
    let server = AwsServer::start(&endpoint);

    let (status, directory) = server.http(
        "POST",
        "/directories",
        Some(&json!({"organization_id": "org_saltmarsh", "name": "Saltmarsh Rope Works"})),
    );
    assert_eq!(
        status,
        201,
        "create directory: {directory}\n{}",
        server.log()
    );
    let directory_id = directory["id"].as_str().unwrap().to_owned();
    let username = directory["sftp"]["username"].as_str().unwrap().to_owned();
    assert_eq!(directory["sftp"]["port"], server.sftp_port);

    let key = server.dir.path().join("uploader_key");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "saltmarsh-hr", "-f"])
        .arg(&key)
        .status()
        .expect("run ssh-keygen");
    assert!(keygen.success());
    let public_key = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let (status, added) = server.http(
        "POST",
        &format!("/directories/{directory_id}/ssh_keys"),
        Some(&json!({"public_key": public_key.trim()})),
    );
    assert_eq!(status, 201, "add key: {added}\n{}", server.log());

    // A key registered to no directory is rejected before any upload.
    let stranger = server.dir.path().join("stranger_key");
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap()
        .success());
    let rejected = server.sftp(&username, &stranger, "ls\n");
    assert!(!rejected.status.success(), "an unregistered key logged in");

    std::fs::write(server.dir.path().join("users.csv"), USERS_CSV).unwrap();
    let put = server.sftp(&username, &key, "put users.csv\n");
    assert!(
        put.status.success(),
        "sftp put failed: {}\n{}",
        String::from_utf8_lossy(&put.stderr),
        server.log()
    );

    let users = wait_for("the uploaded users in the API", || {
        let (status, body) = server.http(
            "GET",
            &format!("/directory_users?directory={directory_id}"),
            None,
        );
        assert_eq!(status, 200, "list users: {body}");
        let data = body["data"].as_array()?.clone();
        (data.len() == 2).then_some(data)
    });
    let mut idp_ids: Vec<&str> = users
        .iter()
        .map(|user| user["idp_id"].as_str().unwrap())
        .collect();
    idp_ids.sort();
    assert_eq!(idp_ids, ["7101", "7102"]);
    assert!(users
        .iter()
        .all(|user| user["directory_id"] == directory_id.as_str()));

    // The users are in DynamoDB itself, not only in the API response.
    let keys = server.dynamodb_user_keys(&directory_id);
    assert_eq!(keys, ["U#7101", "U#7102"], "user items in DynamoDB");

    // The sync is recorded with its counts.
    let (status, syncs) = server.http("GET", &format!("/directories/{directory_id}/syncs"), None);
    assert_eq!(status, 200);
    assert_eq!(syncs["data"][0]["counts"]["created"], 2, "syncs: {syncs}");
}
