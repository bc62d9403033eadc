//! `dsync-bench`: times `check` (reading and validating uploads) and `plan`
//! on folders written by `dsync-gen`, and reports peak memory.
//!
//! Run each measurement in its own process, because the peak resident size
//! (`VmHWM`) only ever grows within one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dsync_bench::{cpu_seconds, current_rss_bytes, peak_rss_bytes};
use dsync_core::ids::DirectoryId;
use dsync_core::model::{Directory, DirectoryState, DirectoryStatus};
use dsync_core::plan::{plan, plan_without_events, PlanContext};
use dsync_core::settings::DirectorySettings;
use dsync_core::snapshot::Snapshot;
use dsync_core::time::Timestamp;
use dsync_core::upload::{file_kind, read_snapshot, ReadLimits, Upload};
use ulid::Ulid;

#[derive(Parser)]
#[command(
    name = "dsync-bench",
    about = "Time check and plan on generated folders"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read and validate every upload in FOLDER, repeated --runs times; report MB/s.
    Check {
        folder: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// Load BEFORE as the stored state, read AFTER, and time planning AFTER onto it.
    Plan {
        before: PathBuf,
        after: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
}

const MIB: f64 = 1024.0 * 1024.0;

/// Counts live heap bytes, so each stage can report what its data holds
/// apart from memory the allocator keeps after frees (which `VmRSS` includes).
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc(layout);
        if !pointer.is_null() {
            let live = LIVE_BYTES.fetch_add(layout.size(), AtomicOrdering::Relaxed) + layout.size();
            PEAK_LIVE_BYTES.fetch_max(live, AtomicOrdering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        System.dealloc(pointer, layout);
        LIVE_BYTES.fetch_sub(layout.size(), AtomicOrdering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_pointer = System.realloc(pointer, layout, new_size);
        if !new_pointer.is_null() {
            if new_size >= layout.size() {
                let live = LIVE_BYTES.fetch_add(new_size - layout.size(), AtomicOrdering::Relaxed)
                    + new_size
                    - layout.size();
                PEAK_LIVE_BYTES.fetch_max(live, AtomicOrdering::Relaxed);
            } else {
                LIVE_BYTES.fetch_sub(layout.size() - new_size, AtomicOrdering::Relaxed);
            }
        }
        new_pointer
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Live heap, peak live heap since start, and resident size, in MiB.
fn memory() -> String {
    format!(
        "heap {:.0} MiB (peak {:.0} MiB), RSS {:.0} MiB (peak {:.0} MiB)",
        LIVE_BYTES.load(AtomicOrdering::Relaxed) as f64 / MIB,
        PEAK_LIVE_BYTES.load(AtomicOrdering::Relaxed) as f64 / MIB,
        current_rss_bytes().unwrap_or(0) as f64 / MIB,
        peak_rss_bytes().unwrap_or(0) as f64 / MIB
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Check { folder, runs } => check(&folder, runs),
        Command::Plan {
            before,
            after,
            runs,
        } => plan_folders(&before, &after, runs),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// The recognised uploads of a folder, with their total size in bytes.
fn uploads(folder: &Path) -> anyhow::Result<(Vec<Upload<'static>>, u64)> {
    let mut entries: Vec<PathBuf> = fs::read_dir(folder)
        .with_context(|| format!("cannot list {}", folder.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();

    let mut uploads = Vec::new();
    let mut total = 0;
    for path in entries {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some(kind) = file_kind(&name) else {
            continue;
        };
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata()?.len();
        total += size;
        uploads.push(Upload::with_kind(name, kind, file).size_bytes(size));
    }
    Ok((uploads, total))
}

fn read_folder(folder: &Path) -> anyhow::Result<(Snapshot, u64)> {
    let (uploads, bytes) = uploads(folder)?;
    // The generated user_groups.csv of 1M users has 3M rows, over the
    // service's default row limit, so the benchmark raises it.
    let limits = ReadLimits {
        max_rows: 20_000_000,
        ..ReadLimits::default()
    };
    let snapshot = read_snapshot(uploads, &limits)?;
    Ok((snapshot, bytes))
}

fn check(folder: &Path, runs: u32) -> anyhow::Result<()> {
    let mut best = f64::MAX;
    for run in 1..=runs {
        let started = Instant::now();
        let cpu_before = cpu_seconds().unwrap_or(0.0);
        let (snapshot, bytes) = read_folder(folder)?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds().unwrap_or(0.0) - cpu_before;
        best = best.min(seconds);

        let rows: u64 = snapshot.files.iter().map(|file| file.rows).sum();
        println!(
            "check run {run}: {} files, {rows} rows, {:.1} MiB in {seconds:.3} s ({cpu:.2} s CPU) = {:.1} MiB/s, {} errors",
            snapshot.files.len(),
            bytes as f64 / MIB,
            bytes as f64 / MIB / seconds,
            snapshot.errors.len()
        );
        let (_, bytes) = uploads(folder)?;
        if run == runs {
            println!(
                "check best: {:.1} MiB/s; {}",
                bytes as f64 / MIB / best,
                memory()
            );
        }
    }
    Ok(())
}

fn bench_directory() -> Directory {
    let created = Timestamp::from_millis(1_767_225_600_000);
    Directory {
        id: DirectoryId::from_ulid(Ulid::from_parts(created.millis() as u64, 1)),
        organization_id: "org_bench".to_owned(),
        external_key: "bench".to_owned(),
        name: "Benchmark".to_owned(),
        status: DirectoryStatus::Linked,
        domain: None,
        sftp_username: "bench".to_owned(),
        settings: DirectorySettings::default(),
        created_at: created,
        updated_at: created,
    }
}

fn plan_folders(before: &Path, after: &Path, runs: u32) -> anyhow::Result<()> {
    let directory = bench_directory();
    let first_now = Timestamp::from_millis(1_767_312_000_000);
    let second_now = Timestamp::from_millis(1_767_398_400_000);

    // The stored state: BEFORE planned onto an empty directory, without
    // events, and moved into place.
    let started = Instant::now();
    let (snapshot, _) = read_folder(before)?;
    let context = PlanContext {
        directory: &directory,
        now: first_now,
        event_seed: b"before",
        approved: true,
    };
    let mut state = DirectoryState::default();
    plan_without_events(&state, &snapshot, &context).apply_into(&mut state);
    drop(snapshot);
    println!(
        "loaded state: {} users, {} groups, {} memberships in {:.2} s; {}",
        state.users.len(),
        state.groups.len(),
        state.memberships.len(),
        started.elapsed().as_secs_f64(),
        memory()
    );

    let started = Instant::now();
    let (snapshot, bytes) = read_folder(after)?;
    println!(
        "read after: {:.1} MiB in {:.2} s; {}",
        bytes as f64 / MIB,
        started.elapsed().as_secs_f64(),
        memory()
    );

    let context = PlanContext {
        directory: &directory,
        now: second_now,
        event_seed: b"after",
        approved: false,
    };
    // From here the heap peak covers the planning alone.
    PEAK_LIVE_BYTES.store(
        LIVE_BYTES.load(AtomicOrdering::Relaxed),
        AtomicOrdering::Relaxed,
    );
    let mut best = f64::MAX;
    for run in 1..=runs {
        let started = Instant::now();
        let cpu_before = cpu_seconds().unwrap_or(0.0);
        let plan = plan(&state, &snapshot, &context);
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds().unwrap_or(0.0) - cpu_before;
        best = best.min(seconds);
        println!(
            "plan run {run}: {:.3} s ({cpu:.2} s CPU), status {:?}, {} steps, counts {:?}; {}",
            seconds,
            plan.status,
            plan.steps.len(),
            plan.counts,
            memory()
        );
    }
    println!(
        "plan best: {best:.3} s; {} (heap peak since reading AFTER)",
        memory()
    );
    Ok(())
}
