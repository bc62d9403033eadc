//! The embedded SFTP server driven by Paramiko, the Python SSH library many HR
//! integrations script their uploads with. Paramiko sends the plain SFTP RENAME
//! (not OpenSSH's posix-rename) and SETSTAT for times, and closes the channel
//! the way library clients do.
//!
//! Each test prints a line and passes without checking anything when `python3`
//! cannot import `paramiko`; install it with `pip install paramiko`.

mod sftp_support;

use std::time::Duration;

use sftp_support::{ClientKey, TestServer};

/// Returns false (after saying why) when Paramiko is not installed.
async fn paramiko_available() -> bool {
    let status = tokio::process::Command::new("python3")
        .args(["-c", "import paramiko"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    let available = matches!(status, Ok(status) if status.success());
    if !available {
        println!("skipped: python3 cannot import paramiko; run `pip install paramiko` to include this test");
    }
    available
}

/// Runs `body` after a Paramiko prelude that connects as `username` and binds `sftp` and `transport`.
async fn run_paramiko(
    server: &TestServer,
    key: &ClientKey,
    username: &str,
    body: &str,
) -> (bool, String) {
    let script = format!(
        r#"
import io, json, sys, paramiko
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
client.connect("127.0.0.1", port={port}, username="{username}", key_filename=r"{key}",
               look_for_keys=False, allow_agent=False, timeout=20)
transport = client.get_transport()
sftp = client.open_sftp()
{body}
"#,
        port = server.port,
        key = key.private_key.display(),
    );
    let path = server.dir.path().join("client.py");
    std::fs::write(&path, script).unwrap();

    let output = tokio::process::Command::new("python3")
        .arg(&path)
        .current_dir(server.local())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the Paramiko client did not finish within 60 s")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_upload_rename_and_download() {
    if !paramiko_available().await {
        return;
    }
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");

    let (ok, output) = run_paramiko(
        &server,
        &key,
        "acme",
        r#"
sftp.putfo(io.BytesIO(b"id,email\nu-1,ada@example.test\n"), "users.csv.filepart")
sftp.utime("users.csv.filepart", (1700000000, 1700000000))
sftp.rename("users.csv.filepart", "users.csv")
sftp.chdir("..")
result = {
    "cwd": sftp.getcwd(),
    "normalized": sftp.normalize("../../x/./y"),
    "names": sorted(sftp.listdir("/")),
    "size": sftp.stat("/users.csv").st_size,
    "content": sftp.open("users.csv").read().decode(),
}
sftp.close()
client.close()
print(json.dumps(result))
"#,
    )
    .await;

    assert!(ok, "{output}");
    assert!(output.contains(r#""cwd": "/""#), "{output}");
    assert!(output.contains(r#""normalized": "/x/y""#), "{output}");
    assert!(output.contains(r#""names": ["users.csv"]"#), "{output}");
    assert!(output.contains(r#""size": 30"#), "{output}");
    assert_eq!(
        server.backend.completed_paths("acme"),
        vec!["users.csv.filepart", "users.csv"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_cannot_leave_jail() {
    if !paramiko_available().await {
        return;
    }
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");

    let (ok, output) = run_paramiko(
        &server,
        &key,
        "acme",
        r#"
errors = []
for attempt in [lambda: sftp.open("/etc/passwd").read(),
                lambda: sftp.open("../../../etc/passwd").read(),
                lambda: sftp.symlink("/etc", "etc-link")]:
    try:
        attempt()
        errors.append("allowed")
    except IOError:
        errors.append("refused")
sftp.close()
client.close()
print(json.dumps(errors))
"#,
    )
    .await;

    assert!(ok, "{output}");
    assert!(
        output.contains(r#"["refused", "refused", "refused"]"#),
        "{output}"
    );
    assert!(std::fs::symlink_metadata(server.jail("acme").join("etc-link")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_dropped_connection_is_not_reported() {
    if !paramiko_available().await {
        return;
    }
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");

    // Writes part of a file, then closes the socket under the open handle.
    let (ok, output) = run_paramiko(
        &server,
        &key,
        "acme",
        r#"
handle = sftp.open("users.csv", "wb")
handle.write(b"id,email\n" * 1000)
handle.flush()
transport.sock.close()
print("dropped")
"#,
    )
    .await;

    assert!(ok, "{output}");
    server.wait_upload_released("acme", "users.csv").await;
    assert!(server.backend.completed().is_empty());
    assert!(!server.jail("acme").join("users.csv").exists());
}
