//! Test harness against a moto server (`DSYNC_TEST_AWS_ENDPOINT`). Each test
//! makes its own table, Transfer server and bucket prefix, so tests run in
//! parallel on one moto.
#![allow(dead_code)]

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use base64::Engine;
use dsync_aws::{AwsSettings, Clients, Deployment, RequestCounter};
use serde_json::{json, Value};

/// The moto endpoint, or `None` after printing why the test is skipped.
pub fn endpoint(test: &str) -> Option<String> {
    match std::env::var("DSYNC_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            // Written to stderr directly, past the test harness's output
            // capture, so the skip shows even when the test passes.
            use std::io::Write;
            let message = format!(
                "\n!!!!!!!! SKIPPED {test}: DSYNC_TEST_AWS_ENDPOINT is not set.\n!!!!!!!! Start moto with `bash infra/moto.sh start 5055` and set DSYNC_TEST_AWS_ENDPOINT=http://127.0.0.1:5055\n"
            );
            let _ = std::io::stderr().write_all(message.as_bytes());
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{:010x}", rand::random::<u64>() & 0xff_ffff_ffff)
}

pub struct Harness {
    pub deployment: Deployment,
    pub counter: RequestCounter,
}

impl Harness {
    /// Creates the table (as template.yaml declares it), a Transfer server
    /// and the EventBridge bus, and wires a deployment to them.
    pub async fn new(endpoint: &str) -> Harness {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await;
        let counter = RequestCounter::new();
        let clients = Clients::new(&config, Some(counter.clone()));
        let table = unique("dsync-test-");
        dsync_aws::setup::ensure_table(&clients.dynamodb, &table)
            .await
            .expect("create table on moto");
        let server = clients
            .transfer
            .create_server()
            .endpoint_type(aws_sdk_transfer::types::EndpointType::Public)
            .identity_provider_type(aws_sdk_transfer::types::IdentityProviderType::ServiceManaged)
            .protocols(aws_sdk_transfer::types::Protocol::Sftp)
            .security_policy_name("TransferSecurityPolicy-2024-01")
            .send()
            .await
            .expect("create Transfer server on moto");
        let bus = unique("dsync-bus-");
        clients
            .eventbridge
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("create bus");
        let webhook_queue = clients
            .sqs
            .create_queue()
            .queue_name(unique("dsync-webhooks-"))
            .send()
            .await
            .expect("create queue");
        let settings = AwsSettings {
            table,
            bucket_prefix: unique("dsynct"),
            upload_retention_days: 30,
            transfer_server_id: server.server_id,
            transfer_role_arn: "arn:aws:iam::123456789012:role/dsync-transfer-user".to_owned(),
            sftp_host: "s-test.server.transfer.us-east-1.amazonaws.com".to_owned(),
            sftp_port: 22,
            event_bus: bus,
            webhook_queue_url: webhook_queue.queue_url.unwrap_or_default(),
            ingest_queue_url: String::new(),
        };
        counter.reset();
        Harness {
            deployment: Deployment::new(settings, clients),
            counter,
        }
    }

    pub fn store(&self) -> Arc<dsync_aws::DynamoStore> {
        self.deployment.store.clone()
    }

    pub async fn register(&self, command: Value) -> Value {
        let answer =
            dsync_aws::handlers::register_key::handle(&self.deployment, command.clone()).await;
        assert_eq!(
            answer["ok"],
            json!(true),
            "command {command} failed: {answer}"
        );
        answer
    }

    /// Creates a linked directory and returns (id, bucket).
    pub async fn linked_directory(&self, name: &str) -> (String, String) {
        let created = self
            .register(json!({"action": "create_directory", "organization_id": "org_01HTESTORG", "name": name}))
            .await;
        let id = created["directory"]["id"].as_str().unwrap().to_owned();
        self.register(
            json!({"action": "add_key", "directory_id": id, "public_key": ed25519_key_line()}),
        )
        .await;
        let bucket = self
            .store()
            .bucket_of(&dsync_core::ids::DirectoryId::from_stored(&id))
            .await
            .unwrap()
            .expect("bucket recorded after the first key");
        // The bucket policy refuses requests without TLS, and moto enforces
        // it, so a plain-HTTP upload is refused...
        let s3 = &self.deployment.clients.s3;
        let policy = s3.get_bucket_policy().bucket(&bucket).send().await.unwrap();
        assert!(policy.policy().unwrap().contains("aws:SecureTransport"));
        let refused = s3
            .put_object()
            .bucket(&bucket)
            .key("probe.csv")
            .body(b"x".to_vec().into())
            .send()
            .await;
        assert!(
            refused.is_err(),
            "a plain-HTTP upload must be refused by the TLS-only policy"
        );
        // ...and the emulator speaks plain HTTP, so the tests lift the policy.
        s3.delete_bucket_policy()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        (id, bucket)
    }

    pub async fn put_upload(&self, bucket: &str, key: &str, body: &str) {
        self.deployment
            .clients
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("put object");
    }

    /// Runs the ingest handler on SQS messages wrapping EventBridge S3 events.
    pub async fn deliver(&self, notifications: &[(String, String, u64)]) -> Value {
        let records: Vec<Value> = notifications
            .iter()
            .enumerate()
            .map(|(n, (bucket, key, size))| {
                sqs_record(&format!("msg-{n}"), &object_created(bucket, key, *size))
            })
            .collect();
        dsync_aws::handlers::ingest::handle(&self.deployment, json!({ "Records": records })).await
    }
}

/// A fresh, valid `ssh-ed25519` public key line.
pub fn ed25519_key_line() -> String {
    let mut blob = Vec::new();
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    blob.extend_from_slice(&rand::random::<[u8; 32]>());
    format!(
        "ssh-ed25519 {} hr-export@example.test",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// The EventBridge "Object Created" event for one object, key URL-encoded
/// as S3 sends it (spaces as `+`).
pub fn object_created(bucket: &str, key: &str, size: u64) -> Value {
    let mut event: Value =
        serde_json::from_str(include_str!("../fixtures/eventbridge-object-created.json")).unwrap();
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    event["detail"]["bucket"]["name"] = json!(bucket);
    event["detail"]["object"]["key"] = json!(encoded);
    event["detail"]["object"]["size"] = json!(size);
    event["resources"] = json!([format!("arn:aws:s3:::{bucket}")]);
    event
}

pub fn sqs_record(message_id: &str, body: &Value) -> Value {
    let fixture: Value = serde_json::from_str(include_str!(
        "../fixtures/sqs-eventbridge-object-created.json"
    ))
    .unwrap();
    let mut record = fixture["Records"][0].clone();
    record["messageId"] = json!(message_id);
    record["body"] = json!(body.to_string());
    record
}

/// A users.csv with `count` users starting at `first`, with a version word
/// in the job title so a new version changes chosen users.
pub fn users_csv(ids: impl IntoIterator<Item = usize>, title: impl Fn(usize) -> String) -> String {
    let mut text = String::from("user_id,first_name,last_name,email,job_title\n");
    for id in ids {
        text.push_str(&format!(
            "e{id:06},Given{id},Family{id},person{id}@corp.example,{}\n",
            title(id)
        ));
    }
    text
}

/// Every event of the table, oldest first.
pub async fn all_events(store: &dsync_aws::DynamoStore) -> Vec<dsync_core::event::Event> {
    use dsync_core::ports::{EventQuery, Events};
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_events(&EventQuery {
                after: after.clone(),
                limit: 100,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        events.extend(page.data);
        match page.after {
            Some(next) => after = Some(dsync_core::ids::EventId::from_stored(next)),
            None => return events,
        }
    }
}
