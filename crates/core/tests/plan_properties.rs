//! Property tests of the planner over random directories and snapshots.

#[path = "fixtures/plan/support.rs"]
mod support;

use std::collections::BTreeSet;

use dsync_core::ids::{GroupName, IdpId};
use dsync_core::model::{Directory, DirectoryState, UserState};
use dsync_core::plan::{plan, Change, PlanStatus};
use dsync_core::settings::{DirectorySettings, InactiveUserPolicy};
use dsync_core::snapshot::{
    GroupsSnapshot, KindSnapshot, MembershipsSnapshot, Snapshot, UserRecord, UsersSnapshot,
};
use proptest::prelude::*;

use support::*;

const USER_POOL: usize = 16;
const GROUP_POOL: usize = 5;
const DEPARTMENTS: [&str; 3] = ["Yard", "Quay", "Office"];
const FIRST_NAMES: [&str; 3] = ["Ines", "Tomas", "Maud"];

fn user_id(index: usize) -> String {
    format!("U{index:02}")
}

fn group_name(index: usize) -> String {
    format!("Team {index}")
}

/// A users.csv row: which user, which first name, an optional department and whether active.
type RowSeed = (usize, usize, Option<usize>, bool);

fn build_record((index, first, department, active): RowSeed) -> (IdpId, UserRecord) {
    let id = user_id(index);
    let extra: Vec<(&str, &str)> = department
        .map(|department| vec![("department_name", DEPARTMENTS[department])])
        .unwrap_or_default();
    let mut record = person(&id, FIRST_NAMES[first], "Ward", &extra);
    if !active {
        record.state = UserState::Inactive;
    }
    (IdpId::new(&id), record)
}

fn kind<T: std::fmt::Debug + Clone + 'static>(
    accepted: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = KindSnapshot<T>> {
    prop_oneof![
        8 => accepted.prop_map(KindSnapshot::Accepted),
        1 => Just(KindSnapshot::Rejected),
        1 => Just(KindSnapshot::Absent),
    ]
}

fn users_strategy() -> impl Strategy<Value = UsersSnapshot> {
    let row = (
        0..USER_POOL,
        0..FIRST_NAMES.len(),
        prop::option::of(0..DEPARTMENTS.len()),
        prop::bool::weighted(0.85),
    );
    (
        prop::collection::vec(row, 0..USER_POOL),
        prop::collection::btree_set(0..USER_POOL, 0..3),
    )
        .prop_map(|(rows, held)| {
            let mut users = UsersSnapshot::default();
            for row in rows {
                let (idp_id, record) = build_record(row);
                users.users.insert(idp_id, record);
            }
            for index in held {
                // The reader leaves a held id out of the valid users.
                let idp_id = IdpId::new(&user_id(index));
                users.users.remove(&idp_id);
                users.held.insert(idp_id);
            }
            users
        })
}

fn groups_strategy() -> impl Strategy<Value = GroupsSnapshot> {
    (
        prop::collection::btree_map(
            0..GROUP_POOL,
            prop::option::of(0..DEPARTMENTS.len()),
            0..GROUP_POOL,
        ),
        prop::collection::btree_set(0..GROUP_POOL, 0..2),
    )
        .prop_map(|(groups, held)| {
            let mut snapshot = GroupsSnapshot::default();
            for (index, cost_center) in groups {
                let extra: Vec<(&str, &str)> = cost_center
                    .map(|value| vec![("cost_center", DEPARTMENTS[value])])
                    .unwrap_or_default();
                snapshot
                    .groups
                    .insert(GroupName::new(&group_name(index)), attributes(&extra));
            }
            for index in held {
                let name = GroupName::new(&group_name(index));
                snapshot.groups.remove(&name);
                snapshot.held.insert(name);
            }
            snapshot
        })
}

