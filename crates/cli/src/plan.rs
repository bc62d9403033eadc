//! `dsync plan BEFORE AFTER`: show what syncing the uploads in AFTER onto a
//! directory built from the uploads in BEFORE would change, without any
//! stored state.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use dsync_core::event::{Event, EventKind};
use dsync_core::ids::{derived_ulid, DirectoryId};
use dsync_core::model::{Directory, DirectoryState, DirectoryStatus};
use dsync_core::plan::{plan, plan_without_events, Plan, PlanContext, PlanStatus};
use dsync_core::report::{Counts, Diagnostic, FileKind};
use dsync_core::settings::{DirectorySettings, InactiveUserPolicy};
use dsync_core::snapshot::Snapshot;
use dsync_core::time::Timestamp;
use dsync_core::upload::{read_snapshot, ReadLimits};
use serde::Serialize;
use serde_json::Value;

use crate::uploads::select_uploads;

/// The BEFORE state is planned this long before `--now`, so its records
/// carry older timestamps than the changes shown.
const BEFORE_OFFSET_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(clap::Args)]
pub struct Args {
    /// Folder (or upload files) with the uploads already synced. An empty
    /// folder means an empty directory.
    #[arg(value_name = "BEFORE")]
    before: PathBuf,

    /// Folder (or upload files) with the new uploads.
    #[arg(value_name = "AFTER")]
    after: PathBuf,

    /// Print the plan as JSON: {status, reason, files, counts, errors,
    /// warnings, events}, each event as {event, data}.
    #[arg(long)]
    json: bool,

    /// Time of the sync as RFC 3339 (for example 2026-12-04T09:00:00Z);
    /// stamped on changed records and event ids. Defaults to the current
    /// time; fix it to get the same output on every run.
    #[arg(long, value_name = "RFC3339")]
    now: Option<String>,

    /// What happens to users whose state column is inactive.
    #[arg(long, value_enum, default_value_t = InactivePolicyArg::Delete)]
    inactive_users: InactivePolicyArg,

    /// Hold the sync when it deletes or deactivates more than this
    /// percentage of the directory's users.
    #[arg(long, value_name = "PERCENT", default_value_t = DirectorySettings::default().deletion_threshold_percent)]
    deletion_threshold_percent: u8,

    /// Apply the deletion guard only to directories with at least this many users.
    #[arg(long, value_name = "USERS", default_value_t = DirectorySettings::default().deletion_minimum_users)]
    deletion_minimum_users: u32,

    /// Plan as if an operator approved a held sync: the deletion guard is skipped.
    #[arg(long)]
    approved: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum InactivePolicyArg {
    /// Delete inactive users (the default, as WorkOS does).
    Delete,
    /// Keep inactive users with state `inactive`.
    Keep,
}

#[derive(Serialize)]
struct PlanReport<'a> {
    status: PlanStatus,
    reason: Option<&'a str>,
    files: Vec<FileLine<'a>>,
    counts: &'a Counts,
    errors: &'a [Diagnostic],
    warnings: &'a [Diagnostic],
    events: Vec<EventLine<'a>>,
}

#[derive(Serialize)]
struct FileLine<'a> {
    name: &'a str,
    kind: FileKind,
    encoding: &'a str,
    delimiter: &'a str,
    rows: u64,
    accepted: bool,
}

#[derive(Serialize)]
struct EventLine<'a> {
    event: EventKind,
    data: &'a Value,
}

