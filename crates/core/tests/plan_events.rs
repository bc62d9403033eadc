//! Unit tests of the planner: each event kind, `previous_attributes`, step
//! order, ids, held records, rejected kinds and the mass-deletion guard.

#[path = "fixtures/plan/support.rs"]
mod support;

use dsync_core::event::EventKind;
use dsync_core::ids::{derived_ulid, GroupName, IdpId, UserId};
use dsync_core::model::{DirectoryState, UserState};
use dsync_core::plan::{plan, Change, PlanStatus};
use dsync_core::settings::{DirectorySettings, InactiveUserPolicy};
use dsync_core::time::Timestamp;
use serde_json::{json, Value};

use support::*;

fn crew() -> Vec<dsync_core::snapshot::UserRecord> {
    vec![
        person("E100", "Ines", "Okafor", &[("department_name", "Yard")]),
        person("E200", "Tomas", "Berg", &[("department_name", "Yard")]),
        person(
            "E300",
            "Maud",
            "Lindqvist",
            &[("department_name", "Office")],
        ),
    ]
}

#[test]
fn user_created_event_carries_the_user() {
    let directory = directory();
    let snapshot = users_only(vec![person(
        "E100",
        "Ines",
        "Okafor",
        &[("job_title", "Crane operator")],
    )]);

    let plan = plan(
        &DirectoryState::default(),
        &snapshot,
        &context(&directory, FIRST_SYNC_MS, b"s1"),
    );

    assert_eq!(plan.status, PlanStatus::Applied);
    assert_eq!(plan.counts.created, 1);
    assert_eq!(event_names(&plan), ["dsync.user.created"]);
    let data = &plan.steps[0].event.as_ref().unwrap().data;
    assert_eq!(data["object"], "directory_user");
    assert_eq!(data["idp_id"], "E100");
    assert_eq!(data["directory_id"], directory.id.as_str());
    assert_eq!(data["organization_id"], directory.organization_id.as_str());
    assert_eq!(data["email"], "ines.okafor@harbour.example");
    assert_eq!(data["job_title"], "Crane operator");
    assert_eq!(
        data["custom_attributes"],
        json!({"job_title": "Crane operator"})
    );
    assert_eq!(data["raw_attributes"]["user_id"], "E100");
    assert_eq!(data["state"], "active");
    assert_eq!(data["created_at"], "2026-03-01T09:00:00.000Z");
    assert!(data.get("previous_attributes").is_none());
    assert!(data.get("groups").is_none());
}

#[test]
fn new_user_id_derives_from_directory_and_idp_id() {
    let directory = directory();
    let snapshot = users_only(vec![person("E100", "Ines", "Okafor", &[])]);

    let plan = plan(
        &DirectoryState::default(),
        &snapshot,
        &context(&directory, FIRST_SYNC_MS, b"s1"),
    );

    let expected = UserId::from_ulid(derived_ulid(
        FIRST_SYNC_MS as u64,
        &[directory.id.as_str().as_bytes(), b"user", b"E100"],
    ));
    match &plan.steps[0].change {
        Change::PutUser(user) => assert_eq!(user.id, expected),
        other => panic!("expected a user put, got {other:?}"),
    }
}

#[test]
fn existing_user_keeps_id_and_created_at() {
    let directory = directory();
    let state = state_from(&directory, &users_only(crew()));
    let mut changed = crew();
    changed[1] = person("E200", "Tomas", "Berg", &[("department_name", "Office")]);

    let plan = second_plan(&directory, &state, &users_only(changed));

    let before = &state.users[&IdpId::new("E200")];
    let Change::PutUser(after) = &plan.steps[0].change else {
        panic!("expected a user put");
    };
    assert_eq!(after.id, before.id);
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(after.updated_at, Timestamp::from_millis(SECOND_SYNC_MS));
}

#[test]
fn user_updated_lists_changed_custom_and_raw_keys() {
    let directory = directory();
    let state = state_from(&directory, &users_only(crew()));
    let mut changed = crew();
    changed[1] = person("E200", "Tomas", "Berg", &[("department_name", "Office")]);

    let plan = second_plan(&directory, &state, &users_only(changed));

    assert_eq!(event_names(&plan), ["dsync.user.updated"]);
    assert_eq!(plan.counts.updated, 1);
    assert_eq!(plan.counts.unchanged, 2);
    let data = &plan.steps[0].event.as_ref().unwrap().data;
    assert_eq!(data["custom_attributes"]["department_name"], "Office");
    assert_eq!(
        data["previous_attributes"],
        json!({
            "custom_attributes": {"department_name": "Yard"},
            "raw_attributes": {"department_name": "Yard"},
        })
    );
}

