//! JSON request bodies, read field by field so each problem becomes a 422
//! entry naming the field, and malformed JSON a 400 in the API's JSON error
//! shape rather than axum's plain-text rejection.

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult, FieldError};

/// A JSON object body being read. Fields are taken out one by one; problems
/// are collected and reported together by [`JsonObject::finish`].
pub struct JsonObject {
    fields: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl JsonObject {
    /// Parses the body as a JSON object. An empty body counts as `{}`,
    /// because SDKs send POSTs without an entity as an empty body. Fields
    /// outside `allowed` are reported as `unknown_field`.
    pub fn parse(body: &Bytes, allowed: &[&str]) -> ApiResult<Self> {
        let fields = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(fields)) => fields,
                Ok(_) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_json",
                        "the request body must be a JSON object",
                    ))
                }
                Err(error) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_json",
                        format!("the request body is not valid JSON: {error}"),
                    ))
                }
            }
        };

        let errors = fields
            .keys()
            .filter(|name| !allowed.contains(&name.as_str()))
            .map(|name| {
                FieldError::new(
                    name,
                    "unknown_field",
                    format!("unknown field `{name}`; allowed fields: {}", allowed.join(", ")),
                )
            })
            .collect();
        Ok(Self { fields, errors })
    }

    pub fn required_string(&mut self, name: &str) -> Option<String> {
        if !self.fields.contains_key(name) {
            self.errors
                .push(FieldError::new(name, "required", format!("`{name}` is required")));
            return None;
        }
        self.optional_string(name)
    }

    /// A string field; absent or null gives `None`.
    pub fn optional_string(&mut self, name: &str) -> Option<String> {
        match self.fields.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text),
            Some(_) => {
                self.errors
                    .push(FieldError::new(name, "invalid", format!("`{name}` must be a string")));
                None
            }
        }
    }

    /// An array of strings; absent or null gives `None`.
    pub fn optional_string_list(&mut self, name: &str) -> Option<Vec<String>> {
        let value = self.fields.remove(name)?;
        let items = match value {
            Value::Null => return None,
            Value::Array(items) => items,
            _ => {
                self.errors.push(FieldError::new(
                    name,
                    "invalid",
                    format!("`{name}` must be an array of strings"),
                ));
                return None;
            }
        };

        let mut strings = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(text) => strings.push(text),
                _ => {
                    self.errors.push(FieldError::new(
                        name,
                        "invalid",
                        format!("`{name}` must be an array of strings"),
                    ));
                    return None;
                }
            }
        }
        Some(strings)
    }

    /// A whole number within `range`; absent or null gives `None`.
    pub fn optional_integer(&mut self, name: &str, range: std::ops::RangeInclusive<u64>) -> Option<u64> {
        match self.fields.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::Number(number)) => match number.as_u64() {
                Some(value) if range.contains(&value) => Some(value),
                _ => {
                    self.errors.push(FieldError::new(
                        name,
                        "out_of_range",
                        format!("`{name}` must be a whole number from {} to {}", range.start(), range.end()),
                    ));
                    None
                }
            },
            Some(_) => {
                self.errors
                    .push(FieldError::new(name, "invalid", format!("`{name}` must be a number")));
                None
            }
        }
    }

    /// Records a problem found while checking a value taken from the body.
    pub fn reject(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, code, message));
    }

    /// Returns the collected problems as one 422, if any.
    pub fn finish(self) -> ApiResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_parameters(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_body_is_empty_object() {
        let body = JsonObject::parse(&Bytes::from_static(b""), &["name"]).unwrap();
        assert!(body.finish().is_ok());
    }

    #[test]
    fn malformed_json_is_bad_request() {
        let error = JsonObject::parse(&Bytes::from_static(b"{\"name\":"), &["name"]).err().unwrap();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn unknown_and_missing_fields_are_listed() {
        let mut body = JsonObject::parse(&Bytes::from_static(b"{\"nme\":\"x\"}"), &["name"]).unwrap();
        assert_eq!(body.required_string("name"), None);
        let error = body.finish().unwrap_err();
        let fields: Vec<&str> = error.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["nme", "name"]);
    }

    #[test]
    fn wrong_type_is_invalid() {
        let mut body = JsonObject::parse(&Bytes::from_static(b"{\"events\":[1]}"), &["events"]).unwrap();
        assert_eq!(body.optional_string_list("events"), None);
        assert_eq!(body.finish().unwrap_err().errors[0].code, "invalid");
    }
}
