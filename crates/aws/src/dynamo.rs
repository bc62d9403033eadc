//! The storage ports on one DynamoDB table (layout in [`crate::items`]).
//!
//! A sync commits with `TransactWriteItems`, which takes at most 100 items.
//! A plan that fits in one transaction commits in one. A larger plan is first
//! written out as a pending-commit log (`WAL#...` items, one per chunk, and a
//! head item that counts the chunks applied), then applied chunk by chunk;
//! each chunk's transaction also advances the head with a condition, so a
//! chunk applies exactly once. Every later read of the directory's state, and
//! every later commit, first finishes a log left by a crash, so a retried
//! sync sees the completed state, plans nothing, and the event log is the one
//! an uninterrupted run writes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, KeysAndAttributes, Put, Select, TransactWriteItem,
    Update,
};
use aws_sdk_dynamodb::Client;
use dsync_core::event::Event;
use dsync_core::ids::{
    ApiKeyId, DirectoryId, EventId, GroupId, IdpId, KeyId, SyncId, UserId, WebhookEndpointId,
};
use dsync_core::model::{Directory, DirectoryState, Group, NameInterner, User};
use dsync_core::plan::{Change, Plan};
use dsync_core::ports::*;
use dsync_core::report::SyncRecord;
use dsync_core::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::items::*;

/// Maximum number of operations in one `TransactWriteItems` request.
pub const TRANSACTION_LIMIT: usize = 100;
/// Serialized bytes of one chunk, so its log item stays under the 400 KB item limit.
const CHUNK_BYTES: usize = 300_000;
/// How long a sync lease lasts: the Lambda maximum run time.
pub const LEASE_MILLIS: i64 = 15 * 60 * 1000;
/// Pending-commit log items expire after a day when nothing finishes them
/// (only a log whose head was never written can be left behind).
const WAL_TTL_SECONDS: i64 = 24 * 3600;

/// One write of a commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put(Item),
    Delete { pk: String, sk: String },
}

impl Op {
    fn key(&self) -> (String, String) {
        match self {
            Op::Put(item) => (string_of(item, "pk"), string_of(item, "sk")),
            Op::Delete { pk, sk } => (pk.clone(), sk.clone()),
        }
    }

    fn size(&self) -> usize {
        serde_json::to_string(self).map(|t| t.len()).unwrap_or(0)
    }

    fn transact_item(&self, table: &str) -> StoreResult<TransactWriteItem> {
        Ok(match self {
            Op::Put(item) => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(to_attributes(item)))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
            Op::Delete { pk, sk } => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(table)
                        .set_key(Some(key(pk, sk)))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
        })
    }
}

fn string_of(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(Value::S(text)) => text.clone(),
        _ => String::new(),
    }
}

fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

fn build_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("building a DynamoDB request: {error}"))
}

/// Describes an SDK error by its service code and message, without the request.
pub(crate) fn describe<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    match error {
        SdkError::ServiceError(service) => {
            let e = service.err();
            format!(
                "{}: {}",
                e.code().unwrap_or("error"),
                e.message().unwrap_or("")
            )
        }
        other => format!("{other}"),
    }
}

fn backend<E: ProvideErrorMetadata, R>(
    what: &str,
) -> impl FnOnce(SdkError<E, R>) -> StoreError + '_ {
    move |error| StoreError::Backend(format!("DynamoDB {what} failed: {}", describe(&error)))
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("");
            let message = service.err().message().unwrap_or("");
            code == "ConditionalCheckFailedException"
                || (code == "TransactionCanceledException"
                    && message.contains("ConditionalCheckFailed"))
        }
        _ => false,
    }
}

type Raw = HashMap<String, AttributeValue>;

/// The partition and sort key a paged list reads.
struct ListSource {
    index: Option<&'static str>,
    pk_name: &'static str,
    pk: String,
    sk_name: &'static str,
    sk_prefix: String,
}

/// DynamoDB implementation of every storage port.
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Identifies this process as a lease owner.
    owner: String,
    /// Leases this process holds.
    leases: Mutex<HashSet<DirectoryId>>,
    /// Failure injection for tests: fail right after this many chunks.
    failpoint: Mutex<Option<usize>>,
}

