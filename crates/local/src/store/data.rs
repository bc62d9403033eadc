//! The `DirectoryData` port: users, groups and memberships, and the row
//! changes a committed sync applies to them.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use dsync_core::ids::{DirectoryId, GroupId, GroupName, IdpId, UserId};
use dsync_core::model::{
    Attributes, Directory, DirectoryState, Group, NameInterner, User, UserState,
};
use dsync_core::plan::Change;
use dsync_core::ports::{
    DirectoryData, GroupFilter, GroupWithDirectory, Page, PageRequest, StoreError, StoreResult,
    UserFilter, UserWithGroups,
};
use dsync_core::time::Timestamp;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::directories::select_directory;
use super::pagination::page_query;
use super::{json_error, sql_error, SqliteStore};

const USER_COLUMNS: &str =
    "u.id, u.directory_id, u.idp_id, u.state, u.attributes_json, u.created_at_ms, u.updated_at_ms";
const GROUP_COLUMNS: &str =
    "g.id, g.directory_id, g.name, g.attributes_json, g.created_at_ms, g.updated_at_ms";

/// Serialises attributes as a JSON object of strings without building a
/// `serde_json::Value` first.
struct AttributesJson<'a>(&'a Attributes);

impl serde::Serialize for AttributesJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter())
    }
}

fn attributes_to_json(attributes: &Attributes) -> String {
    // Serialising string pairs into a String cannot fail.
    serde_json::to_string(&AttributesJson(attributes)).unwrap_or_else(|_| "{}".to_owned())
}

fn attributes_from_json(text: &str, names: &mut NameInterner) -> StoreResult<Attributes> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(json_error)?;
    let pairs = object.into_iter().map(|(name, value)| {
        let value: Box<str> = match value {
            serde_json::Value::String(text) => text.into(),
            other => other.to_string().into(),
        };
        (names.intern(&name), value)
    });
    Ok(Attributes::from_pairs(
        pairs.collect::<Vec<(Arc<str>, Box<str>)>>(),
    ))
}

/// A user row before its attributes JSON is parsed.
struct UserRow {
    id: String,
    directory_id: String,
    idp_id: String,
    state: String,
    attributes_json: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

fn user_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(0)?,
        directory_id: row.get(1)?,
        idp_id: row.get(2)?,
        state: row.get(3)?,
        attributes_json: row.get(4)?,
        created_at_ms: row.get(5)?,
        updated_at_ms: row.get(6)?,
    })
}

impl UserRow {
    fn into_user(self, names: &mut NameInterner) -> StoreResult<User> {
        Ok(User {
            id: UserId::from_stored(self.id),
            idp_id: IdpId::new(&self.idp_id),
            state: if self.state == "inactive" {
                UserState::Inactive
            } else {
                UserState::Active
            },
            attributes: attributes_from_json(&self.attributes_json, names)?,
            created_at: Timestamp::from_millis(self.created_at_ms),
            updated_at: Timestamp::from_millis(self.updated_at_ms),
        })
    }
}

