//! Per-directory policies.

use serde::{Deserialize, Serialize};

/// What happens to a user whose `state` column says inactive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InactiveUserPolicy {
    /// Delete the user, as WorkOS does.
    #[default]
    Delete,
    /// Keep the user with `state: inactive`.
    Keep,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DirectorySettings {
    /// A sync that would delete or deactivate more than this percentage of
    /// the directory's users is held for approval.
    pub deletion_threshold_percent: u8,
    /// The guard applies only when the directory has at least this many users.
    pub deletion_minimum_users: u32,
    pub inactive_users: InactiveUserPolicy,
}

impl Default for DirectorySettings {
    fn default() -> Self {
        Self {
            deletion_threshold_percent: 20,
            deletion_minimum_users: 10,
            inactive_users: InactiveUserPolicy::Delete,
        }
    }
}
