//! `dsync check`: read upload files the way a sync would and report every
//! problem, without any stored state.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dsync_core::report::{Counts, Diagnostic, FileSummary};
use dsync_core::snapshot::{KindSnapshot, Snapshot};
use dsync_core::upload::{read_snapshot_with_progress, ReadLimits, ReadProgress};
use serde::Serialize;

use crate::uploads::{select_uploads, IgnoredFile};

/// Exit code when any file or row has an error.
const EXIT_PROBLEMS: u8 = 2;

/// How often the progress line on a terminal is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

#[derive(clap::Args)]
pub struct Args {
    /// Upload files, or folders whose newest users, groups and user_groups
    /// files are read (as the service would choose them).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Print the report as JSON: {status, files, counts, errors, warnings}.
    /// In `counts`, `created` is the number of valid users and the other
    /// changes are 0, because a check compares against no stored directory.
    #[arg(long)]
    json: bool,

    /// Largest file read, in bytes; a larger file is rejected.
    #[arg(long, value_name = "BYTES", default_value_t = ReadLimits::default().max_file_bytes)]
    max_file_bytes: u64,

    /// Most data rows read from one users.csv or groups.csv; a longer file
    /// is rejected. user_groups.csv may have ten times as many rows.
    #[arg(long, value_name = "ROWS", default_value_t = ReadLimits::default().max_rows)]
    max_rows: u64,
}

/// The JSON report.
#[derive(Serialize)]
struct CheckReport<'a> {
    /// `ok` when no file or row has an error, else `errors`.
    status: &'static str,
    files: &'a [FileSummary],
    counts: Counts,
    errors: &'a [Diagnostic],
    warnings: &'a [Diagnostic],
    /// Files found in the given folders that were not read, with the reason.
    ignored: &'a [IgnoredFile],
}

/// Runs the check. It exits 0 when no file or row has an error and 2 when
/// one does. An unusable path or a failed read is an `Err`, which `main`
/// turns into exit 1.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let limits = ReadLimits {
        max_file_bytes: args.max_file_bytes,
        max_rows: args.max_rows,
    };

    let selection = select_uploads(&args.paths)?;
    if selection.chosen.is_empty() {
        let searched: Vec<String> = args
            .paths
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        anyhow::bail!(
            "no upload found in {}; uploads are named users.csv, groups.csv or user_groups.csv (a suffix such as \
             users_20261204.csv is fine) and are not empty",
            searched.join(", ")
        );
    }

    let uploads = selection.open()?;
    let mut progress = ProgressLine::new(std::io::stderr().is_terminal());
    let snapshot =
        read_snapshot_with_progress(uploads, &limits, &mut |update| progress.update(update))?;
    progress.clear();

    let counts = Counts {
        created: valid_users(&snapshot),
        skipped_rows: snapshot.skipped_rows,
        ..Counts::default()
    };
    let status = if snapshot.errors.is_empty() {
        "ok"
    } else {
        "errors"
    };

    let mut stdout = std::io::stdout().lock();
    if args.json {
        let report = CheckReport {
            status,
            files: &snapshot.files,
            counts,
            errors: &snapshot.errors,
            warnings: &snapshot.warnings,
            ignored: &selection.ignored,
        };
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write_human(&mut stdout, &snapshot, &selection.ignored)?;
    }
    stdout.flush()?;

    let exit = if snapshot.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEMS)
    };

    // The process ends right after this, so freeing a million records one
    // by one would only add time (about a third of a large check).
    std::mem::forget(snapshot);
    Ok(exit)
}

fn valid_users(snapshot: &Snapshot) -> u64 {
    match &snapshot.users {
        KindSnapshot::Accepted(users) => users.users.len() as u64,
        _ => 0,
    }
}