struct GroupRow {
    id: String,
    directory_id: String,
    name: String,
    attributes_json: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

fn group_row(row: &Row<'_>) -> rusqlite::Result<GroupRow> {
    Ok(GroupRow {
        id: row.get(0)?,
        directory_id: row.get(1)?,
        name: row.get(2)?,
        attributes_json: row.get(3)?,
        created_at_ms: row.get(4)?,
        updated_at_ms: row.get(5)?,
    })
}

impl GroupRow {
    fn into_group(self, names: &mut NameInterner) -> StoreResult<Group> {
        Ok(Group {
            id: GroupId::from_stored(self.id),
            name: GroupName::new(&self.name),
            attributes: attributes_from_json(&self.attributes_json, names)?,
            created_at: Timestamp::from_millis(self.created_at_ms),
            updated_at: Timestamp::from_millis(self.updated_at_ms),
        })
    }
}

/// Directories looked up while building one page, so each is read once.
struct DirectoryCache(HashMap<String, Directory>);

impl DirectoryCache {
    fn get(&mut self, connection: &Connection, id: &str) -> StoreResult<Directory> {
        if let Some(directory) = self.0.get(id) {
            return Ok(directory.clone());
        }
        let directory = select_directory(connection, id)?.ok_or_else(|| StoreError::NotFound {
            what: "directory",
            id: id.to_owned(),
        })?;
        self.0.insert(id.to_owned(), directory.clone());
        Ok(directory)
    }
}

fn groups_of_user(
    connection: &Connection,
    directory_id: &str,
    idp_id: &str,
    names: &mut NameInterner,
) -> StoreResult<Vec<Group>> {
    let sql = format!(
        "SELECT {GROUP_COLUMNS} FROM memberships m JOIN groups g \
         ON g.directory_id = m.directory_id AND g.name = m.group_name \
         WHERE m.directory_id = ?1 AND m.idp_id = ?2 ORDER BY g.name"
    );
    let mut statement = connection.prepare_cached(&sql).map_err(sql_error)?;
    let rows = statement
        .query_map([directory_id, idp_id], group_row)
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    rows.into_iter().map(|row| row.into_group(names)).collect()
}

fn user_with_groups(
    connection: &Connection,
    row: UserRow,
    directories: &mut DirectoryCache,
    names: &mut NameInterner,
) -> StoreResult<UserWithGroups> {
    let directory = directories.get(connection, &row.directory_id)?;
    let groups = groups_of_user(connection, &row.directory_id, &row.idp_id, names)?;
    let user = row.into_user(names)?;
    Ok(UserWithGroups {
        directory,
        user,
        groups,
    })
}

#[async_trait]
impl DirectoryData for SqliteStore {
    async fn load_state(&self, directory: &DirectoryId) -> StoreResult<DirectoryState> {
        let directory = directory.clone();
        self.run(move |connection| load_state(connection, directory.as_str()))
            .await
    }

    async fn list_users(
        &self,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<UserWithGroups>> {
        let filter = filter.clone();
        let query = page_query("u.id", page);
        self.run(move |connection| {
            let (from, mut values) = match &filter {
                UserFilter::Directory(directory) => (
                    "users u WHERE u.directory_id = ?".to_owned(),
                    vec![Value::Text(directory.to_string())],
                ),
                UserFilter::Group(group) => (
                    "users u JOIN memberships m ON m.directory_id = u.directory_id AND m.idp_id = u.idp_id \
                     JOIN groups g ON g.directory_id = m.directory_id AND g.name = m.group_name \
                     WHERE g.id = ?"
                        .to_owned(),
                    vec![Value::Text(group.to_string())],
                ),
            };
            if let Some(cursor) = &query.cursor {
                values.push(cursor.clone());
            }
            values.push(Value::Integer(query.fetch_limit));

            let sql = format!(
                "SELECT {USER_COLUMNS} FROM {from}{} ORDER BY u.id {} LIMIT ?",
                query.condition, query.fetch_order
            );
            let rows = {
                let mut statement = connection.prepare(&sql).map_err(sql_error)?;
                let rows = statement
                    .query_map(rusqlite::params_from_iter(values), user_row)
                    .map_err(sql_error)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_error)?;
                rows
            };

            let mut directories = DirectoryCache(HashMap::new());
            let mut names = NameInterner::default();
            let users = rows
                .into_iter()
                .map(|row| user_with_groups(connection, row, &mut directories, &mut names))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(query.finish(users, |user| user.user.id.to_string()))
        })
        .await
    }

    async fn get_user(&self, id: &UserId) -> StoreResult<Option<UserWithGroups>> {
        let id = id.clone();
        self.run(move |connection| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?1");
            let row = connection
                .query_row(&sql, [id.as_str()], user_row)
                .optional()
                .map_err(sql_error)?;
            let Some(row) = row else { return Ok(None) };
            let mut directories = DirectoryCache(HashMap::new());
            let mut names = NameInterner::default();
            user_with_groups(connection, row, &mut directories, &mut names).map(Some)
        })
        .await
    }