impl DynamoStore {
    pub fn new(client: Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
            owner: format!("{:032x}", rand::random::<u128>()),
            leases: Mutex::new(HashSet::new()),
            failpoint: Mutex::new(None),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Test hook: the next multi-chunk commit fails right after applying
    /// `chunks` chunks, as if the process had died there.
    pub fn fail_after_chunks(&self, chunks: usize) {
        if let Ok(mut slot) = self.failpoint.lock() {
            *slot = Some(chunks);
        }
    }

    // -------------------------------------------------------- basic calls

    /// Reads one item by key, strongly consistent.
    pub async fn get_item(&self, pk: &str, sk: &str) -> StoreResult<Option<Raw>> {
        self.get(pk, sk).await
    }

    pub async fn put_item(&self, item: &Item) -> StoreResult<()> {
        self.put(item).await
    }

    pub async fn delete_item(&self, pk: &str, sk: &str) -> StoreResult<()> {
        self.delete(pk, sk).await
    }

    async fn get(&self, pk: &str, sk: &str) -> StoreResult<Option<Raw>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend("GetItem"))?;
        Ok(out.item)
    }

    async fn put(&self, item: &Item) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(item)))
            .send()
            .await
            .map_err(backend("PutItem"))?;
        Ok(())
    }

    async fn delete(&self, pk: &str, sk: &str) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .send()
            .await
            .map_err(backend("DeleteItem"))?;
        Ok(())
    }

    /// Reads every item of a partition whose sort key starts with `prefix`.
    async fn query_prefix(&self, pk: &str, prefix: &str, keys_only: bool) -> StoreResult<Vec<Raw>> {
        let mut items = Vec::new();
        let mut start: Option<Raw> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            request = if prefix.is_empty() {
                request.key_condition_expression("pk = :pk")
            } else {
                request
                    .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                    .expression_attribute_values(":p", AttributeValue::S(prefix.to_owned()))
            };
            if keys_only {
                request = request.projection_expression("pk, sk");
            }
            let out = request.send().await.map_err(backend("Query"))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => return Ok(items),
            }
        }
    }

    /// Reads every item of an index partition.
    async fn query_index(&self, index: &str, pk_name: &str, pk: &str) -> StoreResult<Vec<Raw>> {
        let mut items = Vec::new();
        let mut start: Option<Raw> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#k = :v")
                .expression_attribute_names("#k", pk_name)
                .expression_attribute_values(":v", AttributeValue::S(pk.to_owned()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend("Query"))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => return Ok(items),
            }
        }
    }

    /// Finds the item whose `gid` is `id` (directories, users, groups, syncs).
    async fn by_id(&self, id: &str) -> StoreResult<Option<Raw>> {
        let items = self.query_index(BY_ID, "gid", id).await?;
        let Some(found) = items.into_iter().next() else {
            return Ok(None);
        };
        // The index is eventually consistent; read the item itself.
        let pk = get_s(&found, "pk")?.to_owned();
        let sk = get_s(&found, "sk")?.to_owned();
        self.get(&pk, &sk).await
    }

    async fn batch_get(&self, keys: Vec<(String, String)>) -> StoreResult<Vec<Raw>> {
        let mut items = Vec::new();
        for chunk in keys.chunks(100) {
            let mut pending: Vec<Raw> = chunk.iter().map(|(pk, sk)| key(pk, sk)).collect();
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(build_error)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(backend("BatchGetItem"))?;
                if let Some(mut responses) = out.responses {
                    items.extend(responses.remove(&self.table).unwrap_or_default());
                }
                if let Some(mut rest) = out.unprocessed_keys {
                    if let Some(rest) = rest.remove(&self.table) {
                        pending = rest.keys;
                    }
                }
            }
        }
        Ok(items)
    }

    /// Writes items 25 at a time without a transaction, retrying unprocessed
    /// ones. For bulk loads (and test fixtures), never for a sync.
    pub async fn batch_put(&self, items: &[Item]) -> StoreResult<()> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        for chunk in items.chunks(25) {
            let mut requests = Vec::new();
            for item in chunk {
                requests.push(
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(to_attributes(item)))
                                .build()
                                .map_err(build_error)?,
                        )
                        .build(),
                );
            }
            while !requests.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut requests))
                    .send()
                    .await
                    .map_err(backend("BatchWriteItem"))?;
                if let Some(mut rest) = out.unprocessed_items {
                    requests = rest.remove(&self.table).unwrap_or_default();
                }
            }
        }
        Ok(())
    }

    /// Deletes items 25 at a time, retrying unprocessed ones.
    async fn batch_delete(&self, keys: Vec<(String, String)>) -> StoreResult<()> {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        for chunk in keys.chunks(25) {
            let mut requests = Vec::new();
            for (pk, sk) in chunk {
                requests.push(
                    WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(key(pk, sk)))
                                .build()
                                .map_err(build_error)?,
                        )
                        .build(),
                );
            }
            while !requests.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut requests))
                    .send()
                    .await
                    .map_err(backend("BatchWriteItem"))?;
                if let Some(mut rest) = out.unprocessed_items {
                    requests = rest.remove(&self.table).unwrap_or_default();
                }
            }
        }
        Ok(())
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<
        (),
        SdkError<
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
            aws_sdk_dynamodb::config::http::HttpResponse,
        >,
    > {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
    }

    /// Reads one page of a list sorted by id, with WorkOS cursors.
    async fn list_page(
        &self,
        source: &ListSource,
        page: &PageRequest,
        keep: impl Fn(&Raw) -> bool,
    ) -> StoreResult<(Vec<Raw>, Option<String>, Option<String>)> {
        let limit = page.limit.clamp(1, 100);
        let (cursor, backwards) = match (&page.after, &page.before) {
            (Some(after), _) => (Some(after.clone()), false),
            (None, Some(before)) => (Some(before.clone()), true),
            (None, None) => (None, false),
        };
        let ascending = (page.order == Order::Asc) != backwards;
        let mut kept: Vec<Raw> = Vec::new();
        let mut start: Option<Raw> = None;
        'pages: loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(source.index.map(str::to_owned))
                .scan_index_forward(ascending)
                .expression_attribute_names("#p", source.pk_name)
                .expression_attribute_values(":pk", AttributeValue::S(source.pk.clone()))
                .set_exclusive_start_key(start.take())
                .limit(100);
            request = match &cursor {
                Some(cursor) => request
                    .key_condition_expression(if ascending {
                        "#p = :pk AND #s > :c"
                    } else {
                        "#p = :pk AND #s < :c"
                    })
                    .expression_attribute_values(
                        ":c",
                        AttributeValue::S(format!("{}{}", source.sk_prefix, cursor)),
                    ),
                None if source.sk_prefix.is_empty() => request.key_condition_expression("#p = :pk"),
                None => request
                    .key_condition_expression("#p = :pk AND begins_with(#s, :c)")
                    .expression_attribute_values(":c", AttributeValue::S(source.sk_prefix.clone())),
            };
            if cursor.is_some() || !source.sk_prefix.is_empty() {
                request = request.expression_attribute_names("#s", source.sk_name);
            }
            if source.index.is_none() {
                request = request.consistent_read(true);
            }
            let out = request.send().await.map_err(backend("Query"))?;
            for item in out.items.unwrap_or_default() {
                let sk = get_s(&item, source.sk_name)?;
                if !sk.starts_with(&source.sk_prefix) {
                    break 'pages;
                }
                if keep(&item) {
                    kept.push(item);
                    if kept.len() > limit {
                        break 'pages;
                    }
                }
            }
            match out.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => break,
            }
        }
        let more = kept.len() > limit;
        kept.truncate(limit);
        let id_of = |item: &Raw| -> Option<String> {
            get_s(item, source.sk_name)
                .ok()
                .map(|sk| sk[source.sk_prefix.len()..].to_owned())
        };
        if backwards {
            kept.reverse();
            let before = if more {
                kept.first().and_then(id_of)
            } else {
                None
            };
            let after = kept.last().and_then(id_of);
            Ok((kept, before, after))
        } else {
            let after = if more {
                kept.last().and_then(id_of)
            } else {
                None
            };
            let before = if cursor.is_some() {
                kept.first().and_then(id_of)
            } else {
                None
            };
            Ok((kept, before, after))
        }
    }

    // -------------------------------------------------------- buckets

    /// Returns the bucket recorded for a directory by [`Self::set_bucket`].
    pub async fn bucket_of(&self, directory: &DirectoryId) -> StoreResult<Option<String>> {
        Ok(self
            .get(DIRS, directory.as_str())
            .await?
            .and_then(|item| get_s(&item, "bucket").ok().map(str::to_owned)))
    }

    /// Records a directory's bucket on its item and as a bucket-to-directory pointer.
    pub async fn set_bucket(&self, directory: &DirectoryId, bucket: &str) -> StoreResult<()> {
        self.put(&item(&[
            ("pk", s(format!("BUCKET#{bucket}"))),
            ("sk", s(NO_SK)),
            ("dir", s(directory.as_str())),
        ]))
        .await?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(DIRS, directory.as_str())))
            .update_expression("SET #b = :b")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#b", "bucket")
            .expression_attribute_values(":b", AttributeValue::S(bucket.to_owned()))
            .send()
            .await
            .map_err(|error| {
                if is_condition_failure(&error) {
                    StoreError::NotFound {
                        what: "directory",
                        id: directory.to_string(),
                    }
                } else {
                    backend("UpdateItem")(error)
                }
            })?;
        Ok(())
    }

    /// Finds the directory whose uploads go to `bucket`.
    pub async fn directory_of_bucket(&self, bucket: &str) -> StoreResult<Option<DirectoryId>> {
        Ok(self
            .get(&format!("BUCKET#{bucket}"), NO_SK)
            .await?
            .and_then(|item| get_s(&item, "dir").ok().map(DirectoryId::from_stored)))
    }

    /// Lists every directory, for the scheduled sweep.
    pub async fn all_directories(&self) -> StoreResult<Vec<Directory>> {
        self.query_prefix(DIRS, "", false)
            .await?
            .iter()
            .map(directory_from)
            .collect()
    }

    // -------------------------------------------------------- lease

    /// Takes the directory's sync lease for [`LEASE_MILLIS`], or fails with
    /// `Busy` while another process holds an unexpired one. Re-entrant.
    pub async fn acquire_lease(&self, directory: &DirectoryId) -> StoreResult<()> {
        let now = Timestamp::now().millis();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(&item(&[
                ("pk", s(dir_pk(directory))),
                ("sk", s("LEASE")),
                ("owner", s(self.owner.as_str())),
                ("expires", Value::N(now + LEASE_MILLIS)),
                ("ttl", Value::N((now + LEASE_MILLIS) / 1000 + 3600)),
            ]))))
            .condition_expression("attribute_not_exists(pk) OR expires < :now OR #o = :me")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
            .send()
            .await;
        match result {
            Ok(_) => {
                if let Ok(mut leases) = self.leases.lock() {
                    leases.insert(directory.clone());
                }
                Ok(())
            }
            Err(error) if is_condition_failure(&error) => Err(StoreError::Busy(directory.clone())),
            Err(error) => Err(backend("PutItem")(error)),
        }
    }

    /// Gives the lease back if this process holds it.
    pub async fn release_lease(&self, directory: &DirectoryId) -> StoreResult<()> {
        if let Ok(mut leases) = self.leases.lock() {
            leases.remove(directory);
        }
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(&dir_pk(directory), "LEASE")))
            .condition_expression("#o = :me")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_condition_failure(&error) => Ok(()),
            Err(error) => Err(backend("DeleteItem")(error)),
        }
    }

    fn holds_lease(&self, directory: &DirectoryId) -> bool {
        self.leases
            .lock()
            .map(|l| l.contains(directory))
            .unwrap_or(false)
    }

    // -------------------------------------------------------- commit

    /// The optimistic check of a commit, as the local store does it: every
    /// commit stamps the directory's `STATE` item with its wall time, and a
    /// sync that started at or before the last stamp planned from state that
    /// may be stale. Also refuses a directory being deleted.
    fn commit_guard(&self, record: &SyncRecord) -> StoreResult<Vec<TransactWriteItem>> {
        let directory = &record.directory_id;
        let started = record.started_at.millis();
        let stamp = Timestamp::now().millis().max(started);
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(&dir_pk(directory), "STATE")))
            .update_expression("SET #at = :stamp")
            .condition_expression("attribute_not_exists(#at) OR #at < :started")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":stamp", AttributeValue::N(stamp.to_string()))
            .expression_attribute_values(":started", AttributeValue::N(started.to_string()))
            .build()
            .map_err(build_error)?;
        let live = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(DIRS, directory.as_str())))
            .condition_expression("attribute_exists(pk) AND #st <> :deleting")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":deleting", AttributeValue::S("deleting".into()))
            .build()
            .map_err(build_error)?;
        Ok(vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().condition_check(live).build(),
        ])
    }

    fn conflict(record: &SyncRecord) -> StoreError {
        StoreError::Conflict(format!(
            "directory {} changed, or is being deleted, since sync {} started; reconcile again",
            record.directory_id, record.id
        ))
    }

    /// Turns a plan and its record into item writes, in commit order, each
    /// item written once (the last write of an item wins).
    async fn plan_ops(&self, plan: &Plan, record: &SyncRecord) -> StoreResult<Vec<Op>> {
        let directory = &record.directory_id;
        let pk = dir_pk(directory);
        let mut organization: Option<String> = None;
        let mut ops: Vec<Op> = Vec::new();
        for step in &plan.steps {
            match &step.change {
                Change::PutUser(user) => ops.push(Op::Put(user_item(directory, user))),
                Change::DeleteUser(idp) => {
                    for member in self
                        .query_index(BY_USER, "uk", &member_key(directory, idp))
                        .await?
                    {
                        ops.push(Op::Delete {
                            pk: pk.clone(),
                            sk: get_s(&member, "sk")?.to_owned(),
                        });
                    }
                    ops.push(Op::Delete {
                        pk: pk.clone(),
                        sk: user_sk(idp),
                    });
                }
                Change::PutGroup(group) => ops.push(Op::Put(group_item(directory, group))),
                Change::DeleteGroup(name) => {
                    for member in self
                        .query_prefix(&pk, &membership_prefix(name), true)
                        .await?
                    {
                        ops.push(Op::Delete {
                            pk: pk.clone(),
                            sk: get_s(&member, "sk")?.to_owned(),
                        });
                    }
                    ops.push(Op::Delete {
                        pk: pk.clone(),
                        sk: group_sk(name),
                    });
                }
                Change::AddMembership(group, idp) => {
                    ops.push(Op::Put(membership_item(directory, group, idp)))
                }
                Change::RemoveMembership(group, idp) => ops.push(Op::Delete {
                    pk: pk.clone(),
                    sk: membership_sk(group, idp),
                }),
            }
            if let Some(event) = &step.event {
                let mut event = event.clone();
                if event.directory_id.is_none() {
                    event.directory_id = Some(directory.clone());
                }
                if event.organization_id.is_none() {
                    if organization.is_none() {
                        organization = self
                            .get_directory(directory)
                            .await?
                            .map(|d| d.organization_id);
                    }
                    event.organization_id = organization.clone();
                }
                ops.push(Op::Put(event_item(&event)));
            }
        }
        ops.push(Op::Put(sync_item(record)));

        // Keep only the last write of each item, at its position.
        let mut seen = HashSet::new();
        let mut unique: Vec<Op> = Vec::with_capacity(ops.len());
        for op in ops.into_iter().rev() {
            if seen.insert(op.key()) {
                unique.push(op);
            }
        }
        unique.reverse();
        Ok(unique)
    }

    fn chunk(ops: Vec<Op>) -> Vec<Vec<Op>> {
        let mut chunks: Vec<Vec<Op>> = Vec::new();
        let mut current: Vec<Op> = Vec::new();
        let mut bytes = 0;
        for op in ops {
            let size = op.size();
            // Two places in each transaction are kept for the commit guard
            // (single chunk) or the head item.
            if !current.is_empty()
                && (current.len() + 2 >= TRANSACTION_LIMIT || bytes + size > CHUNK_BYTES)
            {
                chunks.push(std::mem::take(&mut current));
                bytes = 0;
            }
            bytes += size;
            current.push(op);
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        chunks
    }

    async fn commit_locked(&self, plan: &Plan, record: &SyncRecord) -> StoreResult<()> {
        let directory = &record.directory_id;
        let ops = self.plan_ops(plan, record).await?;
        let chunks = Self::chunk(ops);
        if chunks.len() <= 1 {
            let mut items = Vec::new();
            for op in chunks.iter().flatten() {
                items.push(op.transact_item(&self.table)?);
            }
            items.extend(self.commit_guard(record)?);
            return match self.transact(items).await {
                Ok(()) => Ok(()),
                Err(error) if is_condition_failure(&error) => Err(Self::conflict(record)),
                Err(error) => Err(backend("TransactWriteItems")(error)),
            };
        }

        // The log first, then the head that makes it live.
        let pk = dir_pk(directory);
        let sync = record.id.as_str();
        let expires = Timestamp::now().millis() / 1000 + WAL_TTL_SECONDS;
        for (index, chunk) in chunks.iter().enumerate() {
            self.put(&item(&[
                ("pk", s(pk.as_str())),
                ("sk", s(wal_sk(sync, index + 1))),
                ("ops", s(to_doc(chunk))),
                ("ttl", Value::N(expires)),
            ]))
            .await?;
        }
        let head = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_attributes(&item(&[
                ("pk", s(pk.as_str())),
                ("sk", s("WAL#HEAD")),
                ("sync", s(sync)),
                ("chunks", Value::N(chunks.len() as i64)),
                ("done", Value::N(0)),
            ]))))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        let mut start = vec![TransactWriteItem::builder().put(head).build()];
        start.extend(self.commit_guard(record)?);
        match self.transact(start).await {
            Ok(()) => {}
            Err(error) if is_condition_failure(&error) => return Err(Self::conflict(record)),
            Err(error) => return Err(backend("TransactWriteItems")(error)),
        }
        self.apply_log(directory, sync, chunks.len(), 0).await
    }

    /// Applies chunks `done + 1 ..= total` of a logged commit.
    async fn apply_log(
        &self,
        directory: &DirectoryId,
        sync: &str,
        total: usize,
        done: usize,
    ) -> StoreResult<()> {
        let pk = dir_pk(directory);
        for index in done + 1..=total {
            let Some(stored) = self.get(&pk, &wal_sk(sync, index)).await? else {
                return Err(StoreError::Backend(format!(
                    "the pending commit of sync {sync} lacks chunk {index}"
                )));
            };
            let ops: Vec<Op> = serde_json::from_str(get_s(&stored, "ops")?).map_err(|error| {
                StoreError::Backend(format!("a pending commit chunk is invalid JSON: {error}"))
            })?;
            let mut items = Vec::with_capacity(ops.len() + 1);
            for op in &ops {
                items.push(op.transact_item(&self.table)?);
            }
            let condition_values = HashMap::from([
                (
                    ":prev".to_owned(),
                    AttributeValue::N((index - 1).to_string()),
                ),
                (":sync".to_owned(), AttributeValue::S(sync.to_owned())),
            ]);
            let head_key = key(&pk, "WAL#HEAD");
            if index == total {
                items.push(
                    TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(&self.table)
                                .set_key(Some(head_key))
                                .condition_expression("done = :prev AND sync = :sync")
                                .set_expression_attribute_values(Some(condition_values))
                                .build()
                                .map_err(build_error)?,
                        )
                        .build(),
                );
            } else {
                let mut values = condition_values;
                values.insert(":now".to_owned(), AttributeValue::N(index.to_string()));
                items.push(
                    TransactWriteItem::builder()
                        .update(
                            Update::builder()
                                .table_name(&self.table)
                                .set_key(Some(head_key))
                                .update_expression("SET done = :now")
                                .condition_expression("done = :prev AND sync = :sync")
                                .set_expression_attribute_values(Some(values))
                                .build()
                                .map_err(build_error)?,
                        )
                        .build(),
                );
            }
            match self.transact(items).await {
                Ok(()) => {}
                Err(error) if is_condition_failure(&error) => {
                    // Another process applied this chunk; carry on from where the head is.
                    return match self.get(&pk, "WAL#HEAD").await? {
                        Some(head) if get_s(&head, "sync")? == sync => {
                            let done = get_n(&head, "done").unwrap_or(0) as usize;
                            if done >= index {
                                Box::pin(self.apply_log(directory, sync, total, done)).await
                            } else {
                                Err(StoreError::Conflict(format!(
                                    "the pending commit of sync {sync} is stuck at chunk {index}"
                                )))
                            }
                        }
                        _ => self.clean_log(directory, sync, total).await,
                    };
                }
                Err(error) => return Err(backend("TransactWriteItems")(error)),
            }
            let fail = self
                .failpoint
                .lock()
                .map(|mut slot| {
                    if *slot == Some(index) {
                        *slot = None;
                        true
                    } else {
                        false
                    }
                })
                .unwrap_or(false);
            if fail {
                return Err(StoreError::Backend(format!(
                    "injected failure after chunk {index} of sync {sync}"
                )));
            }
        }
        self.clean_log(directory, sync, total).await
    }

    async fn clean_log(
        &self,
        directory: &DirectoryId,
        sync: &str,
        total: usize,
    ) -> StoreResult<()> {
        let pk = dir_pk(directory);
        self.batch_delete(
            (1..=total)
                .map(|index| (pk.clone(), wal_sk(sync, index)))
                .collect(),
        )
        .await
    }

    /// Finishes a commit that a crash left half applied. Idempotent.
    pub async fn recover(&self, directory: &DirectoryId) -> StoreResult<()> {
        let Some(head) = self.get(&dir_pk(directory), "WAL#HEAD").await? else {
            return Ok(());
        };
        let sync = get_s(&head, "sync")?.to_owned();
        let total = get_n(&head, "chunks").unwrap_or(0) as usize;
        let done = get_n(&head, "done").unwrap_or(0) as usize;
        self.apply_log(directory, &sync, total, done).await
    }

    // -------------------------------------------------------- helpers for reads

    async fn groups_of(&self, directory: &DirectoryId, idp: &IdpId) -> StoreResult<Vec<Group>> {
        let pk = dir_pk(directory);
        let mut keys = Vec::new();
        for member in self
            .query_index(BY_USER, "uk", &member_key(directory, idp))
            .await?
        {
            if let Some((group, _)) = parse_membership_sk(get_s(&member, "sk")?) {
                keys.push((pk.clone(), group_sk(&group)));
            }
        }
        let mut names = NameInterner::default();
        let mut groups = self
            .batch_get(keys)
            .await?
            .iter()
            .map(|item| group_from(item, &mut names))
            .collect::<StoreResult<Vec<_>>>()?;
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(groups)
    }

    async fn directory_required(&self, id: &DirectoryId) -> StoreResult<Directory> {
        self.get_directory(id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "directory",
                id: id.to_string(),
            })
    }

    async fn with_groups(&self, directory: &Directory, user: User) -> StoreResult<UserWithGroups> {
        let groups = self.groups_of(&directory.id, &user.idp_id).await?;
        Ok(UserWithGroups {
            directory: directory.clone(),
            user,
            groups,
        })
    }
}

