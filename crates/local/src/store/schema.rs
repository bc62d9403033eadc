//! The SQLite schema. Created on open; every statement is idempotent.
//!
//! Timestamps are stored two ways on purpose: tables the webhook worker reads
//! or writes (`events`, `webhook_*`) hold RFC 3339 text with milliseconds and
//! `Z` (the wire form, which also sorts by time as text), the other tables
//! hold Unix milliseconds.

use rusqlite::Connection;

/// Bumped when a table changes shape; stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS directories (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    external_key TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    domain TEXT,
    sftp_username TEXT NOT NULL UNIQUE,
    settings_json TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    -- Wall-clock time of the last committed sync; the optimistic check of
    -- commit_sync compares it with the start of the sync being committed.
    last_commit_at_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS directories_by_organization ON directories (organization_id, id);

CREATE TABLE IF NOT EXISTS ssh_keys (
    id TEXT PRIMARY KEY,
    directory_id TEXT NOT NULL REFERENCES directories (id) ON DELETE CASCADE,
    key_type TEXT NOT NULL,
    public_key TEXT NOT NULL,
    comment TEXT,
    fingerprint TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ssh_keys_by_directory ON ssh_keys (directory_id, id);

CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    directory_id TEXT NOT NULL REFERENCES directories (id) ON DELETE CASCADE,
    idp_id TEXT NOT NULL,
    state TEXT NOT NULL,
    -- Every uploaded column as a JSON object of strings.
    attributes_json TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    UNIQUE (directory_id, idp_id)
);
CREATE INDEX IF NOT EXISTS users_by_directory ON users (directory_id, id);

CREATE TABLE IF NOT EXISTS groups (
    id TEXT PRIMARY KEY,
    directory_id TEXT NOT NULL REFERENCES directories (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    attributes_json TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    UNIQUE (directory_id, name)
);
CREATE INDEX IF NOT EXISTS groups_by_directory ON groups (directory_id, id);

-- Memberships are keyed by names, as the uploads name them, so a sync can
-- apply them without looking up generated ids.
CREATE TABLE IF NOT EXISTS memberships (
    directory_id TEXT NOT NULL REFERENCES directories (id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    idp_id TEXT NOT NULL,
    PRIMARY KEY (directory_id, group_name, idp_id)
);
CREATE INDEX IF NOT EXISTS memberships_by_user ON memberships (directory_id, idp_id);

-- The event log outlives its directory (offboarding keeps the directory's
-- dsync.deleted event and deletes the others), so it has no foreign key.
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    directory_id TEXT,
    organization_id TEXT,
    data_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- The wire envelope {object, id, event, data, created_at}, compact: the
    -- exact webhook body.
    body_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_directory ON events (directory_id, id);
CREATE INDEX IF NOT EXISTS events_by_created_at ON events (created_at);

CREATE TABLE IF NOT EXISTS syncs (
    id TEXT PRIMARY KEY,
    directory_id TEXT NOT NULL REFERENCES directories (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    record_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS syncs_by_directory ON syncs (directory_id, id);

-- Files the SFTP server reported as completely written (closed without
-- error, or renamed into place), with the size and modification time they
-- had then. Only these are read by a sync: a file cut off mid-transfer stays
-- on disk but never matches a row.
CREATE TABLE IF NOT EXISTS completed_uploads (
    sftp_username TEXT NOT NULL,
    path TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL,
    completed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (sftp_username, path)
);

CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);

-- The three webhook tables are shared with the webhook worker
-- (crates/local/src/webhooks.rs), which opens its own connection.
-- created_at, updated_at and attempted_at are RFC 3339 text.
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id TEXT PRIMARY KEY,
    endpoint_url TEXT NOT NULL,
    secret TEXT NOT NULL,
    status TEXT NOT NULL,
    events_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id INTEGER PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    next_attempt_at_ms INTEGER NOT NULL,
    state TEXT NOT NULL, -- pending | succeeded | failed
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at_ms);

CREATE TABLE IF NOT EXISTS webhook_attempts (
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    succeeded INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id);
"#;

/// Sets the connection options every dsync connection needs and creates the
/// tables. WAL lets the webhook worker and the operator commands read and
/// write through their own connections while `dsync serve` runs.
pub fn prepare(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // Deleted rows (an offboarded directory's HR data) are overwritten with
    // zeros instead of staying readable in free pages of the file.
    connection.pragma_update(None, "secure_delete", "ON")?;
    connection.execute_batch(SCHEMA)?;
    connection.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}
