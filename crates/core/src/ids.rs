//! Prefixed ULID identifiers (`directory_01H...`).
//!
//! Ids are strings on the wire, so each newtype wraps the full prefixed string
//! and checks the prefix when parsed from outside.

use std::fmt;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// Builds the id from a ULID.
            pub fn from_ulid(ulid: Ulid) -> Self {
                Self(format!("{}{}", $prefix, ulid))
            }

            /// Creates a new id from the current time and fresh randomness.
            pub fn generate() -> Self {
                Self::from_ulid(Ulid::new())
            }

            /// Parses an id received from outside, checking its prefix and ULID part.
            pub fn parse(text: &str) -> Option<Self> {
                let rest = text.strip_prefix($prefix)?;
                Ulid::from_string(rest).ok()?;
                Some(Self(text.to_owned()))
            }

            /// Wraps a stored id without checking it. Use only for values this
            /// service wrote itself.
            pub fn from_stored(text: impl Into<String>) -> Self {
                Self(text.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The ULID part, when the id is well formed.
            pub fn ulid(&self) -> Option<Ulid> {
                Ulid::from_string(self.0.strip_prefix($prefix)?).ok()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

prefixed_id!(
    /// A directory: one customer organization's HR feed.
    DirectoryId, "directory_"
);
prefixed_id!(
    /// A directory user, stable for its (directory, `idp_id`) pair.
    UserId, "directory_user_"
);
prefixed_id!(
    /// A directory group, stable for its (directory, group name) pair.
    GroupId, "directory_group_"
);
prefixed_id!(
    /// An event in the log; ids sort in the order events were committed.
    EventId, "event_"
);
prefixed_id!(
    /// One processed upload and its report.
    SyncId, "sync_"
);
prefixed_id!(
    /// A registered SSH public key.
    KeyId, "ssh_key_"
);
prefixed_id!(
    /// A webhook endpoint.
    WebhookEndpointId, "we_"
);
prefixed_id!(
    /// An API key (the public handle, not the secret).
    ApiKeyId, "key_"
);

/// The user's id in the HR system (`user_id` column), kept exactly as written:
/// `00123` and `123` are different users.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdpId(pub Box<str>);

impl IdpId {
    pub fn new(text: &str) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for IdpId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A group's name, which is also its `idp_id`: a rename is a delete plus a create.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupName(pub Box<str>);

impl GroupName {
    pub fn new(text: &str) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for GroupName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Derives a stable ULID from a timestamp and a key, so that planning is a
/// pure function: the same inputs give the same ids.
///
/// The random part is the first 80 bits of SHA-256 over the key parts, each
/// followed by a zero byte so that `("ab", "c")` and `("a", "bc")` differ.
pub fn derived_ulid(timestamp_ms: u64, key_parts: &[&[u8]]) -> Ulid {
    use sha2::{Digest, Sha256};

    let mut hasher = Sha256::new();
    for part in key_parts {
        hasher.update(part);
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();

    let mut random = [0u8; 16];
    random[6..].copy_from_slice(&digest[..10]);
    let random = u128::from_be_bytes(random);

    Ulid::from_parts(timestamp_ms, random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_checks_prefix() {
        let id = DirectoryId::generate();
        assert_eq!(DirectoryId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(UserId::parse(id.as_str()), None);
        assert_eq!(DirectoryId::parse("directory_nope"), None);
    }

    #[test]
    fn derived_ulid_is_stable_and_keyed() {
        let a = derived_ulid(1_000, &[b"dir", b"1001"]);
        assert_eq!(a, derived_ulid(1_000, &[b"dir", b"1001"]));
        assert_ne!(a, derived_ulid(1_000, &[b"dir", b"1002"]));
        assert_ne!(derived_ulid(1, &[b"ab", b"c"]), derived_ulid(1, &[b"a", b"bc"]));
        assert_eq!(a.timestamp_ms(), 1_000);
    }
}