#[test]
fn user_updated_lists_top_level_fields() {
    let directory = directory();
    let state = state_from(&directory, &users_only(crew()));
    let mut changed = crew();
    changed[0] = person(
        "E100",
        "Ines",
        "Okafor-Hale",
        &[("department_name", "Yard")],
    );

    let plan = second_plan(&directory, &state, &users_only(changed));

    let previous = &plan.steps[0].event.as_ref().unwrap().data["previous_attributes"];
    assert_eq!(previous["last_name"], "Okafor");
    assert_eq!(previous["email"], "ines.okafor@harbour.example");
    assert_eq!(
        previous["emails"],
        json!([{"primary": true, "type": "work", "value": "ines.okafor@harbour.example"}])
    );
    assert_eq!(previous["raw_attributes"]["last_name"], "Okafor");
    assert!(previous.get("updated_at").is_none());
}

#[test]
fn previous_attributes_is_null_for_new_fields() {
    let directory = directory();
    let state = state_from(&directory, &users_only(crew()));
    let mut changed = crew();
    changed[2] = person(
        "E300",
        "Maud",
        "Lindqvist",
        &[
            ("department_name", "Office"),
            ("job_title", "Planner"),
            ("badge_colour", "green"),
        ],
    );

    let plan = second_plan(&directory, &state, &users_only(changed));

    let previous = &plan.steps[0].event.as_ref().unwrap().data["previous_attributes"];
    assert_eq!(previous["job_title"], Value::Null);
    assert_eq!(previous["custom_attributes"], json!({"job_title": null}));
    assert_eq!(
        previous["raw_attributes"],
        json!({"job_title": null, "badge_colour": null})
    );
}

#[test]
fn previous_attributes_keeps_removed_keys() {
    let directory = directory();
    let state = state_from(&directory, &users_only(crew()));
    let mut changed = crew();
    changed[2] = person("E300", "Maud", "Lindqvist", &[]);

    let plan = second_plan(&directory, &state, &users_only(changed));

    let data = &plan.steps[0].event.as_ref().unwrap().data;
    assert!(data["custom_attributes"].get("department_name").is_none());
    assert_eq!(
        data["previous_attributes"]["custom_attributes"],
        json!({"department_name": "Office"})
    );
    assert_eq!(
        data["previous_attributes"]["raw_attributes"],
        json!({"department_name": "Office"})
    );
}

#[test]
fn unchanged_snapshot_plans_nothing() {
    let directory = directory();
    let state = state_from(&directory, &users_only(crew()));

    let plan = second_plan(&directory, &state, &users_only(crew()));

    assert_eq!(plan.status, PlanStatus::Applied);
    assert!(plan.steps.is_empty());
    assert_eq!(plan.counts.unchanged, 3);
    assert_eq!(
        plan.counts.created + plan.counts.updated + plan.counts.deleted,
        0
    );
}

#[test]
fn missing_user_is_deleted_with_stored_payload() {
    let directory = directory();
    let state = state_from(&directory, &users_only(crew()));

    let plan = second_plan(&directory, &state, &users_only(crew()[..2].to_vec()));

    assert_eq!(event_names(&plan), ["dsync.user.deleted"]);
    assert_eq!(plan.steps[0].change, Change::DeleteUser(IdpId::new("E300")));
    let data = &plan.steps[0].event.as_ref().unwrap().data;
    assert_eq!(data["id"], state.users[&IdpId::new("E300")].id.as_str());
    assert_eq!(data["first_name"], "Maud");
    assert_eq!(plan.counts.deleted, 1);
}

#[test]
fn inactive_user_is_deleted_by_default() {
    let directory = directory();
    let state = state_from(&directory, &users_only(crew()));
    let mut changed = crew();
    changed[0] = inactive(changed[0].clone());

    let plan = second_plan(&directory, &state, &users_only(changed));

    assert_eq!(event_names(&plan), ["dsync.user.deleted"]);
    assert_eq!(plan.steps[0].change, Change::DeleteUser(IdpId::new("E100")));
}

