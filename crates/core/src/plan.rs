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

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Bound;

use serde_json::Value;
use ulid::Ulid;

use crate::event::EventKind;
use crate::ids::{derived_ulid, EventId, GroupId, UserId};
use crate::model::{Attributes, UserState};
use crate::settings::InactiveUserPolicy;
use crate::snapshot::{KindSnapshot, MembershipsSnapshot, UserRecord, UsersSnapshot};
use crate::wire::{group_json, previous_attributes, user_json, Owner};

/// Computes the steps that bring `state` to what `snapshot` describes, with
/// their events, the user counts and the guard's verdict.
///
/// Pure and deterministic. New ids derive from the directory id, the key
/// (`idp_id` or group name) and `ctx.now`. Event ids derive from `ctx.now`
/// and `ctx.event_seed` and increase in step order.
///
/// Rules beyond the field docs of [`Snapshot`]:
/// - Without an accepted users file the plan is `Rejected` with no steps.
/// - Groups come from the newest `groups.csv`, whose extra columns are the
///   group's attributes. A group named in a valid `user_groups.csv` row but
///   not listed in `groups.csv` (or with no `groups.csv` at all) exists too,
///   with no attributes, because the uploader plainly expects it to. A group
///   held by a bad `groups.csv` row, and every stored group when
///   `groups.csv` was rejected, keeps its stored attributes.
/// - A membership exists after the sync only when both its user and its
///   group do. Memberships of held users and of held rows keep their stored
///   state within that rule.
/// - `Counts` counts users only: created, updated (deactivations included),
///   deleted (inactive users deleted by the policy included) and unchanged
///   (held users that exist included). Group and membership changes show as
///   steps and events only.
/// - The plan is `Held`, with its steps, when it deletes or deactivates more
///   than `deletion_threshold_percent` of the current users of a directory
///   with at least `deletion_minimum_users`, unless `ctx.approved`.
/// - Whatever the directory's size, the plan is also `Held` (unless
///   `ctx.approved`) when the users file has no data rows while the
///   directory has users, or when it deletes or deactivates every user.
/// - When the users file has unidentified rows (a field count that differs
///   from the header's), no stored user missing from the file is deleted:
///   such users and their memberships keep their stored state, counted as
///   unchanged. Creates and updates of valid rows still apply.
pub fn plan(state: &DirectoryState, snapshot: &Snapshot, ctx: &PlanContext<'_>) -> Plan {
    Planner::new(state, snapshot, ctx, true).run()
}

/// Computes the same plan as [`plan`] but leaves every `event` empty.
///
/// Event payloads cost several kilobytes per changed record, so callers that
/// only need the resulting state (loading a large starting state for a
/// comparison or a benchmark) use this instead.
pub fn plan_without_events(
    state: &DirectoryState,
    snapshot: &Snapshot,
    ctx: &PlanContext<'_>,
) -> Plan {
    Planner::new(state, snapshot, ctx, false).run()
}

impl Plan {
    /// Applies the steps to an in-memory state, in order, whatever the
    /// status: the caller decides whether a held plan may be applied.
    pub fn apply_to(&self, state: &mut DirectoryState) {
        let mut deleted_users: HashSet<&IdpId> = HashSet::new();

        for step in &self.steps {
            match &step.change {
                Change::PutUser(user) => {
                    state.users.insert(user.idp_id.clone(), user.clone());
                }
                Change::DeleteUser(idp_id) => {
                    state.users.remove(idp_id);
                    deleted_users.insert(idp_id);
                }
                Change::PutGroup(group) => {
                    state.groups.insert(group.name.clone(), group.clone());
                }
                Change::DeleteGroup(name) => {
                    state.groups.remove(name);
                    remove_group_memberships(state, name);
                }
                Change::AddMembership(group, user) => {
                    state.memberships.insert((group.clone(), user.clone()));
                }
                Change::RemoveMembership(group, user) => {
                    state.memberships.remove(&(group.clone(), user.clone()));
                }
            }
        }

        // One sweep for all deleted users instead of one scan per user.
        if !deleted_users.is_empty() {
            state
                .memberships
                .retain(|(_, user)| !deleted_users.contains(user));
        }
    }