fn memberships_strategy() -> impl Strategy<Value = MembershipsSnapshot> {
    let pair = (0..GROUP_POOL, 0..USER_POOL + 2);
    (
        prop::collection::btree_set(pair.clone(), 0..24),
        prop::collection::btree_set(pair, 0..3),
    )
        .prop_map(|(pairs, held)| {
            let to_pair = |(group, user): (usize, usize)| {
                (
                    GroupName::new(&group_name(group)),
                    IdpId::new(&user_id(user)),
                )
            };
            let held: BTreeSet<(GroupName, IdpId)> = held.into_iter().map(to_pair).collect();
            let memberships = pairs
                .into_iter()
                .map(to_pair)
                .filter(|pair| !held.contains(pair))
                .collect();
            MembershipsSnapshot {
                memberships,
                held,
                unidentified_rows: 0,
            }
        })
}

fn snapshot_strategy() -> impl Strategy<Value = Snapshot> {
    (
        kind(users_strategy()),
        kind(groups_strategy()),
        kind(memberships_strategy()),
    )
        .prop_map(|(users, groups, memberships)| {
            let skipped_rows = match &users {
                KindSnapshot::Accepted(users) => users.held.len() as u64,
                _ => 0,
            };
            let mut snapshot = SnapshotBuilder::new().build();
            snapshot.users = users;
            snapshot.groups = groups;
            snapshot.memberships = memberships;
            snapshot.skipped_rows = skipped_rows;
            snapshot
        })
}

fn directory_strategy() -> impl Strategy<Value = Directory> {
    prop::bool::ANY.prop_map(|keep| {
        directory_with(DirectorySettings {
            inactive_users: if keep {
                InactiveUserPolicy::Keep
            } else {
                InactiveUserPolicy::Delete
            },
            ..DirectorySettings::default()
        })
    })
}

/// Applies the plan of `snapshot` onto `state` and returns the result.
fn synced(
    directory: &Directory,
    state: &DirectoryState,
    snapshot: &Snapshot,
    now_ms: i64,
) -> DirectoryState {
    let plan = plan(state, snapshot, &context(directory, now_ms, b"sync"));
    let mut after = state.clone();
    plan.apply_to(&mut after);
    after
}