#[test]
fn inactive_user_is_kept_under_keep_policy() {
    let directory = directory_with(DirectorySettings {
        inactive_users: InactiveUserPolicy::Keep,
        ..DirectorySettings::default()
    });
    let state = state_from(&directory, &users_only(crew()));
    let mut changed = crew();
    changed[0] = inactive(changed[0].clone());

    let plan = second_plan(&directory, &state, &users_only(changed));

    assert_eq!(event_names(&plan), ["dsync.user.updated"]);
    let data = &plan.steps[0].event.as_ref().unwrap().data;
    assert_eq!(data["state"], "inactive");
    assert_eq!(data["previous_attributes"], json!({"state": "active"}));
}

#[test]
fn new_inactive_user_is_not_created() {
    let directory = directory();
    let snapshot = users_only(vec![inactive(person("E900", "Ada", "Voss", &[]))]);

    let plan = plan(
        &DirectoryState::default(),
        &snapshot,
        &context(&directory, FIRST_SYNC_MS, b"s1"),
    );

    assert!(plan.steps.is_empty());
}

#[test]
fn group_events_carry_the_group() {
    let directory = directory();
    let first = SnapshotBuilder::new()
        .users(crew())
        .groups(&[
            ("Cranes", &[("cost_center", "CC-10")]),
            ("Night shift", &[]),
        ])
        .build();
    let state = state_from(&directory, &first);
    let second = SnapshotBuilder::new()
        .users(crew())
        .groups(&[("Cranes", &[("cost_center", "CC-11")]), ("Pilots", &[])])
        .build();

    let plan = second_plan(&directory, &state, &second);

    assert_eq!(
        event_names(&plan),
        [
            "dsync.group.updated",
            "dsync.group.created",
            "dsync.group.deleted"
        ]
    );
    let updated = &plan.steps[0].event.as_ref().unwrap().data;
    assert_eq!(updated["object"], "directory_group");
    assert_eq!(updated["idp_id"], "Cranes");
    assert_eq!(updated["name"], "Cranes");
    assert_eq!(updated["raw_attributes"], json!({"cost_center": "CC-11"}));
    assert_eq!(
        updated["previous_attributes"],
        json!({"raw_attributes": {"cost_center": "CC-10"}})
    );
    let deleted = &plan.steps[2].event.as_ref().unwrap().data;
    assert_eq!(deleted["name"], "Night shift");
    assert_eq!(
        plan.steps[2].change,
        Change::DeleteGroup(GroupName::new("Night shift"))
    );
}

#[test]
fn membership_events_carry_directory_user_and_group() {
    let directory = directory();
    let snapshot = SnapshotBuilder::new()
        .users(crew())
        .groups(&[("Cranes", &[("cost_center", "CC-10")])])
        .memberships(&[("Cranes", "E100")])
        .build();

    let plan = plan(
        &DirectoryState::default(),
        &snapshot,
        &context(&directory, FIRST_SYNC_MS, b"s1"),
    );

    let added: Vec<&Value> = plan
        .events()
        .filter(|event| event.event == EventKind::GroupUserAdded)
        .map(|event| &event.data)
        .collect();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["directory_id"], directory.id.as_str());
    assert_eq!(added[0]["user"]["object"], "directory_user");
    assert_eq!(added[0]["user"]["idp_id"], "E100");
    assert_eq!(added[0]["group"]["object"], "directory_group");
    assert_eq!(added[0]["group"]["raw_attributes"]["cost_center"], "CC-10");
    assert_eq!(added[0].as_object().unwrap().len(), 3);
}

#[test]
fn removed_membership_emits_user_removed() {
    let directory = directory();
    let first = SnapshotBuilder::new()
        .users(crew())
        .memberships(&[("Cranes", "E100"), ("Cranes", "E200")])
        .build();
    let state = state_from(&directory, &first);
    let second = SnapshotBuilder::new()
        .users(crew())
        .memberships(&[("Cranes", "E100")])
        .build();

    let plan = second_plan(&directory, &state, &second);

    assert_eq!(event_names(&plan), ["dsync.group.user_removed"]);
    assert_eq!(
        plan.steps[0].change,
        Change::RemoveMembership(GroupName::new("Cranes"), IdpId::new("E200"))
    );
    let data = &plan.steps[0].event.as_ref().unwrap().data;
    assert_eq!(data["user"]["idp_id"], "E200");
    assert_eq!(data["group"]["name"], "Cranes");
}