    async fn list_groups(
        &self,
        filter: &GroupFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<GroupWithDirectory>> {
        let filter = filter.clone();
        let query = page_query("g.id", page);
        self.run(move |connection| {
            let (from, mut values) = match &filter {
                GroupFilter::Directory(directory) => (
                    "groups g WHERE g.directory_id = ?".to_owned(),
                    vec![Value::Text(directory.to_string())],
                ),
                GroupFilter::User(user) => (
                    "groups g JOIN memberships m ON m.directory_id = g.directory_id AND m.group_name = g.name \
                     JOIN users u ON u.directory_id = m.directory_id AND u.idp_id = m.idp_id \
                     WHERE u.id = ?"
                        .to_owned(),
                    vec![Value::Text(user.to_string())],
                ),
            };
            if let Some(cursor) = &query.cursor {
                values.push(cursor.clone());
            }
            values.push(Value::Integer(query.fetch_limit));

            let sql = format!(
                "SELECT {GROUP_COLUMNS} FROM {from}{} ORDER BY g.id {} LIMIT ?",
                query.condition, query.fetch_order
            );
            let rows = {
                let mut statement = connection.prepare(&sql).map_err(sql_error)?;
                let rows = statement
                    .query_map(rusqlite::params_from_iter(values), group_row)
                    .map_err(sql_error)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_error)?;
                rows
            };

            let mut directories = DirectoryCache(HashMap::new());
            let mut names = NameInterner::default();
            let mut groups = Vec::with_capacity(rows.len());
            for row in rows {
                let directory = directories.get(connection, &row.directory_id)?;
                let group = row.into_group(&mut names)?;
                groups.push(GroupWithDirectory { directory, group });
            }
            Ok(query.finish(groups, |group| group.group.id.to_string()))
        })
        .await
    }

    async fn get_group(&self, id: &GroupId) -> StoreResult<Option<GroupWithDirectory>> {
        let id = id.clone();
        self.run(move |connection| {
            let sql = format!("SELECT {GROUP_COLUMNS} FROM groups g WHERE g.id = ?1");
            let row = connection
                .query_row(&sql, [id.as_str()], group_row)
                .optional()
                .map_err(sql_error)?;
            let Some(row) = row else { return Ok(None) };
            let directory = select_directory(connection, &row.directory_id)?.ok_or_else(|| {
                StoreError::NotFound {
                    what: "directory",
                    id: row.directory_id.clone(),
                }
            })?;
            let group = row.into_group(&mut NameInterner::default())?;
            Ok(Some(GroupWithDirectory { directory, group }))
        })
        .await
    }
}

pub(crate) fn load_state(
    connection: &Connection,
    directory_id: &str,
) -> StoreResult<DirectoryState> {
    let mut names = NameInterner::default();
    let mut state = DirectoryState::default();

    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.directory_id = ?1");
    let mut statement = connection.prepare(&sql).map_err(sql_error)?;
    let mut rows = statement.query([directory_id]).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let user = user_row(row).map_err(sql_error)?.into_user(&mut names)?;
        state.users.insert(user.idp_id.clone(), user);
    }
    drop(rows);

    let sql = format!("SELECT {GROUP_COLUMNS} FROM groups g WHERE g.directory_id = ?1");
    let mut statement = connection.prepare(&sql).map_err(sql_error)?;
    let mut rows = statement.query([directory_id]).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let group = group_row(row).map_err(sql_error)?.into_group(&mut names)?;
        state.groups.insert(group.name.clone(), group);
    }
    drop(rows);

    let mut statement = connection
        .prepare("SELECT group_name, idp_id FROM memberships WHERE directory_id = ?1")
        .map_err(sql_error)?;
    let mut rows = statement.query([directory_id]).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let group: String = row.get(0).map_err(sql_error)?;
        let user: String = row.get(1).map_err(sql_error)?;
        state
            .memberships
            .insert((GroupName::new(&group), IdpId::new(&user)));
    }
    Ok(state)
}

