use std::process::ExitCode;

use clap::Subcommand;

use crate::key_check;

#[derive(Subcommand)]
pub enum Command {
    /// Validate an OpenSSH public key file (or `-` for stdin) and print its fingerprint.
    Check(key_check::Args),
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check(args) => key_check::run(args),
    }
}
