//! JSON request bodies, read field by field so each problem becomes a 422
//! entry naming the field, and malformed JSON a 400 in the API's JSON error
//! shape rather than axum's plain-text rejection.

use std::cell::RefCell;
use std::fmt;

use axum::body::Bytes;
use axum::http::StatusCode;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
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
            let duplicates = RefCell::new(Vec::new());
            let mut reader = serde_json::Deserializer::from_slice(body);
            let parsed = CheckedValue {
                path: String::new(),
                duplicates: &duplicates,
            }
            .deserialize(&mut reader)
            .and_then(|value| reader.end().map(|()| value));
            match parsed {
                Ok(Value::Object(fields)) => {
                    let duplicates = duplicates.into_inner();
                    if !duplicates.is_empty() {
                        return Err(ApiError::invalid_parameters(
                            duplicates
                                .iter()
                                .map(|key| {
                                    FieldError::new(
                                        key,
                                        "duplicate_key",
                                        format!("`{key}` appears more than once in the JSON body; send each key once"),
                                    )
                                })
                                .collect(),
                        ));
                    }
                    fields
                }
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
                    format!(
                        "unknown field `{name}`; allowed fields: {}",
                        allowed.join(", ")
                    ),
                )
            })
            .collect();
        Ok(Self { fields, errors })
    }

    /// A string field that must be present and not null.
    pub fn required_string(&mut self, name: &str) -> Option<String> {
        if matches!(self.fields.get(name), None | Some(Value::Null)) {
            self.fields.remove(name);
            self.errors.push(FieldError::new(
                name,
                "required",
                format!("`{name}` is required and must be a string"),
            ));
            return None;
        }
        self.optional_string(name)
    }

    /// Takes a string field; absent gives `None`. Null is rejected, so that a
    /// client expecting null to clear a value learns that it does not.
    pub fn optional_string(&mut self, name: &str) -> Option<String> {
        match self.fields.remove(name) {
            None => None,
            Some(Value::String(text)) => Some(text),
            Some(_) => {
                self.errors.push(FieldError::new(
                    name,
                    "invalid",
                    format!("`{name}` must be a string"),
                ));
                None
            }
        }
    }

    /// Takes an array of strings; absent gives `None`, null is rejected.
    pub fn optional_string_list(&mut self, name: &str) -> Option<Vec<String>> {
        let value = self.fields.remove(name)?;
        let items = match value {
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

    /// Takes a whole number within `range`; absent gives `None`, null is rejected. A number
    /// written with a zero fraction (`20.0`) counts as whole, as in JSON Schema.
    pub fn optional_integer(
        &mut self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        match self.fields.remove(name) {
            None => None,
            Some(Value::Number(number)) => match whole_number(&number) {
                Some(value) if range.contains(&value) => Some(value),
                _ => {
                    self.errors.push(FieldError::new(
                        name,
                        "out_of_range",
                        format!(
                            "`{name}` must be a whole number from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    ));
                    None
                }
            },
            Some(_) => {
                self.errors.push(FieldError::new(
                    name,
                    "invalid",
                    format!("`{name}` must be a number"),
                ));
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

/// Reads any JSON value like `serde_json::Value` does, but records every key
/// that repeats within one object (as a dotted path) instead of letting the
/// last one silently win.
struct CheckedValue<'a> {
    path: String,
    duplicates: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for CheckedValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl CheckedValue<'_> {
    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl<'de> Visitor<'de> for CheckedValue<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        let path = self.child("[]");
        while let Some(item) = seq.next_element_seed(CheckedValue {
            path: path.clone(),
            duplicates: self.duplicates,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = self.child(&key);
            let value = map.next_value_seed(CheckedValue {
                path: path.clone(),
                duplicates: self.duplicates,
            })?;
            if fields.insert(key, value).is_some() {
                let mut duplicates = self.duplicates.borrow_mut();
                if !duplicates.contains(&path) {
                    duplicates.push(path);
                }
            }
        }
        Ok(Value::Object(fields))
    }
}

/// Returns the value of a JSON number that is a non-negative whole number.
fn whole_number(number: &serde_json::Number) -> Option<u64> {
    if let Some(value) = number.as_u64() {
        return Some(value);
    }
    let value = number.as_f64()?;
    let representable = value >= 0.0 && value.fract() == 0.0 && value <= u64::MAX as f64;
    representable.then_some(value as u64)
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
        let error = JsonObject::parse(&Bytes::from_static(b"{\"name\":"), &["name"])
            .err()
            .unwrap();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn duplicate_keys_are_named() {
        let body = Bytes::from_static(
            b"{\"name\":\"a\",\"x\":{\"y\":1,\"y\":2},\"name\":\"b\",\"name\":\"c\"}",
        );
        let error = JsonObject::parse(&body, &["name", "x"]).err().unwrap();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<(&str, &str)> = error
            .errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(
            fields,
            vec![("x.y", "duplicate_key"), ("name", "duplicate_key")]
        );
    }

    #[test]
    fn trailing_text_is_bad_request() {
        let error = JsonObject::parse(&Bytes::from_static(b"{} {}"), &[])
            .err()
            .unwrap();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn unknown_and_missing_fields_are_listed() {
        let mut body =
            JsonObject::parse(&Bytes::from_static(b"{\"nme\":\"x\"}"), &["name"]).unwrap();
        assert_eq!(body.required_string("name"), None);
        let error = body.finish().unwrap_err();
        let fields: Vec<&str> = error.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["nme", "name"]);
    }

    #[test]
    fn null_required_field_is_missing() {
        let mut body =
            JsonObject::parse(&Bytes::from_static(b"{\"name\":null}"), &["name"]).unwrap();
        assert_eq!(body.required_string("name"), None);
        assert_eq!(body.finish().unwrap_err().errors[0].code, "required");
    }

    #[test]
    fn null_optional_field_is_invalid() {
        let mut body =
            JsonObject::parse(&Bytes::from_static(b"{\"status\":null}"), &["status"]).unwrap();
        assert_eq!(body.optional_string("status"), None);
        assert_eq!(body.finish().unwrap_err().errors[0].code, "invalid");
    }

    #[test]
    fn integer_accepts_zero_fraction() {
        let mut body =
            JsonObject::parse(&Bytes::from_static(b"{\"n\":69.0,\"m\":1.5}"), &["n", "m"]).unwrap();
        assert_eq!(body.optional_integer("n", 0..=100), Some(69));
        assert_eq!(body.optional_integer("m", 0..=100), None);
    }

    #[test]
    fn wrong_type_is_invalid() {
        let mut body =
            JsonObject::parse(&Bytes::from_static(b"{\"events\":[1]}"), &["events"]).unwrap();
        assert_eq!(body.optional_string_list("events"), None);
        assert_eq!(body.finish().unwrap_err().errors[0].code, "invalid");
    }
}