fn write_human(
    out: &mut impl Write,
    snapshot: &Snapshot,
    ignored: &[IgnoredFile],
) -> std::io::Result<()> {
    for file in &snapshot.files {
        let outcome = if file.accepted {
            "accepted"
        } else {
            "REJECTED"
        };
        writeln!(
            out,
            "{}: {}, {}, delimiter {}, {} rows, {} bytes, {outcome}",
            file.name,
            file.kind.as_str(),
            file.encoding,
            if file.delimiter.is_empty() {
                "unknown"
            } else {
                &file.delimiter
            },
            file.rows,
            file.size_bytes,
        )?;
    }
    for file in ignored {
        writeln!(out, "ignored {}: {}", file.path.display(), file.reason)?;
    }

    for error in &snapshot.errors {
        writeln!(out, "error: {}", located(error))?;
    }
    for warning in &snapshot.warnings {
        writeln!(out, "warning: {}", located(warning))?;
    }

    writeln!(out, "{}", summary_line(snapshot))
}

/// Formats a diagnostic as `file:row:line:column: message`, with `-` for a
/// missing part and trailing missing parts left out.
fn located(diagnostic: &Diagnostic) -> String {
    let mut parts = vec![
        diagnostic.file.clone(),
        diagnostic
            .row
            .map(|row| row.to_string())
            .unwrap_or_else(|| "-".to_owned()),
        diagnostic
            .line
            .map(|line| line.to_string())
            .unwrap_or_else(|| "-".to_owned()),
        diagnostic.column.clone().unwrap_or_else(|| "-".to_owned()),
    ];
    while parts.len() > 1 && parts.last().is_some_and(|part| part == "-") {
        parts.pop();
    }
    format!("{}: {}", parts.join(":"), diagnostic.message)
}

fn summary_line(snapshot: &Snapshot) -> String {
    let users = match &snapshot.users {
        KindSnapshot::Accepted(users) => format!(
            "{} valid users ({} held by row errors)",
            users.users.len(),
            users.held.len()
        ),
        KindSnapshot::Rejected => "users file rejected".to_owned(),
        KindSnapshot::Absent => "no users file".to_owned(),
    };
    let groups = match &snapshot.groups {
        KindSnapshot::Accepted(groups) => format!("{} groups", groups.groups.len()),
        KindSnapshot::Rejected => "groups file rejected".to_owned(),
        KindSnapshot::Absent => "no groups file".to_owned(),
    };
    let memberships = match &snapshot.memberships {
        KindSnapshot::Accepted(memberships) => {
            format!("{} memberships", memberships.memberships.len())
        }
        KindSnapshot::Rejected => "user_groups file rejected".to_owned(),
        KindSnapshot::Absent => "no user_groups file".to_owned(),
    };
    let status = if snapshot.errors.is_empty() {
        "ok"
    } else {
        "errors"
    };

    format!(
        "{status}: {users}, {groups}, {memberships}; {} skipped rows, {} errors, {} warnings",
        snapshot.skipped_rows,
        snapshot.errors.len(),
        snapshot.warnings.len()
    )
}

/// A progress line on stderr, redrawn in place; silent unless stderr is a terminal.
struct ProgressLine {
    enabled: bool,
    started: Instant,
    last_drawn: Option<Instant>,
    drawn: bool,
}

impl ProgressLine {
    fn new(enabled: bool) -> Self {
        Self {
            enabled,
            started: Instant::now(),
            last_drawn: None,
            drawn: false,
        }
    }

    fn update(&mut self, progress: ReadProgress<'_>) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last_drawn
            .is_some_and(|last| now.duration_since(last) < PROGRESS_INTERVAL)
        {
            return;
        }
        self.last_drawn = Some(now);

        let seconds = now.duration_since(self.started).as_secs_f64().max(0.001);
        let megabytes = progress.bytes_read as f64 / 1_000_000.0;
        eprint!(
            "\r\x1b[2K{}: {megabytes:.1} MB read, {} rows, {:.1} MB/s",
            progress.file,
            progress.rows,
            megabytes / seconds
        );
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}
