//! A reader that stops early (`dsync plan ... | head`) ends dsync quietly.

use std::fmt::Write as _;
use std::process::{Command, Stdio};

#[test]
fn plan_into_closed_pipe_exits_quietly() {
    let folder = tempfile::tempdir().unwrap();
    let empty = folder.path().join("empty");
    let after = folder.path().join("after");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(&after).unwrap();

    // Enough events that dsync is still writing after the pipe closes.
    let mut users = String::from("user_id,first_name,last_name,email\n");
    for index in 0..20_000 {
        writeln!(users, "{index},Given{index},Family{index},person{index}@example.test").unwrap();
    }
    std::fs::write(after.join("users.csv"), users).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .arg("plan")
        .arg(&empty)
        .arg(&after)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();

    assert!(output.status.success(), "exit status {}", output.status);
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}
