//! Webhook delivery through the real binary: an endpoint registered over the
//! HTTP API receives the events of an SFTP upload, signed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use dsync_tests::{fixture, Server, WAIT};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// One request as the receiver saw it.
struct Received {
    signature: String,
    body: String,
}

/// Accepts requests on a loopback port, replies 200 and passes each on.
fn start_receiver() -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut signature = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("workos-signature:") {
                    signature = line["workos-signature:".len()..].trim().to_owned();
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let body = String::from_utf8(body).unwrap();
            if sender.send(Received { signature, body }).is_err() {
                return;
            }
        }
    });
    (port, receiver)
}

#[test]
fn serve_webhook_receives_signed_upload_events() {
    let server = Server::start();
    let (port, received) = start_receiver();
    let (status, endpoint) = server.http_post(
        "/webhook_endpoints",
        &json!({ "endpoint_url": format!("http://127.0.0.1:{port}/hooks"), "events": ["dsync.user.created"] }),
    );
    assert!(status == 200 || status == 201, "{status} {endpoint}");
    let secret = endpoint["secret"].as_str().unwrap().to_owned();

    let directory = server.linked_directory("org_webhooks");
    server.upload(&directory, &[(&fixture("users-three.csv"), "users.csv")]);

    let mut bodies = Vec::new();
    for _ in 0..3 {
        let request = received
            .recv_timeout(WAIT + Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no webhook arrived\n{}", server.log()));

        // `t=<ms>, v1=<hex>` where hex = HMAC-SHA256(secret, "<t>.<body>").
        let (timestamp, digest) = request
            .signature
            .split_once(", ")
            .expect("two signature parts");
        let timestamp = timestamp.strip_prefix("t=").expect("t= part");
        let digest = digest.strip_prefix("v1=").expect("v1= part");
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.{}", request.body).as_bytes());
        assert_eq!(digest, hex::encode(mac.finalize().into_bytes()));

        bodies.push(serde_json::from_str::<Value>(&request.body).unwrap());
    }

    assert!(bodies
        .iter()
        .all(|body| body["event"] == "dsync.user.created"));
    let mut idp_ids: Vec<&str> = bodies
        .iter()
        .map(|body| body["data"]["idp_id"].as_str().unwrap())
        .collect();
    idp_ids.sort();
    assert_eq!(idp_ids, ["4001", "4002", "4003"]);
}
