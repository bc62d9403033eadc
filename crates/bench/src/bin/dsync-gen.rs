//! `dsync-gen`: writes synthetic `before/` and `after/` HR exports for benchmarks.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dsync_bench::{generate, GenOptions};

#[derive(Parser)]
#[command(
    name = "dsync-gen",
    about = "Write before/ and after/ folders of users.csv, groups.csv and user_groups.csv"
)]
struct Args {
    /// Users in before/.
    #[arg(long)]
    users: u64,
    /// Groups in groups.csv.
    #[arg(long, default_value_t = 100)]
    groups: u64,
    /// Membership rows in before/user_groups.csv.
    #[arg(long, default_value_t = 0)]
    memberships: u64,
    /// Share of users that differ in after/, from 0.0 to 1.0.
    #[arg(long, default_value_t = 0.01)]
    change_rate: f64,
    /// Seed; the same options and seed write the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder to write before/ and after/ into.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.change_rate) {
        eprintln!(
            "error: --change-rate must be between 0.0 and 1.0, got {}",
            args.change_rate
        );
        return ExitCode::from(2);
    }

    let options = GenOptions {
        users: args.users,
        groups: args.groups,
        memberships: args.memberships,
        change_rate: args.change_rate,
        seed: args.seed,
    };
    match generate(&options, &args.out) {
        Ok(summary) => {
            println!(
                "before: {} users, {} memberships; after: {} users, {} memberships ({} updated, {} deleted, {} created)",
                summary.before_users,
                summary.before_memberships,
                summary.after_users,
                summary.after_memberships,
                summary.updated,
                summary.deleted,
                summary.created
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: writing into {} failed: {error}", args.out.display());
            ExitCode::from(1)
        }
    }
}