    /// Applies the steps like [`Plan::apply_to`], moving records into the
    /// state instead of cloning them.
    pub fn apply_into(self, state: &mut DirectoryState) {
        let mut deleted_users: HashSet<IdpId> = HashSet::new();

        for step in self.steps {
            match step.change {
                Change::PutUser(user) => {
                    state.users.insert(user.idp_id.clone(), user);
                }
                Change::DeleteUser(idp_id) => {
                    state.users.remove(&idp_id);
                    deleted_users.insert(idp_id);
                }
                Change::PutGroup(group) => {
                    state.groups.insert(group.name.clone(), group);
                }
                Change::DeleteGroup(name) => {
                    state.groups.remove(&name);
                    remove_group_memberships(state, &name);
                }
                Change::AddMembership(group, user) => {
                    state.memberships.insert((group, user));
                }
                Change::RemoveMembership(group, user) => {
                    state.memberships.remove(&(group, user));
                }
            }
        }

        if !deleted_users.is_empty() {
            state
                .memberships
                .retain(|(_, user)| !deleted_users.contains(user));
        }
    }

    /// The events in commit order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.steps.iter().filter_map(|step| step.event.as_ref())
    }
}

fn remove_group_memberships(state: &mut DirectoryState, name: &GroupName) {
    // Memberships sort by group first, and the empty id sorts before every
    // other, so the group's pairs form one range starting here.
    let start = (name.clone(), IdpId::new(""));
    let members: Vec<(GroupName, IdpId)> = state
        .memberships
        .range(start..)
        .take_while(|(group, _)| group == name)
        .cloned()
        .collect();
    for pair in members {
        state.memberships.remove(&pair);
    }
}

/// Source of a group's desired attributes.
#[derive(Clone, Copy)]
enum GroupSource<'s> {
    /// Listed in `groups.csv`.
    File(&'s Attributes),
    /// Named only in `user_groups.csv`: no attributes.
    Membership,
    /// Held or kept by a rejected `groups.csv`: the stored group as it is.
    Stored,
}

/// A user create or update, before it becomes a step.
enum UserPut<'s> {
    Create(&'s IdpId, &'s UserRecord),
    Update(&'s User, &'s UserRecord),
}

impl<'s> UserPut<'s> {
    fn idp_id(&self) -> &'s IdpId {
        match self {
            UserPut::Create(idp_id, _) => idp_id,
            UserPut::Update(user, _) => &user.idp_id,
        }
    }
}

/// Membership changes found by comparing the desired and stored pairs.
#[derive(Default)]
struct MembershipDiff<'s> {
    added: Vec<&'s (GroupName, IdpId)>,
    /// Removed pairs whose group stays, in pair order. Pairs of deleted
    /// groups are left to the group delete, which emits no `user_removed`.
    removed: Vec<&'s (GroupName, IdpId)>,
}

struct Planner<'s> {
    state: &'s DirectoryState,
    snapshot: &'s Snapshot,
    ctx: &'s PlanContext<'s>,
    with_events: bool,
    owner: Owner<'s>,
    now_ms: u64,
    event_base: u128,
    steps: Vec<Step>,
}

static NO_MEMBERSHIPS: MembershipsSnapshot = MembershipsSnapshot {
    memberships: std::collections::BTreeSet::new(),
    held: std::collections::BTreeSet::new(),
    unidentified_rows: 0,
};

/// Event ids use 80 random bits. Keeping the base below 2^79 leaves room to
/// add a step index without overflowing into the timestamp.
const EVENT_BASE_MASK: u128 = (1u128 << 79) - 1;

impl<'s> Planner<'s> {
    fn new(
        state: &'s DirectoryState,
        snapshot: &'s Snapshot,
        ctx: &'s PlanContext<'s>,
        with_events: bool,
    ) -> Self {
        let now_ms = u64::try_from(ctx.now.millis()).unwrap_or(0);
        let event_base =
            derived_ulid(now_ms, &[b"event", ctx.event_seed]).random() & EVENT_BASE_MASK;

        Self {
            state,
            snapshot,
            ctx,
            with_events,
            owner: Owner::of(ctx.directory),
            now_ms,
            event_base,
            steps: Vec::new(),
        }
    }

