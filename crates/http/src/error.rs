//! API errors: always a JSON object `{message, code}`, plus `errors: [{field,
//! code, message}]` for bad parameters (422).
//!
//! The body never has an `error` or `error_description` key, because the Node
//! SDK (`@workos-inc/node` 11) turns such a body into an OAuth exception.

use std::any::Any;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dsync_core::ports::StoreError;
use dsync_core::service::ServiceError;
use serde::Serialize;
use serde_json::json;

/// One problem with one request parameter or body field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    /// Short snake_case reason: `required`, `invalid`, `out_of_range`, `unknown_field`.
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub errors: Vec<FieldError>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// 404 for an id that names nothing, malformed ids included.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "entity_not_found",
            format!("{what} not found: {id}"),
        )
    }

    /// 422 listing every bad parameter; the message repeats them for readers
    /// that only show `message`.
    pub fn invalid_parameters(errors: Vec<FieldError>) -> Self {
        let details: Vec<String> = errors
            .iter()
            .map(|error| format!("{}: {}", error.field, error.message))
            .collect();
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_request_parameters",
            message: format!("invalid request parameters: {}", details.join("; ")),
            errors,
        }
    }

    pub fn invalid_field(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::invalid_parameters(vec![FieldError::new(field, code, message)])
    }

    /// 500 whose message hides the cause; the cause goes to the log with the
    /// request's path, never to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; the server log has the details under this response's X-Request-ID",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what, id } => Self::not_found(what, &id),
            StoreError::Conflict(message) => Self::new(StatusCode::CONFLICT, "conflict", message),
            StoreError::Busy(directory) => Self::new(
                StatusCode::CONFLICT,
                "directory_busy",
                format!("directory {directory} is busy with another sync; retry in a few seconds"),
            ),
            StoreError::Backend(_) => Self::internal(&error),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NotFound { what, id } => Self::not_found(what, &id),
            ServiceError::Invalid { field, message } => {
                Self::invalid_field(&field, "invalid", message)
            }
            ServiceError::Conflict(message) => Self::new(StatusCode::CONFLICT, "conflict", message),
            ServiceError::Store(store) => store.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "message": self.message, "code": self.code });
        if !self.errors.is_empty() {
            body["errors"] = json!(self.errors);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// Fallback for paths that match no route.
pub async fn route_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!(
            "no route for {}; GET /openapi.json lists every route",
            uri.path()
        ),
    )
}

/// Fallback for a known path with a method it does not serve.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; GET /openapi.json lists the methods of each route",
            uri.path()
        ),
    )
}

/// Turns a panic in a handler into a JSON 500, so clients still get a body
/// they can parse and the connection stays usable.
pub fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::internal(&format!("handler panicked: {detail}")).into_response()
}

/// Rewrites any error response that is not JSON (axum's own rejections, for
/// example a path segment that is not valid UTF-8) into `{message, code}`.
pub async fn json_error_bodies(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }

    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    } else {
        text
    };

    let mut rebuilt = ApiError::new(status, code_for_status(status), message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value: &HeaderValue| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request_parameters",
        status if status.is_server_error() => "internal_error",
        _ => "request_failed",
    }
}
