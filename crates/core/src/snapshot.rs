//! A validated snapshot: what the newest uploads say the directory should be.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::ids::{GroupName, IdpId};
use crate::model::{Attributes, UserState};
use crate::report::{Diagnostic, FileSummary};

/// The desired state of one kind of record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KindSnapshot<T> {
    /// No file of this kind was uploaded: the kind is empty.
    Absent,
    /// The newest file of this kind was rejected: keep the stored state of this kind.
    Rejected,
    /// The newest file of this kind was read.
    Accepted(T),
}

/// One valid `users.csv` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub state: UserState,
    /// Every column by normalised name, values trimmed.
    pub attributes: Attributes,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsersSnapshot {
    pub users: HashMap<IdpId, UserRecord>,
    /// Ids named by rows with errors: these users keep their stored state,
    /// whatever it is (a bad row never creates, changes or deletes a user).
    pub held: HashSet<IdpId>,
    /// Rows whose field count differs from the header's (a wrong delimiter
    /// or quote), which name no user reliably. When there are any, the sync
    /// deletes no user: a user missing from the file may be on such a row.
    pub unidentified_rows: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupsSnapshot {
    /// Group name to its extra columns.
    pub groups: BTreeMap<GroupName, Attributes>,
    /// Names from rows with errors: these groups keep their stored state.
    pub held: BTreeSet<GroupName>,
    /// Rows whose field count differs from the header's. When there are
    /// any, the sync deletes no group.
    pub unidentified_rows: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipsSnapshot {
    pub memberships: BTreeSet<(GroupName, IdpId)>,
    /// Pairs named by rows with errors: they keep their stored state.
    pub held: BTreeSet<(GroupName, IdpId)>,
    /// Rows whose field count differs from the header's. When there are
    /// any, the sync removes no stored membership.
    pub unidentified_rows: u64,
}

/// Everything read from one set of uploads (the newest file of each kind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub users: KindSnapshot<UsersSnapshot>,
    pub groups: KindSnapshot<GroupsSnapshot>,
    pub memberships: KindSnapshot<MembershipsSnapshot>,
    pub files: Vec<FileSummary>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Rows skipped because of row-level errors, over all files.
    pub skipped_rows: u64,
}