/// Applies one planned change inside the commit transaction.
///
/// Each change checks the precondition the planner assumed (a deleted row
/// exists, a created row does not clash), so a plan made from stale state
/// fails with `Conflict` instead of half-applying.
pub(crate) fn apply_change(
    connection: &Connection,
    directory_id: &str,
    change: &Change,
) -> StoreResult<()> {
    match change {
        Change::PutUser(user) => {
            connection
                .prepare_cached(
                    "INSERT INTO users (id, directory_id, idp_id, state, attributes_json, created_at_ms, updated_at_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
                     attributes_json = excluded.attributes_json, updated_at_ms = excluded.updated_at_ms \
                     WHERE users.directory_id = excluded.directory_id AND users.idp_id = excluded.idp_id",
                )
                .map_err(sql_error)?
                .execute(params![
                    user.id.as_str(),
                    directory_id,
                    user.idp_id.as_str(),
                    user.state.as_str(),
                    attributes_to_json(&user.attributes),
                    user.created_at.millis(),
                    user.updated_at.millis(),
                ])
                .map_err(|error| conflict_context(error, "user", user.idp_id.as_str()))
                .and_then(|changed| expect_one(changed, "user", user.idp_id.as_str()))
        }
        Change::DeleteUser(idp_id) => {
            connection
                .prepare_cached("DELETE FROM memberships WHERE directory_id = ?1 AND idp_id = ?2")
                .map_err(sql_error)?
                .execute([directory_id, idp_id.as_str()])
                .map_err(sql_error)?;
            let changed = connection
                .prepare_cached("DELETE FROM users WHERE directory_id = ?1 AND idp_id = ?2")
                .map_err(sql_error)?
                .execute([directory_id, idp_id.as_str()])
                .map_err(sql_error)?;
            expect_one(changed, "user", idp_id.as_str())
        }
        Change::PutGroup(group) => {
            connection
                .prepare_cached(
                    "INSERT INTO groups (id, directory_id, name, attributes_json, created_at_ms, updated_at_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (id) DO UPDATE SET attributes_json = excluded.attributes_json, \
                     updated_at_ms = excluded.updated_at_ms \
                     WHERE groups.directory_id = excluded.directory_id AND groups.name = excluded.name",
                )
                .map_err(sql_error)?
                .execute(params![
                    group.id.as_str(),
                    directory_id,
                    group.name.as_str(),
                    attributes_to_json(&group.attributes),
                    group.created_at.millis(),
                    group.updated_at.millis(),
                ])
                .map_err(|error| conflict_context(error, "group", group.name.as_str()))
                .and_then(|changed| expect_one(changed, "group", group.name.as_str()))
        }
        Change::DeleteGroup(name) => {
            connection
                .prepare_cached("DELETE FROM memberships WHERE directory_id = ?1 AND group_name = ?2")
                .map_err(sql_error)?
                .execute([directory_id, name.as_str()])
                .map_err(sql_error)?;
            let changed = connection
                .prepare_cached("DELETE FROM groups WHERE directory_id = ?1 AND name = ?2")
                .map_err(sql_error)?
                .execute([directory_id, name.as_str()])
                .map_err(sql_error)?;
            expect_one(changed, "group", name.as_str())
        }
        Change::AddMembership(group, user) => {
            connection
                .prepare_cached("INSERT INTO memberships (directory_id, group_name, idp_id) VALUES (?1, ?2, ?3)")
                .map_err(sql_error)?
                .execute([directory_id, group.as_str(), user.as_str()])
                .map_err(|error| conflict_context(error, "membership of group", group.as_str()))?;
            Ok(())
        }
        Change::RemoveMembership(group, user) => {
            let changed = connection
                .prepare_cached("DELETE FROM memberships WHERE directory_id = ?1 AND group_name = ?2 AND idp_id = ?3")
                .map_err(sql_error)?
                .execute([directory_id, group.as_str(), user.as_str()])
                .map_err(sql_error)?;
            expect_one(changed, "membership of group", group.as_str())
        }
    }
}

fn expect_one(changed: usize, what: &str, key: &str) -> StoreResult<()> {
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "the stored {what} {key} changed since the sync read it; retry the sync"
        )))
    }
}

fn conflict_context(error: rusqlite::Error, what: &str, key: &str) -> StoreError {
    match super::sql_error(error) {
        StoreError::Conflict(_) => StoreError::Conflict(format!(
            "the stored {what} {key} changed since the sync read it; retry the sync"
        )),
        other => other,
    }
}
