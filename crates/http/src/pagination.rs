//! WorkOS list paging: `limit` (1 to 100, default 10), `order`, `before`,
//! `after`, and the `{object: "list", data, list_metadata}` envelope.

use dsync_core::ports::{Order, Page, PageRequest};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, FieldError};
use crate::params::Params;

pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 100;

/// What a list's `before` and `after` cursors must look like: the id of an
/// item of the listed type, as `list_metadata` hands it out.
#[derive(Clone, Copy)]
pub struct Cursor {
    /// What the listed items are, for the error message.
    pub what: &'static str,
    /// The id prefix, for the error message.
    pub prefix: &'static str,
    pub valid: fn(&str) -> bool,
}

impl Cursor {
    /// Delivery attempts have no id of their own; their cursor is a storage
    /// position (a row number locally), so only its length and characters
    /// are checked (no `/`, space or control character).
    pub const ATTEMPT: Cursor = Cursor {
        what: "delivery attempt",
        prefix: "",
        valid: |text| {
            (1..=256).contains(&text.len())
                && text
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"_-.:#".contains(&byte))
        },
    };

    fn check(&self, field: &str, text: &str) -> Result<(), FieldError> {
        if (self.valid)(text) {
            return Ok(());
        }
        let shape = if self.prefix.is_empty() {
            String::new()
        } else {
            format!(" (ids start with `{}`)", self.prefix)
        };
        Err(FieldError::new(
            field,
            "invalid_cursor",
            format!(
                "`{field}` is not a {} cursor{shape}; pass back list_metadata.{field} unchanged",
                self.what
            ),
        ))
    }
}

/// Reads the paging parameters. `order=normal` (Python SDK) means descending.
/// `before` and `after` may come together (the Node auto-pager keeps a
/// caller's `before`), and then `after` wins; both must be valid cursors of
/// the listed type, else the request is a 422 naming the parameter.
pub fn page_request(
    params: &Params,
    default_order: Order,
    cursor: Cursor,
) -> ApiResult<PageRequest> {
    let mut errors = Vec::new();
    for field in ["after", "before"] {
        if let Some(text) = params.get(field) {
            if let Err(error) = cursor.check(field, text) {
                errors.push(error);
            }
        }
    }

    let limit = match limit(params) {
        Ok(limit) => limit,
        Err(error) => {
            errors.push(error);
            DEFAULT_LIMIT
        }
    };
    let order = match order(params, default_order) {
        Ok(order) => order,
        Err(error) => {
            errors.push(error);
            default_order
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid_parameters(errors));
    }

    let after = params.get("after").map(str::to_owned);
    let before = if after.is_some() {
        None
    } else {
        params.get("before").map(str::to_owned)
    };
    Ok(PageRequest {
        limit,
        order,
        before,
        after,
    })
}

pub fn limit(params: &Params) -> Result<usize, FieldError> {
    let Some(text) = params.get_raw("limit") else {
        return Ok(DEFAULT_LIMIT);
    };
    match text.parse::<usize>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        Ok(_) => Err(FieldError::new(
            "limit",
            "out_of_range",
            format!("limit must be between 1 and {MAX_LIMIT}, got {text}"),
        )),
        Err(_) => Err(FieldError::new(
            "limit",
            "invalid",
            format!("limit must be a whole number between 1 and {MAX_LIMIT}, got `{text}`"),
        )),
    }
}

pub fn order(params: &Params, default_order: Order) -> Result<Order, FieldError> {
    match params.get_raw("order") {
        None => Ok(default_order),
        Some("asc") => Ok(Order::Asc),
        Some("desc") | Some("normal") => Ok(Order::Desc),
        Some(other) => Err(FieldError::new(
            "order",
            "invalid",
            format!("order must be `asc`, `desc` or `normal`, got `{other}`"),
        )),
    }
}

/// Builds the list envelope. `list_metadata.after` is JSON null on the last page,
/// never an empty string, because the Node auto-pager loops while it is truthy.
pub fn list_json<T>(page: &Page<T>, item_json: impl Fn(&T) -> Value) -> Value {
    let data: Vec<Value> = page.data.iter().map(item_json).collect();
    json!({
        "object": "list",
        "data": data,
        "list_metadata": {
            "before": non_empty(&page.before),
            "after": non_empty(&page.after),
        },
    })
}

/// Builds the envelope of a list that is never paged, such as a directory's SSH keys.
pub fn complete_list_json(data: Vec<Value>) -> Value {
    json!({
        "object": "list",
        "data": data,
        "list_metadata": { "before": null, "after": null },
    })
}

fn non_empty(cursor: &Option<String>) -> Value {
    match cursor {
        Some(id) if !id.is_empty() => Value::String(id.clone()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_accepts_one_to_hundred() {
        assert_eq!(limit(&Params::parse("limit=1")), Ok(1));
        assert_eq!(limit(&Params::parse("limit=100")), Ok(100));
        assert_eq!(limit(&Params::parse("")), Ok(DEFAULT_LIMIT));
    }

    #[test]
    fn limit_rejects_zero_and_over_hundred() {
        assert_eq!(
            limit(&Params::parse("limit=0")).unwrap_err().code,
            "out_of_range"
        );
        assert_eq!(
            limit(&Params::parse("limit=101")).unwrap_err().code,
            "out_of_range"
        );
        assert_eq!(
            limit(&Params::parse("limit=ten")).unwrap_err().code,
            "invalid"
        );
        assert_eq!(limit(&Params::parse("limit=")).unwrap_err().code, "invalid");
    }

    #[test]
    fn order_normal_means_desc() {
        assert_eq!(
            order(&Params::parse("order=normal"), Order::Asc),
            Ok(Order::Desc)
        );
        assert_eq!(order(&Params::parse(""), Order::Asc), Ok(Order::Asc));
    }

    const LETTER: Cursor = Cursor {
        what: "letter",
        prefix: "l_",
        valid: |text| text.starts_with("l_"),
    };

    #[test]
    fn after_wins_over_before() {
        let page =
            page_request(&Params::parse("before=l_b&after=l_a"), Order::Desc, LETTER).unwrap();
        assert_eq!(page.after.as_deref(), Some("l_a"));
        assert_eq!(page.before, None);
    }

    #[test]
    fn bad_cursors_are_named() {
        let error =
            page_request(&Params::parse("before=../x&after=zz"), Order::Desc, LETTER).unwrap_err();
        let fields: Vec<(&str, &str)> = error
            .errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(
            fields,
            vec![("after", "invalid_cursor"), ("before", "invalid_cursor")]
        );
        assert!((Cursor::ATTEMPT.valid)("12345"));
        assert!(!(Cursor::ATTEMPT.valid)("../../etc"));
        assert!(!(Cursor::ATTEMPT.valid)("a b"));
    }

    #[test]
    fn empty_cursor_becomes_null() {
        let page: Page<u8> = Page {
            data: vec![],
            before: Some(String::new()),
            after: None,
        };
        let body = list_json(&page, |_| Value::Null);
        assert_eq!(body["list_metadata"]["before"], Value::Null);
        assert_eq!(body["list_metadata"]["after"], Value::Null);
    }
}
