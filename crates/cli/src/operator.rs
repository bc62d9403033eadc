//! Operator commands against a data dir.

use std::process::ExitCode;

use clap::Subcommand;

macro_rules! placeholder_command {
    ($name:ident, $run:ident) => {
        #[derive(Subcommand)]
        pub enum $name {
            /// List the records.
            List,
        }

        pub fn $run(_command: $name) -> anyhow::Result<ExitCode> {
            anyhow::bail!("this command is not built yet")
        }
    };
}

placeholder_command!(DirectoryCommand, run_directory);
placeholder_command!(UserCommand, run_user);
placeholder_command!(GroupCommand, run_group);
placeholder_command!(SyncCommand, run_sync);
placeholder_command!(EventCommand, run_event);
placeholder_command!(ApiKeyCommand, run_api_key);