    fn run(mut self) -> Plan {
        let mut counts = Counts {
            skipped_rows: self.snapshot.skipped_rows,
            ..Counts::default()
        };

        let users = match &self.snapshot.users {
            KindSnapshot::Accepted(users) => users,
            KindSnapshot::Absent => {
                return rejected(
                    "no users file: upload users.csv (required columns user_id, first_name, last_name, email); nothing was changed",
                    counts,
                )
            }
            KindSnapshot::Rejected => {
                return rejected(
                    "the newest users file was rejected (see the errors): fix it and upload it again; nothing was changed",
                    counts,
                )
            }
        };

        // Decide every user first, because the guard and the membership
        // rules need the whole picture before any step is built.
        let policy = self.ctx.directory.settings.inactive_users;
        let UserDecisions {
            mut puts,
            mut deletes,
            unchanged,
            deactivated,
        } = decide_users(self.state, users, policy);
        counts.unchanged = unchanged;

        puts.sort_unstable_by(|a, b| a.idp_id().cmp(b.idp_id()));
        deletes.sort_unstable_by(|a, b| a.idp_id.cmp(&b.idp_id));
        counts.created = puts
            .iter()
            .filter(|put| matches!(put, UserPut::Create(..)))
            .count() as u64;
        counts.updated = puts.len() as u64 - counts.created;
        counts.deleted = deletes.len() as u64;

        let (status, reason) = match self.empty_file_hold(users) {
            Some(reason) => (PlanStatus::Held, Some(reason)),
            None => self.guard(deletes.len() as u64 + deactivated),
        };

        // Groups and memberships after the sync.
        let desired_groups = self.desired_groups();
        let memberships = self.diff_memberships(users, policy, &desired_groups, &deletes);

        // Steps, in commit order.
        let new_users = self.push_user_puts(&puts);
        let new_groups = self.push_group_puts(&desired_groups);
        self.push_memberships(&memberships, &new_users, &new_groups);
        self.push_group_deletes(&desired_groups);
        for user in deletes {
            let event =
                self.event_for(EventKind::UserDeleted, || user_json(user, self.owner, None));
            self.steps.push(Step {
                change: Change::DeleteUser(user.idp_id.clone()),
                event,
            });
        }

        Plan {
            status,
            reason,
            steps: self.steps,
            counts,
        }
    }

    /// Returns the reason to hold a plan whose users file has no data rows
    /// while the directory has users, whatever its size: such a file is far
    /// more often a broken export than a real request to delete everyone.
    fn empty_file_hold(&self, users: &UsersSnapshot) -> Option<String> {
        let current = self.state.users.len();
        let no_rows =
            users.users.is_empty() && users.held.is_empty() && users.unidentified_rows == 0;
        if self.ctx.approved || current == 0 || !no_rows {
            return None;
        }
        Some(format!(
            "held because the users file has no data rows, so this sync would delete all {current} users of the \
             directory; nothing was applied. Upload a users.csv that lists the users, or, if the directory \
             really should be emptied, approve it with `dsync sync approve SYNC_ID` or through the API's sync \
             approve request"
        ))
    }

    /// Holds the plan when it removes more than the threshold share of the
    /// directory's current users, or every user of a directory that has
    /// any, unless an operator approved it.
    fn guard(&self, removed: u64) -> (PlanStatus, Option<String>) {
        let settings = &self.ctx.directory.settings;
        let current = self.state.users.len() as u64;
        let threshold = u64::from(settings.deletion_threshold_percent);

        if !self.ctx.approved && current > 0 && removed >= current {
            let reason = format!(
                "held because this sync would delete or deactivate all {current} users of the directory; nothing \
                 was applied. If the upload is right, approve it with `dsync sync approve SYNC_ID` or through the \
                 API's sync approve request; otherwise upload a corrected users.csv"
            );
            return (PlanStatus::Held, Some(reason));
        }

        let over = removed * 100 > threshold * current;
        if self.ctx.approved || current < u64::from(settings.deletion_minimum_users) || !over {
            return (PlanStatus::Applied, None);
        }

        let percent = removed * 100 / current;
        let reason = format!(
            "held by the mass-deletion guard: this sync would delete or deactivate {removed} of the directory's {current} users ({percent}%), more than the {threshold}% threshold; nothing was applied. If the upload is right, approve it with `dsync sync approve SYNC_ID` or through the API's sync approve request; otherwise upload a corrected users.csv"
        );
        (PlanStatus::Held, Some(reason))
    }

    fn desired_groups(&self) -> BTreeMap<&'s GroupName, GroupSource<'s>> {
        let state = self.state;
        let mut desired: BTreeMap<&'s GroupName, GroupSource<'s>> = BTreeMap::new();

        match &self.snapshot.groups {
            KindSnapshot::Accepted(groups) => {
                for (name, attributes) in &groups.groups {
                    if !groups.held.contains(name) {
                        desired.insert(name, GroupSource::File(attributes));
                    }
                }
                for name in &groups.held {
                    if let Some((stored_name, _)) = state.groups.get_key_value(name) {
                        desired.insert(stored_name, GroupSource::Stored);
                    }
                }
                // An unreadable row may name any group the file lacks.
                if groups.unidentified_rows > 0 {
                    for name in state.groups.keys() {
                        desired.entry(name).or_insert(GroupSource::Stored);
                    }
                }
            }
            KindSnapshot::Rejected => {
                for name in state.groups.keys() {
                    desired.insert(name, GroupSource::Stored);
                }
            }
            KindSnapshot::Absent => {}
        }

        if let KindSnapshot::Accepted(memberships) = &self.snapshot.memberships {
            // Pairs sort by group first, so jumping past each group's pairs
            // visits every group name once without reading every pair.
            // `name + "\0"` is the smallest name sorting after `name`.
            let mut cursor = memberships.memberships.iter().next();
            while let Some((group, _)) = cursor {
                desired.entry(group).or_insert(GroupSource::Membership);
                let mut successor = String::with_capacity(group.as_str().len() + 1);
                successor.push_str(group.as_str());
                successor.push('\0');
                let start = (GroupName::new(&successor), IdpId::new(""));
                cursor = memberships.memberships.range(start..).next();
            }
        }
        desired
    }

