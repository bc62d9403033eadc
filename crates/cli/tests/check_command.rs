//! `dsync check` run as a process on upload files and folders written by the tests.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::Value;

const USERS: &str = "user_id,first_name,last_name,email\n\
                     3001,Mirela,Costa,mirela.costa@example.org\n\
                     3002,Omar,Haddad,omar.haddad@example.org\n";

/// A scratch folder removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("dsync-check-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, content).unwrap();
        path
    }

    /// Writes a file and sets its modification time `age_secs` seconds in the past.
    fn write_aged(&self, name: &str, content: &[u8], age_secs: u64) -> PathBuf {
        let path = self.write(name, content);
        let modified = SystemTime::now() - Duration::from_secs(age_secs);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn dsync(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsync"))
        .arg("check")
        .args(args)
        .output()
        .unwrap()
}

fn dsync_json(args: &[&Path]) -> (Option<i32>, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .arg("check")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (output.status.code(), report)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn clean_folder_exits_zero() {
    let scratch = Scratch::new("clean");
    scratch.write("users.csv", USERS.as_bytes());

    let output = dsync(&[&scratch.0]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("users.csv: users, utf-8, delimiter ,, 2 rows"));
    assert!(
        output.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn json_report_shape() {
    let scratch = Scratch::new("json");
    scratch.write("users.csv", USERS.as_bytes());
    scratch.write("groups.csv", b"group_name;budget\nFinance;10\n");

    let (code, report) = dsync_json(&[&scratch.0]);
    assert_eq!(code, Some(0));
    assert_eq!(report["status"], "ok");
    assert_eq!(report["counts"]["created"], 2);
    assert_eq!(report["counts"]["deleted"], 0);
    assert_eq!(report["counts"]["skipped_rows"], 0);
    assert_eq!(report["files"][0]["name"], "users.csv");
    assert_eq!(report["files"][0]["kind"], "users");
    assert_eq!(report["files"][0]["encoding"], "utf-8");
    assert_eq!(report["files"][0]["rows"], 2);
    assert_eq!(report["files"][1]["kind"], "groups");
    assert_eq!(report["files"][1]["delimiter"], ";");
    assert_eq!(report["errors"], Value::Array(Vec::new()));
}

#[test]
fn row_error_exits_two_with_location() {
    let scratch = Scratch::new("row-error");
    let text = format!("{USERS}3003,Lena,,lena.vogel@example.org\n");
    let path = scratch.write("users.csv", text.as_bytes());

    let output = dsync(&[&path]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output)
        .contains("error: users.csv:3:4:last_name: last_name is empty for user_id 3003"));
}

#[test]
fn row_error_json_counts_skipped() {
    let scratch = Scratch::new("row-error-json");
    let text = format!("{USERS}3003,Lena,,lena.vogel@example.org\n");
    let path = scratch.write("users.csv", text.as_bytes());

    let (code, report) = dsync_json(&[&path]);
    assert_eq!(code, Some(2));
    assert_eq!(report["status"], "errors");
    assert_eq!(report["counts"]["skipped_rows"], 1);
    assert_eq!(report["errors"][0]["row"], 3);
    assert_eq!(report["errors"][0]["line"], 4);
    assert_eq!(report["errors"][0]["column"], "last_name");
}

#[test]
fn rejected_file_exits_two() {
    let scratch = Scratch::new("rejected");
    let path = scratch.write(
        "users.csv",
        b"user_id,first_name,last_name\n3001,Mirela,Costa\n",
    );

    let output = dsync(&[&path]);
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    assert!(text.contains("REJECTED"));
    assert!(text.contains("required column email missing"));
}

#[test]
fn newest_file_per_kind_chosen() {
    let scratch = Scratch::new("newest");
    scratch.write_aged(
        "users_20261201.csv",
        b"user_id,first_name,last_name,email\n",
        3600,
    );
    scratch.write_aged("Users-2026-12-04.CSV", USERS.as_bytes(), 60);
    scratch.write("users_empty.csv", b"");
    scratch.write("users.csv.filepart", USERS.as_bytes());
    scratch.write("results/users.csv", USERS.as_bytes());

    let (code, report) = dsync_json(&[&scratch.0]);
    assert_eq!(code, Some(0));
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["name"], "Users-2026-12-04.CSV");

    let ignored: Vec<&str> = report["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["reason"].as_str().unwrap())
        .collect();
    assert_eq!(ignored.len(), 4, "ignored: {ignored:?}");
}

#[test]
fn missing_path_exits_one() {
    let output = dsync(&[Path::new("/nonexistent/dsync-check-folder")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("failed to read /nonexistent/dsync-check-folder"));
}

#[test]
fn unknown_file_name_exits_one() {
    let scratch = Scratch::new("unknown-name");
    let path = scratch.write("export.csv", USERS.as_bytes());

    let output = dsync(&[&path]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not an upload name"));
}

#[test]
fn folder_without_uploads_exits_one() {
    let scratch = Scratch::new("no-uploads");
    scratch.write("notes.txt", b"nothing here");

    let output = dsync(&[&scratch.0]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no upload found"));
}

#[test]
fn row_limit_option_rejects() {
    let scratch = Scratch::new("row-limit");
    let path = scratch.write("users.csv", USERS.as_bytes());

    let output = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .args(["check", "--max-rows", "1"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).contains("more than 1 data rows"));
}