fn wal_sk(sync: &str, index: usize) -> String {
    format!("WAL#{sync}#{index:06}")
}

fn sync_item(record: &SyncRecord) -> Item {
    item(&[
        ("pk", s(dir_pk(&record.directory_id))),
        ("sk", s(format!("S#{}", record.id))),
        ("gid", s(record.id.as_str())),
        ("doc", s(to_doc(record))),
    ])
}

fn directory_of_pk(pk: &str) -> Option<DirectoryId> {
    pk.strip_prefix("DIR#").map(DirectoryId::from_stored)
}

/// Pages a list already in memory, sorted by `id`, with WorkOS cursors.
fn page_in_memory<T>(mut all: Vec<(String, T)>, page: &PageRequest) -> Page<T> {
    all.sort_by(|a, b| a.0.cmp(&b.0));
    if page.order == Order::Desc {
        all.reverse();
    }
    let limit = page.limit.clamp(1, 100);
    let position = |cursor: &str| all.iter().position(|(id, _)| id == cursor);
    let (start, end, had_before) = if let Some(after) = &page.after {
        let start = match position(after) {
            Some(index) => index + 1,
            None => all
                .iter()
                .position(|(id, _)| {
                    if page.order == Order::Asc {
                        id.as_str() > after.as_str()
                    } else {
                        id.as_str() < after.as_str()
                    }
                })
                .unwrap_or(all.len()),
        };
        (start, (start + limit).min(all.len()), true)
    } else if let Some(before) = &page.before {
        let end = position(before).unwrap_or(0);
        (end.saturating_sub(limit), end, false)
    } else {
        (0, limit.min(all.len()), false)
    };
    let before = if start > 0 || had_before {
        all.get(start).map(|(id, _)| id.clone())
    } else {
        None
    };
    let after = if end < all.len() {
        end.checked_sub(1)
            .and_then(|i| all.get(i))
            .map(|(id, _)| id.clone())
    } else {
        None
    };
    let data = all.drain(start..end).map(|(_, value)| value).collect();
    Page {
        data,
        before,
        after,
    }
}