    /// Compares the desired memberships with the stored ones by merging the
    /// two sorted sets. The sets are cut at the same pairs into parts that
    /// merge in parallel, and the parts' results join in pair order.
    fn diff_memberships(
        &self,
        users: &'s UsersSnapshot,
        policy: InactiveUserPolicy,
        groups: &BTreeMap<&'s GroupName, GroupSource<'s>>,
        deletes: &[&'s User],
    ) -> MembershipDiff<'s> {
        let (uploaded, keep_stored) = match &self.snapshot.memberships {
            // An unreadable row may name any pair the file lacks.
            KindSnapshot::Accepted(memberships) => (memberships, memberships.unidentified_rows > 0),
            KindSnapshot::Rejected => (&NO_MEMBERSHIPS, true),
            KindSnapshot::Absent => (&NO_MEMBERSHIPS, false),
        };
        let rules = MembershipRules {
            state: self.state,
            users,
            policy,
            groups,
            uploaded,
            keep_stored,
            keep_unlisted_users: users.unidentified_rows > 0,
            deleted_users: deletes.iter().map(|user| user.idp_id.as_str()).collect(),
        };

        let stored = &self.state.memberships;
        let workers = worker_count(
            stored.len().max(uploaded.memberships.len()),
            PARALLEL_MINIMUM,
        );
        let cuts: Vec<&'s (GroupName, IdpId)> = if workers > 1 {
            let step = stored.len().div_ceil(workers).max(1);
            stored.iter().step_by(step).skip(1).collect()
        } else {
            Vec::new()
        };

        let mut bounds: Vec<(Bound<&(GroupName, IdpId)>, Bound<&(GroupName, IdpId)>)> = Vec::new();
        let mut lower = Bound::Unbounded;
        for cut in cuts {
            bounds.push((lower, Bound::Excluded(cut)));
            lower = Bound::Included(cut);
        }
        bounds.push((lower, Bound::Unbounded));

