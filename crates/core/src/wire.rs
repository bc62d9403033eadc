//! WorkOS-compatible JSON shapes of directories, users and groups, shared by
//! the API and the event payloads so both always agree.

use serde_json::{json, Map, Value};

use crate::ids::DirectoryId;
use crate::model::{Directory, Group, User};

/// The ids every user and group payload repeats.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    pub directory_id: &'a DirectoryId,
    pub organization_id: &'a str,
}

impl<'a> Owner<'a> {
    pub fn of(directory: &'a Directory) -> Self {
        Self {
            directory_id: &directory.id,
            organization_id: &directory.organization_id,
        }
    }
}

fn optional(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |text| Value::String(text.to_owned()))
}

/// The REST directory object, with the SFTP account as extension fields.
pub fn directory_json(directory: &Directory, sftp_host: &str, sftp_port: u16) -> Value {
    json!({
        "object": "directory",
        "id": directory.id,
        "organization_id": directory.organization_id,
        "external_key": directory.external_key,
        "name": directory.name,
        "type": "sftp",
        "state": directory.status.as_str(),
        "domain": directory.domain,
        "sftp": {
            "host": sftp_host,
            "port": sftp_port,
            "username": directory.sftp_username,
        },
        "created_at": directory.created_at,
        "updated_at": directory.updated_at,
    })
}

/// The directory payload of `dsync.activated` and `dsync.deleted`, which use
/// the event vocabulary for `state` and carry `domains` as an array.
pub fn directory_event_json(directory: &Directory) -> Value {
    json!({
        "object": "directory",
        "id": directory.id,
        "organization_id": directory.organization_id,
        "external_key": directory.external_key,
        "name": directory.name,
        "type": "sftp",
        "state": directory.status.event_state(),
        "domains": [],
        "created_at": directory.created_at,
        "updated_at": directory.updated_at,
    })
}

/// `custom_attributes` of a user as a JSON object.
pub fn custom_attributes_json(user: &User) -> Map<String, Value> {
    user.custom_attributes()
        .map(|(name, value)| (name.to_owned(), Value::String(value.to_owned())))
        .collect()
}

/// `raw_attributes` of a user or group as a JSON object.
pub fn raw_attributes_json(attributes: &crate::model::Attributes) -> Map<String, Value> {
    attributes
        .iter()
        .map(|(name, value)| (name.to_owned(), Value::String(value.to_owned())))
        .collect()
}

/// The directory user object. `groups` is `Some` for REST responses, where
/// the Node SDK requires the array, and `None` for event payloads.
pub fn user_json(user: &User, owner: Owner<'_>, groups: Option<&[&Group]>) -> Value {
    let emails = match user.email() {
        Some(email) => json!([{ "primary": true, "type": "work", "value": email }]),
        None => json!([]),
    };

    let mut object = json!({
        "object": "directory_user",
        "id": user.id,
        "idp_id": user.idp_id,
        "directory_id": owner.directory_id,
        "organization_id": owner.organization_id,
        "email": optional(user.email()),
        "emails": emails,
        "first_name": optional(user.first_name()),
        "last_name": optional(user.last_name()),
        "username": optional(user.username()),
        "job_title": optional(user.job_title()),
        "state": user.state.as_str(),
        "custom_attributes": custom_attributes_json(user),
        "raw_attributes": raw_attributes_json(&user.attributes),
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    });

    if let Some(groups) = groups {
        let groups: Vec<Value> = groups.iter().map(|group| group_json(group, owner)).collect();
        object["groups"] = Value::Array(groups);
    }
    object
}

pub fn group_json(group: &Group, owner: Owner<'_>) -> Value {
    json!({
        "object": "directory_group",
        "id": group.id,
        "idp_id": group.name,
        "directory_id": owner.directory_id,
        "organization_id": owner.organization_id,
        "name": group.name,
        "raw_attributes": raw_attributes_json(&group.attributes),
        "created_at": group.created_at,
        "updated_at": group.updated_at,
    })
}

/// `previous_attributes`: for each changed top-level field, and each changed
/// key inside `custom_attributes` and `raw_attributes`, the old value (`null`
/// when the field did not exist before). Timestamps are not compared.
pub fn previous_attributes(before: &Value, after: &Value) -> Map<String, Value> {
    let mut previous = Map::new();
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
        return previous;
    };

    for (key, new_value) in after {
        if key == "updated_at" || key == "created_at" || key == "groups" {
            continue;
        }
        let old_value = before.get(key).cloned().unwrap_or(Value::Null);
        if &old_value == new_value {
            continue;
        }

        let nested = key == "custom_attributes" || key == "raw_attributes";
        if nested {
            let old_map = old_value.as_object().cloned().unwrap_or_default();
            let new_map = new_value.as_object().cloned().unwrap_or_default();
            let mut changed = Map::new();
            for (name, value) in &new_map {
                let old = old_map.get(name).cloned().unwrap_or(Value::Null);
                if &old != value {
                    changed.insert(name.clone(), old);
                }
            }
            for (name, value) in &old_map {
                if !new_map.contains_key(name) {
                    changed.insert(name.clone(), value.clone());
                }
            }
            previous.insert(key.clone(), Value::Object(changed));
        } else {
            previous.insert(key.clone(), old_value);
        }
    }
    previous
}
