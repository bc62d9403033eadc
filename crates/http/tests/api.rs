//! The HTTP API over the real SQLite store, through real HTTP on 127.0.0.1.

mod common;

use std::collections::HashSet;

use common::{read, users_and_groups, TestServer};
use dsync_core::ids::{DirectoryId, EventId, GroupId, KeyId, SyncId, UserId, WebhookEndpointId};
use reqwest::Method;
use serde_json::{json, Value};

/// Lists every documented operation, with each path parameter filled by a
/// well-formed id that names nothing.
fn documented_operations() -> Vec<(Method, String, bool)> {
    let document = dsync_http::openapi::document();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        let concrete = path
            .replace(
                "/directories/{id}",
                &format!("/directories/{}", DirectoryId::generate()),
            )
            .replace("{key_id}", KeyId::generate().as_str())
            .replace("/syncs/{id}", &format!("/syncs/{}", SyncId::generate()))
            .replace(
                "/directory_users/{id}",
                &format!("/directory_users/{}", UserId::generate()),
            )
            .replace(
                "/directory_groups/{id}",
                &format!("/directory_groups/{}", GroupId::generate()),
            )
            .replace(
                "/webhook_endpoints/{id}",
                &format!("/webhook_endpoints/{}", WebhookEndpointId::generate()),
            );
        assert!(!concrete.contains('{'), "unfilled parameter in {path}");

        for (method, operation) in item.as_object().expect("path item") {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            let public = operation.get("security") == Some(&json!([]));
            operations.push((method, concrete.clone(), public));
        }
    }
    operations
}

fn assert_error_body(body: &Value, code: &str) {
    assert_eq!(body["code"], code, "error body: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
    assert!(body.get("error").is_none(), "`error` key in {body}");
    assert!(
        body.get("error_description").is_none(),
        "`error_description` key in {body}"
    );
}

#[tokio::test]
async fn every_data_route_rejects_missing_and_wrong_keys() {
    let server = TestServer::start().await;
    let operations = documented_operations();
    assert!(
        operations.len() >= 25,
        "only {} operations documented",
        operations.len()
    );

    for (method, path, public) in operations {
        if public {
            continue;
        }
        let attempts = [
            ("no key", None),
            ("wrong key", Some("Bearer sk_test_wrong".to_owned())),
            ("empty bearer", Some("Bearer ".to_owned())),
            ("basic scheme", Some(format!("Basic {}", server.api_key))),
        ];
        for (case, header) in attempts {
            let mut request = server.client.request(method.clone(), server.url(&path));
            if let Some(header) = header {
                request = request.header("authorization", header);
            }
            let response = request.send().await.expect("send");
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            let has_request_id = response.headers().contains_key("x-request-id");
            let (status, body) = read(response).await;

            assert_eq!(status, 401, "{method} {path} with {case}");
            assert!(
                content_type.starts_with("application/json"),
                "{method} {path}: {content_type}"
            );
            assert!(has_request_id, "{method} {path}: no X-Request-ID");
            assert_error_body(&body, "unauthorized");
        }
    }
}

#[tokio::test]
async fn public_routes_need_no_key() {
    let server = TestServer::start().await;

    let health = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let document = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(document).await;
    assert_eq!(status, 200);
    assert_eq!(body["openapi"], "3.1.0");
}

#[tokio::test]
async fn served_openapi_matches_checked_in_file() {
    let server = TestServer::start().await;
    let response = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    let (_, served) = read(response).await;

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("DSYNC_UPDATE_OPENAPI").is_some() {
        let mut text = serde_json::to_string_pretty(&served).unwrap();
        text.push('\n');
        std::fs::write(&path, text).unwrap();
    }
    let checked_in: Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .expect("docs/openapi.json exists; run with DSYNC_UPDATE_OPENAPI=1 to write it"),
    )
    .expect("docs/openapi.json is JSON");
    assert!(
        served == checked_in,
        "docs/openapi.json differs from GET /openapi.json; run `DSYNC_UPDATE_OPENAPI=1 cargo test -p dsync-http --test api served_openapi` and commit the file"
    );
}

