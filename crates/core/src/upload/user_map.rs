//! Building the map of valid users on a second thread while the parser reads on.
//!
//! Inserting a million ids into a hash map is mostly cache misses, about a
//! fifth of a large read. Handing rows over in batches lets that work overlap
//! with parsing when a second core is free. Without a thread (spawning
//! failed) the same work runs inline, with the same result.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use crate::ids::IdpId;
use crate::snapshot::UserRecord;

/// Rows handed to the builder at a time.
const BATCH_ROWS: usize = 4096;

/// Batches queued for the builder before the parser waits, which bounds the
/// memory in flight.
const QUEUED_BATCHES: usize = 8;

/// A row that passed validation.
pub(crate) struct ValidRow {
    pub id: IdpId,
    pub record: UserRecord,
    pub row: u64,
    pub line: u64,
}

/// The map of valid users and what is needed to report repeated ids.
#[derive(Default)]
pub(crate) struct BuiltUsers {
    /// The first copy of every id.
    pub users: HashMap<IdpId, UserRecord>,
    /// Ids found on more than one valid row.
    pub repeated: HashSet<IdpId>,
    /// Every valid row's id and position (data row, line), in file order.
    pub positions: Vec<(IdpId, u64, u64)>,
}

impl BuiltUsers {
    fn add(&mut self, rows: Vec<ValidRow>) {
        self.positions.reserve(rows.len());
        for row in rows {
            match self.users.entry(row.id.clone()) {
                Entry::Vacant(entry) => {
                    entry.insert(row.record);
                }
                Entry::Occupied(_) => {
                    self.repeated.insert(row.id.clone());
                }
            }
            self.positions.push((row.id, row.row, row.line));
        }
    }
}

enum Worker {
    Thread {
        sender: SyncSender<Vec<ValidRow>>,
        handle: JoinHandle<BuiltUsers>,
    },
    Inline(BuiltUsers),
}

/// Collects valid rows into batches and feeds them to the builder.
#[derive(Default)]
pub(crate) struct UserMapBuilder {
    batch: Vec<ValidRow>,
    /// Started with the first full batch, so small files never spawn a thread.
    worker: Option<Worker>,
}

impl UserMapBuilder {
    pub(crate) fn push(&mut self, row: ValidRow) {
        self.batch.push(row);
        if self.batch.len() >= BATCH_ROWS {
            self.flush();
        }
    }

    /// Waits for the builder and returns its result.
    pub(crate) fn finish(mut self) -> BuiltUsers {
        let last = std::mem::take(&mut self.batch);
        match self.worker {
            None => {
                let mut built = BuiltUsers::default();
                built.add(last);
                built
            }
            Some(Worker::Inline(mut built)) => {
                built.add(last);
                built
            }
            Some(Worker::Thread { sender, handle }) => {
                // A failed send means the builder panicked, and joining re-raises that panic.
                let _ = sender.send(last);
                drop(sender);
                match handle.join() {
                    Ok(built) => built,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        }
    }

    fn flush(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_ROWS));
        let worker = self.worker.get_or_insert_with(start_worker);
        match worker {
            Worker::Thread { sender, .. } => {
                let _ = sender.send(batch);
            }
            Worker::Inline(built) => built.add(batch),
        }
    }
}

fn start_worker() -> Worker {
    let (sender, receiver) = sync_channel::<Vec<ValidRow>>(QUEUED_BATCHES);
    let spawned = std::thread::Builder::new()
        .name("dsync-user-map".to_owned())
        .spawn(move || {
            let mut built = BuiltUsers::default();
            for batch in receiver {
                built.add(batch);
            }
            built
        });

    match spawned {
        Ok(handle) => Worker::Thread { sender, handle },
        Err(_) => Worker::Inline(BuiltUsers::default()),
    }
}
