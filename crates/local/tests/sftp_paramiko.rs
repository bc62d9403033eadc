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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_cut_off_overwrite_keeps_previous_file() {
    if !paramiko_available().await {
        return;
    }
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    let old_users: Vec<u8> = (0..50)
        .flat_map(|i| format!("u-{i},old{i}@example.test\n").into_bytes())
        .collect();
    let new_users: Vec<u8> = (0..50)
        .flat_map(|i| format!("u-{i},new{i}@example.test\n").into_bytes())
        .collect();
    server.write_local("users_old.csv", b"u-1,older@example.test\n");
    server.write_local("users.csv", &old_users);
    server.write_local("users_new.csv", &new_users);

    // The second session checks what other clients see while the overwrite runs,
    // then the socket is closed under the open handle.
    let (ok, output) = run_paramiko(
        &server,
        &key,
        "acme",
        r#"
sftp.put("users_old.csv", "users_old.csv")
sftp.put("users.csv", "users.csv")
new = open("users_new.csv", "rb").read()
handle = sftp.open("users.csv", "wb")
handle.write(new[: len(new) // 3])
handle.flush()
observer = client.open_sftp()
seen = {"size": observer.stat("users.csv").st_size,
        "content": observer.open("users.csv").read().decode()}
print(json.dumps(seen))
sys.stdout.flush()
transport.sock.close()
"#,
    )
    .await;

    assert!(ok, "{output}");
    let old_text = String::from_utf8(old_users.clone()).unwrap();
    let seen: serde_json::Value = serde_json::from_str(output.lines().next().unwrap()).unwrap();
    assert_eq!(seen["size"], old_users.len(), "{output}");
    assert_eq!(seen["content"], old_text.as_str(), "{output}");
    server.wait_upload_released("acme", "users.csv").await;
    assert_eq!(
        std::fs::read(server.jail("acme").join("users.csv")).unwrap(),
        old_users
    );
    assert_eq!(
        server.backend.completed_paths("acme"),
        vec!["users_old.csv", "users.csv"]
    );
    assert!(server.staging_files("acme").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_control_characters_in_names_refused() {
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
sftp.putfo(io.BytesIO(b"id\n"), "plain.csv")
names = ["users.csv\n2026-12-04T10:00:00Z INFO upload completed path=groups.csv",
         "a\rb.csv", "tab\there.csv", "esc\x1b[31m.csv", "del\x7f.csv",
         "bidi\u202egnp.csv", "isolate\u2066x.csv"]
results = []
for name in names:
    for attempt in [lambda: sftp.open(name, "w").close(),
                    lambda: sftp.mkdir(name),
                    lambda: sftp.rename("plain.csv", name),
                    lambda: sftp.remove(name),
                    lambda: sftp.stat(name),
                    lambda: sftp.normalize(name)]:
        try:
            attempt()
            results.append("allowed")
        except IOError as error:
            results.append(str(error))
sftp.close()
client.close()
print(json.dumps(results))
"#,
    )
    .await;

    assert!(ok, "{output}");
    let results: Vec<String> = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(results.len(), 42, "{output}");
    for result in &results {
        assert!(result.contains("invalid file name"), "{output}");
    }
    assert!(results[0].contains("U+000A"), "{output}");
    assert!(results[30].contains("U+202E"), "{output}");
    let names: Vec<String> = std::fs::read_dir(server.jail("acme"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["plain.csv"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_results_folder_is_read_only() {
    if !paramiko_available().await {
        return;
    }
    let server = TestServer::start(|_| {}).await;
    let key = server.add_account("acme");
    let results = server.jail("acme").join("results");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::write(results.join("report.json"), b"{\"ok\":true}").unwrap();

    let (ok, output) = run_paramiko(
        &server,
        &key,
        "acme",
        r#"
sftp.putfo(io.BytesIO(b"id\n"), "users.csv")
attempts = {
    "write inside": lambda: sftp.open("results/new.json", "w").close(),
    "overwrite report": lambda: sftp.open("results/report.json", "w").close(),
    "append report": lambda: sftp.open("results/report.json", "a").close(),
    "remove report": lambda: sftp.remove("results/report.json"),
    "rename folder": lambda: sftp.rename("results", "old-results"),
    "rename report out": lambda: sftp.rename("results/report.json", "report.json"),
    "rename into": lambda: sftp.rename("users.csv", "results/users.csv"),
    "replace folder": lambda: sftp.rename("users.csv", "results"),
    "mkdir inside": lambda: sftp.mkdir("results/sub"),
    "rmdir": lambda: sftp.rmdir("results"),
    "setstat": lambda: sftp.chmod("results/report.json", 0o600),
    "file named Results": lambda: sftp.open("/Results", "w").close(),
    "folder named RESULTS": lambda: sftp.mkdir("RESULTS"),
}
outcome = {}
for name, attempt in attempts.items():
    try:
        attempt()
        outcome[name] = "allowed"
    except IOError as error:
        outcome[name] = str(error)
outcome["listing"] = sftp.listdir("results")
outcome["report"] = sftp.open("results/report.json").read().decode()
sftp.close()
client.close()
print(json.dumps(outcome))
"#,
    )
    .await;

    assert!(ok, "{output}");
    let outcome: serde_json::Value = serde_json::from_str(output.trim()).unwrap();
    for (name, result) in outcome.as_object().unwrap() {
        if name == "listing" || name == "report" {
            continue;
        }
        let result = result.as_str().unwrap();
        assert!(result.contains("read-only"), "{name}: {result}");
    }
    assert_eq!(outcome["listing"], serde_json::json!(["report.json"]));
    assert_eq!(outcome["report"], "{\"ok\":true}");
    assert_eq!(
        std::fs::read(results.join("report.json")).unwrap(),
        b"{\"ok\":true}"
    );
    assert!(server.jail("acme").join("users.csv").is_file());
    assert!(!server.jail("acme").join("Results").exists());
    assert!(!server.jail("acme").join("RESULTS").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_oversize_upload_names_the_limit() {
    if !paramiko_available().await {
        return;
    }
    let server = TestServer::start(|config| config.max_upload_bytes = 1000).await;
    let key = server.add_account("acme");

    let (ok, output) = run_paramiko(
        &server,
        &key,
        "acme",
        r#"
handle = sftp.open("big.csv", "wb")
try:
    handle.write(b"x" * 600)
    handle.write(b"x" * 600)
    handle.close()
    print("allowed")
except IOError as error:
    print("refused: " + str(error))
"#,
    )
    .await;

    assert!(ok, "{output}");
    assert!(
        output.contains("exceeds the upload limit of 1000 bytes"),
        "{output}"
    );
    server.wait_upload_released("acme", "big.csv").await;
    assert!(!server.jail("acme").join("big.csv").exists());
    assert!(server.backend.completed().is_empty());
}