        let parts: Vec<MembershipDiff<'s>> = if bounds.len() == 1 {
            vec![rules.merge(stored.iter(), uploaded.memberships.iter())]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = bounds
                    .iter()
                    .map(|range| {
                        let rules = &rules;
                        scope.spawn(move || {
                            rules.merge(stored.range(*range), uploaded.memberships.range(*range))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| {
                        handle
                            .join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect()
            })
        };

        let mut diff = MembershipDiff::default();
        for part in parts {
            diff.added.extend(part.added);
            diff.removed.extend(part.removed);
        }
        diff
    }

    /// Pushes user creates and updates; returns the new records by `idp_id`
    /// (as indexes into the steps) for the membership events.
    fn push_user_puts(&mut self, puts: &[UserPut<'s>]) -> HashMap<&'s str, usize> {
        let first = self.steps.len();
        let mut index = HashMap::with_capacity(puts.len());
        let mut work: Vec<(usize, &UserPut<'s>)> = Vec::with_capacity(puts.len());
        for (offset, put) in puts.iter().enumerate() {
            index.insert(put.idp_id().as_str(), first + offset);
            work.push((first + offset, put));
        }

        if work.len() < self.parallel_minimum() {
            for (step, put) in work {
                let built = self.user_put_step(step, put);
                self.steps.push(built);
            }
            return index;
        }

        let this = &*self;
        let parts = map_chunks(&work, JSON_PARALLEL_MINIMUM, |part| {
            part.iter()
                .map(|&(step, put)| this.user_put_step(step, put))
                .collect::<Vec<Step>>()
        });
        self.steps.reserve(work.len());
        for part in parts {
            self.steps.extend(part);
        }
        index
    }

    /// Returns how many steps make building them on several threads worthwhile.
    /// Parallel chunks hold a second copy of their steps until joined, which
    /// pays off only when payloads are built.
    fn parallel_minimum(&self) -> usize {
        if self.with_events {
            JSON_PARALLEL_MINIMUM
        } else {
            usize::MAX
        }
    }

    /// Builds the step at position `step` that creates or updates a user.
    fn user_put_step(&self, step: usize, put: &UserPut<'s>) -> Step {
        let now = self.ctx.now;
        let (user, kind, before) = match put {
            UserPut::Create(idp_id, record) => {
                let ulid = derived_ulid(
                    self.now_ms,
                    &[
                        self.ctx.directory.id.as_str().as_bytes(),
                        b"user",
                        idp_id.as_str().as_bytes(),
                    ],
                );
                let user = User {
                    id: UserId::from_ulid(ulid),
                    idp_id: (*idp_id).clone(),
                    state: record.state,
                    attributes: record.attributes.clone(),
                    created_at: now,
                    updated_at: now,
                };
                (user, EventKind::UserCreated, None)
            }
            UserPut::Update(stored, record) => {
                let user = User {
                    id: stored.id.clone(),
                    idp_id: stored.idp_id.clone(),
                    state: record.state,
                    attributes: record.attributes.clone(),
                    created_at: stored.created_at,
                    updated_at: now,
                };
                (user, EventKind::UserUpdated, Some(*stored))
            }
        };

        let event = self.with_events.then(|| {
            let data = with_previous(
                user_json(&user, self.owner, None),
                before.map(|old| user_json(old, self.owner, None)),
            );
            self.event_at(step, kind, data)
        });
        Step {
            change: Change::PutUser(user),
            event,
        }
    }

    fn push_group_puts(
        &mut self,
        desired: &BTreeMap<&'s GroupName, GroupSource<'s>>,
    ) -> HashMap<&'s str, usize> {
        let mut index = HashMap::new();
        let now = self.ctx.now;
        let no_attributes = Attributes::default();

        for (&name, source) in desired {
            let attributes = match source {
                GroupSource::File(attributes) => *attributes,
                GroupSource::Membership => &no_attributes,
                GroupSource::Stored => continue,
            };

            let stored = self.state.groups.get(name);
            let (group, kind) = match stored {
                Some(stored) if stored.attributes == *attributes => continue,
                Some(stored) => {
                    let group = Group {
                        id: stored.id.clone(),
                        name: stored.name.clone(),
                        attributes: attributes.clone(),
                        created_at: stored.created_at,
                        updated_at: now,
                    };
                    (group, EventKind::GroupUpdated)
                }
                None => {
                    let ulid = derived_ulid(
                        self.now_ms,
                        &[
                            self.ctx.directory.id.as_str().as_bytes(),
                            b"group",
                            name.as_str().as_bytes(),
                        ],
                    );
                    let group = Group {
                        id: GroupId::from_ulid(ulid),
                        name: name.clone(),
                        attributes: attributes.clone(),
                        created_at: now,
                        updated_at: now,
                    };
                    (group, EventKind::GroupCreated)
                }
            };

            index.insert(name.as_str(), self.steps.len());
            let owner = self.owner;
            let event = self.event_for(kind, || {
                with_previous(
                    group_json(&group, owner),
                    stored.map(|old| group_json(old, owner)),
                )
            });
            self.steps.push(Step {
                change: Change::PutGroup(group),
                event,
            });
        }
        index
    }

    /// Pushes membership adds, then removes, building their payloads on
    /// parallel threads when there are many.
    fn push_memberships(
        &mut self,
        memberships: &MembershipDiff<'s>,
        new_users: &HashMap<&'s str, usize>,
        new_groups: &HashMap<&'s str, usize>,
    ) {
        let first = self.steps.len();
        let added = memberships
            .added
            .iter()
            .map(|pair| (*pair, EventKind::GroupUserAdded));
        let removed = memberships
            .removed
            .iter()
            .map(|pair| (*pair, EventKind::GroupUserRemoved));
        let work: Vec<(usize, &'s (GroupName, IdpId), EventKind)> = added
            .chain(removed)
            .enumerate()
            .map(|(offset, (pair, kind))| (first + offset, pair, kind))
            .collect();

        if work.len() < self.parallel_minimum() {
            let mut cache = JsonCache::default();
            for (step, pair, kind) in work {
                let built =
                    self.membership_step(step, pair, kind, new_users, new_groups, &mut cache);
                self.steps.push(built);
            }
            return;
        }

        let this = &*self;
        let parts = map_chunks(&work, JSON_PARALLEL_MINIMUM, |part| {
            let mut cache = JsonCache::default();
            part.iter()
                .map(|&(step, pair, kind)| {
                    this.membership_step(step, pair, kind, new_users, new_groups, &mut cache)
                })
                .collect::<Vec<Step>>()
        });
        self.steps.reserve(work.len());
        for part in parts {
            self.steps.extend(part);
        }
    }

    /// Builds the step at position `step` that adds or removes a membership.
    fn membership_step(
        &self,
        step: usize,
        pair: &(GroupName, IdpId),
        kind: EventKind,
        new_users: &HashMap<&'s str, usize>,
        new_groups: &HashMap<&'s str, usize>,
        cache: &mut JsonCache,
    ) -> Step {
        let change = match kind {
            EventKind::GroupUserAdded => Change::AddMembership(pair.0.clone(), pair.1.clone()),
            _ => Change::RemoveMembership(pair.0.clone(), pair.1.clone()),
        };
        if !self.with_events {
            return Step {
                change,
                event: None,
            };
        }

        // The user and group as they are after the sync: the new record when
        // this plan puts one, else the stored one.
        let user = cache.user(pair.1.as_str(), || {
            let record = match new_users.get(pair.1.as_str()) {
                Some(&index) => put_user(&self.steps[index]),
                None => self.state.users.get(&pair.1),
            };
            record.map_or(Value::Null, |user| user_json(user, self.owner, None))
        });
        let group = cache.group(pair.0.as_str(), || {
            let record = match new_groups.get(pair.0.as_str()) {
                Some(&index) => put_group(&self.steps[index]),
                None => self.state.groups.get(&pair.0),
            };
            record.map_or(Value::Null, |group| group_json(group, self.owner))
        });
        let data = serde_json::json!({
            "directory_id": self.ctx.directory.id,
            "user": user,
            "group": group,
        });
        Step {
            change,
            event: Some(self.event_at(step, kind, data)),
        }
    }

    fn push_group_deletes(&mut self, desired: &BTreeMap<&'s GroupName, GroupSource<'s>>) {
        for (name, group) in &self.state.groups {
            if desired.contains_key(name) {
                continue;
            }
            let event = self.event_for(EventKind::GroupDeleted, || group_json(group, self.owner));
            self.steps.push(Step {
                change: Change::DeleteGroup(name.clone()),
                event,
            });
        }
    }

    /// Builds the event for the next step when events are on.
    fn event_for(&self, kind: EventKind, data: impl FnOnce() -> Value) -> Option<Event> {
        self.with_events.then(|| self.event(kind, data()))
    }

    /// Builds the event of the step about to be pushed: its id sorts after
    /// the ids of all earlier steps.
    fn event(&self, kind: EventKind, data: Value) -> Event {
        self.event_at(self.steps.len(), kind, data)
    }

    /// Builds the event of the step at position `step`: event ids increase
    /// with the step position.
    fn event_at(&self, step: usize, kind: EventKind, data: Value) -> Event {
        let random = self.event_base + step as u128;
        Event {
            id: EventId::from_ulid(Ulid::from_parts(self.now_ms, random)),
            event: kind,
            directory_id: Some(self.ctx.directory.id.clone()),
            organization_id: Some(self.ctx.directory.organization_id.clone()),
            data,
            created_at: self.ctx.now,
        }
    }
}

/// Decides, pair by pair, which memberships exist after the sync.
struct MembershipRules<'s, 'g> {
    state: &'s DirectoryState,
    users: &'s UsersSnapshot,
    policy: InactiveUserPolicy,
    groups: &'g BTreeMap<&'s GroupName, GroupSource<'s>>,
    uploaded: &'s MembershipsSnapshot,
    /// True when `user_groups.csv` was rejected or has unidentified rows:
    /// stored pairs stay.
    keep_stored: bool,
    /// True when `users.csv` has rows that name no user reliably: users the
    /// file does not list keep their stored state, memberships included.
    keep_unlisted_users: bool,
    /// Stored users this plan deletes.
    deleted_users: FastSet<'s>,
}

impl<'s> MembershipRules<'s, '_> {
    /// Returns true when a stored user still exists after the sync.
    ///
    /// Note that this relies on stored memberships naming stored users, which
    /// every applied plan keeps true: then only the plan's deletes remove one.
    fn stored_user_exists(&self, idp_id: &IdpId) -> bool {
        self.deleted_users.is_empty() || !self.deleted_users.contains(idp_id.as_str())
    }

    /// Returns true when the user of an uploaded pair exists after the sync.
    fn uploaded_user_exists(&self, idp_id: &IdpId) -> bool {
        if self.users.held.contains(idp_id) || self.unlisted_user_kept(idp_id) {
            return self.state.users.contains_key(idp_id);
        }
        match self.users.users.get(idp_id) {
            Some(record) => {
                record.state == UserState::Active || self.policy == InactiveUserPolicy::Keep
            }
            None => false,
        }
    }

    /// Returns true when a stored pair that the upload does not list stays,
    /// because its row or its user is held or the whole file was rejected.
    fn unlisted_pair_kept(&self, pair: &(GroupName, IdpId)) -> bool {
        self.keep_stored
            || (!self.users.held.is_empty() && self.users.held.contains(&pair.1))
            || self.unlisted_user_kept(&pair.1)
            || (!self.uploaded.held.is_empty() && self.uploaded.held.contains(pair))
    }

    /// Returns true when a user the users file does not list keeps its
    /// stored state because the file has unidentified rows.
    fn unlisted_user_kept(&self, idp_id: &IdpId) -> bool {
        self.keep_unlisted_users && !self.users.users.contains_key(idp_id)
    }

    /// Returns true when an uploaded pair the directory lacks may be added,
    /// which needs a user and a row that are not held.
    fn new_pair_allowed(&self, pair: &(GroupName, IdpId)) -> bool {
        let user_held = !self.users.held.is_empty() && self.users.held.contains(&pair.1);
        let pair_held = !self.uploaded.held.is_empty() && self.uploaded.held.contains(pair);
        !user_held && !pair_held
    }

    fn merge(
        &self,
        stored: impl Iterator<Item = &'s (GroupName, IdpId)>,
        uploaded: impl Iterator<Item = &'s (GroupName, IdpId)>,
    ) -> MembershipDiff<'s> {
        let mut diff = MembershipDiff::default();
        // Pairs sort by group, so one cached lookup serves a whole run.
        let mut last_group: Option<(&'s GroupName, bool)> = None;
        let mut group_exists = |name: &'s GroupName| -> bool {
            if let Some((last, exists)) = last_group {
                if last == name {
                    return exists;
                }
            }
            let exists = self.groups.contains_key(name);
            last_group = Some((name, exists));
            exists
        };

        let mut stored = stored.peekable();
        let mut uploaded = uploaded.peekable();
        loop {
            let order = match (stored.peek(), uploaded.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(old), Some(new)) => old.cmp(new),
            };

            match order {
                // Stored and listed again: stays while both ends exist.
                Ordering::Equal => {
                    let pair = stored.next().expect("peeked");
                    uploaded.next();
                    let group = group_exists(&pair.0);
                    if !(group && self.stored_user_exists(&pair.1)) {
                        push_removed(&mut diff, pair, group);
                    }
                }
                // Stored, no longer listed.
                Ordering::Less => {
                    let pair = stored.next().expect("peeked");
                    let group = group_exists(&pair.0);
                    let kept =
                        self.unlisted_pair_kept(pair) && group && self.stored_user_exists(&pair.1);
                    if !kept {
                        push_removed(&mut diff, pair, group);
                    }
                }
                // Listed, not stored yet.
                Ordering::Greater => {
                    let pair = uploaded.next().expect("peeked");
                    if self.new_pair_allowed(pair)
                        && group_exists(&pair.0)
                        && self.uploaded_user_exists(&pair.1)
                    {
                        diff.added.push(pair);
                    }
                }
            }
        }
        diff
    }
}

/// Records a removed pair, unless its group goes too: a group delete takes
/// its memberships with it and emits no `user_removed`.
fn push_removed<'s>(
    diff: &mut MembershipDiff<'s>,
    pair: &'s (GroupName, IdpId),
    group_exists: bool,
) {
    if group_exists {
        diff.removed.push(pair);
    }
}

