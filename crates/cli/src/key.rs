use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::key_check;
use crate::operator::{self, Common, KeyAction};

#[derive(Subcommand)]
pub enum Command {
    /// Validate an OpenSSH public key file (or `-` for stdin) and print its fingerprint.
    Check(key_check::Args),
    /// Register a public key for a directory; the first key links it and prints the SFTP login.
    Add {
        directory_id: String,
        /// Public key file (such as id_ed25519.pub), or `-` to read standard input.
        public_key_file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// List a directory's keys.
    List {
        directory_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a key from a directory; removing the last one unlinks it.
    Remove {
        directory_id: String,
        key_id: String,
        #[command(flatten)]
        common: Common,
    },
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check(args) => key_check::run(args),
        Command::Add {
            directory_id,
            public_key_file,
            common,
        } => operator::run_key(
            KeyAction::Add {
                directory_id,
                file: public_key_file,
            },
            common,
        ),
        Command::List {
            directory_id,
            common,
        } => operator::run_key(KeyAction::List { directory_id }, common),
        Command::Remove {
            directory_id,
            key_id,
            common,
        } => operator::run_key(
            KeyAction::Remove {
                directory_id,
                key_id,
            },
            common,
        ),
    }
}
