//! Query-string parameters, form-decoded (`+` is a space, `%2C` a comma).
//!
//! Parsed by hand rather than into a struct so that a parameter may repeat
//! (`events=a&events=b`) and so that a bad value becomes a 422 naming the
//! parameter instead of axum's plain-text rejection.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::{ApiError, ApiResult, FieldError};

/// The decoded `name=value` pairs of one request, in order.
#[derive(Clone, Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(query: &str) -> Self {
        let pairs = form_urlencoded::parse(query.as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        Self { pairs }
    }

    /// Returns the last value of `name`, when present and not empty. An empty value
    /// counts as absent because the Python SDK sends `events=` for "no filter".
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// Returns the last value of `name`, empty or not. Typed parameters (numbers,
    /// timestamps, ids, enums) use this, so that `limit=` is rejected rather
    /// than read as absent; no SDK sends an empty typed value.
    pub fn get_raw(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns every value of `name`, in order, empty ones included.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Parses an optional id parameter; a value that is not an id of this kind is a 422.
    pub fn id<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        prefix: &str,
    ) -> ApiResult<Option<T>> {
        match self.get_raw(name) {
            None => Ok(None),
            Some(text) => match parse(text) {
                Some(id) => Ok(Some(id)),
                None => Err(ApiError::invalid_parameters(vec![FieldError::new(
                    name,
                    "invalid",
                    format!("`{text}` is not a valid id; ids start with `{prefix}`"),
                )])),
            },
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::parse(parts.uri.query().unwrap_or("")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_decodes_plus_and_comma() {
        let params = Params::parse("search=Acme+Corp&events=dsync.user.created%2Cdsync.deleted");
        assert_eq!(params.get("search"), Some("Acme Corp"));
        assert_eq!(
            params.get("events"),
            Some("dsync.user.created,dsync.deleted")
        );
    }

    #[test]
    fn get_treats_empty_as_absent() {
        let params = Params::parse("events=&limit=5");
        assert_eq!(params.get("events"), None);
        assert_eq!(params.get("limit"), Some("5"));
    }

    #[test]
    fn get_raw_keeps_empty_values() {
        let params = Params::parse("limit=");
        assert_eq!(params.get_raw("limit"), Some(""));
        assert_eq!(params.get_raw("order"), None);
    }

    #[test]
    fn all_returns_repeated_values() {
        let params = Params::parse("events=a&x=1&events=b");
        let values: Vec<&str> = params.all("events").collect();
        assert_eq!(values, vec!["a", "b"]);
    }
}
