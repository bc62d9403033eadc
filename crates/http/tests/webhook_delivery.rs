//! Webhook delivery end to end: events committed through the API's store,
//! sent by the local worker to a receiver on 127.0.0.1, signatures checked
//! with core's verifier.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::{users_and_groups, wait_for, TestServer};
use dsync_core::time::Timestamp;
use dsync_core::webhook::{verify_signature, DEFAULT_TOLERANCE_MS, SIGNATURE_HEADER};
use dsync_local::store::database_path;
use dsync_local::webhooks::{run_with_options, WorkerOptions};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// One request the receiver recorded.
#[derive(Clone, Debug)]
struct Received {
    signature: String,
    content_type: String,
    body: Bytes,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// Starts a receiver that records every POST and responds with 200.
async fn start_receiver(listener: tokio::net::TcpListener) -> (Inbox, tokio::task::JoinHandle<()>) {
    start_rejecting_receiver(listener, None).await
}

/// Starts a receiver that records every POST and responds with 400 to events
/// of type `rejected`, 200 to the others.
async fn start_rejecting_receiver(
    listener: tokio::net::TcpListener,
    rejected: Option<&'static str>,
) -> (Inbox, tokio::task::JoinHandle<()>) {
    let inbox: Inbox = Arc::default();
    let recorded = inbox.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let recorded = recorded.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                recorded.lock().unwrap().push(Received {
                    signature: header(SIGNATURE_HEADER),
                    content_type: header("content-type"),
                    body,
                });
                if rejected.is_some_and(|kind| event["event"] == kind) {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (inbox, task)
}

/// Retries after 150 ms, 300 ms, ... so the test does not wait minutes.
fn fast_retry(attempt: u32) -> Option<Duration> {
    (attempt < 20).then(|| Duration::from_millis(150 * u64::from(attempt)))
}

/// Gives up after the third attempt, 100 ms apart.
fn three_attempts(attempt: u32) -> Option<Duration> {
    (attempt < 3).then_some(Duration::from_millis(100))
}

fn options(retry_delay: fn(u32) -> Option<Duration>) -> WorkerOptions {
    WorkerOptions {
        poll_interval: Duration::from_millis(50),
        request_timeout: Duration::from_secs(2),
        max_concurrent_endpoints: 4,
        retry_delay,
        allow_private_targets: true,
    }
}

/// Starts the worker; the returned sender stops it.
fn start_worker(
    server: &TestServer,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    start_worker_with(server, fast_retry)
}

fn start_worker_with(
    server: &TestServer,
    retry_delay: fn(u32) -> Option<Duration>,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    start_worker_with_options(server, options(retry_delay))
}

fn start_worker_with_options(
    server: &TestServer,
    options: WorkerOptions,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let path = database_path(server.data_dir.path());
    let task = tokio::spawn(run_with_options(path, options, async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

async fn all_event_ids(server: &TestServer) -> Vec<String> {
    let (_, page) = server.get("/events?limit=100").await;
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn down_receiver_gets_all_after_restart() {
    let server = TestServer::start().await;

    // Reserve a port, then close it: the receiver is down (connection refused).
    let reserved = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_address = reserved.local_addr().unwrap();
    drop(reserved);

    let (status, endpoint) = server
        .post(
            "/webhook_endpoints",
            json!({ "endpoint_url": format!("http://{receiver_address}/hook"), "events": [] }),
        )
        .await;
    assert_eq!(status, 201);
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    let secret = endpoint["secret"].as_str().unwrap().to_owned();

    let directory = server.linked_directory("org_hooks", "Hooks").await;
    server
        .upload_and_sync(&directory, &users_and_groups(6))
        .await;
    let expected = all_event_ids(&server).await;
    assert!(expected.len() > 10, "only {} events", expected.len());

    // First run: every attempt fails and is recorded.
    let (stop, worker) = start_worker(&server);
    let attempts_path = format!("/webhook_endpoints/{endpoint_id}/attempts?limit=100");
    let failed = wait_for("a failed attempt", || async {
        let (_, page) = server.get(&attempts_path).await;
        let attempts = page["data"].as_array().cloned().unwrap_or_default();
        (!attempts.is_empty()).then_some(attempts)
    })
    .await;

    // Events committed while the receiver is down queue behind the failed one.
    server
        .upload_and_sync(&directory, &users_and_groups(8))
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, page) = server.get(&attempts_path).await;
    for attempt in page["data"].as_array().unwrap() {
        assert_eq!(
            attempt["event_id"],
            expected[0].as_str(),
            "only the oldest event is retried"
        );
    }

    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();
    let expected = all_event_ids(&server).await;

    assert_eq!(failed[0]["succeeded"], false);
    assert_eq!(failed[0]["status_code"], Value::Null);
    assert!(
        failed[0]["error"].as_str().unwrap().contains("connect"),
        "{}",
        failed[0]
    );
    // The oldest event is tried first, and the dead receiver delays the rest.
    assert_eq!(failed.last().unwrap()["event_id"], expected[0].as_str());

    // The receiver comes up; a new worker run delivers everything.
    let listener = tokio::net::TcpListener::bind(receiver_address)
        .await
        .unwrap();
    let (inbox, _receiver) = start_receiver(listener).await;
    let (stop, worker) = start_worker(&server);
    let received = wait_for("every event at the receiver", || async {
        let received = inbox.lock().unwrap().clone();
        (received.len() >= expected.len()).then_some(received)
    })
    .await;
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();

    let mut delivered_ids = Vec::new();
    for request in &received {
        assert_eq!(request.content_type, "application/json");
        verify_signature(
            &request.signature,
            &request.body,
            &secret,
            Timestamp::now().millis(),
            DEFAULT_TOLERANCE_MS,
        )
        .unwrap_or_else(|error| panic!("signature {} rejected: {error}", request.signature));

        let event: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(event["object"], "event");
        delivered_ids.push(event["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(delivered_ids, expected, "each event once, in event order");

    let (_, page) = server.get(&attempts_path).await;
    let attempts = page["data"].as_array().unwrap();
    let succeeded = attempts.iter().filter(|a| a["succeeded"] == true).count();
    assert_eq!(succeeded, expected.len());
}

#[tokio::test]
async fn slow_endpoint_does_not_delay_others() {
    let server = TestServer::start().await;

    // A receiver that accepts connections and never responds.
    let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck_address = stuck.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            if let Ok((socket, _)) = stuck.accept().await {
                open.push(socket);
            }
        }
    });

    let healthy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let healthy_address = healthy.local_addr().unwrap();
    let (inbox, _receiver) = start_receiver(healthy).await;

    for address in [stuck_address, healthy_address] {
        let (status, _) = server
            .post("/webhook_endpoints", json!({ "endpoint_url": format!("http://{address}/hook"), "events": ["dsync.user.created"] }))
            .await;
        assert_eq!(status, 201);
    }

    let directory = server.linked_directory("org_slow", "Slow").await;
    server
        .upload_and_sync(&directory, &users_and_groups(5))
        .await;

    let (stop, worker) = start_worker(&server);
    let started = std::time::Instant::now();
    wait_for("five deliveries to the healthy receiver", || async {
        (inbox.lock().unwrap().len() >= 5).then_some(())
    })
    .await;
    // The stuck receiver times out after 2 s per request; the healthy one
    // must not have waited for it.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );

    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn rejected_event_does_not_block_others() {
    let server = TestServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (inbox, _receiver) = start_rejecting_receiver(listener, Some("dsync.activated")).await;

    let (status, endpoint) = server
        .post(
            "/webhook_endpoints",
            json!({ "endpoint_url": format!("http://{address}/hook"), "events": [] }),
        )
        .await;
    assert_eq!(status, 201);
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();

    let directory = server.linked_directory("org_rejects", "Rejects").await;
    server
        .upload_and_sync(&directory, &users_and_groups(4))
        .await;
    let expected = all_event_ids(&server).await;

    let (stop, worker) = start_worker_with(&server, three_attempts);
    let attempts_path = format!("/webhook_endpoints/{endpoint_id}/attempts?limit=100");
    let attempts = wait_for(
        "three attempts of the rejected event and one of each other",
        || async {
            let (_, page) = server.get(&attempts_path).await;
            let attempts = page["data"].as_array().cloned().unwrap_or_default();
            (attempts.len() >= expected.len() + 2).then_some(attempts)
        },
    )
    .await;
    // No fourth attempt comes: the delivery is marked failed.
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();

    let (_, page) = server.get(&attempts_path).await;
    assert_eq!(page["data"].as_array().unwrap().len(), attempts.len());

    let activated = &expected[0];
    let rejected: Vec<&Value> = attempts
        .iter()
        .filter(|a| a["event_id"] == activated.as_str())
        .collect();
    assert_eq!(rejected.len(), 3);
    for attempt in &rejected {
        assert_eq!(attempt["status_code"], 400);
        assert_eq!(attempt["succeeded"], false);
    }
    let succeeded = attempts.iter().filter(|a| a["succeeded"] == true).count();
    assert_eq!(succeeded, expected.len() - 1);

    let received = inbox.lock().unwrap().len();
    assert_eq!(received, expected.len() + 2);
}

/// Registers an endpoint receiving every event and returns its id.
async fn register(server: &TestServer, url: &str) -> String {
    let (status, endpoint) = server
        .post(
            "/webhook_endpoints",
            json!({ "endpoint_url": url, "events": [] }),
        )
        .await;
    assert_eq!(status, 201, "{url}: {endpoint}");
    endpoint["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sender_rechecks_targets_when_private_ones_are_not_allowed() {
    // The API accepted the URLs (say, while the name still pointed at a
    // public address); the sender, run without private targets, must refuse
    // them at send time all the same.
    let server = TestServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (inbox, _receiver) = start_receiver(listener).await;

    let by_name = register(&server, &format!("http://localhost:{port}/hook")).await;
    let by_address = register(&server, &format!("http://127.0.0.1:{port}/hook")).await;
    server.linked_directory("org_refused", "Refused").await;

    let mut options = options(three_attempts);
    options.allow_private_targets = false;
    let (stop, worker) = start_worker_with_options(&server, options);
    for endpoint_id in [&by_name, &by_address] {
        let path = format!("/webhook_endpoints/{endpoint_id}/attempts?limit=100");
        let attempts = wait_for("three refused attempts", || async {
            let (_, page) = server.get(&path).await;
            let attempts = page["data"].as_array().cloned().unwrap_or_default();
            (attempts.len() >= 3).then_some(attempts)
        })
        .await;
        for attempt in attempts {
            assert_eq!(attempt["succeeded"], false, "{attempt}");
            assert_eq!(attempt["status_code"], Value::Null, "{attempt}");
            let error = attempt["error"].as_str().unwrap();
            assert!(error.starts_with("refused: "), "{error}");
            assert!(error.contains("loopback"), "{error}");
        }
    }
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();
    assert_eq!(
        inbox.lock().unwrap().len(),
        0,
        "nothing reached the receiver"
    );
}

#[tokio::test]
async fn sender_delivers_to_a_resolved_private_name_when_allowed() {
    let server = TestServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (inbox, _receiver) = start_receiver(listener).await;

    let endpoint_id = register(&server, &format!("http://localhost:{port}/hook")).await;
    server.linked_directory("org_named", "Named").await;

    let (stop, worker) = start_worker(&server);
    let path = format!("/webhook_endpoints/{endpoint_id}/attempts?limit=100");
    let attempt = wait_for("a successful attempt", || async {
        let (_, page) = server.get(&path).await;
        page["data"]
            .as_array()
            .and_then(|attempts| attempts.iter().find(|a| a["succeeded"] == true).cloned())
    })
    .await;
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();
    assert_eq!(attempt["status_code"], 200);
    assert_eq!(inbox.lock().unwrap().len(), 1);
}