#[test]
fn group_named_only_in_memberships_is_created() {
    let directory = directory();
    let snapshot = SnapshotBuilder::new()
        .users(crew())
        .memberships(&[("Dock 4", "E100"), ("Dock 4", "E300")])
        .build();

    let plan = plan(
        &DirectoryState::default(),
        &snapshot,
        &context(&directory, FIRST_SYNC_MS, b"s1"),
    );

    let names = event_names(&plan);
    assert_eq!(
        names,
        [
            "dsync.user.created",
            "dsync.user.created",
            "dsync.user.created",
            "dsync.group.created",
            "dsync.group.user_added",
            "dsync.group.user_added",
        ]
    );
    let group = &plan.steps[3].event.as_ref().unwrap().data;
    assert_eq!(group["name"], "Dock 4");
    assert_eq!(group["raw_attributes"], json!({}));
}

#[test]
fn deleted_group_sends_no_user_removed() {
    let directory = directory();
    let first = SnapshotBuilder::new()
        .users(crew())
        .groups(&[("Cranes", &[])])
        .memberships(&[("Cranes", "E100")])
        .build();
    let state = state_from(&directory, &first);
    let second = SnapshotBuilder::new()
        .users(crew())
        .groups(&[])
        .memberships(&[])
        .build();

    let plan = second_plan(&directory, &state, &second);

    assert_eq!(event_names(&plan), ["dsync.group.deleted"]);
    let mut after = state.clone();
    plan.apply_to(&mut after);
    assert!(after.memberships.is_empty());
}

#[test]
fn deleted_user_leaves_groups_before_delete() {
    let directory = directory();
    let first = SnapshotBuilder::new()
        .users(crew())
        .memberships(&[("Cranes", "E300"), ("Office", "E300"), ("Office", "E100")])
        .build();
    let state = state_from(&directory, &first);
    let second = SnapshotBuilder::new()
        .users(crew()[..2].to_vec())
        .memberships(&[("Office", "E100")])
        .build();

    let plan = second_plan(&directory, &state, &second);

    // Cranes loses its only member, so it is deleted; Office stays.
    assert_eq!(
        event_names(&plan),
        [
            "dsync.group.user_removed",
            "dsync.group.deleted",
            "dsync.user.deleted"
        ]
    );
    assert_eq!(
        plan.steps[0].change,
        Change::RemoveMembership(GroupName::new("Office"), IdpId::new("E300"))
    );
    assert_eq!(
        plan.steps[1].change,
        Change::DeleteGroup(GroupName::new("Cranes"))
    );
}

#[test]
fn steps_follow_commit_order() {
    let directory = directory();
    let first = SnapshotBuilder::new()
        .users(crew())
        .groups(&[("Cranes", &[]), ("Office", &[])])
        .memberships(&[("Cranes", "E100"), ("Office", "E300")])
        .build();
    let state = state_from(&directory, &first);
    let mut users = crew()[..2].to_vec();
    users.push(person("E050", "Lior", "Navon", &[]));
    users[0] = person("E100", "Ines", "Okafor", &[("department_name", "Quay")]);
    let second = SnapshotBuilder::new()
        .users(users)
        .groups(&[("Cranes", &[("floor", "2")]), ("Pilots", &[])])
        .memberships(&[("Pilots", "E050"), ("Cranes", "E200")])
        .build();

    let plan = second_plan(&directory, &state, &second);

    assert_eq!(
        event_names(&plan),
        [
            "dsync.user.created",
            "dsync.user.updated",
            "dsync.group.updated",
            "dsync.group.created",
            "dsync.group.user_added",
            "dsync.group.user_added",
            "dsync.group.user_removed",
            "dsync.group.deleted",
            "dsync.user.deleted",
        ]
    );
    assert_eq!(plan.events().next().unwrap().data["idp_id"], "E050");
}

#[test]
fn event_ids_increase_in_step_order() {
    let directory = directory();
    let snapshot = SnapshotBuilder::new()
        .users(crew())
        .memberships(&[("Cranes", "E100"), ("Cranes", "E200")])
        .build();

    let plan = plan(
        &DirectoryState::default(),
        &snapshot,
        &context(&directory, FIRST_SYNC_MS, b"s1"),
    );

    let ids: Vec<String> = plan.events().map(|event| event.id.to_string()).collect();
    assert_eq!(ids.len(), 6);
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    for event in plan.events() {
        assert_eq!(
            event.id.ulid().unwrap().timestamp_ms(),
            FIRST_SYNC_MS as u64
        );
        assert_eq!(event.created_at, Timestamp::from_millis(FIRST_SYNC_MS));
        assert_eq!(event.directory_id.as_ref(), Some(&directory.id));
    }
}