#[async_trait]
impl Directories for DynamoStore {
    async fn create_directory(&self, directory: &Directory) -> StoreResult<()> {
        let put = |item: Item| -> StoreResult<TransactWriteItem> {
            Ok(TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(to_attributes(&item)))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(build_error)?,
                )
                .build())
        };
        let items = vec![
            put(directory_item(directory))?,
            put(item(&[
                ("pk", s(format!("USERNAME#{}", directory.sftp_username))),
                ("sk", s(NO_SK)),
                ("dir", s(directory.id.as_str())),
            ]))?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(error) if is_condition_failure(&error) => Err(StoreError::Conflict(format!(
                "directory {} or SFTP username {} already exists",
                directory.id, directory.sftp_username
            ))),
            Err(error) => Err(backend("TransactWriteItems")(error)),
        }
    }

    async fn get_directory(&self, id: &DirectoryId) -> StoreResult<Option<Directory>> {
        self.get(DIRS, id.as_str())
            .await?
            .as_ref()
            .map(directory_from)
            .transpose()
    }

    async fn find_directory_by_username(&self, username: &str) -> StoreResult<Option<Directory>> {
        let Some(pointer) = self.get(&format!("USERNAME#{username}"), NO_SK).await? else {
            return Ok(None);
        };
        self.get_directory(&DirectoryId::from_stored(get_s(&pointer, "dir")?))
            .await
    }

    async fn list_directories(
        &self,
        filter: &DirectoryFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Directory>> {
        let source = ListSource {
            index: None,
            pk_name: "pk",
            pk: DIRS.to_owned(),
            sk_name: "sk",
            sk_prefix: String::new(),
        };
        let search = filter.search.as_ref().map(|text| text.to_lowercase());
        let (items, before, after) = self
            .list_page(&source, page, |item| {
                let Ok(directory) = directory_from(item) else {
                    return false;
                };
                filter
                    .organization_id
                    .as_ref()
                    .is_none_or(|org| &directory.organization_id == org)
                    && search
                        .as_ref()
                        .is_none_or(|text| directory.name.to_lowercase().contains(text))
            })
            .await?;
        let data = items
            .iter()
            .map(directory_from)
            .collect::<StoreResult<_>>()?;
        Ok(Page {
            data,
            before,
            after,
        })
    }

    async fn update_directory(&self, directory: &Directory) -> StoreResult<()> {
        let fresh = directory_item(directory);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(DIRS, directory.id.as_str())))
            .update_expression("SET #d = :d, org = :o, #s = :s")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#d", "doc")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":d", AttributeValue::S(string_of(&fresh, "doc")))
            .expression_attribute_values(":o", AttributeValue::S(directory.organization_id.clone()))
            .expression_attribute_values(
                ":s",
                AttributeValue::S(directory.status.as_str().to_owned()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_condition_failure(&error) => Err(StoreError::NotFound {
                what: "directory",
                id: directory.id.to_string(),
            }),
            Err(error) => Err(backend("UpdateItem")(error)),
        }
    }

    async fn purge_directory(&self, id: &DirectoryId) -> StoreResult<()> {
        let pk = dir_pk(id);
        let mut keys = self.directory_event_keys(id).await?;
        for item in self.query_prefix(&pk, "K#", false).await? {
            if let Ok(record) = doc::<SshKeyRecord>(&item) {
                keys.push((format!("FP#{}", record.fingerprint), NO_SK.to_owned()));
            }
        }
        for item in self.query_prefix(&pk, "", true).await? {
            keys.push((pk.clone(), get_s(&item, "sk")?.to_owned()));
        }
        if let Some(directory) = self.get(DIRS, id.as_str()).await? {
            if let Ok(bucket) = get_s(&directory, "bucket") {
                keys.push((format!("BUCKET#{bucket}"), NO_SK.to_owned()));
            }
            if let Ok(d) = directory_from(&directory) {
                keys.push((format!("USERNAME#{}", d.sftp_username), NO_SK.to_owned()));
            }
        }
        self.batch_delete(keys).await?;
        // The directory item goes last, so an interrupted purge can find the rest again.
        self.delete(DIRS, id.as_str()).await
    }
}

