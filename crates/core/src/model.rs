//! The stored directory: directories, users, groups and memberships.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::{DirectoryId, GroupId, GroupName, IdpId, UserId};
use crate::settings::DirectorySettings;
use crate::time::Timestamp;

/// Optional `users.csv` columns that become `custom_attributes` under their own names.
pub const CUSTOM_ATTRIBUTE_COLUMNS: &[&str] = &[
    "username",
    "job_title",
    "employee_type",
    "employment_start_date",
    "display_name",
    "department_name",
    "manager_name",
    "manager_email",
    "manager_id",
    "division_name",
    "cost_center_name",
    "work_address_street",
    "work_address_locality",
    "work_address_region",
    "work_address_postal_code",
    "work_address_country",
];

/// The columns of one uploaded row as (normalised column name, value) pairs,
/// sorted by name. Column names are shared `Arc<str>`s so a million users
/// with the same header hold one copy of each name.
///
/// The values sit end to end in one string, so a record costs two
/// allocations whatever its column count, and comparing two records reads
/// two contiguous blocks instead of one small block per value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Column names, sorted, each with the end offset of its value in `values`.
    entries: Box<[(Arc<str>, usize)]>,
    /// Every value, concatenated in column-name order.
    values: Box<str>,
}

impl Attributes {
    /// Builds the map from pairs in any order. A later duplicate name replaces
    /// an earlier one.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Arc<str>, Box<str>)>) -> Self {
        let mut pairs: Vec<(Arc<str>, Box<str>)> = pairs.into_iter().collect();
        // A stable sort keeps duplicates in input order, so the swap below
        // leaves the later value in place.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                std::mem::swap(&mut earlier.1, &mut later.1);
                true
            } else {
                false
            }
        });

        let total: usize = pairs.iter().map(|(_, value)| value.len()).sum();
        let mut values = String::with_capacity(total);
        let mut entries = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            values.push_str(&value);
            entries.push((name, values.len()));
        }
        Self {
            entries: entries.into_boxed_slice(),
            values: values.into_boxed_str(),
        }
    }

    fn value_at(&self, index: usize) -> &str {
        let start = if index == 0 { 0 } else { self.entries[index - 1].1 };
        &self.values[start..self.entries[index].1]
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .binary_search_by(|(key, _)| key.as_ref().cmp(name))
            .ok()
            .map(|index| self.value_at(index))
    }

    /// Returns the value when present and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|value| !value.is_empty())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        (0..self.entries.len()).map(|index| (self.entries[index].0.as_ref(), self.value_at(index)))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Approximate heap bytes held, for benchmarks.
    pub fn heap_bytes(&self) -> usize {
        self.entries.len() * std::mem::size_of::<(Arc<str>, usize)>() + self.values.len()
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Shares column-name strings between records.
#[derive(Debug, Default)]
pub struct NameInterner {
    names: HashMap<Box<str>, Arc<str>>,
}

impl NameInterner {
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(name);
        self.names.insert(name.into(), shared.clone());
        shared
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    Active,
    Inactive,
}

impl UserState {
    pub fn as_str(&self) -> &'static str {
        match self {
            UserState::Active => "active",
            UserState::Inactive => "inactive",
        }
    }
}

/// A directory user as stored. Typed fields (`email`, `first_name`, ...) are
/// read from the attributes, so the uploaded row is the single source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub idp_id: IdpId,
    pub state: UserState,
    /// Every uploaded column by normalised name; served as `raw_attributes`.
    pub attributes: Attributes,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl User {
    pub fn email(&self) -> Option<&str> {
        self.attributes.non_empty("email")
    }

    pub fn first_name(&self) -> Option<&str> {
        self.attributes.non_empty("first_name")
    }

    pub fn last_name(&self) -> Option<&str> {
        self.attributes.non_empty("last_name")
    }

    pub fn username(&self) -> Option<&str> {
        self.attributes.non_empty("username")
    }

    pub fn job_title(&self) -> Option<&str> {
        self.attributes.non_empty("job_title")
    }

    /// The optional columns that WorkOS lists as custom attributes, by their names.
    pub fn custom_attributes(&self) -> impl Iterator<Item = (&str, &str)> {
        CUSTOM_ATTRIBUTE_COLUMNS
            .iter()
            .filter_map(|name| self.attributes.non_empty(name).map(|value| (*name, value)))
    }
}

/// A directory group as stored; its name is its `idp_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: GroupId,
    pub name: GroupName,
    /// Extra `groups.csv` columns by normalised name; served as `raw_attributes`.
    pub attributes: Attributes,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The synced contents of one directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectoryState {
    pub users: HashMap<IdpId, User>,
    pub groups: BTreeMap<GroupName, Group>,
    /// (group, user) pairs.
    pub memberships: BTreeSet<(GroupName, IdpId)>,
}

/// The REST state of a directory. Event payloads use another vocabulary; see
/// [`DirectoryStatus::event_state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryStatus {
    /// No SSH key registered yet.
    Unlinked,
    /// At least one key registered; uploads are accepted.
    Linked,
    /// Offboarding started; the directory is being removed.
    Deleting,
}

impl DirectoryStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            DirectoryStatus::Unlinked => "unlinked",
            DirectoryStatus::Linked => "linked",
            DirectoryStatus::Deleting => "deleting",
        }
    }

    /// The word used inside event payloads (`dsync.activated`, `dsync.deleted`).
    pub fn event_state(&self) -> &'static str {
        match self {
            DirectoryStatus::Unlinked => "inactive",
            DirectoryStatus::Linked => "active",
            DirectoryStatus::Deleting => "deleting",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "unlinked" => Some(Self::Unlinked),
            "linked" => Some(Self::Linked),
            "deleting" => Some(Self::Deleting),
            _ => None,
        }
    }
}

/// The SFTP account that receives a directory's uploads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SftpAccount {
    pub host: String,
    pub port: u16,
    pub username: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directory {
    pub id: DirectoryId,
    pub organization_id: String,
    pub external_key: String,
    pub name: String,
    pub status: DirectoryStatus,
    pub domain: Option<String>,
    /// The SFTP username; set when the directory is created, so it never changes.
    pub sftp_username: String,
    pub settings: DirectorySettings,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
