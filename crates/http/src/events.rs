//! `GET /events`: the event log, oldest first, with an exclusive `after` cursor.

use axum::extract::State;
use axum::Json;
use dsync_core::event::{Event, EventKind};
use dsync_core::ids::{DirectoryId, EventId};
use dsync_core::ports::{EventQuery, Order};
use dsync_core::time::Timestamp;
use serde_json::Value;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::pagination::{self, list_json};
use crate::params::Params;
use crate::AppState;

/// Lists events. `events` is one comma-separated value as both SDKs send it,
/// or repeated `events` / `events[]`, and absent or empty means every type.
/// The other filters are `organization_id`, `directory_id` (extension),
/// `range_start` and `range_end` (RFC 3339). `after` combines with every
/// filter, because the Python SDK's auto-pager resends the range with each
/// cursor.
pub async fn list(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    let query = event_query(&params)?;
    let events = state.services.store.list_events(&query).await?;
    Ok(Json(list_json(&events, Event::to_json)))
}

fn event_query(params: &Params) -> ApiResult<EventQuery> {
    let mut errors = Vec::new();

    let limit = pagination::limit(params).unwrap_or_else(|error| {
        errors.push(error);
        pagination::DEFAULT_LIMIT
    });
    match pagination::order(params, Order::Asc) {
        Ok(Order::Asc) => {}
        Ok(Order::Desc) => errors.push(FieldError::new(
            "order",
            "unsupported",
            "events are served oldest first only; use `order=asc` or leave `order` out",
        )),
        Err(error) => errors.push(error),
    }

    let kinds = event_kinds(params, &mut errors);
    let range_start = timestamp(params, "range_start", &mut errors);
    let range_end = timestamp(params, "range_end", &mut errors);
    if let (Some(start), Some(end)) = (range_start, range_end) {
        if start > end {
            errors.push(FieldError::new(
                "range_end",
                "invalid",
                "range_end must not be earlier than range_start",
            ));
        }
    }

    let after = match params.get_raw("after") {
        None => None,
        Some(text) => match EventId::parse(text) {
            Some(id) => Some(id),
            None => {
                errors.push(FieldError::new(
                    "after",
                    "invalid_cursor",
                    format!("`{text}` is not an event id; pass back list_metadata.after unchanged"),
                ));
                None
            }
        },
    };
    // `before` alone would ask for newer-to-older paging, which the log does
    // not serve; beside `after` it is ignored, as with every other list.
    if after.is_none() && params.get("before").is_some() {
        errors.push(FieldError::new(
            "before",
            "unsupported",
            "events page forward only; use `after` with list_metadata.after",
        ));
    }

    let directory_id = match params.id("directory_id", DirectoryId::parse, DirectoryId::PREFIX) {
        Ok(id) => id,
        Err(error) => {
            errors.extend(error.errors);
            None
        }
    };

    if !errors.is_empty() {
        return Err(ApiError::invalid_parameters(errors));
    }
    Ok(EventQuery {
        kinds,
        organization_id: params.get("organization_id").map(str::to_owned),
        directory_id,
        range_start,
        range_end,
        after,
        limit,
    })
}

fn event_kinds(params: &Params, errors: &mut Vec<FieldError>) -> Vec<EventKind> {
    let mut kinds = Vec::new();
    for (field, value) in params
        .all("events")
        .map(|value| ("events", value))
        .chain(params.all("events[]").map(|value| ("events[]", value)))
    {
        for name in value
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            match EventKind::parse(name) {
                Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
                Some(_) => {}
                None => errors.push(FieldError::new(
                    field,
                    "invalid",
                    format!(
                        "unknown event type `{name}`; known types: {}",
                        known_kinds()
                    ),
                )),
            }
        }
    }
    kinds
}

fn known_kinds() -> String {
    let names: Vec<&str> = EventKind::ALL.iter().map(EventKind::as_str).collect();
    names.join(", ")
}

fn timestamp(params: &Params, field: &str, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
    let text = params.get_raw(field)?;
    let parsed = Timestamp::parse(text);
    if parsed.is_none() {
        errors.push(FieldError::new(
            field,
            "invalid",
            format!("`{text}` is not an RFC 3339 timestamp such as 2026-01-02T03:04:05.000Z"),
        ));
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_accepts_comma_repeated_and_brackets() {
        let params = Params::parse(
            "events=dsync.user.created%2Cdsync.user.deleted&events=dsync.deleted&events%5B%5D=dsync.activated",
        );
        let query = event_query(&params).unwrap();
        assert_eq!(
            query.kinds,
            vec![
                EventKind::UserCreated,
                EventKind::UserDeleted,
                EventKind::Deleted,
                EventKind::Activated
            ]
        );
    }

    #[test]
    fn empty_events_means_all() {
        let query = event_query(&Params::parse("events=")).unwrap();
        assert!(query.kinds.is_empty());
        assert_eq!(query.limit, 10);
    }

    #[test]
    fn unknown_event_type_is_rejected() {
        let error = event_query(&Params::parse("events=dsync.user.exploded")).unwrap_err();
        assert_eq!(error.errors[0].field, "events");
    }

    #[test]
    fn range_combines_with_after() {
        let after = EventId::generate();
        let params = Params::parse(&format!(
            "range_start=2026-01-01T00:00:00.000Z&range_end=2026-02-01T00:00:00Z&after={after}&limit=5"
        ));
        let query = event_query(&params).unwrap();
        assert_eq!(query.after, Some(after));
        assert!(query.range_start.is_some());
        assert!(query.range_end.is_some());
    }

    #[test]
    fn descending_order_is_rejected() {
        let error = event_query(&Params::parse("order=desc")).unwrap_err();
        assert_eq!(error.errors[0].code, "unsupported");
    }
}
