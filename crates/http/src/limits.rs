//! Request checks that run before any handler: size limits on the request
//! line and headers, and the media type of request bodies. Each refusal is a
//! JSON `{message, code}` like every other error.
//!
//! NOTE: hyper 1.x itself returns 414 (request target over 65,534 bytes) and 431
//! (over 100 headers, or a read buffer over 417,792 bytes) with an empty
//! body before the router sees the request; `axum::serve` offers no way to
//! raise those limits. The limits here are well below hyper's, so every
//! request under hyper's limits is rejected by this layer with a JSON
//! body, and only grossly oversized ones get hyper's bare status line.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Longest accepted request target (path and query), in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header fields accepted in one request.
pub const MAX_HEADER_COUNT: usize = 64;
/// Largest accepted header block (names and values), in bytes.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Largest body read while checking a body sent without a JSON media type;
/// the same as axum's default body limit, which the handlers apply.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Rejects a too long request target (414) or too large header block (431).
pub async fn check_sizes(request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |path_and_query| path_and_query.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request path and query are {target} bytes long; the limit is {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }

    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADER_COUNT || header_bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_fields_too_large",
            format!(
                "the request has {} header fields totalling {header_bytes} bytes; the limits are {MAX_HEADER_COUNT} fields and {MAX_HEADER_BYTES} bytes",
                headers.len()
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// Rejects a non-empty body that is not declared as JSON (415). An empty
/// body passes with any Content-Type or none, because SDKs send POSTs
/// without an entity (`/sync`, `/approve`) as an empty body, some with
/// `Content-Type: application/json` and some without.
pub async fn require_json_body(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || is_json(request.headers())
    {
        return next.run(request).await;
    }

    let declared_empty = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|length| length.as_bytes() == b"0");
    if declared_empty {
        return next.run(request).await;
    }

    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is over {MAX_BODY_BYTES} bytes"),
            )
            .into_response()
        }
    };
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        let got = match content_type {
            Some(value) => format!("got `{value}`"),
            None => "got no Content-Type".to_owned(),
        };
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "a request body must be JSON sent with `Content-Type: application/json`; {got}"
            ),
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Checks that Content-Type is `application/json`, optionally with a UTF-8
/// charset parameter (JSON has no other encoding).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let mut pieces = value.split(';');
    let essence = pieces.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    pieces.all(|parameter| {
        let parameter = parameter.trim();
        if parameter.is_empty() {
            return true;
        }
        let Some((name, value)) = parameter.split_once('=') else {
            return false;
        };
        name.trim().eq_ignore_ascii_case("charset")
            && matches!(
                value.trim().trim_matches('"').to_ascii_lowercase().as_str(),
                "utf-8" | "utf8"
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn json(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        is_json(&headers)
    }

    #[test]
    fn json_media_type_allows_utf8_charset_only() {
        assert!(json("application/json"));
        assert!(json("Application/JSON; charset=UTF-8"));
        assert!(json("application/json;charset=\"utf-8\""));
        assert!(!json("application/json; charset=latin1"));
        assert!(!json("text/plain"));
        assert!(!json("application/jsonx"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
