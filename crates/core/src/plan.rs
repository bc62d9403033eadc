//! Planning: from the stored state and a snapshot to ordered changes and events.

use crate::event::Event;
use crate::ids::{GroupName, IdpId};
use crate::model::{Directory, DirectoryState, Group, User};
use crate::report::Counts;
use crate::snapshot::Snapshot;
use crate::time::Timestamp;

/// Inputs to planning besides the state and the snapshot. Ids of new records
/// and events derive from these, so planning twice gives the same plan.
#[derive(Clone, Debug)]
pub struct PlanContext<'a> {
    pub directory: &'a Directory,
    /// Time stamped on changed records and events.
    pub now: Timestamp,
    /// Seed for event ids, unique per sync (the sync id's bytes).
    pub event_seed: &'a [u8],
    /// True when an operator approved a held sync: the guard is skipped.
    pub approved: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// The plan may be committed.
    Applied,
    /// The mass-deletion guard stopped it.
    Held,
    /// No usable users file.
    Rejected,
}

/// One change to the stored state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Insert or replace a user.
    PutUser(User),
    /// Delete a user and any memberships it still has.
    DeleteUser(IdpId),
    /// Insert or replace a group.
    PutGroup(Group),
    /// Delete a group and its memberships (no `user_removed` events).
    DeleteGroup(GroupName),
    AddMembership(GroupName, IdpId),
    RemoveMembership(GroupName, IdpId),
}

/// A change and the event it emits, committed together.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub change: Change,
    pub event: Option<Event>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub status: PlanStatus,
    /// Why the plan was held or rejected.
    pub reason: Option<String>,
    /// In commit order: user creates and updates, group creates and updates,
    /// memberships added, memberships removed, group deletes, user deletes.
    pub steps: Vec<Step>,
    pub counts: Counts,
}
