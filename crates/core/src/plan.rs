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

// ---------------------------------------------------------------------------
// The planner.
//
// Rules beyond the field docs above:
// - Groups come from the newest `groups.csv` (its extra columns are the
//   group's attributes). A group named in a valid `user_groups.csv` row but
//   not listed in `groups.csv` (or with no `groups.csv` at all) is created
//   too, with no attributes, because the uploader plainly expects it to
//   exist. A group held by a bad `groups.csv` row, or every stored group when
//   `groups.csv` was rejected, keeps its stored attributes.
// - A membership exists after the sync only when both its user and its group
//   do. Memberships of held users and held membership rows keep their stored
//   state within that rule.
// - `Counts` counts users only: created, updated (deactivations included),
//   deleted (inactive users deleted by the policy included) and unchanged
//   (held users that exist included). Group and membership changes show as
//   steps and events only.
// ---------------------------------------------------------------------------

use std::collections::{BTreeMap, HashMap, HashSet};

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
/// Pure and deterministic: new ids derive from the directory id, the key
/// (`idp_id` or group name) and `ctx.now`; event ids from `ctx.now` and
/// `ctx.event_seed`, increasing in step order.
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

/// Where a group's desired attributes come from.
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

impl UserPut<'_> {
    fn idp_id(&self) -> &IdpId {
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
};