#[tokio::test]
async fn errors_are_json_objects() {
    let server = TestServer::start().await;

    let (status, body) = server.get("/no_such_route").await;
    assert_eq!(status, 404);
    assert_error_body(&body, "route_not_found");

    let (status, body) = server.send(Method::PUT, "/directories", None).await;
    assert_eq!(status, 405);
    assert_error_body(&body, "method_not_allowed");

    let malformed = server
        .client
        .post(server.url("/webhook_endpoints"))
        .bearer_auth(&server.api_key)
        .header("content-type", "application/json")
        .body("{\"endpoint_url\":")
        .send()
        .await
        .unwrap();
    let content_type = malformed.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, body) = read(malformed).await;
    assert_eq!(status, 400);
    assert!(content_type.starts_with("application/json"));
    assert_error_body(&body, "invalid_json");

    let (status, body) = server
        .get(&format!("/directories/{}", DirectoryId::generate()))
        .await;
    assert_eq!(status, 404);
    assert_error_body(&body, "entity_not_found");

    let (status, body) = server.get("/directories/not-an-id").await;
    assert_eq!(status, 404);
    assert_error_body(&body, "entity_not_found");

    for query in ["limit=0", "limit=101", "limit=ten", "order=sideways"] {
        let (status, body) = server.get(&format!("/directories?{query}")).await;
        assert_eq!(status, 422, "{query}");
        assert_error_body(&body, "invalid_request_parameters");
        let field = query.split('=').next().unwrap();
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
        assert!(body["errors"][0]["code"].is_string(), "{query}: {body}");
    }

    let (status, body) = server.get("/directory_users").await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "directory");
}

#[tokio::test]
async fn directories_list_filter_and_read() {
    let server = TestServer::start().await;
    let acme = server.linked_directory("org_acme", "Acme Payroll").await;
    let globex = server.linked_directory("org_globex", "Globex HR").await;

    let (status, page) = server.get("/directories?limit=100").await;
    assert_eq!(status, 200);
    assert_eq!(page["object"], "list");
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![globex.id.as_str(), acme.id.as_str()],
        "newest first by default"
    );
    assert_eq!(page["list_metadata"]["after"], Value::Null);

    let (_, page) = server.get("/directories?organization_id=org_acme").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["id"], acme.id.as_str());

    let (_, page) = server
        .get("/directories?search=globex+hr&domain=example.test")
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["id"], globex.id.as_str());

    let (status, directory) = server.get(&format!("/directories/{}", acme.id)).await;
    assert_eq!(status, 200);
    assert_eq!(directory["object"], "directory");
    assert_eq!(directory["type"], "sftp");
    assert_eq!(directory["state"], "linked");
    assert_eq!(directory["organization_id"], "org_acme");
    assert!(directory["external_key"].is_string());
    assert!(directory.get("domain").is_some());
    assert_eq!(directory["sftp"]["port"], common::SFTP_PORT);
    let created_at = directory["created_at"].as_str().unwrap();
    assert_eq!(
        created_at.len(),
        24,
        "millisecond RFC 3339 with Z: {created_at}"
    );
    assert!(created_at.ends_with('Z'));
}

/// Collects every id of a paged list by following `list_metadata.after`.
async fn walk_forward(server: &TestServer, path: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let url = match &after {
            Some(cursor) => format!("{path}&after={cursor}"),
            None => path.to_owned(),
        };
        let (status, page) = server.get(&url).await;
        assert_eq!(status, 200, "{url}: {page}");
        ids.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["id"].as_str().unwrap().to_owned()),
        );
        match page["list_metadata"]["after"].as_str() {
            Some(cursor) => after = Some(cursor.to_owned()),
            None => return ids,
        }
    }
    panic!("{path} did not end after 100 pages");
}

