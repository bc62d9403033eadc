//! `/directory_users`: list (by directory or group) and read.

use axum::extract::{Path, State};
use axum::Json;
use dsync_core::ids::{DirectoryId, GroupId, UserId};
use dsync_core::ports::{Order, Page, PageRequest, UserFilter, UserWithGroups};
use dsync_core::wire::{self, Owner};
use serde_json::Value;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::pagination::{list_json, page_request, Cursor, MAX_LIMIT};
use crate::params::Params;
use crate::AppState;

/// The REST user object, with its groups as complete group objects (the Node
/// SDK requires the `groups` array).
pub fn user_json(user: &UserWithGroups) -> Value {
    let groups: Vec<_> = user.groups.iter().collect();
    wire::user_json(&user.user, Owner::of(&user.directory), Some(&groups))
}

/// `GET /directory_users`: exactly one of `directory` or `group`; `idp_id`
/// and `email` narrow the result further.
pub async fn list(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    let page = page_request(
        &params,
        Order::Desc,
        Cursor {
            what: "directory user",
            prefix: UserId::PREFIX,
            valid: |text| UserId::parse(text).is_some(),
        },
    )?;
    let directory = params.id("directory", DirectoryId::parse, DirectoryId::PREFIX)?;
    let group = params.id("group", GroupId::parse, GroupId::PREFIX)?;
    let filter = match (directory, group) {
        (Some(directory), None) => UserFilter::Directory(directory),
        (None, Some(group)) => UserFilter::Group(group),
        (None, None) => {
            return Err(ApiError::invalid_field(
                "directory",
                "required",
                "give `directory` (a directory id) or `group` (a group id)",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "group",
                "invalid",
                "give either `directory` or `group`, not both",
            ))
        }
    };

    let matcher = UserMatcher {
        idp_id: params.get("idp_id"),
        email: params.get("email"),
    };
    let users = if matcher.is_empty() {
        state.services.store.list_users(&filter, &page).await?
    } else {
        search(&state, &filter, &page, &matcher).await?
    };
    Ok(Json(list_json(&users, user_json)))
}

/// `GET /directory_users/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let user_id = UserId::parse(&id).ok_or_else(|| ApiError::not_found("directory user", &id))?;
    let user = state
        .services
        .store
        .get_user(&user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("directory user", &id))?;
    Ok(Json(user_json(&user)))
}

/// The `idp_id` and `email` filters. `idp_id` matches exactly (leading zeros
/// count); `email` matches the primary email ignoring ASCII case.
struct UserMatcher<'a> {
    idp_id: Option<&'a str>,
    email: Option<&'a str>,
}

impl UserMatcher<'_> {
    fn is_empty(&self) -> bool {
        self.idp_id.is_none() && self.email.is_none()
    }

    fn matches(&self, user: &UserWithGroups) -> bool {
        let idp_matches = self
            .idp_id
            .is_none_or(|idp_id| user.user.idp_id.as_str() == idp_id);
        let email_matches = self.email.is_none_or(|email| {
            user.user
                .email()
                .is_some_and(|own| own.eq_ignore_ascii_case(email))
        });
        idp_matches && email_matches
    }
}

/// Applies `idp_id`/`email` by walking the whole filtered list, then pages
/// the (small) set of matches with the usual cursor rules.
///
/// NOTE: this reads every user of the directory or group, which the storage
/// ports offer no index for; fine for occasional lookups, slow as a hot path
/// on directories with hundreds of thousands of users.
async fn search(
    state: &AppState,
    filter: &UserFilter,
    page: &PageRequest,
    matcher: &UserMatcher<'_>,
) -> ApiResult<Page<UserWithGroups>> {
    let mut matches = Vec::new();
    let mut scan = PageRequest {
        limit: MAX_LIMIT,
        order: page.order,
        before: None,
        after: None,
    };
    loop {
        let batch = state.services.store.list_users(filter, &scan).await?;
        let next = batch.after.clone();
        matches.extend(batch.data.into_iter().filter(|user| matcher.matches(user)));
        match next {
            Some(after) if !after.is_empty() => scan.after = Some(after),
            _ => break,
        }
    }

    page_in_memory(matches, page, |user| user.user.id.as_str().to_owned())
}

/// Pages an in-memory list that is already in the requested order: `after`
/// starts just past the cursor item, `before` ends just before it.
fn page_in_memory<T>(
    items: Vec<T>,
    page: &PageRequest,
    id_of: impl Fn(&T) -> String,
) -> ApiResult<Page<T>> {
    let position = |cursor: &str| items.iter().position(|item| id_of(item) == cursor);
    let (start, end) = if let Some(after) = &page.after {
        let start = position(after)
            .map(|index| index + 1)
            .ok_or_else(|| unknown_cursor("after"))?;
        (start, (start + page.limit).min(items.len()))
    } else if let Some(before) = &page.before {
        let end = position(before).ok_or_else(|| unknown_cursor("before"))?;
        (end.saturating_sub(page.limit), end)
    } else {
        (0, page.limit.min(items.len()))
    };

    let before = (start > 0).then(|| id_of(&items[start]));
    let after = (end < items.len() && end > start).then(|| id_of(&items[end - 1]));
    let data = items.into_iter().skip(start).take(end - start).collect();
    Ok(Page {
        data,
        before,
        after,
    })
}

fn unknown_cursor(field: &str) -> ApiError {
    ApiError::invalid_parameters(vec![FieldError::new(
        field,
        "invalid_cursor",
        format!("`{field}` must be the id of a user in this result; pass back list_metadata.{field} unchanged"),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(limit: usize, before: Option<&str>, after: Option<&str>) -> PageRequest {
        PageRequest {
            limit,
            order: Order::Asc,
            before: before.map(str::to_owned),
            after: after.map(str::to_owned),
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("u{i}")).collect()
    }

    #[test]
    fn page_in_memory_walks_forward() {
        let first = page_in_memory(ids(5), &request(2, None, None), Clone::clone).unwrap();
        assert_eq!(first.data, vec!["u0", "u1"]);
        assert_eq!(first.after.as_deref(), Some("u1"));
        assert_eq!(first.before, None);

        let last = page_in_memory(ids(5), &request(2, None, Some("u3")), Clone::clone).unwrap();
        assert_eq!(last.data, vec!["u4"]);
        assert_eq!(last.after, None);
        assert_eq!(last.before.as_deref(), Some("u4"));
    }

    #[test]
    fn page_in_memory_walks_backward() {
        let page = page_in_memory(ids(5), &request(2, Some("u2"), None), Clone::clone).unwrap();
        assert_eq!(page.data, vec!["u0", "u1"]);
        assert_eq!(page.before, None);
        assert_eq!(page.after.as_deref(), Some("u1"));
    }

    #[test]
    fn page_in_memory_rejects_unknown_cursor() {
        assert!(page_in_memory(ids(3), &request(2, None, Some("zz")), Clone::clone).is_err());
    }
}
