//! `dsync plan` options, output shapes and exit codes.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn temp_folder(label: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("dsync-plan-command-{}-{label}", std::process::id()));
    let _ = fs::remove_dir_all(&path);
    fs::create_dir_all(&path).expect("create temp folder");
    path
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsync"))
        .args(args)
        .output()
        .expect("run dsync")
}

const USERS: &str = "user_id,first_name,last_name,email,state\n\
                     5501,Amaru,Quispe,amaru.quispe@andes.example,active\n\
                     5502,Killa,Mamani,killa.mamani@andes.example,terminated\n";

#[test]
fn missing_folder_exits_one() {
    let empty = temp_folder("missing");
    let absent = empty.join("no-such-folder");

    let output = run(&["plan", empty.to_str().unwrap(), absent.to_str().unwrap()]);

    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-such-folder"));
    fs::remove_dir_all(empty).unwrap();
}

#[test]
fn invalid_now_exits_one() {
    let empty = temp_folder("now");

    let output = run(&[
        "plan",
        empty.to_str().unwrap(),
        empty.to_str().unwrap(),
        "--now",
        "yesterday",
    ]);

    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--now"));
    fs::remove_dir_all(empty).unwrap();
}

#[test]
fn empty_after_is_rejected_with_exit_zero() {
    let empty = temp_folder("empty-after");

    let output = run(&[
        "plan",
        empty.to_str().unwrap(),
        empty.to_str().unwrap(),
        "--json",
    ]);

    assert_eq!(output.status.code(), Some(0));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["status"], "rejected");
    assert!(plan["reason"].as_str().unwrap().contains("users.csv"));
    fs::remove_dir_all(empty).unwrap();
}

#[test]
fn json_has_documented_keys() {
    let empty = temp_folder("keys-before");
    let after = temp_folder("keys-after");
    fs::write(after.join("users.csv"), USERS).unwrap();

    let output = run(&[
        "plan",
        empty.to_str().unwrap(),
        after.to_str().unwrap(),
        "--json",
        "--now",
        "2026-12-04T09:00:00Z",
    ]);

    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    let keys: Vec<&str> = plan
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["status", "reason", "files", "counts", "errors", "warnings", "events"]
    );
    let file = &plan["files"][0];
    assert_eq!(file["name"], "users.csv");
    assert_eq!(file["kind"], "users");
    assert_eq!(file["rows"], 2);
    let event = &plan["events"][0];
    assert_eq!(event["event"], "dsync.user.created");
    assert_eq!(event["data"]["created_at"], "2026-12-04T09:00:00.000Z");
    fs::remove_dir_all(empty).unwrap();
    fs::remove_dir_all(after).unwrap();
}

#[test]
fn fixed_now_gives_same_output() {
    let empty = temp_folder("repeat-before");
    let after = temp_folder("repeat-after");
    fs::write(after.join("users.csv"), USERS).unwrap();
    let args = [
        "plan",
        empty.to_str().unwrap(),
        after.to_str().unwrap(),
        "--json",
        "--now",
        "2026-12-04T09:00:00Z",
    ];

    let first = run(&args);
    let second = run(&args);

    assert_eq!(first.stdout, second.stdout);
    fs::remove_dir_all(empty).unwrap();
    fs::remove_dir_all(after).unwrap();
}

#[test]
fn inactive_policy_option_keeps_user() {
    let empty = temp_folder("keep-before");
    let after = temp_folder("keep-after");
    fs::write(after.join("users.csv"), USERS).unwrap();

    let deleted = run(&[
        "plan",
        empty.to_str().unwrap(),
        after.to_str().unwrap(),
        "--json",
    ]);
    let kept = run(&[
        "plan",
        empty.to_str().unwrap(),
        after.to_str().unwrap(),
        "--json",
        "--inactive-users",
        "keep",
    ]);

    let deleted: Value = serde_json::from_slice(&deleted.stdout).unwrap();
    let kept: Value = serde_json::from_slice(&kept.stdout).unwrap();
    assert_eq!(deleted["counts"]["created"], 1);
    assert_eq!(kept["counts"]["created"], 2);
    assert_eq!(kept["events"][1]["data"]["state"], "inactive");
    fs::remove_dir_all(empty).unwrap();
    fs::remove_dir_all(after).unwrap();
}

#[test]
fn human_output_lists_each_event() {
    let before = temp_folder("human-before");
    let after = temp_folder("human-after");
    fs::write(before.join("users.csv"), USERS).unwrap();
    fs::write(
        after.join("users.csv"),
        "user_id,first_name,last_name,email,state\n5501,Amaru,Quispe,amaru.q@andes.example,active\n5503,Inti,Huaman,inti.huaman@andes.example,active\n",
    )
    .unwrap();

    let output = run(&[
        "plan",
        before.to_str().unwrap(),
        after.to_str().unwrap(),
        "--now",
        "2026-12-04T09:00:00Z",
    ]);

    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "status: applied");
    assert!(
        lines.contains(&"file: users.csv (users, utf-8, delimiter \",\", 2 rows, accepted)"),
        "{text}"
    );
    assert!(lines.contains(&"events: 2"), "{text}");
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("  dsync.user.created user 5503 (directory_user_")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("  dsync.user.updated user 5501")
                && line.ends_with("email, emails, raw_attributes.email")),
        "{text}"
    );
    assert!(
        !text.contains("amaru.q@andes.example"),
        "values are not printed: {text}"
    );
    fs::remove_dir_all(before).unwrap();
    fs::remove_dir_all(after).unwrap();
}