/// Collects every id by following `list_metadata.before` from a starting
/// cursor, prepending each page.
async fn walk_backward(server: &TestServer, path: &str, start_before: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let mut before = start_before.to_owned();
    for _ in 0..100 {
        let url = format!("{path}&before={before}");
        let (status, page) = server.get(&url).await;
        assert_eq!(status, 200, "{url}: {page}");
        let mut page_ids: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned())
            .collect();
        page_ids.extend(ids);
        ids = page_ids;
        match page["list_metadata"]["before"].as_str() {
            Some(cursor) => before = cursor.to_owned(),
            None => return ids,
        }
    }
    panic!("{path} did not reach the start after 100 pages");
}

#[tokio::test]
async fn users_pagination_walks_250_without_gap_or_repeat() {
    let server = TestServer::start().await;
    let directory = server.linked_directory("org_paging", "Paging").await;
    let report = server
        .upload_and_sync(&directory, &users_and_groups(250))
        .await;
    assert_eq!(report["status"], "applied", "{report}");
    assert_eq!(report["counts"]["created"], 250);

    for order in ["asc", "desc", "normal"] {
        for limit in [7, 100] {
            let path = format!(
                "/directory_users?directory={}&order={order}&limit={limit}",
                directory.id
            );
            let ids = walk_forward(&server, &path).await;
            assert_eq!(ids.len(), 250, "{path}");
            let unique: HashSet<&String> = ids.iter().collect();
            assert_eq!(unique.len(), 250, "{path}: repeated ids");

            let mut sorted = ids.clone();
            sorted.sort();
            if order == "asc" {
                assert_eq!(ids, sorted, "{path}: not ascending");
            } else {
                sorted.reverse();
                assert_eq!(ids, sorted, "{path}: not descending");
            }

            // From the last item backward to the first: the same ids.
            let last = ids.last().unwrap();
            let mut backward = walk_backward(&server, &path, last).await;
            backward.push(last.clone());
            assert_eq!(backward, ids, "{path}: backward walk differs");
        }
    }

    // `before` together with `after`: `after` wins.
    let path = format!(
        "/directory_users?directory={}&order=asc&limit=5",
        directory.id
    );
    let (_, first) = server.get(&path).await;
    let cursor = first["list_metadata"]["after"].as_str().unwrap();
    let (_, both) = server
        .get(&format!("{path}&after={cursor}&before={cursor}"))
        .await;
    let (_, only_after) = server.get(&format!("{path}&after={cursor}")).await;
    assert_eq!(both["data"], only_after["data"]);
}

