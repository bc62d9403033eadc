//! A plan large enough to take the parallel paths: users and memberships
//! compared on several threads, and payloads built on several threads.

#[path = "fixtures/plan/support.rs"]
mod support;

use dsync_core::event::EventKind;
use dsync_core::ids::IdpId;
use dsync_core::model::DirectoryState;
use dsync_core::plan::{plan, PlanStatus};
use dsync_core::snapshot::{KindSnapshot, Snapshot, UserRecord};

use support::*;

/// The planner compares on several threads from 50,000 records.
const USERS: usize = 50_000;
/// Payloads are built on several threads from 2,000 events.
const EVENT_USERS: usize = 5_000;
const GROUPS: usize = 40;

fn staff_id(index: usize) -> String {
    format!("W{index:06}")
}

fn staff(index: usize, department: &str) -> UserRecord {
    person(
        &staff_id(index),
        "Worker",
        &format!("No{index}"),
        &[("department_name", department)],
    )
}

/// Every user in one group, chosen by index.
fn snapshot(users: Vec<UserRecord>) -> Snapshot {
    let pairs: Vec<(String, String)> = users
        .iter()
        .map(|record| {
            let id = record.attributes.get("user_id").unwrap().to_owned();
            let index: usize = id[1..].parse().unwrap();
            (format!("Crew {:02}", index % GROUPS), id)
        })
        .collect();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(group, user)| (group.as_str(), user.as_str()))
        .collect();
    SnapshotBuilder::new()
        .users(users)
        .memberships(&pairs)
        .build()
}

#[test]
fn large_plan_is_exact_and_converges() {
    let directory = directory();
    let first = snapshot((0..USERS).map(|index| staff(index, "Docks")).collect());
    let state = state_from(&directory, &first);
    assert_eq!(state.users.len(), USERS);
    assert_eq!(state.memberships.len(), USERS);

    // 2,475 updates, 500 deletes (under the 20% guard) and 2,500 creates.
    let mut users: Vec<UserRecord> = Vec::new();
    for index in 500..USERS {
        let department = if index % 20 == 0 { "Rail" } else { "Docks" };
        users.push(staff(index, department));
    }
    for index in USERS..USERS + 2_500 {
        users.push(staff(index, "Docks"));
    }
    let second = snapshot(users);

    let plan = second_plan(&directory, &state, &second);

    assert_eq!(plan.status, PlanStatus::Applied);
    assert_eq!(plan.counts.created, 2_500);
    assert_eq!(plan.counts.updated, 2_500 - 25);
    assert_eq!(plan.counts.deleted, 500);
    let kinds: Vec<EventKind> = plan.events().map(|event| event.event).collect();
    assert_eq!(kinds.len(), plan.steps.len());
    let count = |kind: EventKind| kinds.iter().filter(|k| **k == kind).count();
    assert_eq!(count(EventKind::GroupUserAdded), 2_500);
    assert_eq!(count(EventKind::GroupUserRemoved), 500);

    let ids: Vec<String> = plan.events().map(|event| event.id.to_string()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    let removed = plan
        .events()
        .find(|event| event.event == EventKind::GroupUserRemoved)
        .unwrap();
    assert_eq!(removed.data["user"]["idp_id"], staff_id(0));

    let mut after = state.clone();
    plan.apply_to(&mut after);
    assert!(second_plan(&directory, &after, &second).steps.is_empty());
    assert!(!after.users.contains_key(&IdpId::new(&staff_id(0))));
}

#[test]
fn large_plan_matches_plan_without_events() {
    let directory = directory();
    let users: Vec<UserRecord> = (0..EVENT_USERS).map(|index| staff(index, "Docks")).collect();
    let snapshot = snapshot(users);
    let context = context(&directory, FIRST_SYNC_MS, b"large");

    let with_events = plan(&DirectoryState::default(), &snapshot, &context);
    let without =
        dsync_core::plan::plan_without_events(&DirectoryState::default(), &snapshot, &context);

    let changes = |plan: &dsync_core::plan::Plan| {
        plan.steps
            .iter()
            .map(|step| step.change.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(changes(&with_events), changes(&without));
    assert!(without.steps.iter().all(|step| step.event.is_none()));
    assert!(matches!(snapshot.users, KindSnapshot::Accepted(_)));
}