#[test]
fn event_ids_depend_on_seed() {
    let directory = directory();
    let snapshot = users_only(crew());
    let state = DirectoryState::default();

    let one = plan(
        &state,
        &snapshot,
        &context(&directory, FIRST_SYNC_MS, b"sync_a"),
    );
    let two = plan(
        &state,
        &snapshot,
        &context(&directory, FIRST_SYNC_MS, b"sync_b"),
    );

    assert_ne!(
        one.steps[0].event.as_ref().unwrap().id,
        two.steps[0].event.as_ref().unwrap().id
    );
    assert_eq!(one.steps[0].change, two.steps[0].change);
}

#[test]
fn held_user_keeps_stored_state_and_groups() {
    let directory = directory();
    let first = SnapshotBuilder::new()
        .users(crew())
        .memberships(&[("Cranes", "E200"), ("Cranes", "E100")])
        .build();
    let state = state_from(&directory, &first);
    // E200's rows were bad: it is missing from the users and from the memberships.
    let second = SnapshotBuilder::new()
        .users(vec![crew()[0].clone(), crew()[2].clone()])
        .held_users(&["E200"])
        .memberships(&[("Cranes", "E100")])
        .build();

    let plan = second_plan(&directory, &state, &second);

    assert!(plan.steps.is_empty(), "{:?}", event_names(&plan));
    assert_eq!(plan.counts.unchanged, 3);
    assert_eq!(plan.counts.skipped_rows, 1);
}

#[test]
fn held_user_is_never_created() {
    let directory = directory();
    let snapshot = SnapshotBuilder::new()
        .users(crew())
        .held_users(&["E200"])
        .memberships(&[("Cranes", "E200")])
        .build();

    let plan = plan(
        &DirectoryState::default(),
        &snapshot,
        &context(&directory, FIRST_SYNC_MS, b"s1"),
    );

    let mut after = DirectoryState::default();
    plan.apply_to(&mut after);
    assert!(!after.users.contains_key(&IdpId::new("E200")));
    assert!(after.memberships.is_empty());
}

#[test]
fn held_membership_row_keeps_stored_pair() {
    let directory = directory();
    let first = SnapshotBuilder::new()
        .users(crew())
        .memberships(&[("Cranes", "E100")])
        .build();
    let state = state_from(&directory, &first);
    let second = SnapshotBuilder::new()
        .users(crew())
        .memberships(&[])
        .held_memberships(&[("Cranes", "E100")])
        .build();

    let plan = second_plan(&directory, &state, &second);

    // The group is named by no valid row any more, so it goes, and the held pair with it.
    assert_eq!(event_names(&plan), ["dsync.group.deleted"]);
}

#[test]
fn membership_for_unknown_user_is_not_added() {
    let directory = directory();
    let snapshot = SnapshotBuilder::new()
        .users(crew())
        .memberships(&[("Cranes", "E100"), ("Cranes", "E999")])
        .build();

    let plan = plan(
        &DirectoryState::default(),
        &snapshot,
        &context(&directory, FIRST_SYNC_MS, b"s1"),
    );

    let mut after = DirectoryState::default();
    plan.apply_to(&mut after);
    assert_eq!(after.memberships.len(), 1);
}

#[test]
fn rejected_groups_and_memberships_keep_stored() {
    let directory = directory();
    let first = SnapshotBuilder::new()
        .users(crew())
        .groups(&[("Cranes", &[("cost_center", "CC-10")])])
        .memberships(&[("Cranes", "E100")])
        .build();
    let state = state_from(&directory, &first);
    let second = SnapshotBuilder::new()
        .users(crew())
        .groups_rejected()
        .memberships_rejected()
        .build();

    let plan = second_plan(&directory, &state, &second);

    assert!(plan.steps.is_empty(), "{:?}", event_names(&plan));
}

#[test]
fn absent_memberships_remove_all() {
    let directory = directory();
    let first = SnapshotBuilder::new()
        .users(crew())
        .groups(&[("Cranes", &[])])
        .memberships(&[("Cranes", "E100")])
        .build();
    let state = state_from(&directory, &first);
    let second = SnapshotBuilder::new()
        .users(crew())
        .groups(&[("Cranes", &[])])
        .build();

    let plan = second_plan(&directory, &state, &second);

    assert_eq!(event_names(&plan), ["dsync.group.user_removed"]);
}

