//! Directory events, in the WorkOS envelope `{object, id, event, data, created_at}`.

use serde::{Deserialize, Serialize};

use crate::ids::{DirectoryId, EventId};
use crate::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "dsync.activated")]
    Activated,
    #[serde(rename = "dsync.deleted")]
    Deleted,
    #[serde(rename = "dsync.user.created")]
    UserCreated,
    #[serde(rename = "dsync.user.updated")]
    UserUpdated,
    #[serde(rename = "dsync.user.deleted")]
    UserDeleted,
    #[serde(rename = "dsync.group.created")]
    GroupCreated,
    #[serde(rename = "dsync.group.updated")]
    GroupUpdated,
    #[serde(rename = "dsync.group.deleted")]
    GroupDeleted,
    #[serde(rename = "dsync.group.user_added")]
    GroupUserAdded,
    #[serde(rename = "dsync.group.user_removed")]
    GroupUserRemoved,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::Activated,
        EventKind::Deleted,
        EventKind::UserCreated,
        EventKind::UserUpdated,
        EventKind::UserDeleted,
        EventKind::GroupCreated,
        EventKind::GroupUpdated,
        EventKind::GroupDeleted,
        EventKind::GroupUserAdded,
        EventKind::GroupUserRemoved,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Activated => "dsync.activated",
            EventKind::Deleted => "dsync.deleted",
            EventKind::UserCreated => "dsync.user.created",
            EventKind::UserUpdated => "dsync.user.updated",
            EventKind::UserDeleted => "dsync.user.deleted",
            EventKind::GroupCreated => "dsync.group.created",
            EventKind::GroupUpdated => "dsync.group.updated",
            EventKind::GroupDeleted => "dsync.group.deleted",
            EventKind::GroupUserAdded => "dsync.group.user_added",
            EventKind::GroupUserRemoved => "dsync.group.user_removed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One event. `data` is the WorkOS-shaped payload built by [`crate::wire`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub event: EventKind,
    /// The directory the event belongs to; not part of the wire envelope.
    #[serde(skip)]
    pub directory_id: Option<DirectoryId>,
    /// The organization, for the Events API filter; not part of the wire envelope.
    #[serde(skip)]
    pub organization_id: Option<String>,
    pub data: serde_json::Value,
    pub created_at: Timestamp,
}

impl Event {
    /// The wire form: `{object: "event", id, event, data, created_at}`, compact,
    /// with non-ASCII characters unescaped.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "object": "event",
            "id": self.id,
            "event": self.event,
            "data": self.data,
            "created_at": self.created_at,
        })
    }
}