/// Event ids use 80 random bits; keeping the base below 2^79 leaves room to
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

        // Decide every user first; the guard and the membership rules need
        // the whole picture before any step is built.
        let policy = self.ctx.directory.settings.inactive_users;
        let mut puts: Vec<UserPut<'s>> = Vec::new();
        let mut deletes: Vec<&'s User> = Vec::new();
        let mut deactivated: u64 = 0;

        for (idp_id, record) in &users.users {
            if users.held.contains(idp_id) {
                continue;
            }
            let kept = record.state == UserState::Active || policy == InactiveUserPolicy::Keep;
            match (self.state.users.get(idp_id), kept) {
                (Some(stored), true) => {
                    if stored.state == record.state && stored.attributes == record.attributes {
                        counts.unchanged += 1;
                    } else {
                        if stored.state == UserState::Active && record.state == UserState::Inactive
                        {
                            deactivated += 1;
                        }
                        puts.push(UserPut::Update(stored, record));
                    }
                }
                (Some(stored), false) => deletes.push(stored),
                (None, true) => puts.push(UserPut::Create(idp_id, record)),
                // An inactive user the directory never had: nothing to delete.
                (None, false) => {}
            }
        }

        for (idp_id, stored) in &self.state.users {
            if users.held.contains(idp_id) {
                counts.unchanged += 1;
            } else if !users.users.contains_key(idp_id) {
                deletes.push(stored);
            }
        }

        puts.sort_unstable_by(|a, b| a.idp_id().cmp(b.idp_id()));
        deletes.sort_unstable_by(|a, b| a.idp_id.cmp(&b.idp_id));
        counts.created = puts
            .iter()
            .filter(|put| matches!(put, UserPut::Create(..)))
            .count() as u64;
        counts.updated = puts.len() as u64 - counts.created;
        counts.deleted = deletes.len() as u64;

        let (status, reason) = self.guard(deletes.len() as u64 + deactivated);

        // Groups and memberships after the sync.
        let desired_groups = self.desired_groups();
        let memberships = self.diff_memberships(users, policy, &desired_groups);

        // Steps, in commit order.
        let new_users = self.push_user_puts(&puts);
        let new_groups = self.push_group_puts(&desired_groups);
        let mut json_cache = JsonCache::default();
        for pair in &memberships.added {
            self.push_membership(
                pair,
                EventKind::GroupUserAdded,
                &new_users,
                &new_groups,
                &mut json_cache,
            );
        }
        for pair in &memberships.removed {
            self.push_membership(
                pair,
                EventKind::GroupUserRemoved,
                &new_users,
                &new_groups,
                &mut json_cache,
            );
        }
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

    /// Holds the plan when it removes more than the threshold share of the
    /// directory's current users, unless an operator approved it.
    fn guard(&self, removed: u64) -> (PlanStatus, Option<String>) {
        let settings = &self.ctx.directory.settings;
        let current = self.state.users.len() as u64;
        let threshold = u64::from(settings.deletion_threshold_percent);

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
            }
            KindSnapshot::Rejected => {
                for name in state.groups.keys() {
                    desired.insert(name, GroupSource::Stored);
                }
            }
            KindSnapshot::Absent => {}
        }

        if let KindSnapshot::Accepted(memberships) = &self.snapshot.memberships {
            // Pairs sort by group, so each name comes in one run.
            let mut previous: Option<&GroupName> = None;
            for (group, _) in &memberships.memberships {
                if previous != Some(group) {
                    desired.entry(group).or_insert(GroupSource::Membership);
                    previous = Some(group);
                }
            }
        }
        desired
    }

    /// Compares the desired memberships with the stored ones in one merge
    /// pass over the two sorted sets.
    fn diff_memberships(
        &self,
        users: &'s UsersSnapshot,
        policy: InactiveUserPolicy,
        groups: &BTreeMap<&'s GroupName, GroupSource<'s>>,
    ) -> MembershipDiff<'s> {
        let stored = &self.state.memberships;
        let state = self.state;
        let user_exists = |idp_id: &IdpId| -> bool {
            if users.held.contains(idp_id) {
                return state.users.contains_key(idp_id);
            }
            match users.users.get(idp_id) {
                Some(record) => {
                    record.state == UserState::Active || policy == InactiveUserPolicy::Keep
                }
                None => false,
            }
        };
        let pair_exists =
            |pair: &(GroupName, IdpId)| groups.contains_key(&pair.0) && user_exists(&pair.1);

        let (uploaded, keep_stored) = match &self.snapshot.memberships {
            KindSnapshot::Accepted(memberships) => (memberships, false),
            KindSnapshot::Rejected => (&NO_MEMBERSHIPS, true),
            KindSnapshot::Absent => (&NO_MEMBERSHIPS, false),
        };
        // A stored pair stays when the upload lists it, when its row or its
        // user is held, or when the whole file was rejected.
        let stored_pair_kept = |pair: &(GroupName, IdpId), listed: bool| {
            (listed || keep_stored || users.held.contains(&pair.1) || uploaded.held.contains(pair))
                && pair_exists(pair)
        };
        // An uploaded pair is added only for a user and a row that are not held.
        let uploaded_pair_added = |pair: &(GroupName, IdpId)| {
            !users.held.contains(&pair.1) && !uploaded.held.contains(pair) && pair_exists(pair)
        };

        let mut diff = MembershipDiff::default();
        let removed_pair = |pair: &'s (GroupName, IdpId), diff: &mut MembershipDiff<'s>| {
            // A deleted group takes its memberships with it, without events.
            if groups.contains_key(&pair.0) {
                diff.removed.push(pair);
            }
        };

        let mut stored_iter = stored.iter().peekable();
        let mut uploaded_iter = uploaded.memberships.iter().peekable();
        loop {
            match (stored_iter.peek(), uploaded_iter.peek()) {
                (None, None) => break,
                (Some(&old), None) => {
                    if !stored_pair_kept(old, false) {
                        removed_pair(old, &mut diff);
                    }
                    stored_iter.next();
                }
                (None, Some(&new)) => {
                    if uploaded_pair_added(new) {
                        diff.added.push(new);
                    }
                    uploaded_iter.next();
                }
                (Some(&old), Some(&new)) => match old.cmp(new) {
                    std::cmp::Ordering::Less => {
                        if !stored_pair_kept(old, false) {
                            removed_pair(old, &mut diff);
                        }
                        stored_iter.next();
                    }
                    std::cmp::Ordering::Greater => {
                        if uploaded_pair_added(new) {
                            diff.added.push(new);
                        }
                        uploaded_iter.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if !stored_pair_kept(old, true) {
                            removed_pair(old, &mut diff);
                        }
                        stored_iter.next();
                        uploaded_iter.next();
                    }
                },
            }
        }
        diff
    }

    /// Pushes user creates and updates; returns the new records by `idp_id`
    /// (as indexes into the steps) for the membership events.
    fn push_user_puts(&mut self, puts: &[UserPut<'s>]) -> HashMap<&'s str, usize> {
        let mut index = HashMap::with_capacity(puts.len());
        let now = self.ctx.now;

        for put in puts {
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
                    index.insert(idp_id.as_str(), self.steps.len());
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
                    index.insert(stored.idp_id.as_str(), self.steps.len());
                    (user, EventKind::UserUpdated, Some(*stored))
                }
            };

            let owner = self.owner;
            let event = self.event_for(kind, || {
                with_previous(
                    user_json(&user, owner, None),
                    before.map(|old| user_json(old, owner, None)),
                )
            });
            self.steps.push(Step {
                change: Change::PutUser(user),
                event,
            });
        }
        index
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

    fn push_membership(
        &mut self,
        pair: &(GroupName, IdpId),
        kind: EventKind,
        new_users: &HashMap<&'s str, usize>,
        new_groups: &HashMap<&'s str, usize>,
        cache: &mut JsonCache,
    ) {
        let change = match kind {
            EventKind::GroupUserAdded => Change::AddMembership(pair.0.clone(), pair.1.clone()),
            _ => Change::RemoveMembership(pair.0.clone(), pair.1.clone()),
        };

        let event = if self.with_events {
            let user = cache.user(pair.1.as_str(), || {
                let record = match new_users.get(pair.1.as_str()) {
                    Some(&step) => put_user(&self.steps[step]),
                    None => self.state.users.get(&pair.1),
                };
                record.map_or(Value::Null, |user| user_json(user, self.owner, None))
            });
            let group = cache.group(pair.0.as_str(), || {
                let record = match new_groups.get(pair.0.as_str()) {
                    Some(&step) => put_group(&self.steps[step]),
                    None => self.state.groups.get(&pair.0),
                };
                record.map_or(Value::Null, |group| group_json(group, self.owner))
            });
            let data = serde_json::json!({
                "directory_id": self.ctx.directory.id,
                "user": user,
                "group": group,
            });
            Some(self.event(kind, data))
        } else {
            None
        };

        self.steps.push(Step { change, event });
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
        let random = self.event_base + self.steps.len() as u128;
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