#[async_trait]
impl DirectoryData for DynamoStore {
    async fn load_state(&self, directory: &DirectoryId) -> StoreResult<DirectoryState> {
        self.recover(directory).await?;
        let pk = dir_pk(directory);
        let mut names = NameInterner::default();
        let mut state = DirectoryState::default();
        for item in self.query_prefix(&pk, "U#", false).await? {
            let user = user_from(&item, &mut names)?;
            state.users.insert(user.idp_id.clone(), user);
        }
        for item in self.query_prefix(&pk, "G#", false).await? {
            let group = group_from(&item, &mut names)?;
            state.groups.insert(group.name.clone(), group);
        }
        for item in self.query_prefix(&pk, "M#", true).await? {
            if let Some(pair) = parse_membership_sk(get_s(&item, "sk")?) {
                state.memberships.insert(pair);
            }
        }
        Ok(state)
    }

    async fn list_users(
        &self,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<UserWithGroups>> {
        let mut names = NameInterner::default();
        match filter {
            UserFilter::Directory(id) => {
                let directory = self.directory_required(id).await?;
                let source = ListSource {
                    index: Some(LIST),
                    pk_name: "lp",
                    pk: user_list_key(id),
                    sk_name: "gid",
                    sk_prefix: String::new(),
                };
                let (items, before, after) = self.list_page(&source, page, |_| true).await?;
                let mut data = Vec::with_capacity(items.len());
                for item in &items {
                    let user = user_from(item, &mut names)?;
                    data.push(self.with_groups(&directory, user).await?);
                }
                Ok(Page {
                    data,
                    before,
                    after,
                })
            }
            UserFilter::Group(group_id) => {
                let Some(group_item) = self.by_id(group_id.as_str()).await? else {
                    return Ok(Page {
                        data: vec![],
                        before: None,
                        after: None,
                    });
                };
                let Some(id) = directory_of_pk(get_s(&group_item, "pk")?) else {
                    return Ok(Page {
                        data: vec![],
                        before: None,
                        after: None,
                    });
                };
                let group = group_from(&group_item, &mut names)?;
                let directory = self.directory_required(&id).await?;
                let pk = dir_pk(&id);
                let keys = self
                    .query_prefix(&pk, &membership_prefix(&group.name), true)
                    .await?
                    .iter()
                    .filter_map(|item| get_s(item, "sk").ok().and_then(parse_membership_sk))
                    .map(|(_, idp)| (pk.clone(), user_sk(&idp)))
                    .collect();
                let users = self
                    .batch_get(keys)
                    .await?
                    .iter()
                    .map(|item| user_from(item, &mut names).map(|u| (u.id.to_string(), u)))
                    .collect::<StoreResult<Vec<_>>>()?;
                let page = page_in_memory(users, page);
                let mut data = Vec::with_capacity(page.data.len());
                for user in page.data {
                    data.push(self.with_groups(&directory, user).await?);
                }
                Ok(Page {
                    data,
                    before: page.before,
                    after: page.after,
                })
            }
        }
    }

    async fn get_user(&self, id: &UserId) -> StoreResult<Option<UserWithGroups>> {
        let Some(item) = self.by_id(id.as_str()).await? else {
            return Ok(None);
        };
        let Some(directory_id) = directory_of_pk(get_s(&item, "pk")?) else {
            return Ok(None);
        };
        if !get_s(&item, "sk")?.starts_with("U#") {
            return Ok(None);
        }
        let user = user_from(&item, &mut NameInterner::default())?;
        let directory = self.directory_required(&directory_id).await?;
        Ok(Some(self.with_groups(&directory, user).await?))
    }

    async fn list_groups(
        &self,
        filter: &GroupFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<GroupWithDirectory>> {
        let mut names = NameInterner::default();
        match filter {
            GroupFilter::Directory(id) => {
                let directory = self.directory_required(id).await?;
                let source = ListSource {
                    index: Some(LIST),
                    pk_name: "lp",
                    pk: group_list_key(id),
                    sk_name: "gid",
                    sk_prefix: String::new(),
                };
                let (items, before, after) = self.list_page(&source, page, |_| true).await?;
                let data = items
                    .iter()
                    .map(|item| {
                        group_from(item, &mut names).map(|group| GroupWithDirectory {
                            directory: directory.clone(),
                            group,
                        })
                    })
                    .collect::<StoreResult<_>>()?;
                Ok(Page {
                    data,
                    before,
                    after,
                })
            }
            GroupFilter::User(user_id) => {
                let Some(found) = self.get_user(user_id).await? else {
                    return Ok(Page {
                        data: vec![],
                        before: None,
                        after: None,
                    });
                };
                let groups = found
                    .groups
                    .into_iter()
                    .map(|g| (g.id.to_string(), g))
                    .collect();
                let page = page_in_memory(groups, page);
                Ok(Page {
                    data: page
                        .data
                        .into_iter()
                        .map(|group| GroupWithDirectory {
                            directory: found.directory.clone(),
                            group,
                        })
                        .collect(),
                    before: page.before,
                    after: page.after,
                })
            }
        }
    }

    async fn get_group(&self, id: &GroupId) -> StoreResult<Option<GroupWithDirectory>> {
        let Some(item) = self.by_id(id.as_str()).await? else {
            return Ok(None);
        };
        let Some(directory_id) = directory_of_pk(get_s(&item, "pk")?) else {
            return Ok(None);
        };
        if !get_s(&item, "sk")?.starts_with("G#") {
            return Ok(None);
        }
        let group = group_from(&item, &mut NameInterner::default())?;
        let directory = self.directory_required(&directory_id).await?;
        Ok(Some(GroupWithDirectory { directory, group }))
    }
}

#[async_trait]
impl Syncs for DynamoStore {
    async fn commit_sync(&self, plan: &Plan, record: &SyncRecord) -> StoreResult<()> {
        let directory = &record.directory_id;
        self.recover(directory).await?;
        let already_held = self.holds_lease(directory);
        if !already_held {
            self.acquire_lease(directory).await?;
        }
        let result = self.commit_locked(plan, record).await;
        if !already_held {
            // A failed release leaves a lease that expires by itself.
            let _ = self.release_lease(directory).await;
        }
        result
    }

    async fn save_sync_record(&self, record: &SyncRecord) -> StoreResult<()> {
        self.put(&sync_item(record)).await
    }

    async fn get_sync(&self, id: &SyncId) -> StoreResult<Option<SyncRecord>> {
        match self.by_id(id.as_str()).await? {
            Some(item) if get_s(&item, "sk")?.starts_with("S#") => Ok(Some(doc(&item)?)),
            _ => Ok(None),
        }
    }

    async fn list_syncs(
        &self,
        directory: &DirectoryId,
        page: &PageRequest,
    ) -> StoreResult<Page<SyncRecord>> {
        let source = ListSource {
            index: None,
            pk_name: "pk",
            pk: dir_pk(directory),
            sk_name: "sk",
            sk_prefix: "S#".to_owned(),
        };
        let (items, before, after) = self.list_page(&source, page, |_| true).await?;
        let data = items.iter().map(doc).collect::<StoreResult<_>>()?;
        Ok(Page {
            data,
            before,
            after,
        })
    }
}

#[async_trait]
impl Events for DynamoStore {
    async fn append_events(&self, events: &[Event]) -> StoreResult<()> {
        for chunk in events.chunks(TRANSACTION_LIMIT) {
            let mut items = Vec::with_capacity(chunk.len());
            for event in chunk {
                items.push(Op::Put(event_item(event)).transact_item(&self.table)?);
            }
            self.transact(items)
                .await
                .map_err(backend("TransactWriteItems"))?;
        }
        Ok(())
    }

    // NOTE: every event lives in the one `EVENTS` partition, and the type,
    // organization, directory and range filters are applied after reading,
    // so a narrow filter over a long log reads many items per page.
    async fn list_events(&self, query: &EventQuery) -> StoreResult<Page<Event>> {
        let source = ListSource {
            index: None,
            pk_name: "pk",
            pk: EVENTS.to_owned(),
            sk_name: "sk",
            sk_prefix: String::new(),
        };
        let page = PageRequest {
            limit: query.limit.clamp(1, 100),
            order: Order::Asc,
            before: None,
            after: query.after.as_ref().map(|id| id.to_string()),
        };
        let kinds: Vec<&str> = query.kinds.iter().map(|kind| kind.as_str()).collect();
        let start = query.range_start.map(|t| t.millis());
        let end = query.range_end.map(|t| t.millis());
        let (items, _, after) = self
            .list_page(&source, &page, |item| {
                let ts = get_n(item, "ts").unwrap_or(0);
                (kinds.is_empty() || get_s(item, "kind").is_ok_and(|k| kinds.contains(&k)))
                    && query
                        .organization_id
                        .as_ref()
                        .is_none_or(|org| get_s(item, "org").is_ok_and(|o| o == org))
                    && query
                        .directory_id
                        .as_ref()
                        .is_none_or(|d| get_s(item, "dir").is_ok_and(|x| x == d.as_str()))
                    && start.is_none_or(|s| ts >= s)
                    && end.is_none_or(|e| ts <= e)
            })
            .await?;
        let data = items.iter().map(event_from).collect::<StoreResult<_>>()?;
        Ok(Page {
            data,
            before: None,
            after,
        })
    }
}

#[async_trait]
impl SshKeys for DynamoStore {
    async fn add_key(&self, record: &SshKeyRecord) -> StoreResult<()> {
        let put = |item: Item| -> StoreResult<TransactWriteItem> {
            Ok(TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(to_attributes(&item)))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(build_error)?,
                )
                .build())
        };
        let items = vec![
            put(item(&[
                ("pk", s(dir_pk(&record.directory_id))),
                ("sk", s(format!("K#{}", record.id))),
                ("doc", s(to_doc(record))),
            ]))?,
            put(item(&[
                ("pk", s(format!("FP#{}", record.fingerprint))),
                ("sk", s(NO_SK)),
                ("dir", s(record.directory_id.as_str())),
                ("key", s(record.id.as_str())),
            ]))?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(error) if is_condition_failure(&error) => Err(StoreError::Conflict(format!(
                "the key {} is already registered",
                record.fingerprint
            ))),
            Err(error) => Err(backend("TransactWriteItems")(error)),
        }
    }

