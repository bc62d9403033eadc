//! `dsync key check`: validates one SSH public key and prints its fingerprint.
//!
//! Exit codes: 0 when the key is accepted, 2 when it is rejected, 1 when the
//! file cannot be read.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use dsync_core::keys::{parse_public_key_bytes, KeyFormat, PublicKey, MAX_KEY_TEXT_BYTES};
use serde_json::json;

/// Maximum bytes read from the input. Far more than any public key needs, but
/// enough to hold a pasted private key so that it is reported as one.
const MAX_INPUT_BYTES: u64 = 64 * 1024;

const EXIT_INVALID_KEY: u8 = 2;

#[derive(clap::Args)]
pub struct Args {
    /// Public key file (such as ~/.ssh/id_ed25519.pub), or `-` to read standard input.
    file: PathBuf,

    /// Print the result as one JSON object on standard output, for errors too.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let is_stdin = args.file.as_os_str() == "-";
    let source_name = if is_stdin {
        "standard input".to_owned()
    } else {
        args.file.display().to_string()
    };

    let input = if is_stdin {
        read_limited(io::stdin().lock())
    } else {
        File::open(&args.file).and_then(read_limited)
    }
    .with_context(|| format!("failed to read {source_name}"))?;

    let Some(bytes) = input else {
        let message = format!(
            "the input is over {MAX_INPUT_BYTES} bytes; submit one public key line of at most {MAX_KEY_TEXT_BYTES} bytes"
        );
        report_rejection(&source_name, "too_long", &message, args.json);
        return Ok(ExitCode::from(EXIT_INVALID_KEY));
    };

    match parse_public_key_bytes(&bytes) {
        Ok(key) => {
            if args.json {
                print_key_json(&source_name, &key);
            } else {
                print_key_text(&key);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            report_rejection(&source_name, error.code(), &error.to_string(), args.json);
            Ok(ExitCode::from(EXIT_INVALID_KEY))
        }
    }
}

/// Reads the whole input, or returns `None` when it is over `MAX_INPUT_BYTES`.
fn read_limited(reader: impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Ok(None);
    }
    Ok(Some(bytes))
}

fn print_key_text(key: &PublicKey) {
    println!("type:        {}", key.key_type);
    println!("bits:        {}", key.bits);
    println!(
        "comment:     {}",
        key.comment.as_deref().unwrap_or("(none)")
    );
    println!("fingerprint: {}", key.fingerprint);
    if key.format == KeyFormat::Rfc4716 {
        println!("converted from RFC 4716 to OpenSSH form:");
        println!("{}", key.openssh_line());
    }
}

fn print_key_json(source_name: &str, key: &PublicKey) {
    let output = json!({
        "valid": true,
        "file": source_name,
        "key_type": key.key_type,
        "bits": key.bits,
        "comment": key.comment,
        "fingerprint": key.fingerprint,
        "public_key": key.canonical_line,
        "format": key.format,
    });
    println!("{output}");
}

/// Prints why the key was rejected. The message comes from the key parser,
/// which never includes key material, so a pasted private key is not echoed.
fn report_rejection(source_name: &str, code: &str, message: &str, json_output: bool) {
    if json_output {
        let output = json!({
            "valid": false,
            "file": source_name,
            "error": { "code": code, "message": message },
        });
        println!("{output}");
    } else {
        eprintln!("error: {source_name}: invalid SSH public key: {message}");
    }
}