#[test]
fn rejected_users_file_rejects_plan() {
    let directory = directory();
    let state = state_from(&directory, &users_only(crew()));
    let mut snapshot = SnapshotBuilder::new()
        .users_rejected()
        .groups(&[("Cranes", &[])])
        .build();
    snapshot.skipped_rows = 4;

    let plan = second_plan(&directory, &state, &snapshot);

    assert_eq!(plan.status, PlanStatus::Rejected);
    assert!(plan.steps.is_empty());
    assert!(plan.reason.as_deref().unwrap().contains("rejected"));
    assert_eq!(plan.counts.skipped_rows, 4);
}

#[test]
fn absent_users_file_rejects_plan() {
    let directory = directory();
    let snapshot = SnapshotBuilder::new().groups(&[("Cranes", &[])]).build();

    let plan = plan(
        &DirectoryState::default(),
        &snapshot,
        &context(&directory, FIRST_SYNC_MS, b"s1"),
    );

    assert_eq!(plan.status, PlanStatus::Rejected);
    assert!(plan.steps.is_empty());
    assert!(plan.reason.as_deref().unwrap().contains("users.csv"));
}

fn numbered_staff(count: usize) -> Vec<dsync_core::snapshot::UserRecord> {
    (0..count)
        .map(|index| {
            person(
                &format!("N{index:03}"),
                "Staff",
                &format!("Member{index}"),
                &[],
            )
        })
        .collect()
}

#[test]
fn guard_holds_deletion_over_threshold() {
    let directory = directory();
    let state = state_from(&directory, &users_only(numbered_staff(10)));

    let plan = second_plan(&directory, &state, &users_only(numbered_staff(7)));

    assert_eq!(plan.status, PlanStatus::Held);
    let reason = plan.reason.as_deref().unwrap();
    assert!(reason.contains("3 of the directory's 10 users"), "{reason}");
    assert!(reason.contains("dsync sync approve"), "{reason}");
    assert_eq!(plan.steps.len(), 3);
}

#[test]
fn guard_allows_deletion_at_threshold() {
    let directory = directory();
    let state = state_from(&directory, &users_only(numbered_staff(10)));

    let plan = second_plan(&directory, &state, &users_only(numbered_staff(8)));

    assert_eq!(plan.status, PlanStatus::Applied);
    assert_eq!(plan.counts.deleted, 2);
}

#[test]
fn guard_skips_small_directories() {
    let directory = directory();
    let state = state_from(&directory, &users_only(numbered_staff(9)));

    // Deleting every user is held at any size (see plan_safety.rs), so
    // this sync keeps one.
    let plan = second_plan(&directory, &state, &users_only(numbered_staff(1)));

    assert_eq!(plan.status, PlanStatus::Applied);
    assert_eq!(plan.counts.deleted, 8);
}

#[test]
fn guard_skipped_when_approved() {
    let directory = directory();
    let state = state_from(&directory, &users_only(numbered_staff(12)));
    let mut context = context(&directory, SECOND_SYNC_MS, b"second");
    context.approved = true;

    let plan = plan(&state, &users_only(Vec::new()), &context);

    assert_eq!(plan.status, PlanStatus::Applied);
    assert_eq!(plan.counts.deleted, 12);
}

#[test]
fn guard_counts_deactivations() {
    let directory = directory_with(DirectorySettings {
        inactive_users: InactiveUserPolicy::Keep,
        ..DirectorySettings::default()
    });
    let state = state_from(&directory, &users_only(numbered_staff(10)));
    let mut staff = numbered_staff(10);
    for record in staff.iter_mut().take(3) {
        record.state = UserState::Inactive;
    }

    let plan = second_plan(&directory, &state, &users_only(staff));

    assert_eq!(plan.status, PlanStatus::Held);
    assert_eq!(plan.counts.updated, 3);
}

#[test]
fn apply_into_matches_apply_to() {
    let directory = directory();
    let first = SnapshotBuilder::new()
        .users(crew())
        .groups(&[("Cranes", &[])])
        .memberships(&[("Cranes", "E100"), ("Office", "E300")])
        .build();
    let plan = plan(
        &DirectoryState::default(),
        &first,
        &context(&directory, FIRST_SYNC_MS, b"s1"),
    );

    let mut cloned = DirectoryState::default();
    plan.apply_to(&mut cloned);
    let mut moved = DirectoryState::default();
    plan.apply_into(&mut moved);

    assert_eq!(cloned, moved);
    assert_eq!(moved.users.len(), 3);
    assert_eq!(moved.groups.len(), 2);
    assert_eq!(moved.memberships.len(), 2);
}
