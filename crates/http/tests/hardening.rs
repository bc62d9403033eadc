//! Regressions for the security review of `dsync serve`: webhook URL
//! targets, request size limits, list cursors and request body media types.
//! Real HTTP on 127.0.0.1 over the real SQLite store.

mod common;

use common::{read, TestServer};
use dsync_core::ids::WebhookEndpointId;
use reqwest::Method;
use serde_json::{json, Value};

fn field_codes(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_owned(),
                        e["code"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn create_endpoint(server: &TestServer, url: &str) -> (u16, Value) {
    server
        .post(
            "/webhook_endpoints",
            json!({ "endpoint_url": url, "events": [] }),
        )
        .await
}

#[tokio::test]
async fn webhook_urls_to_internal_targets_are_refused_by_default() {
    let server = TestServer::start_with(|_| {}).await;

    let refused = [
        (
            "http://169.254.169.254/latest/meta-data",
            "forbidden_address",
        ),
        ("http://2852039166/latest/meta-data", "forbidden_address"),
        ("http://[fe80::1]/hook", "forbidden_address"),
        ("http://[::ffff:169.254.169.254]/", "forbidden_address"),
        ("http://[fd00:ec2::254]/", "forbidden_address"),
        ("http://0.0.0.0:8080/hook", "forbidden_address"),
        ("http://[::]/hook", "forbidden_address"),
        ("http://239.1.2.3/hook", "forbidden_address"),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            "forbidden_host",
        ),
        ("http://127.0.0.1:9000/hook", "private_address"),
        ("http://localhost:9000/hook", "private_address"),
        ("http://10.0.0.8/hook", "private_address"),
        ("http://172.20.1.1/hook", "private_address"),
        ("http://192.168.0.10/hook", "private_address"),
        ("http://100.64.3.4/hook", "private_address"),
        ("http://[::1]:9000/hook", "private_address"),
        ("http://[fd12:3456::1]/hook", "private_address"),
        (
            "https://someone:pw@hooks.example.com/",
            "userinfo_not_allowed",
        ),
        ("file:///etc/passwd", "invalid"),
        ("http://:8080/hook", "invalid"),
    ];
    for (url, code) in refused {
        let (status, body) = create_endpoint(&server, url).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(
            field_codes(&body),
            vec![("endpoint_url".to_owned(), code.to_owned())],
            "{url}"
        );
    }

    let (status, created) = create_endpoint(&server, "https://hooks.example.com/dsync").await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();

    // An update is checked the same way and leaves the endpoint unchanged.
    let (status, body) = server
        .send(
            Method::PATCH,
            &format!("/webhook_endpoints/{id}"),
            Some(json!({ "endpoint_url": "http://169.254.169.254/latest/meta-data" })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        field_codes(&body),
        vec![("endpoint_url".to_owned(), "forbidden_address".to_owned())]
    );
    let (_, list) = server.get("/webhook_endpoints").await;
    assert_eq!(
        list["data"][0]["endpoint_url"],
        "https://hooks.example.com/dsync"
    );
}

#[tokio::test]
async fn private_webhook_urls_follow_the_config_but_link_local_never_passes() {
    let server = TestServer::start_with(|config| config.allow_private_webhook_urls = true).await;

    for url in [
        "http://127.0.0.1:9000/hook",
        "http://localhost:9000/hook",
        "http://10.0.0.8/hook",
        "http://[::1]:9000/hook",
    ] {
        let (status, body) = create_endpoint(&server, url).await;
        assert_eq!(status, 201, "{url}: {body}");
    }
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/hook",
        "http://metadata.google.internal/",
    ] {
        let (status, body) = create_endpoint(&server, url).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["errors"][0]["field"], "endpoint_url");
    }
}

