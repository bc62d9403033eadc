//! Operator commands against a data dir: directories, keys, users, groups,
//! syncs, events and API keys.
//!
//! They open the SQLite database directly, so they work while `dsync serve`
//! runs on the same data dir (WAL mode lets both write). Commands that change
//! a directory (approve, delete, add key) run the same `Services` code as the
//! server, with the data dir's file store. Nothing serialises them against
//! the server's sync worker except the store itself: `commit_sync` refuses a
//! plan made from state that another writer changed, and the losing side
//! reports a conflict (an approval) or re-plans (the worker).

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use dsync_core::event::Event;
use dsync_core::ids::{ApiKeyId, DirectoryId, EventId, KeyId, SyncId};
use dsync_core::model::Directory;
use dsync_core::ports::{
    ApiKeyRecord, ApiKeys, Directories, DirectoryData, DirectoryFilter, EventQuery, Events,
    GroupFilter, Order, PageRequest, SshKeys, Syncs, UserFilter,
};
use dsync_core::report::SyncRecord;
use dsync_core::time::Timestamp;
use dsync_core::wire::{self, Owner};
use dsync_local::app::{LocalDeployment, SftpEndpoint};
use dsync_local::store::{database_path, SqliteStore};
use rand::Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Options every operator command takes.
#[derive(Args, Clone)]
pub struct Common {
    /// The data dir of `dsync serve`.
    #[arg(long, default_value = "./dsync-data", env = "DSYNC_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Print JSON (WorkOS shapes for directories, users, groups and events) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum DirectoryCommand {
    /// Create a directory for one customer organization.
    Create {
        /// The application's id of the organization.
        #[arg(long)]
        organization: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// List directories.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Offboard a directory: delete its SFTP account, files, users and groups, and emit dsync.deleted.
    Delete {
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// List a directory's users.
    List {
        directory_id: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// List a directory's groups.
    List {
        directory_id: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub enum SyncCommand {
    /// List a directory's syncs, newest first.
    List {
        directory_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Show one sync report.
    Show {
        sync_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Apply a held sync.
    Approve {
        sync_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Discard a held sync; nothing is applied.
    Discard {
        sync_id: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub enum EventCommand {
    /// List events, oldest first.
    List {
        /// Only events of this directory.
        #[arg(long)]
        directory: Option<String>,
        /// Start after this event id (exclusive).
        #[arg(long)]
        after: Option<String>,
        /// Most events printed.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key and print its secret once.
    Create {
        #[arg(long, default_value = "operator")]
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// List API keys (never their secrets).
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Revoke an API key.
    Revoke {
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

/// `dsync key add|list|remove`, run from `key.rs`.
pub enum KeyAction {
    Add {
        directory_id: String,
        file: PathBuf,
    },
    List {
        directory_id: String,
    },
    Remove {
        directory_id: String,
        key_id: String,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Opens the data dir of a running (or stopped) `dsync serve`. Every operator
/// command refuses a missing database, also the ones that write: only
/// `dsync serve` creates a data dir, so a wrong working directory or
/// `--data-dir` never leaves a stray database that no server reads.
fn open(common: &Common) -> anyhow::Result<LocalDeployment> {
    let database = database_path(&common.data_dir);
    if !database.exists() {
        bail!(
            "no dsync database at {}; start `dsync serve --data-dir {}` there first, or pass the --data-dir that `dsync serve` uses",
            database.display(),
            common.data_dir.display()
        );
    }
    let endpoint = SftpEndpoint::load(&common.data_dir).with_context(|| {
        format!(
            "cannot read the SFTP endpoint recorded in {}",
            common.data_dir.display()
        )
    })?;
    LocalDeployment::open(&common.data_dir, endpoint)
}

/// Writes one line to standard output. When the reader has gone (`dsync
/// sync list ID | head -2`), the process ends quietly with status 0 instead
/// of panicking; another write error ends it with status 1.
pub fn write_stdout(arguments: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let result = stdout
        .write_fmt(arguments)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    match result {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("error: cannot write to standard output: {error}");
            std::process::exit(1);
        }
    }
}

/// `println!` through [`write_stdout`].
macro_rules! out {
    ($($argument:tt)*) => {
        $crate::operator::write_stdout(format_args!($($argument)*))
    };
}
pub(crate) use out;

/// Replaces control characters (newline, tab, escape...) in a table cell
/// with their escaped form, so an uploaded value cannot break the table's
/// lines or send terminal escape sequences.
fn table_cell(cell: &str) -> String {
    if !cell.chars().any(char::is_control) {
        return cell.to_owned();
    }
    cell.chars()
        .map(|character| {
            if character.is_control() {
                character.escape_default().collect::<String>()
            } else {
                character.to_string()
            }
        })
        .collect()
}

fn parse_id<T>(
    text: &str,
    parse: fn(&str) -> Option<T>,
    prefix: &str,
    id_kind: &str,
) -> anyhow::Result<T> {
    parse(text).with_context(|| {
        format!("invalid {id_kind} id {text:?}: expected `{prefix}` followed by a 26-character ULID, as the list commands print")
    })
}

fn directory_id(text: &str) -> anyhow::Result<DirectoryId> {
    parse_id(text, DirectoryId::parse, DirectoryId::PREFIX, "directory")
}

fn sync_id(text: &str) -> anyhow::Result<SyncId> {
    parse_id(text, SyncId::parse, SyncId::PREFIX, "sync")
}

async fn require_directory(
    deployment: &LocalDeployment,
    id: &DirectoryId,
) -> anyhow::Result<Directory> {
    deployment
        .store
        .get_directory(id)
        .await?
        .with_context(|| format!("directory {id} not found"))
}

/// Prints rows as a table with aligned columns.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| table_cell(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in &rows {
        for (index, cell) in row.iter().enumerate() {
            widths[index] = widths[index].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[index]);
            }
        }
        out!("{}", text.trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn all_pages() -> PageRequest {
    PageRequest {
        limit: 100,
        order: Order::Asc,
        before: None,
        after: None,
    }
}

pub fn run_directory(command: DirectoryCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        match command {
            DirectoryCommand::Create { organization, name, common } => {
                let deployment = open(&common)?;
                let directory = deployment.services.create_directory(&organization, &name).await?;
                let endpoint = &deployment.endpoint;
                if common.json {
                    print_json(&wire::directory_json(&directory, &endpoint.host, endpoint.port))?;
                } else {
                    out!("Created directory {}", directory.id);
                    out!("  organization  {}", directory.organization_id);
                    out!("  name          {}", directory.name);
                    out!("  sftp user     {}", directory.sftp_username);
                    out!("Next: dsync key add {} PUBLIC_KEY_FILE", directory.id);
                }
            }
            DirectoryCommand::List { common } => {
                let deployment = open(&common)?;
                let mut directories = Vec::new();
                let mut page = all_pages();
                loop {
                    let listed = deployment.store.list_directories(&DirectoryFilter::default(), &page).await?;
                    directories.extend(listed.data);
                    match listed.after {
                        Some(after) => page.after = Some(after),
                        None => break,
                    }
                }
                let endpoint = &deployment.endpoint;
                if common.json {
                    let list: Vec<Value> = directories
                        .iter()
                        .map(|directory| wire::directory_json(directory, &endpoint.host, endpoint.port))
                        .collect();
                    print_json(&Value::Array(list))?;
                } else {
                    let rows: Vec<Vec<String>> = directories
                        .iter()
                        .map(|directory| {
                            vec![
                                directory.id.to_string(),
                                directory.organization_id.clone(),
                                directory.status.as_str().to_owned(),
                                directory.sftp_username.clone(),
                                directory.name.clone(),
                            ]
                        })
                        .collect();
                    print_table(&["ID", "ORGANIZATION", "STATE", "SFTP USER", "NAME"], &rows);
                }
            }
            DirectoryCommand::Delete { id, common } => {
                let deployment = open(&common)?;
                let id = directory_id(&id)?;
                deployment.services.delete_directory(&id).await?;
                if common.json {
                    print_json(&json!({ "id": id, "deleted": true }))?;
                } else {
                    out!("Deleted directory {id}: SFTP account, files, users, groups and keys removed; dsync.deleted emitted");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn read_key_file(file: &Path) -> anyhow::Result<String> {
    // Bounded read: a key line is at most 2 KiB, but a pasted private key
    // must still be read whole to be recognised and rejected.
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin().take(64 * 1024).read_to_string(&mut text)?;
    } else {
        std::fs::File::open(file)
            .with_context(|| format!("cannot open {}", file.display()))?
            .take(64 * 1024)
            .read_to_string(&mut text)
            .with_context(|| format!("{} is not a text file", file.display()))?;
    }
    Ok(text)
}

pub fn run_key(action: KeyAction, common: Common) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let deployment = open(&common)?;
        match action {
            KeyAction::Add { directory_id: id, file } => {
                let id = directory_id(&id)?;
                let text = read_key_file(&file)?;
                let key = deployment
                    .services
                    .add_key(&id, &text)
                    .await
                    .with_context(|| format!("key {} was not added", file.display()))?;
                let directory = require_directory(&deployment, &id).await?;
                let endpoint = &deployment.endpoint;
                if common.json {
                    print_json(&json!({
                        "id": key.id,
                        "directory_id": key.directory_id,
                        "fingerprint": key.fingerprint,
                        "key_type": key.key_type,
                        "sftp": { "host": endpoint.host, "port": endpoint.port, "username": directory.sftp_username },
                    }))?;
                } else {
                    out!("Added key {}", key.id);
                    out!("  fingerprint  {}", key.fingerprint);
                    out!("  sftp host    {}", endpoint.host);
                    out!("  sftp port    {}", endpoint.port);
                    out!("  username     {}", directory.sftp_username);
                    out!(
                        "Upload with: sftp -P {} {}@{}",
                        endpoint.port, directory.sftp_username, endpoint.host
                    );
                }
            }
            KeyAction::List { directory_id: id } => {
                let id = directory_id(&id)?;
                require_directory(&deployment, &id).await?;
                let keys = deployment.store.list_keys(&id).await?;
                if common.json {
                    print_json(&serde_json::to_value(&keys)?)?;
                } else {
                    let rows: Vec<Vec<String>> = keys
                        .iter()
                        .map(|key| {
                            vec![
                                key.id.to_string(),
                                key.key_type.clone(),
                                key.fingerprint.clone(),
                                key.created_at.to_string(),
                                key.comment.clone().unwrap_or_default(),
                            ]
                        })
                        .collect();
                    print_table(&["ID", "TYPE", "FINGERPRINT", "CREATED", "COMMENT"], &rows);
                }
            }
            KeyAction::Remove { directory_id: id, key_id } => {
                let id = directory_id(&id)?;
                let key = parse_id(&key_id, KeyId::parse, KeyId::PREFIX, "key")?;
                deployment.services.remove_key(&id, &key).await?;
                if common.json {
                    print_json(&json!({ "id": key, "deleted": true }))?;
                } else {
                    out!("Removed key {key}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run_user(command: UserCommand) -> anyhow::Result<ExitCode> {
    let UserCommand::List {
        directory_id: id,
        common,
    } = command;
    runtime()?.block_on(async move {
        let deployment = open(&common)?;
        let id = directory_id(&id)?;
        require_directory(&deployment, &id).await?;

        let mut users = Vec::new();
        let mut page = all_pages();
        loop {
            let listed = deployment
                .store
                .list_users(&UserFilter::Directory(id.clone()), &page)
                .await?;
            users.extend(listed.data);
            match listed.after {
                Some(after) => page.after = Some(after),
                None => break,
            }
        }

        if common.json {
            let list: Vec<Value> = users
                .iter()
                .map(|entry| {
                    let groups: Vec<_> = entry.groups.iter().collect();
                    wire::user_json(&entry.user, Owner::of(&entry.directory), Some(&groups))
                })
                .collect();
            print_json(&Value::Array(list))?;
        } else {
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|entry| {
                    let user = &entry.user;
                    let name = format!(
                        "{} {}",
                        user.first_name().unwrap_or(""),
                        user.last_name().unwrap_or("")
                    );
                    let groups: Vec<&str> = entry
                        .groups
                        .iter()
                        .map(|group| group.name.as_str())
                        .collect();
                    vec![
                        user.id.to_string(),
                        user.idp_id.to_string(),
                        user.email().unwrap_or("").to_owned(),
                        name.trim().to_owned(),
                        user.state.as_str().to_owned(),
                        groups.join(", "),
                    ]
                })
                .collect();
            print_table(&["ID", "IDP ID", "EMAIL", "NAME", "STATE", "GROUPS"], &rows);
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run_group(command: GroupCommand) -> anyhow::Result<ExitCode> {
    let GroupCommand::List {
        directory_id: id,
        common,
    } = command;
    runtime()?.block_on(async move {
        let deployment = open(&common)?;
        let id = directory_id(&id)?;
        require_directory(&deployment, &id).await?;

        let mut groups = Vec::new();
        let mut page = all_pages();
        loop {
            let listed = deployment
                .store
                .list_groups(&GroupFilter::Directory(id.clone()), &page)
                .await?;
            groups.extend(listed.data);
            match listed.after {
                Some(after) => page.after = Some(after),
                None => break,
            }
        }

        if common.json {
            let list: Vec<Value> = groups
                .iter()
                .map(|entry| wire::group_json(&entry.group, Owner::of(&entry.directory)))
                .collect();
            print_json(&Value::Array(list))?;
        } else {
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|entry| vec![entry.group.id.to_string(), entry.group.name.to_string()])
                .collect();
            print_table(&["ID", "NAME"], &rows);
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn sync_row(record: &SyncRecord) -> Vec<String> {
    let files: Vec<&str> = record.files.iter().map(|file| file.name.as_str()).collect();
    vec![
        record.id.to_string(),
        record.status.as_str().to_owned(),
        record.started_at.to_string(),
        files.join(","),
        record.counts.created.to_string(),
        record.counts.updated.to_string(),
        record.counts.deleted.to_string(),
        record.errors.len().to_string(),
        record.reason.clone().unwrap_or_default(),
    ]
}

const SYNC_HEADERS: [&str; 9] = [
    "ID", "STATUS", "STARTED", "FILES", "USERS+", "USERS~", "USERS-", "ERRORS", "REASON",
];

fn print_sync(record: &SyncRecord, json_output: bool) -> anyhow::Result<()> {
    if json_output {
        return print_json(&serde_json::to_value(record)?);
    }
    out!("Sync {} ({})", record.id, record.status.as_str());
    out!("  directory  {}", record.directory_id);
    if let Some(reason) = &record.reason {
        out!("  reason     {reason}");
    }
    out!(
        "  users      created {}, updated {}, deleted {}, unchanged {}; skipped rows {}",
        record.counts.created,
        record.counts.updated,
        record.counts.deleted,
        record.counts.unchanged,
        record.counts.skipped_rows
    );
    out!("  started    {}", record.started_at);
    out!("  finished   {}", record.finished_at);
    if let Some(resolved) = record.resolved_at {
        out!("  resolved   {resolved}");
    }
    for file in &record.files {
        let verdict = if file.accepted {
            "accepted"
        } else {
            "rejected"
        };
        out!(
            "  file       {} ({}, {} rows, {} bytes, {}, delimiter {:?}, sha256 {})",
            file.name,
            verdict,
            file.rows,
            file.size_bytes,
            file.encoding,
            file.delimiter,
            file.sha256
        );
    }
    for (label, list) in [("error", &record.errors), ("warning", &record.warnings)] {
        for diagnostic in list {
            let mut place = diagnostic.file.clone();
            if let Some(row) = diagnostic.row {
                let _ = write!(place, " row {row}");
            }
            if let Some(line) = diagnostic.line {
                let _ = write!(place, " line {line}");
            }
            if let Some(column) = &diagnostic.column {
                let _ = write!(place, " column {column}");
            }
            out!("  {label:<9}  {place}: {}", diagnostic.message);
        }
    }
    Ok(())
}

pub fn run_sync(command: SyncCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        match command {
            SyncCommand::List {
                directory_id: id,
                common,
            } => {
                let deployment = open(&common)?;
                let id = directory_id(&id)?;
                require_directory(&deployment, &id).await?;
                let mut records = Vec::new();
                let mut page = PageRequest {
                    limit: 100,
                    order: Order::Desc,
                    before: None,
                    after: None,
                };
                loop {
                    let listed = deployment.store.list_syncs(&id, &page).await?;
                    records.extend(listed.data);
                    match listed.after {
                        Some(after) => page.after = Some(after),
                        None => break,
                    }
                }
                if common.json {
                    print_json(&serde_json::to_value(&records)?)?;
                } else {
                    let rows: Vec<Vec<String>> = records.iter().map(sync_row).collect();
                    print_table(&SYNC_HEADERS, &rows);
                }
            }
            SyncCommand::Show {
                sync_id: id,
                common,
            } => {
                let deployment = open(&common)?;
                let id = sync_id(&id)?;
                let record = deployment
                    .store
                    .get_sync(&id)
                    .await?
                    .with_context(|| format!("sync {id} not found"))?;
                print_sync(&record, common.json)?;
            }
            SyncCommand::Approve {
                sync_id: id,
                common,
            } => {
                let deployment = open(&common)?;
                let id = sync_id(&id)?;
                let record = deployment.services.approve_sync(&id).await?;
                print_sync(&record, common.json)?;
            }
            SyncCommand::Discard {
                sync_id: id,
                common,
            } => {
                let deployment = open(&common)?;
                let id = sync_id(&id)?;
                let record = deployment.services.discard_sync(&id).await?;
                print_sync(&record, common.json)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn event_row(event: &Event) -> Vec<String> {
    vec![
        event.id.to_string(),
        event.event.as_str().to_owned(),
        event
            .directory_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        event.created_at.to_string(),
    ]
}

pub fn run_event(command: EventCommand) -> anyhow::Result<ExitCode> {
    let EventCommand::List {
        directory,
        after,
        limit,
        common,
    } = command;
    runtime()?.block_on(async move {
        let deployment = open(&common)?;
        let directory_id = directory.as_deref().map(directory_id).transpose()?;
        let mut cursor = after
            .as_deref()
            .map(|text| parse_id(text, EventId::parse, EventId::PREFIX, "event"))
            .transpose()?;

        let mut events = Vec::new();
        while events.len() < limit {
            let query = EventQuery {
                directory_id: directory_id.clone(),
                after: cursor.clone(),
                limit: (limit - events.len()).min(100),
                ..EventQuery::default()
            };
            let listed = deployment.store.list_events(&query).await?;
            events.extend(listed.data);
            match listed.after {
                Some(after) => cursor = Some(EventId::from_stored(after)),
                None => break,
            }
        }

        if common.json {
            let list: Vec<Value> = events.iter().map(Event::to_json).collect();
            print_json(&Value::Array(list))?;
        } else {
            let rows: Vec<Vec<String>> = events.iter().map(event_row).collect();
            print_table(&["ID", "EVENT", "DIRECTORY", "CREATED"], &rows);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Characters of an API key secret after `sk_`: URL-safe base64's alphabet.
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const SECRET_LENGTH: usize = 40;

/// Generates `sk_` and 40 random URL-safe characters (240 bits) from the OS generator.
pub fn generate_api_secret() -> String {
    let mut rng = rand::rngs::OsRng;
    let body: String = (0..SECRET_LENGTH)
        .map(|_| SECRET_ALPHABET[rng.gen_range(0..SECRET_ALPHABET.len())] as char)
        .collect();
    format!("sk_{body}")
}

/// Lowercase hex SHA-256 of a secret, the only form stored.
pub fn secret_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Stores an API key for `secret`.
pub async fn store_api_key(
    store: &SqliteStore,
    name: &str,
    secret: &str,
) -> anyhow::Result<ApiKeyRecord> {
    let record = ApiKeyRecord {
        id: ApiKeyId::generate(),
        name: name.to_owned(),
        secret_sha256: secret_sha256(secret),
        created_at: Timestamp::now(),
        revoked_at: None,
    };
    store.create_api_key(&record).await?;
    Ok(record)
}

pub fn run_api_key(command: ApiKeyCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        match command {
            ApiKeyCommand::Create { name, common } => {
                if name == crate::serve::ENV_API_KEY_NAME {
                    bail!(
                        "the API key name {name} is reserved for the key `dsync serve` registers from the DSYNC_API_KEY variable; pass another --name"
                    );
                }
                let deployment = open(&common)?;
                let secret = generate_api_secret();
                let record = store_api_key(&deployment.store, &name, &secret).await?;
                if common.json {
                    print_json(&json!({ "id": record.id, "name": record.name, "secret": secret, "created_at": record.created_at }))?;
                } else {
                    out!("Created API key {} ({})", record.id, record.name);
                    out!("Secret (shown only now): {secret}");
                }
            }
            ApiKeyCommand::List { common } => {
                let deployment = open(&common)?;
                let keys = deployment.store.list_api_keys().await?;
                if common.json {
                    let list: Vec<Value> = keys
                        .iter()
                        .map(|key| json!({ "id": key.id, "name": key.name, "created_at": key.created_at, "revoked_at": key.revoked_at }))
                        .collect();
                    print_json(&Value::Array(list))?;
                } else {
                    let rows: Vec<Vec<String>> = keys
                        .iter()
                        .map(|key| {
                            vec![
                                key.id.to_string(),
                                key.name.clone(),
                                key.created_at.to_string(),
                                key.revoked_at.map(|at| at.to_string()).unwrap_or_else(|| "-".to_owned()),
                            ]
                        })
                        .collect();
                    print_table(&["ID", "NAME", "CREATED", "REVOKED"], &rows);
                }
            }
            ApiKeyCommand::Revoke { id, common } => {
                let deployment = open(&common)?;
                let id = parse_id(&id, ApiKeyId::parse, ApiKeyId::PREFIX, "API key")?;
                if !deployment.store.revoke_api_key(&id).await? {
                    bail!("API key {id} not found or already revoked");
                }
                if common.json {
                    print_json(&json!({ "id": id, "revoked": true }))?;
                } else {
                    out!("Revoked API key {id}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