/// A hasher for sets of `idp_id`s built and probed inside one plan. It is
/// several times faster than the default SipHash on short keys.
///
/// Note that it is not resistant to chosen collisions: an upload crafted
/// against it can only slow down its own directory's plan.
#[derive(Clone, Copy, Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastSet<'a> = HashSet<&'a str, BuildHasherDefault<FastHasher>>;

/// Decisions of the users phase. `puts` and `deletes` are not sorted yet.
#[derive(Default)]
struct UserDecisions<'s> {
    puts: Vec<UserPut<'s>>,
    deletes: Vec<&'s User>,
    unchanged: u64,
    /// Stored active users that become inactive and are kept.
    deactivated: u64,
}

impl UserDecisions<'_> {
    fn merge(&mut self, other: Self) {
        self.puts.extend(other.puts);
        self.deletes.extend(other.deletes);
        self.unchanged += other.unchanged;
        self.deactivated += other.deactivated;
    }
}

/// Below this many records a comparison phase runs on the calling thread:
/// starting threads costs more than it saves.
const PARALLEL_MINIMUM: usize = 50_000;

/// The same for building event payloads, which cost microseconds each.
const JSON_PARALLEL_MINIMUM: usize = 2_000;

/// Runs `work` over chunks of `items` on up to [`worker_count`] scoped
/// threads and returns the results in chunk order, so the outcome does not
/// depend on the number of threads.
fn map_chunks<T: Sync, R: Send>(
    items: &[T],
    minimum: usize,
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let workers = worker_count(items.len(), minimum);
    if workers <= 1 {
        return vec![work(items)];
    }
    let chunk = items.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let work = &work;
                scope.spawn(move || work(part))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn worker_count(items: usize, minimum: usize) -> usize {
    if items < minimum {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |count| count.get())
        .min(8)
}

/// Compares every uploaded user with its stored record, and finds the
/// stored users the upload no longer lists.
fn decide_users<'s>(
    state: &'s DirectoryState,
    users: &'s UsersSnapshot,
    policy: InactiveUserPolicy,
) -> UserDecisions<'s> {
    let uploaded: Vec<(&'s IdpId, &'s UserRecord)> = users.users.iter().collect();
    let stored: Vec<(&'s IdpId, &'s User)> = state.users.iter().collect();
    let mut decisions = UserDecisions::default();

    let uploaded_parts = map_chunks(&uploaded, PARALLEL_MINIMUM, |part| {
        let mut found = UserDecisions::default();
        for &(idp_id, record) in part {
            if users.held.contains(idp_id) {
                continue;
            }
            let kept = record.state == UserState::Active || policy == InactiveUserPolicy::Keep;
            match (state.users.get(idp_id), kept) {
                (Some(stored), true) => {
                    if stored.state == record.state && stored.attributes == record.attributes {
                        found.unchanged += 1;
                    } else {
                        if stored.state == UserState::Active && record.state == UserState::Inactive
                        {
                            found.deactivated += 1;
                        }
                        found.puts.push(UserPut::Update(stored, record));
                    }
                }
                (Some(stored), false) => found.deletes.push(stored),
                (None, true) => found.puts.push(UserPut::Create(idp_id, record)),
                // An inactive user the directory never had: nothing to delete.
                (None, false) => {}
            }
        }
        found
    });
    for part in uploaded_parts {
        decisions.merge(part);
    }

    let stored_parts = map_chunks(&stored, PARALLEL_MINIMUM, |part| {
        let mut found = UserDecisions::default();
        for &(idp_id, user) in part {
            if users.held.contains(idp_id) {
                found.unchanged += 1;
            } else if !users.users.contains_key(idp_id) {
                // A users file with unidentified rows may list this user on
                // one of them, so it deletes no one.
                if users.unidentified_rows > 0 {
                    found.unchanged += 1;
                } else {
                    found.deletes.push(user);
                }
            }
        }
        found
    });
    for part in stored_parts {
        decisions.merge(part);
    }
    decisions
}