    async fn list_keys(&self, directory: &DirectoryId) -> StoreResult<Vec<SshKeyRecord>> {
        let mut keys: Vec<SshKeyRecord> = self
            .query_prefix(&dir_pk(directory), "K#", false)
            .await?
            .iter()
            .map(doc)
            .collect::<StoreResult<_>>()?;
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }

    async fn remove_key(&self, directory: &DirectoryId, key_id: &KeyId) -> StoreResult<bool> {
        let pk = dir_pk(directory);
        let sk = format!("K#{key_id}");
        let Some(item) = self.get(&pk, &sk).await? else {
            return Ok(false);
        };
        let record: SshKeyRecord = doc(&item)?;
        let items = vec![
            Op::Delete { pk, sk }.transact_item(&self.table)?,
            Op::Delete {
                pk: format!("FP#{}", record.fingerprint),
                sk: NO_SK.to_owned(),
            }
            .transact_item(&self.table)?,
        ];
        self.transact(items)
            .await
            .map_err(backend("TransactWriteItems"))?;
        Ok(true)
    }

    async fn find_key_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> StoreResult<Option<SshKeyRecord>> {
        let Some(pointer) = self.get(&format!("FP#{fingerprint}"), NO_SK).await? else {
            return Ok(None);
        };
        let directory = DirectoryId::from_stored(get_s(&pointer, "dir")?);
        let key_id = get_s(&pointer, "key")?;
        self.get(&dir_pk(&directory), &format!("K#{key_id}"))
            .await?
            .as_ref()
            .map(doc)
            .transpose()
    }
}