fn memberships_of<'a>(
    state: &'a DirectoryState,
    user: &'a IdpId,
) -> impl Iterator<Item = &'a (GroupName, IdpId)> + 'a {
    state
        .memberships
        .iter()
        .filter(move |(_, member)| member == user)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn replanning_after_apply_is_empty(
        directory in directory_strategy(),
        first in snapshot_strategy(),
        second in snapshot_strategy(),
    ) {
        let before = synced(&directory, &DirectoryState::default(), &first, FIRST_SYNC_MS);
        let after = synced(&directory, &before, &second, SECOND_SYNC_MS);

        let again = plan(&after, &second, &context(&directory, SECOND_SYNC_MS + 1_000, b"again"));

        let changes: Vec<&Change> = again.steps.iter().map(|step| &step.change).collect();
        prop_assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn identical_snapshot_changes_nothing(
        directory in directory_strategy(),
        snapshot in snapshot_strategy(),
    ) {
        let state = synced(&directory, &DirectoryState::default(), &snapshot, FIRST_SYNC_MS);

        let again = second_plan(&directory, &state, &snapshot);

        prop_assert!(again.steps.is_empty());
        prop_assert_eq!(again.counts.created + again.counts.updated + again.counts.deleted, 0);
        if again.status != PlanStatus::Rejected {
            prop_assert_eq!(again.counts.unchanged, state.users.len() as u64);
        }
    }

    #[test]
    fn planning_is_deterministic(
        directory in directory_strategy(),
        first in snapshot_strategy(),
        second in snapshot_strategy(),
    ) {
        let state = synced(&directory, &DirectoryState::default(), &first, FIRST_SYNC_MS);

        let one = second_plan(&directory, &state, &second);
        let two = second_plan(&directory, &state, &second);

        prop_assert_eq!(one, two);
    }

    #[test]
    fn every_step_has_an_increasing_event(
        directory in directory_strategy(),
        first in snapshot_strategy(),
        second in snapshot_strategy(),
    ) {
        let state = synced(&directory, &DirectoryState::default(), &first, FIRST_SYNC_MS);

        let plan = second_plan(&directory, &state, &second);

        prop_assert!(plan.steps.iter().all(|step| step.event.is_some()));
        let ids: Vec<String> = plan.events().map(|event| event.id.to_string()).collect();
        prop_assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn held_user_never_changes(
        directory in directory_strategy(),
        first in snapshot_strategy(),
        second in snapshot_strategy(),
    ) {
        let before = synced(&directory, &DirectoryState::default(), &first, FIRST_SYNC_MS);
        let after = synced(&directory, &before, &second, SECOND_SYNC_MS);

        let KindSnapshot::Accepted(users) = &second.users else {
            return Ok(());
        };
        for held in &users.held {
            prop_assert_eq!(before.users.get(held), after.users.get(held));
            // Its memberships stay as stored, except where the group itself went.
            let kept: Vec<_> = memberships_of(&before, held)
                .filter(|(group, _)| after.groups.contains_key(group))
                .collect();
            let now: Vec<_> = memberships_of(&after, held).collect();
            prop_assert_eq!(kept, now);
        }
    }

    #[test]
    fn memberships_join_existing_records(
        directory in directory_strategy(),
        first in snapshot_strategy(),
        second in snapshot_strategy(),
    ) {
        let before = synced(&directory, &DirectoryState::default(), &first, FIRST_SYNC_MS);
        let after = synced(&directory, &before, &second, SECOND_SYNC_MS);

        for (group, user) in &after.memberships {
            prop_assert!(after.groups.contains_key(group), "{group} missing");
            prop_assert!(after.users.contains_key(user), "{user} missing");
        }
    }

    #[test]
    fn counts_match_user_totals(
        directory in directory_strategy(),
        first in snapshot_strategy(),
        second in snapshot_strategy(),
    ) {
        let before = synced(&directory, &DirectoryState::default(), &first, FIRST_SYNC_MS);
        let plan = second_plan(&directory, &before, &second);
        let mut after = before.clone();
        plan.apply_to(&mut after);

        let counts = &plan.counts;
        if plan.status != PlanStatus::Rejected {
            prop_assert_eq!(counts.updated + counts.unchanged + counts.deleted, before.users.len() as u64);
            prop_assert_eq!(counts.created + counts.updated + counts.unchanged, after.users.len() as u64);
        }
        prop_assert_eq!(counts.skipped_rows, second.skipped_rows);
    }

    #[test]
    fn apply_into_matches_apply_to(
        directory in directory_strategy(),
        first in snapshot_strategy(),
        second in snapshot_strategy(),
    ) {
        let before = synced(&directory, &DirectoryState::default(), &first, FIRST_SYNC_MS);
        let plan = second_plan(&directory, &before, &second);

        let mut cloned = before.clone();
        plan.apply_to(&mut cloned);
        let mut moved = before.clone();
        plan.apply_into(&mut moved);

        prop_assert_eq!(cloned, moved);
    }

    #[test]
    fn guard_holds_header_only_users_file(count in 1usize..80) {
        let directory = directory();
        let staff: Vec<UserRecord> = (0..count)
            .map(|index| person(&format!("S{index:03}"), "Staff", "Ward", &[]))
            .collect();
        let state = synced(&directory, &DirectoryState::default(), &users_only(staff), FIRST_SYNC_MS);

        let plan = second_plan(&directory, &state, &users_only(Vec::new()));

        prop_assert_eq!(plan.status, PlanStatus::Held);
        prop_assert_eq!(plan.counts.deleted, count as u64);
        prop_assert_eq!(plan.steps.len(), count);
        let reason = plan.reason.unwrap_or_default();
        prop_assert!(reason.contains("no data rows"), "{}", reason);
        prop_assert!(reason.contains(&format!("all {count} users")), "{}", reason);
    }
}