fn rejected(reason: &str, counts: Counts) -> Plan {
    Plan {
        status: PlanStatus::Rejected,
        reason: Some(reason.to_owned()),
        steps: Vec::new(),
        counts,
    }
}

/// Adds `previous_attributes` to an update's payload.
fn with_previous(mut after: Value, before: Option<Value>) -> Value {
    if let Some(before) = before {
        let previous = previous_attributes(&before, &after);
        if let Some(object) = after.as_object_mut() {
            object.insert("previous_attributes".to_owned(), Value::Object(previous));
        }
    }
    after
}

fn put_user(step: &Step) -> Option<&User> {
    match &step.change {
        Change::PutUser(user) => Some(user),
        _ => None,
    }
}

fn put_group(step: &Step) -> Option<&Group> {
    match &step.change {
        Change::PutGroup(group) => Some(group),
        _ => None,
    }
}

/// Payloads of users and groups that appear in several membership events.
#[derive(Default)]
struct JsonCache {
    users: HashMap<Box<str>, Value>,
    groups: HashMap<Box<str>, Value>,
}

impl JsonCache {
    fn user(&mut self, idp_id: &str, build: impl FnOnce() -> Value) -> Value {
        if let Some(value) = self.users.get(idp_id) {
            return value.clone();
        }
        let value = build();
        self.users.insert(idp_id.into(), value.clone());
        value
    }

    fn group(&mut self, name: &str, build: impl FnOnce() -> Value) -> Value {
        if let Some(value) = self.groups.get(name) {
            return value.clone();
        }
        let value = build();
        self.groups.insert(name.into(), value.clone());
        value
    }
}
