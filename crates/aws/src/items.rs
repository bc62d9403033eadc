//! The single-table layout and the item encodings.
//!
//! | item | pk | sk | indexes |
//! | --- | --- | --- | --- |
//! | directory | `DIRS` | directory id | `gid` = id |
//! | username pointer | `USERNAME#<name>` | `-` | |
//! | bucket pointer | `BUCKET#<name>` | `-` | |
//! | user | `DIR#<id>` | `U#<idp_id>` | `gid` = user id, `lp` = `DIR#<id>#U` |
//! | group | `DIR#<id>` | `G#<name>` | `gid` = group id, `lp` = `DIR#<id>#G` |
//! | membership | `DIR#<id>` | `M#<group>#<idp_id>` | `uk` = `DIR#<id>#U#<idp_id>` |
//! | state version | `DIR#<id>` | `STATE` | |
//! | sync lease | `DIR#<id>` | `LEASE` | |
//! | sync record | `DIR#<id>` | `S#<sync id>` | `gid` = sync id |
//! | pending commit | `DIR#<id>` | `WAL#HEAD`, `WAL#<sync>#<n>` | |
//! | SSH key | `DIR#<id>` | `K#<key id>` | |
//! | fingerprint pointer | `FP#<fingerprint>` | `-` | |
//! | event | `EVENTS` | event id | |
//! | webhook endpoint | `WEBHOOKS` | endpoint id | |
//! | delivery attempt | `WH#<endpoint id>` | `<event id>#<attempt>` | |
//! | API key | `APIKEYS` | key id | |
//!
//! Components that come from uploads (`idp_id`, group names) are escaped so
//! that `#` always separates: `%` becomes `%25` and `#` becomes `%23`.
//! Records are kept as one JSON document in `doc`.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use dsync_core::event::{Event, EventKind};
use dsync_core::ids::{DirectoryId, EventId, GroupId, GroupName, IdpId, UserId};
use dsync_core::model::{
    Attributes, Directory, DirectoryStatus, Group, NameInterner, User, UserState,
};
use dsync_core::ports::{StoreError, StoreResult};
use dsync_core::settings::DirectorySettings;
use dsync_core::time::Timestamp;
use serde::{Deserialize, Serialize};

pub const DIRS: &str = "DIRS";
pub const EVENTS: &str = "EVENTS";
pub const WEBHOOKS: &str = "WEBHOOKS";
pub const APIKEYS: &str = "APIKEYS";
pub const NO_SK: &str = "-";
pub const BY_ID: &str = "byid";
pub const BY_USER: &str = "byuser";
pub const LIST: &str = "list";

/// Seconds events are kept (90 days), then DynamoDB's TTL removes them.
pub const EVENT_RETENTION_SECONDS: i64 = 90 * 24 * 3600;

pub fn escape(text: &str) -> String {
    text.replace('%', "%25").replace('#', "%23")
}

pub fn unescape(text: &str) -> String {
    text.replace("%23", "#").replace("%25", "%")
}

pub fn dir_pk(directory: &DirectoryId) -> String {
    format!("DIR#{directory}")
}

pub fn user_sk(idp: &IdpId) -> String {
    format!("U#{}", escape(idp.as_str()))
}

pub fn group_sk(name: &GroupName) -> String {
    format!("G#{}", escape(name.as_str()))
}

pub fn membership_prefix(group: &GroupName) -> String {
    format!("M#{}#", escape(group.as_str()))
}

pub fn membership_sk(group: &GroupName, idp: &IdpId) -> String {
    format!("{}{}", membership_prefix(group), escape(idp.as_str()))
}

pub fn member_key(directory: &DirectoryId, idp: &IdpId) -> String {
    format!("DIR#{directory}#U#{}", escape(idp.as_str()))
}

pub fn user_list_key(directory: &DirectoryId) -> String {
    format!("DIR#{directory}#U")
}

pub fn group_list_key(directory: &DirectoryId) -> String {
    format!("DIR#{directory}#G")
}

/// Splits a membership sort key into (group, idp_id).
pub fn parse_membership_sk(sk: &str) -> Option<(GroupName, IdpId)> {
    let rest = sk.strip_prefix("M#")?;
    let (group, idp) = rest.split_once('#')?;
    Some((GroupName::new(&unescape(group)), IdpId::new(&unescape(idp))))
}

/// A DynamoDB item in a form that can be written to the pending-commit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    S(String),
    N(i64),
}

pub type Item = BTreeMap<String, Value>;

pub fn to_attributes(item: &Item) -> HashMap<String, AttributeValue> {
    item.iter()
        .map(|(name, value)| {
            let value = match value {
                Value::S(text) => AttributeValue::S(text.clone()),
                Value::N(number) => AttributeValue::N(number.to_string()),
            };
            (name.clone(), value)
        })
        .collect()
}

pub fn item(pairs: &[(&str, Value)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

pub fn s(text: impl Into<String>) -> Value {
    Value::S(text.into())
}

/// Reads a string attribute.
pub fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> StoreResult<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Ok(text),
        _ => Err(StoreError::Backend(format!(
            "stored item lacks the string attribute {name}"
        ))),
    }
}

pub fn get_n(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(text)) => text.parse().ok(),
        _ => None,
    }
}

pub fn doc<T: for<'de> Deserialize<'de>>(item: &HashMap<String, AttributeValue>) -> StoreResult<T> {
    let text = get_s(item, "doc")?;
    serde_json::from_str(text)
        .map_err(|error| StoreError::Backend(format!("stored document is unreadable: {error}")))
}

