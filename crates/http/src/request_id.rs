//! `X-Request-ID` on every response, which both SDKs attach to their errors.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: &str = "x-request-id";

/// Middleware that gives each request a fresh id, runs the request inside a
/// span carrying that id, and returns the id in `X-Request-ID`.
pub async fn attach(request: Request, next: Next) -> Response {
    let request_id = format!("req_{}", ulid::Ulid::new());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();

    let span = tracing::info_span!("request", request_id = %request_id, %method, %path);
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;

    if response.status().is_server_error() {
        tracing::warn!(parent: &span, status = response.status().as_u16(), "request failed");
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