#[tokio::test]
async fn users_and_groups_filters_and_reads() {
    let server = TestServer::start().await;
    let directory = server.linked_directory("org_groups", "Groups").await;
    server
        .upload_and_sync(&directory, &users_and_groups(12))
        .await;

    let (_, groups) = server
        .get(&format!(
            "/directory_groups?directory={}&limit=100",
            directory.id
        ))
        .await;
    let groups = groups["data"].as_array().unwrap().clone();
    let names: HashSet<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, HashSet::from(["Engineering", "Support"]));
    let engineering = groups.iter().find(|g| g["name"] == "Engineering").unwrap();
    assert_eq!(engineering["object"], "directory_group");
    assert_eq!(engineering["idp_id"], "Engineering");
    assert_eq!(engineering["organization_id"], "org_groups");

    let (_, members) = server
        .get(&format!(
            "/directory_users?group={}&limit=100",
            engineering["id"].as_str().unwrap()
        ))
        .await;
    let members = members["data"].as_array().unwrap().clone();
    let member_ids: HashSet<&str> = members
        .iter()
        .map(|u| u["idp_id"].as_str().unwrap())
        .collect();
    let expected: HashSet<String> = (1..=12)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("E{i:04}"))
        .collect();
    assert_eq!(member_ids, expected.iter().map(String::as_str).collect());

    let (status, by_idp) = server
        .get(&format!(
            "/directory_users?directory={}&idp_id=E0006",
            directory.id
        ))
        .await;
    assert_eq!(status, 200);
    let found = by_idp["data"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    let user = found[0].clone();
    assert_eq!(user["email"], "person6@example.test");
    assert_eq!(by_idp["list_metadata"]["after"], Value::Null);

    let (_, by_email) = server
        .get(&format!(
            "/directory_users?directory={}&email=PERSON6%40example.test",
            directory.id
        ))
        .await;
    assert_eq!(by_email["data"][0]["id"], user["id"]);

    let user_id = user["id"].as_str().unwrap();
    let (status, read_user) = server.get(&format!("/directory_users/{user_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(read_user["object"], "directory_user");
    assert_eq!(read_user["state"], "active");
    assert_eq!(read_user["first_name"], "Given6");
    assert_eq!(
        read_user["emails"],
        json!([{ "primary": true, "type": "work", "value": "person6@example.test" }])
    );
    assert!(read_user["custom_attributes"].is_object());
    let user_groups: HashSet<&str> = read_user["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(user_groups, HashSet::from(["Engineering", "Support"]));

    let (_, groups_of_user) = server
        .get(&format!("/directory_groups?user={user_id}"))
        .await;
    assert_eq!(groups_of_user["data"].as_array().unwrap().len(), 2);

    let group_id = engineering["id"].as_str().unwrap();
    let (status, group) = server.get(&format!("/directory_groups/{group_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(group["name"], "Engineering");

    let (status, _) = server
        .get(&format!("/directory_users/{}", UserId::generate()))
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .get(&format!("/directory_groups/{}", GroupId::generate()))
        .await;
    assert_eq!(status, 404);
    let (status, body) = server
        .get(&format!(
            "/directory_users?directory={}&group={group_id}",
            directory.id
        ))
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn events_filters_and_cursor() {
    let server = TestServer::start().await;
    let first = server.linked_directory("org_events_a", "Events A").await;
    let second = server.linked_directory("org_events_b", "Events B").await;
    server.upload_and_sync(&first, &users_and_groups(30)).await;
    server.upload_and_sync(&second, &users_and_groups(4)).await;

    // Everything, oldest first, walked with the cursor in pages of 7.
    let all = walk_forward(&server, "/events?limit=7").await;
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "repeated events");
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "events not oldest first");

    // One comma-separated value, as the SDKs send it.
    let (_, created) = server
        .get("/events?events=dsync.user.created%2Cdsync.activated&limit=100")
        .await;
    let kinds: Vec<&str> = created["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "dsync.user.created").count(),
        34
    );
    assert_eq!(kinds.iter().filter(|k| **k == "dsync.activated").count(), 2);
    assert_eq!(kinds.len(), 36);

    // Repeated and bracketed forms give the same result.
    let (_, repeated) = server
        .get("/events?events=dsync.user.created&events%5B%5D=dsync.activated&limit=100")
        .await;
    assert_eq!(repeated["data"], created["data"]);

    // An empty `events` means every type.
    let (_, empty_filter) = server.get("/events?events=&limit=100").await;
    let (_, no_filter) = server.get("/events?limit=100").await;
    assert_eq!(empty_filter["data"], no_filter["data"]);

    let (_, org) = server
        .get("/events?organization_id=org_events_b&events=dsync.user.created&limit=100")
        .await;
    assert_eq!(org["data"].as_array().unwrap().len(), 4);
    for event in org["data"].as_array().unwrap() {
        assert_eq!(event["data"]["organization_id"], "org_events_b");
        assert_eq!(event["object"], "event");
        assert!(event.get("context").is_none());
    }

    // The range stays in force on every page, together with `after`.
    let start = all_events_created_at(&server).await;
    let range = format!(
        "range_start={}&range_end=2999-01-01T00:00:00Z",
        start.replace(':', "%3A")
    );
    let ranged = walk_forward(&server, &format!("/events?{range}&limit=5")).await;
    assert_eq!(ranged, all);
    let (_, future) = server
        .get("/events?range_start=2999-01-01T00:00:00.000Z")
        .await;
    assert_eq!(future["data"], json!([]));
    assert_eq!(future["list_metadata"]["after"], Value::Null);

    // `after` is exclusive.
    let (_, after_tenth) = server
        .get(&format!("/events?after={}&limit=3", all[9]))
        .await;
    let ids: Vec<&str> = after_tenth["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![all[10].as_str(), all[11].as_str(), all[12].as_str()]
    );

    for query in [
        "events=dsync.user.exploded",
        "range_start=yesterday",
        "limit=0",
        "after=bogus",
        "order=desc",
    ] {
        let (status, body) = server.get(&format!("/events?{query}")).await;
        assert_eq!(status, 422, "{query}: {body}");
    }
    let (status, _) = server
        .get(&format!("/events?after={}", EventId::generate()))
        .await;
    assert_eq!(status, 200);
}

async fn all_events_created_at(server: &TestServer) -> String {
    let (_, page) = server.get("/events?limit=1").await;
    page["data"][0]["created_at"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn webhook_endpoints_crud() {
    let server = TestServer::start().await;

    let (status, created) = server
        .post(
            "/webhook_endpoints",
            json!({ "endpoint_url": "https://hooks.example.test/dsync", "events": ["dsync.user.created", "dsync.deleted"] }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["object"], "webhook_endpoint");
    assert_eq!(created["status"], "enabled");
    assert_eq!(
        created["events"],
        json!(["dsync.user.created", "dsync.deleted"])
    );
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.len() >= 32, "secret too short");
    let id = created["id"].as_str().unwrap().to_owned();

    // Ids order by creation time in milliseconds; two creates in the same
    // millisecond would order at random.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, second) = server
        .post(
            "/webhook_endpoints",
            json!({ "endpoint_url": "http://127.0.0.1:9/other", "events": [] }),
        )
        .await;
    assert_eq!(status, 201);
    assert_ne!(second["secret"], created["secret"], "secrets must differ");

    let (_, list) = server.get("/webhook_endpoints").await;
    let items = list["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], second["id"], "newest first");
    assert_eq!(items[1]["secret"], secret, "list items carry the secret");

    let (status, updated) = server
        .send(
            Method::PATCH,
            &format!("/webhook_endpoints/{id}"),
            Some(json!({ "status": "disabled" })),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["status"], "disabled");
    assert_eq!(
        updated["endpoint_url"], "https://hooks.example.test/dsync",
        "unchanged fields kept"
    );
    assert_eq!(updated["secret"], secret);

    let (status, updated) = server
        .send(
            Method::PATCH,
            &format!("/webhook_endpoints/{id}"),
            Some(json!({ "events": ["dsync.group.created"], "endpoint_url": "https://hooks.example.test/v2" })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(updated["events"], json!(["dsync.group.created"]));
    assert_eq!(updated["status"], "disabled");

    for body in [
        json!({ "endpoint_url": "ftp://hooks.example.test" }),
        json!({ "endpoint_url": "https://hooks.example.test", "events": ["dsync.user.exploded"] }),
        json!({ "endpoint_url": "https://hooks.example.test", "status": "paused" }),
        json!({ "endpoint_url": "https://hooks.example.test", "secret": "mine" }),
        json!({ "events": [] }),
    ] {
        let (status, error) = server.post("/webhook_endpoints", body.clone()).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert!(error["errors"]
            .as_array()
            .is_some_and(|errors| !errors.is_empty()));
    }

    let (status, _) = server
        .send(
            Method::PATCH,
            &format!("/webhook_endpoints/{}", WebhookEndpointId::generate()),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404);

    let (status, _) = server
        .send(Method::DELETE, &format!("/webhook_endpoints/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .send(Method::DELETE, &format!("/webhook_endpoints/{id}"), None)
        .await;
    assert_eq!(status, 204, "a repeated DELETE still succeeds");
    let (_, list) = server.get("/webhook_endpoints").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn delete_directory_offboards_in_background() {
    let server = TestServer::start().await;
    let directory = server.linked_directory("org_leaving", "Leaving").await;
    server
        .upload_and_sync(&directory, &users_and_groups(5))
        .await;

    let path = format!("/directories/{}", directory.id);
    let (status, body) = server.send(Method::DELETE, &path, None).await;
    assert_eq!(status, 202, "{body}");

    common::wait_for("the directory to disappear", || async {
        let (status, _) = server.get(&path).await;
        (status == 404).then_some(())
    })
    .await;

    let (status, _) = server.send(Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "deleting a gone directory");

    let (_, deleted) = server.get("/events?events=dsync.deleted").await;
    assert_eq!(deleted["data"][0]["data"]["id"], directory.id.as_str());
    assert_eq!(deleted["data"][0]["data"]["state"], "deleting");

    let (_, users) = server
        .get(&format!("/directory_users?directory={}", directory.id))
        .await;
    assert_eq!(users["data"], json!([]));
}

#[tokio::test]
async fn operator_routes_keys_settings_syncs() {
    let server = TestServer::start().await;
    let (status, created) = server
        .post(
            "/directories",
            json!({ "organization_id": "org_ops", "name": "Ops" }),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["state"], "unlinked");
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, body) = server
        .post(
            "/directories",
            json!({ "organization_id": " ", "name": "x" }),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    let public_key = common::generate_public_key(server.data_dir.path());
    let (status, key) = server
        .post(
            &format!("/directories/{id}/ssh_keys"),
            json!({ "public_key": public_key }),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    assert!(key["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    let (status, duplicate) = server
        .post(
            &format!("/directories/{id}/ssh_keys"),
            json!({ "public_key": public_key }),
        )
        .await;
    assert_eq!(status, 409, "{duplicate}");
    let (status, invalid) = server
        .post(
            &format!("/directories/{id}/ssh_keys"),
            json!({ "public_key": "ssh-dss AAAA" }),
        )
        .await;
    assert_eq!(status, 422, "{invalid}");

    let (_, keys) = server.get(&format!("/directories/{id}/ssh_keys")).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 1);
    let (_, directory) = server.get(&format!("/directories/{id}")).await;
    assert_eq!(directory["state"], "linked");

    let (status, settings) = server.get(&format!("/directories/{id}/settings")).await;
    assert_eq!(status, 200);
    assert_eq!(settings["deletion_threshold_percent"], 20);
    let (status, settings) = server
        .send(
            Method::PATCH,
            &format!("/directories/{id}/settings"),
            Some(json!({ "inactive_users": "keep" })),
        )
        .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["inactive_users"], "keep");
    assert_eq!(settings["deletion_threshold_percent"], 20);
    let (status, _) = server
        .send(
            Method::PATCH,
            &format!("/directories/{id}/settings"),
            Some(json!({ "deletion_threshold_percent": 101 })),
        )
        .await;
    assert_eq!(status, 422);

    // A populated directory, then an empty users.csv: the guard holds it.
    let directory = server.store_directory(&id).await;
    server
        .upload_and_sync(&directory, &users_and_groups(20))
        .await;
    let held = server
        .upload_and_sync(
            &directory,
            &[(
                "users.csv",
                "user_id,first_name,last_name,email\n".to_owned(),
            )],
        )
        .await;
    assert_eq!(held["status"], "held", "{held}");
    let sync_id = held["id"].as_str().unwrap();

    let (status, read_sync) = server.get(&format!("/syncs/{sync_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(read_sync["id"], sync_id);

    let (status, discarded) = server
        .post(&format!("/syncs/{sync_id}/discard"), json!({}))
        .await;
    assert_eq!(status, 200, "{discarded}");
    assert_eq!(discarded["status"], "discarded");
    let (status, again) = server
        .post(&format!("/syncs/{sync_id}/approve"), json!({}))
        .await;
    assert_eq!(status, 409, "{again}");

    let (_, users) = server
        .get(&format!("/directory_users?directory={id}&limit=100"))
        .await;
    assert_eq!(
        users["data"].as_array().unwrap().len(),
        20,
        "discarded sync changed nothing"
    );

    let key_id = key["id"].as_str().unwrap();
    let (status, _) = server
        .send(
            Method::DELETE,
            &format!("/directories/{id}/ssh_keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, keys) = server.get(&format!("/directories/{id}/ssh_keys")).await;
    assert_eq!(keys["data"], json!([]));
}

impl TestServer {
    async fn store_directory(&self, id: &str) -> dsync_core::model::Directory {
        use dsync_core::ports::Directories;
        self.store
            .get_directory(&DirectoryId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap()
    }
}
