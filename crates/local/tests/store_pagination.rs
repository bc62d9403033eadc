//! Cursor pagination of the SQLite store over 250 users.

mod support;

use std::collections::HashSet;

use dsync_core::ports::{DirectoryData, Order, PageRequest, UserFilter};
use support::{commit_files, users_csv, TestStore};

const USERS: usize = 250;

async fn store_with_users() -> (TestStore, dsync_core::model::Directory) {
    let test = TestStore::new();
    let directory = test.directory("org_pages").await;
    commit_files(
        test.store(),
        &directory,
        &[("users.csv", &users_csv(USERS))],
    )
    .await;
    (test, directory)
}

/// Pages forward from the start with `after`, then back with `before`, and
/// returns the ids seen in each direction.
async fn walk(
    test: &TestStore,
    filter: &UserFilter,
    order: Order,
    limit: usize,
) -> (Vec<String>, Vec<String>) {
    let mut forward = Vec::new();
    let mut page = PageRequest {
        limit,
        order,
        before: None,
        after: None,
    };
    let mut last_before = None;
    loop {
        let listed = test.store().list_users(filter, &page).await.unwrap();
        assert!(listed.data.len() <= limit);
        forward.extend(listed.data.iter().map(|user| user.user.id.to_string()));
        last_before = listed.before.clone().or(last_before);
        match listed.after {
            Some(after) => {
                page = PageRequest {
                    limit,
                    order,
                    before: None,
                    after: Some(after),
                }
            }
            None => break,
        }
    }

    // Back from the last page: `before` of the last page, repeatedly.
    let mut backward: Vec<String> = Vec::new();
    let mut cursor = last_before;
    while let Some(before) = cursor {
        let page = PageRequest {
            limit,
            order,
            before: Some(before),
            after: None,
        };
        let listed = test.store().list_users(filter, &page).await.unwrap();
        let mut ids: Vec<String> = listed
            .data
            .iter()
            .map(|user| user.user.id.to_string())
            .collect();
        ids.extend(backward);
        backward = ids;
        cursor = listed.before;
    }
    (forward, backward)
}

#[tokio::test]
async fn list_users_ascending_pages_cover_every_user_once() {
    let (test, directory) = store_with_users().await;
    let (forward, _) = walk(
        &test,
        &UserFilter::Directory(directory.id.clone()),
        Order::Asc,
        10,
    )
    .await;

    let unique: HashSet<&String> = forward.iter().collect();
    assert_eq!(forward.len(), USERS);
    assert_eq!(unique.len(), USERS);
    let mut sorted = forward.clone();
    sorted.sort();
    assert_eq!(forward, sorted);
}

#[tokio::test]
async fn list_users_descending_pages_cover_every_user_once() {
    let (test, directory) = store_with_users().await;
    let (forward, _) = walk(
        &test,
        &UserFilter::Directory(directory.id.clone()),
        Order::Desc,
        7,
    )
    .await;

    let unique: HashSet<&String> = forward.iter().collect();
    assert_eq!(unique.len(), USERS);
    let mut sorted = forward.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(forward, sorted);
}

#[tokio::test]
async fn list_users_before_cursor_walks_back() {
    let (test, directory) = store_with_users().await;
    for order in [Order::Asc, Order::Desc] {
        let (forward, backward) = walk(
            &test,
            &UserFilter::Directory(directory.id.clone()),
            order,
            10,
        )
        .await;
        // Walking back from the last page lists everything before it, in the same order.
        let last_page_start = forward.len() - (forward.len() - 1) % 10 - 1;
        assert_eq!(
            backward,
            forward[..last_page_start].to_vec(),
            "order {order:?}"
        );
    }
}

#[tokio::test]
async fn list_users_last_page_has_no_after_cursor() {
    let (test, directory) = store_with_users().await;
    let page = PageRequest {
        limit: 100,
        order: Order::Asc,
        before: None,
        after: None,
    };
    let first = test
        .store()
        .list_users(&UserFilter::Directory(directory.id.clone()), &page)
        .await
        .unwrap();
    assert!(first.before.is_none());
    let second_request = PageRequest {
        after: first.after.clone(),
        ..page.clone()
    };
    let second = test
        .store()
        .list_users(
            &UserFilter::Directory(directory.id.clone()),
            &second_request,
        )
        .await
        .unwrap();
    let third_request = PageRequest {
        after: second.after.clone(),
        ..page
    };
    let third = test
        .store()
        .list_users(&UserFilter::Directory(directory.id), &third_request)
        .await
        .unwrap();

    assert_eq!(third.data.len(), 50);
    assert_eq!(third.after, None);
    assert!(third.before.is_some());
}

#[tokio::test]
async fn list_users_by_group_returns_members_only() {
    let test = TestStore::new();
    let directory = test.directory("org_groups").await;
    let memberships = "group_name,user_id\nEngineering,1\nEngineering,3\nSales,2\n";
    commit_files(
        test.store(),
        &directory,
        &[
            ("users.csv", &users_csv(5)),
            ("user_groups.csv", memberships),
        ],
    )
    .await;

    let groups = test
        .store()
        .list_groups(
            &dsync_core::ports::GroupFilter::Directory(directory.id.clone()),
            &PageRequest {
                limit: 10,
                order: Order::Asc,
                before: None,
                after: None,
            },
        )
        .await
        .unwrap();
    let engineering = groups
        .data
        .iter()
        .find(|entry| entry.group.name.as_str() == "Engineering")
        .unwrap();

    let members = test
        .store()
        .list_users(
            &UserFilter::Group(engineering.group.id.clone()),
            &PageRequest {
                limit: 10,
                order: Order::Asc,
                before: None,
                after: None,
            },
        )
        .await
        .unwrap();
    let mut idp_ids: Vec<&str> = members
        .data
        .iter()
        .map(|entry| entry.user.idp_id.as_str())
        .collect();
    idp_ids.sort();
    assert_eq!(idp_ids, ["1", "3"]);
}
