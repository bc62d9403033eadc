//! `dsync`: check and plan HR uploads, run the service, and operate it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;
mod key;
mod key_check;
mod operator;
mod plan;
mod serve;
#[cfg(feature = "aws")]
mod serve_aws;
mod uploads;

#[derive(Parser)]
#[command(name = "dsync", version, about = "SFTP directory sync: HR CSV uploads in, directory events and a WorkOS-compatible API out")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read upload files or folders and report errors and warnings.
    Check(check::Args),
    /// Show the changes and events that syncing folder AFTER onto folder BEFORE would make.
    Plan(plan::Args),
    /// Check SSH public keys, and add, list or remove a directory's keys.
    #[command(subcommand)]
    Key(key::Command),
    /// Run the SFTP server, the sync worker and the HTTP API.
    Serve(serve::Args),
    /// Create, list and delete directories.
    #[command(subcommand)]
    Directory(operator::DirectoryCommand),
    /// List a directory's users.
    #[command(subcommand)]
    User(operator::UserCommand),
    /// List a directory's groups.
    #[command(subcommand)]
    Group(operator::GroupCommand),
    /// List, show, approve and discard syncs.
    #[command(subcommand)]
    Sync(operator::SyncCommand),
    /// List events.
    #[command(subcommand)]
    Event(operator::EventCommand),
    /// Create, list and revoke API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(operator::ApiKeyCommand),
}

fn main() -> ExitCode {
    // Usage errors exit 1, as every subcommand documents; clap's own default is 2,
    // which dsync reserves for "the input has errors".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(1) } else { ExitCode::SUCCESS };
        }
    };
    let result = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Key(command) => key::run(command),
        Command::Serve(args) => serve::run(args),
        Command::Directory(command) => operator::run_directory(command),
        Command::User(command) => operator::run_user(command),
        Command::Group(command) => operator::run_group(command),
        Command::Sync(command) => operator::run_sync(command),
        Command::Event(command) => operator::run_event(command),
        Command::ApiKey(command) => operator::run_api_key(command),
    };

    match result {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => {
            // The reader of our output went away (`dsync ... | head`); that is
            // a normal end, not a failure.
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