pub fn to_doc<T: Serialize>(value: &T) -> String {
    // Serialising these plain structs cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

// ------------------------------------------------------------ directories

#[derive(Serialize, Deserialize)]
struct DirectoryDoc {
    id: DirectoryId,
    organization_id: String,
    external_key: String,
    name: String,
    status: DirectoryStatus,
    domain: Option<String>,
    sftp_username: String,
    settings: DirectorySettings,
    created_at: Timestamp,
    updated_at: Timestamp,
}

pub fn directory_item(directory: &Directory) -> Item {
    let doc = DirectoryDoc {
        id: directory.id.clone(),
        organization_id: directory.organization_id.clone(),
        external_key: directory.external_key.clone(),
        name: directory.name.clone(),
        status: directory.status,
        domain: directory.domain.clone(),
        sftp_username: directory.sftp_username.clone(),
        settings: directory.settings.clone(),
        created_at: directory.created_at,
        updated_at: directory.updated_at,
    };
    item(&[
        ("pk", s(DIRS)),
        ("sk", s(directory.id.as_str())),
        ("gid", s(directory.id.as_str())),
        ("org", s(directory.organization_id.as_str())),
        ("status", s(directory.status.as_str())),
        ("doc", s(to_doc(&doc))),
    ])
}

pub fn directory_from(item: &HashMap<String, AttributeValue>) -> StoreResult<Directory> {
    let d: DirectoryDoc = doc(item)?;
    Ok(Directory {
        id: d.id,
        organization_id: d.organization_id,
        external_key: d.external_key,
        name: d.name,
        status: d.status,
        domain: d.domain,
        sftp_username: d.sftp_username,
        settings: d.settings,
        created_at: d.created_at,
        updated_at: d.updated_at,
    })
}

// ------------------------------------------------------------ users and groups

#[derive(Serialize, Deserialize)]
struct UserDoc {
    id: UserId,
    idp_id: IdpId,
    state: UserState,
    attributes: Vec<(String, String)>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct GroupDoc {
    id: GroupId,
    name: GroupName,
    attributes: Vec<(String, String)>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

fn attribute_pairs(attributes: &Attributes) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn attributes_from(pairs: Vec<(String, String)>, names: &mut NameInterner) -> Attributes {
    Attributes::from_pairs(
        pairs
            .into_iter()
            .map(|(k, v)| (names.intern(&k), v.into_boxed_str())),
    )
}

pub fn user_item(directory: &DirectoryId, user: &User) -> Item {
    let doc = UserDoc {
        id: user.id.clone(),
        idp_id: user.idp_id.clone(),
        state: user.state,
        attributes: attribute_pairs(&user.attributes),
        created_at: user.created_at,
        updated_at: user.updated_at,
    };
    item(&[
        ("pk", s(dir_pk(directory))),
        ("sk", s(user_sk(&user.idp_id))),
        ("gid", s(user.id.as_str())),
        ("lp", s(user_list_key(directory))),
        ("doc", s(to_doc(&doc))),
    ])
}

pub fn user_from(
    item: &HashMap<String, AttributeValue>,
    names: &mut NameInterner,
) -> StoreResult<User> {
    let d: UserDoc = doc(item)?;
    Ok(User {
        id: d.id,
        idp_id: d.idp_id,
        state: d.state,
        attributes: attributes_from(d.attributes, names),
        created_at: d.created_at,
        updated_at: d.updated_at,
    })
}

pub fn group_item(directory: &DirectoryId, group: &Group) -> Item {
    let doc = GroupDoc {
        id: group.id.clone(),
        name: group.name.clone(),
        attributes: attribute_pairs(&group.attributes),
        created_at: group.created_at,
        updated_at: group.updated_at,
    };
    item(&[
        ("pk", s(dir_pk(directory))),
        ("sk", s(group_sk(&group.name))),
        ("gid", s(group.id.as_str())),
        ("lp", s(group_list_key(directory))),
        ("doc", s(to_doc(&doc))),
    ])
}

pub fn group_from(
    item: &HashMap<String, AttributeValue>,
    names: &mut NameInterner,
) -> StoreResult<Group> {
    let d: GroupDoc = doc(item)?;
    Ok(Group {
        id: d.id,
        name: d.name,
        attributes: attributes_from(d.attributes, names),
        created_at: d.created_at,
        updated_at: d.updated_at,
    })
}

pub fn membership_item(directory: &DirectoryId, group: &GroupName, idp: &IdpId) -> Item {
    item(&[
        ("pk", s(dir_pk(directory))),
        ("sk", s(membership_sk(group, idp))),
        ("uk", s(member_key(directory, idp))),
    ])
}

// ------------------------------------------------------------ events

pub fn event_item(event: &Event) -> Item {
    let created = event.created_at.millis();
    let mut pairs = vec![
        ("pk", s(EVENTS)),
        ("sk", s(event.id.as_str())),
        ("kind", s(event.event.as_str())),
        ("ts", Value::N(created)),
        ("ttl", Value::N(created / 1000 + EVENT_RETENTION_SECONDS)),
        ("doc", s(event.to_json().to_string())),
    ];
    if let Some(directory) = &event.directory_id {
        pairs.push(("dir", s(directory.as_str())));
    }
    if let Some(org) = &event.organization_id {
        pairs.push(("org", s(org.as_str())));
    }
    item(&pairs)
}

#[derive(Deserialize)]
struct EventDoc {
    id: EventId,
    event: EventKind,
    data: serde_json::Value,
    created_at: Timestamp,
}

pub fn event_from(item: &HashMap<String, AttributeValue>) -> StoreResult<Event> {
    let d: EventDoc = doc(item)?;
    Ok(Event {
        id: d.id,
        event: d.event,
        directory_id: get_s(item, "dir").ok().map(DirectoryId::from_stored),
        organization_id: get_s(item, "org").ok().map(str::to_owned),
        data: d.data,
        created_at: d.created_at,
    })
}