fn attempt_sk(attempt: &DeliveryAttempt) -> String {
    format!("{}#{:05}", attempt.event_id, attempt.attempt)
}

impl DynamoStore {
    /// Lists the keys of a directory's events other than `dsync.deleted`,
    /// which offboarding removes so no user data stays in the log.
    async fn directory_event_keys(
        &self,
        directory: &DirectoryId,
    ) -> StoreResult<Vec<(String, String)>> {
        let mut keys = Vec::new();
        let mut start: Option<Raw> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .filter_expression("dir = :dir AND kind <> :deleted")
                .expression_attribute_values(":pk", AttributeValue::S(EVENTS.to_owned()))
                .expression_attribute_values(":dir", AttributeValue::S(directory.to_string()))
                .expression_attribute_values(
                    ":deleted",
                    AttributeValue::S("dsync.deleted".to_owned()),
                )
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend("Query"))?;
            for item in out.items.unwrap_or_default() {
                keys.push((EVENTS.to_owned(), get_s(&item, "sk")?.to_owned()));
            }
            match out.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => return Ok(keys),
            }
        }
    }

    /// Records one webhook delivery attempt (kept 30 days).
    pub async fn record_attempt(&self, attempt: &DeliveryAttempt) -> StoreResult<()> {
        self.put(&item(&[
            ("pk", s(format!("WH#{}", attempt.endpoint_id))),
            ("sk", s(attempt_sk(attempt))),
            ("doc", s(to_doc(attempt))),
            (
                "ttl",
                Value::N(attempt.attempted_at.millis() / 1000 + 30 * 24 * 3600),
            ),
        ]))
        .await
    }

    /// Every endpoint, for fan-out.
    pub async fn all_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        self.query_prefix(WEBHOOKS, "", false)
            .await?
            .iter()
            .map(doc)
            .collect()
    }

    /// Reads one event by id.
    pub async fn get_event(&self, id: &EventId) -> StoreResult<Option<Event>> {
        self.get(EVENTS, id.as_str())
            .await?
            .as_ref()
            .map(event_from)
            .transpose()
    }

    /// Ids of every event of a directory (for tests and audits).
    pub async fn count_partition(&self, directory: &DirectoryId) -> StoreResult<usize> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(dir_pk(directory)))
            .select(Select::Count)
            .send()
            .await
            .map_err(backend("Query"))?;
        Ok(out.count as usize)
    }

    /// Everything still stored for a directory (its partition, its pointers
    /// and its directory item), as (pk, sk) pairs; empty after offboarding.
    pub async fn leftovers(
        &self,
        directory: &DirectoryId,
        username: &str,
        bucket: Option<&str>,
    ) -> StoreResult<Vec<(String, String)>> {
        let mut found = Vec::new();
        for item in self.query_prefix(&dir_pk(directory), "", true).await? {
            found.push((dir_pk(directory), get_s(&item, "sk")?.to_owned()));
        }
        let mut pointers = vec![
            (DIRS.to_owned(), directory.to_string()),
            (format!("USERNAME#{username}"), NO_SK.to_owned()),
        ];
        if let Some(bucket) = bucket {
            pointers.push((format!("BUCKET#{bucket}"), NO_SK.to_owned()));
        }
        for (pk, sk) in pointers {
            if self.get(&pk, &sk).await?.is_some() {
                found.push((pk, sk));
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl WebhookEndpoints for DynamoStore {
    async fn create_endpoint(&self, endpoint: &WebhookEndpoint) -> StoreResult<()> {
        self.put(&item(&[
            ("pk", s(WEBHOOKS)),
            ("sk", s(endpoint.id.as_str())),
            ("doc", s(to_doc(endpoint))),
        ]))
        .await
    }

    async fn get_endpoint(&self, id: &WebhookEndpointId) -> StoreResult<Option<WebhookEndpoint>> {
        self.get(WEBHOOKS, id.as_str())
            .await?
            .as_ref()
            .map(doc)
            .transpose()
    }

    async fn list_endpoints(&self, page: &PageRequest) -> StoreResult<Page<WebhookEndpoint>> {
        let source = ListSource {
            index: None,
            pk_name: "pk",
            pk: WEBHOOKS.to_owned(),
            sk_name: "sk",
            sk_prefix: String::new(),
        };
        let (items, before, after) = self.list_page(&source, page, |_| true).await?;
        Ok(Page {
            data: items.iter().map(doc).collect::<StoreResult<_>>()?,
            before,
            after,
        })
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> StoreResult<()> {
        if self.get(WEBHOOKS, endpoint.id.as_str()).await?.is_none() {
            return Err(StoreError::NotFound {
                what: "webhook endpoint",
                id: endpoint.id.to_string(),
            });
        }
        self.create_endpoint(endpoint).await
    }

    async fn delete_endpoint(&self, id: &WebhookEndpointId) -> StoreResult<bool> {
        if self.get(WEBHOOKS, id.as_str()).await?.is_none() {
            return Ok(false);
        }
        self.delete(WEBHOOKS, id.as_str()).await?;
        Ok(true)
    }

    async fn list_attempts(
        &self,
        id: &WebhookEndpointId,
        page: &PageRequest,
    ) -> StoreResult<Page<DeliveryAttempt>> {
        let source = ListSource {
            index: None,
            pk_name: "pk",
            pk: format!("WH#{id}"),
            sk_name: "sk",
            sk_prefix: String::new(),
        };
        let (items, before, after) = self.list_page(&source, page, |_| true).await?;
        Ok(Page {
            data: items.iter().map(doc).collect::<StoreResult<_>>()?,
            before,
            after,
        })
    }
}

#[async_trait]
impl ApiKeys for DynamoStore {
    async fn create_api_key(&self, record: &ApiKeyRecord) -> StoreResult<()> {
        self.put(&item(&[
            ("pk", s(APIKEYS)),
            ("sk", s(record.id.as_str())),
            ("sha", s(record.secret_sha256.as_str())),
            ("doc", s(to_doc(record))),
        ]))
        .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.query_prefix(APIKEYS, "", false)
            .await?
            .iter()
            .map(doc)
            .collect()
    }

    async fn revoke_api_key(&self, id: &ApiKeyId) -> StoreResult<bool> {
        let Some(item) = self.get(APIKEYS, id.as_str()).await? else {
            return Ok(false);
        };
        let mut record: ApiKeyRecord = doc(&item)?;
        if record.revoked_at.is_some() {
            return Ok(false);
        }
        record.revoked_at = Some(Timestamp::now());
        self.create_api_key(&record).await?;
        Ok(true)
    }

    async fn find_api_key(&self, secret_sha256: &str) -> StoreResult<Option<ApiKeyRecord>> {
        for item in self.query_prefix(APIKEYS, "", false).await? {
            if get_s(&item, "sha").is_ok_and(|sha| sha == secret_sha256) {
                let record: ApiKeyRecord = doc(&item)?;
                if record.revoked_at.is_none() {
                    return Ok(Some(record));
                }
            }
        }
        Ok(None)
    }
}

/// Builds a commit's item writes without sending them, for tests.
pub async fn ops_for(
    store: &DynamoStore,
    plan: &Plan,
    record: &SyncRecord,
) -> StoreResult<Vec<Op>> {
    store.plan_ops(plan, record).await
}