/// Exits 0 whenever a plan was computed, whatever its status; an unusable
/// path, a failed read or an invalid option is an `Err` (exit 1).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let now = match &args.now {
        Some(text) => Timestamp::parse(text).with_context(|| {
            format!("invalid --now value {text:?}: expected an RFC 3339 time such as 2026-12-04T09:00:00Z")
        })?,
        None => Timestamp::now(),
    };
    if args.deletion_threshold_percent > 100 {
        anyhow::bail!(
            "invalid --deletion-threshold-percent {}: expected 0 to 100",
            args.deletion_threshold_percent
        );
    }
    let directory = synthetic_directory(&args);

    // BEFORE, planned onto an empty directory and applied.
    let before = read_folder(&args.before)?;
    let before_context = PlanContext {
        directory: &directory,
        now: Timestamp::from_millis(now.millis() - BEFORE_OFFSET_MS),
        event_seed: b"dsync plan: before",
        approved: true,
    };
    let mut state = DirectoryState::default();
    // Its events are never shown, so none are built.
    let before_plan = plan_without_events(&state, &before, &before_context);
    if before_plan.status == PlanStatus::Rejected && !before.files.is_empty() {
        eprintln!(
            "note: BEFORE gives no usable users file ({}), so AFTER is planned onto an empty directory",
            before_plan.reason.as_deref().unwrap_or("rejected")
        );
    }
    before_plan.apply_into(&mut state);
    drop(before);

    // AFTER, planned onto that state: the plan shown.
    let after = read_folder(&args.after)?;
    let after_context = PlanContext {
        directory: &directory,
        now,
        event_seed: b"dsync plan: after",
        approved: args.approved,
    };
    let plan = plan(&state, &after, &after_context);

    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &json_report(&plan, &after))?;
        writeln!(stdout)?;
    } else {
        write_human(&mut stdout, &plan, &after, &state)?;
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A directory with fixed ids, so output depends only on the uploads and `--now`.
fn synthetic_directory(args: &Args) -> Directory {
    let created = Timestamp::from_millis(0);
    let settings = DirectorySettings {
        deletion_threshold_percent: args.deletion_threshold_percent,
        deletion_minimum_users: args.deletion_minimum_users,
        inactive_users: match args.inactive_users {
            InactivePolicyArg::Delete => InactiveUserPolicy::Delete,
            InactivePolicyArg::Keep => InactiveUserPolicy::Keep,
        },
    };
    Directory {
        id: DirectoryId::from_ulid(derived_ulid(0, &[b"dsync plan"])),
        organization_id: "org_dsync_plan".to_owned(),
        external_key: "dsync-plan".to_owned(),
        name: "dsync plan".to_owned(),
        status: DirectoryStatus::Linked,
        domain: None,
        sftp_username: "dsync-plan".to_owned(),
        settings,
        created_at: created,
        updated_at: created,
    }
}

/// Reads the newest upload of each kind under `path`; nothing found gives a
/// snapshot with every kind absent.
fn read_folder(path: &PathBuf) -> anyhow::Result<Snapshot> {
    let selection = select_uploads(std::slice::from_ref(path))?;
    let uploads = selection.open()?;
    Ok(read_snapshot(uploads, &ReadLimits::default())?)
}

fn json_report<'a>(plan: &'a Plan, snapshot: &'a Snapshot) -> PlanReport<'a> {
    PlanReport {
        status: plan.status,
        reason: plan.reason.as_deref(),
        files: snapshot
            .files
            .iter()
            .map(|file| FileLine {
                name: &file.name,
                kind: file.kind,
                encoding: &file.encoding,
                delimiter: &file.delimiter,
                rows: file.rows,
                accepted: file.accepted,
            })
            .collect(),
        counts: &plan.counts,
        errors: &snapshot.errors,
        warnings: &snapshot.warnings,
        events: plan
            .events()
            .map(|event| EventLine {
                event: event.event,
                data: &event.data,
            })
            .collect(),
    }
}

fn write_human(
    out: &mut impl Write,
    plan: &Plan,
    snapshot: &Snapshot,
    before: &DirectoryState,
) -> std::io::Result<()> {
    let status = match plan.status {
        PlanStatus::Applied => "applied",
        PlanStatus::Held => "held",
        PlanStatus::Rejected => "rejected",
    };
    writeln!(out, "status: {status}")?;
    if let Some(reason) = &plan.reason {
        writeln!(out, "reason: {reason}")?;
    }

    for file in &snapshot.files {
        let outcome = if file.accepted {
            "accepted"
        } else {
            "rejected"
        };
        let delimiter = match file.delimiter.as_str() {
            "" => "unknown".to_owned(),
            "\t" | "\\t" => "tab".to_owned(),
            other => format!("\"{other}\""),
        };
        writeln!(
            out,
            "file: {} ({}, {}, delimiter {delimiter}, {} rows, {outcome})",
            file.name,
            file.kind.as_str(),
            file.encoding,
            file.rows
        )?;
    }

    let counts = &plan.counts;
    writeln!(
        out,
        "users: {} created, {} updated, {} deleted, {} unchanged; {} skipped rows (directory had {} users)",
        counts.created,
        counts.updated,
        counts.deleted,
        counts.unchanged,
        counts.skipped_rows,
        before.users.len()
    )?;

    for error in &snapshot.errors {
        writeln!(out, "error: {}", located(error))?;
    }
    for warning in &snapshot.warnings {
        writeln!(out, "warning: {}", located(warning))?;
    }

    let events: Vec<&Event> = plan.events().collect();
    writeln!(out, "events: {}", events.len())?;
    for event in events {
        writeln!(out, "  {}", event_line(event))?;
    }
    Ok(())
}

/// One event as `name subject`, with the changed fields of an update.
/// Only ids and field names are printed, never field values.
fn event_line(event: &Event) -> String {
    let data = &event.data;
    let text = |value: &Value| value.as_str().unwrap_or("?").to_owned();
    let name = event.event.as_str();

    match event.event {
        EventKind::UserCreated | EventKind::UserDeleted => {
            format!(
                "{name} user {} ({})",
                text(&data["idp_id"]),
                text(&data["id"])
            )
        }
        EventKind::UserUpdated => format!(
            "{name} user {} ({}): {}",
            text(&data["idp_id"]),
            text(&data["id"]),
            changed_fields(&data["previous_attributes"])
        ),
        EventKind::GroupCreated | EventKind::GroupDeleted => {
            format!(
                "{name} group {:?} ({})",
                text(&data["name"]),
                text(&data["id"])
            )
        }
        EventKind::GroupUpdated => format!(
            "{name} group {:?} ({}): {}",
            text(&data["name"]),
            text(&data["id"]),
            changed_fields(&data["previous_attributes"])
        ),
        EventKind::GroupUserAdded | EventKind::GroupUserRemoved => format!(
            "{name} group {:?} user {}",
            text(&data["group"]["name"]),
            text(&data["user"]["idp_id"])
        ),
        EventKind::Activated | EventKind::Deleted => name.to_owned(),
    }
}

/// The keys of `previous_attributes`, nested ones as `raw_attributes.name`.
fn changed_fields(previous: &Value) -> String {
    let Some(previous) = previous.as_object() else {
        return String::new();
    };
    let mut fields = Vec::new();
    for (key, value) in previous {
        match value.as_object() {
            Some(nested) if key == "custom_attributes" || key == "raw_attributes" => {
                fields.extend(nested.keys().map(|name| format!("{key}.{name}")));
            }
            _ => fields.push(key.clone()),
        }
    }
    fields.join(", ")
}

/// Formats a diagnostic as `file:row:line:column: message`, with `-` for a
/// missing part and trailing missing parts left out.
fn located(diagnostic: &Diagnostic) -> String {
    let dash = || "-".to_owned();
    let mut parts = vec![
        diagnostic.file.clone(),
        diagnostic.row.map_or_else(dash, |row| row.to_string()),
        diagnostic.line.map_or_else(dash, |line| line.to_string()),
        diagnostic.column.clone().unwrap_or_else(dash),
    ];
    while parts.len() > 1 && parts.last().is_some_and(|part| part == "-") {
        parts.pop();
    }
    format!("{}: {}", parts.join(":"), diagnostic.message)
}
