//! Bearer API keys: `Authorization: Bearer <secret>` on every data route.
//!
//! The store holds only the SHA-256 of each secret. The presented secret is
//! hashed, looked up by that hash, and the stored hash is compared again in
//! constant time, so a store whose lookup is not exact (a prefix index, a
//! case-folding collation) still cannot let a wrong key through.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AppState;

/// Lowercase hex SHA-256 of an API key secret, as `ApiKeyRecord::secret_sha256` stores it.
pub fn hash_api_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Middleware that rejects a request without a valid, unrevoked key with 401.
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(secret) = bearer_secret(&request) else {
        return unauthorized("missing API key: send the header `Authorization: Bearer <api key>`");
    };

    let presented_hash = hash_api_key(secret);
    let record = match state.services.store.find_api_key(&presented_hash).await {
        Ok(record) => record,
        Err(error) => return ApiError::from(error).into_response(),
    };

    let valid = record.is_some_and(|record| {
        let same_hash: bool = record
            .secret_sha256
            .as_bytes()
            .ct_eq(presented_hash.as_bytes())
            .into();
        same_hash && record.revoked_at.is_none()
    });
    if !valid {
        return unauthorized("invalid API key: the key is unknown or revoked");
    }

    next.run(request).await
}

/// The secret after `Bearer ` (scheme case-insensitive), when present and not empty.
fn bearer_secret(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, secret) = value.split_once(' ')?;
    let secret = secret.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || secret.is_empty() {
        return None;
    }
    Some(secret)
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}