/// Reads a response that must be a JSON error with the given status and code.
async fn assert_json_error(response: reqwest::Response, status: u16, code: &str) {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (got, body) = read(response).await;
    assert_eq!(got, status, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "content type `{content_type}`"
    );
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn oversized_request_lines_and_headers_get_json_errors() {
    let server = TestServer::start().await;

    let long_path = format!("/directories?search={}", "a".repeat(20_000));
    let response = server
        .client
        .get(server.url(&long_path))
        .bearer_auth(&server.api_key)
        .send()
        .await
        .unwrap();
    assert_json_error(response, 414, "uri_too_long").await;

    let mut request = server
        .client
        .get(server.url("/directories"))
        .bearer_auth(&server.api_key);
    for index in 0..80 {
        request = request.header(format!("x-filler-{index}"), "x");
    }
    assert_json_error(
        request.send().await.unwrap(),
        431,
        "request_header_fields_too_large",
    )
    .await;

    let response = server
        .client
        .get(server.url("/directories"))
        .bearer_auth(&server.api_key)
        .header("x-large", "b".repeat(40_000))
        .send()
        .await
        .unwrap();
    assert_json_error(response, 431, "request_header_fields_too_large").await;

    // Requests under the limits still work.
    let (status, _) = server
        .get(&format!("/directories?search={}", "a".repeat(2_000)))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn list_cursors_must_be_ids_of_the_listed_type() {
    let server = TestServer::start().await;
    let directory = server.linked_directory("org_cursor", "Cursor Co").await;
    let dir = directory.id.as_str();

    let lists = [
        format!("/directory_users?directory={dir}"),
        format!("/directory_groups?directory={dir}"),
        "/directories?limit=5".to_owned(),
        "/webhook_endpoints?limit=5".to_owned(),
        format!("/directories/{dir}/syncs?limit=5"),
    ];
    for list in &lists {
        for (field, cursor) in [
            ("after", "directory_user_zzz"),
            ("before", "../../etc"),
            ("after", "directory_group_zzz"),
            ("before", WebhookEndpointId::generate().as_str()),
        ] {
            let path = format!("{list}&{field}={cursor}");
            let listed_type_matches = cursor.starts_with(WebhookEndpointId::PREFIX)
                && list.starts_with("/webhook_endpoints");
            let (status, body) = server.get(&path).await;
            if listed_type_matches {
                assert_eq!(status, 200, "{path}: {body}");
            } else {
                assert_eq!(status, 422, "{path}: {body}");
                assert_eq!(
                    field_codes(&body),
                    vec![(field.to_owned(), "invalid_cursor".to_owned())],
                    "{path}"
                );
            }
        }
    }

    // The events list names the same code.
    let (status, body) = server.get("/events?after=../../etc").await;
    assert_eq!(status, 422);
    assert_eq!(
        field_codes(&body),
        vec![("after".to_owned(), "invalid_cursor".to_owned())]
    );
}

#[tokio::test]
async fn request_bodies_must_be_declared_json_without_duplicate_keys() {
    let server = TestServer::start().await;
    let body = r#"{"organization_id":"org_media","name":"Media Co"}"#;

    for content_type in [
        Some("text/plain"),
        None,
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = server
            .client
            .post(server.url("/directories"))
            .bearer_auth(&server.api_key)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        assert_json_error(request.send().await.unwrap(), 415, "unsupported_media_type").await;
    }
    let (_, list) = server.get("/directories").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "nothing created");

    let response = server
        .client
        .post(server.url("/directories"))
        .bearer_auth(&server.api_key)
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, created) = read(response).await;
    assert_eq!(status, 201, "{created}");
    let directory_id = created["id"].as_str().unwrap().to_owned();

    let response = server
        .client
        .post(server.url("/directories"))
        .bearer_auth(&server.api_key)
        .header("content-type", "application/json")
        .body(r#"{"organization_id":"org_a","name":"First","name":"Second"}"#)
        .send()
        .await
        .unwrap();
    let (status, error) = read(response).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(
        field_codes(&error),
        vec![("name".to_owned(), "duplicate_key".to_owned())]
    );
    assert!(error["message"].as_str().unwrap().contains("name"));

    // POSTs without an entity work with an empty body, with or without the
    // JSON header, as the SDKs send them.
    for content_type in [Some("application/json"), None, Some("text/plain")] {
        let mut request = server
            .client
            .post(server.url(&format!("/directories/{directory_id}/sync")))
            .bearer_auth(&server.api_key);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, queued) = read(request.send().await.unwrap()).await;
        assert_eq!(status, 202, "{content_type:?}: {queued}");
    }
    let missing_sync = dsync_core::ids::SyncId::generate();
    for action in ["approve", "discard"] {
        for content_type in [Some("application/json"), None] {
            let mut request = server
                .client
                .request(
                    Method::POST,
                    server.url(&format!("/syncs/{missing_sync}/{action}")),
                )
                .bearer_auth(&server.api_key);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let (status, body) = read(request.send().await.unwrap()).await;
            assert_eq!(status, 404, "{action} {content_type:?}: {body}");
            assert_eq!(body["code"], "entity_not_found");
        }
    }
}
