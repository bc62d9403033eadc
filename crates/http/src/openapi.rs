//! The OpenAPI 3.1 document of the whole API, served at `GET /openapi.json`
//! and checked in as `docs/openapi.json` (a test keeps the two equal).
//!
//! Written as JSON values rather than derived from the handlers, because the
//! handlers read parameters by hand (repeated `events`, `before` beside
//! `after`), which derive macros cannot describe.

use axum::Json;
use serde_json::{json, Map, Value};

/// `GET /openapi.json`, public.
pub async fn serve() -> Json<Value> {
    Json(document())
}

/// Builds the document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "dsync API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": concat!(
                "Directory Sync over SFTP uploads. The routes without the `x-dsync-extension` ",
                "mark are wire-compatible with the WorkOS Directory Sync, Events and webhook ",
                "endpoint API, so the official WorkOS SDKs work against this server by changing ",
                "only the base URL. Every route except `/health` and `/openapi.json` needs ",
                "`Authorization: Bearer <api key>`. Errors are JSON objects `{message, code}`; ",
                "422 responses add `errors: [{field, code, message}]`. Every response carries ",
                "an `X-Request-ID` header. A request body must be JSON sent with ",
                "`Content-Type: application/json` (a UTF-8 `charset` is allowed), else 415; an ",
                "empty body needs no Content-Type. A key repeated within one JSON object is a 422 ",
                "with code `duplicate_key`. The request path and query may be up to 8 KiB (else ",
                "414) and the headers up to 64 fields and 32 KiB (else 431). NOTE: a request ",
                "target over 65,534 bytes, over 100 headers or a header block over about 400 KiB ",
                "is refused by the HTTP layer itself with a bare 414 or 431 that has no JSON body. ",
                "Webhook endpoint URLs must be http or https without user info; link-local ",
                "(169.254.0.0/16, fe80::/10), unspecified, multicast and cloud metadata targets are ",
                "always refused, and loopback and private ranges unless the server allows them ",
                "(`dsync serve` does unless started with `--deny-private-webhook-urls`)."
            ),
        },
        "security": [{ "bearer": [] }],
        "paths": with_transport_errors(paths()),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key, sent as `Authorization: Bearer <key>`.",
                },
            },
            "schemas": schemas(),
            "responses": responses(),
        },
    })
}

fn paths() -> Value {
    let mut paths = Map::new();

    paths.insert(
        "/health".into(),
        json!({
            "get": {
                "operationId": "health",
                "summary": "Liveness probe; needs no API key and reads no storage.",
                "tags": ["operations"],
                "security": [],
                "responses": {
                    "200": json_response("The service is up.", schema_ref("Health")),
                },
            },
        }),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({
            "get": {
                "operationId": "getOpenApiDocument",
                "summary": "This document; needs no API key.",
                "tags": ["operations"],
                "security": [],
                "responses": {
                    "200": json_response("The OpenAPI 3.1 document.", json!({ "type": "object" })),
                },
            },
        }),
    );

    paths.insert(
        "/directories".into(),
        json!({
            "get": {
                "operationId": "listDirectories",
                "summary": "List directories, newest first by default.",
                "tags": ["directories"],
                "parameters": with_paging(vec![
                    query("organization_id", "Only directories of this organization.", string()),
                    query("search", "Case-insensitive part of the directory name.", string()),
                    query("domain", "Accepted for SDK compatibility and ignored: local directories have no domains.", string()),
                ], cursor_schema("directory_")),
                "responses": list_responses("Directory"),
            },
            "post": {
                "operationId": "createDirectory",
                "summary": "Create an unlinked directory with a generated SFTP username.",
                "tags": ["directories"],
                "x-dsync-extension": true,
                "requestBody": json_body(schema_ref("DirectoryCreate")),
                "responses": with_errors(
                    json!({ "201": json_response("The new directory.", schema_ref("Directory")) }),
                    &["400", "401", "422"],
                ),
            },
        }),
    );
    paths.insert(
        "/directories/{id}".into(),
        json!({
            "parameters": [path_id("id", "directory_")],
            "get": {
                "operationId": "getDirectory",
                "summary": "Read one directory.",
                "tags": ["directories"],
                "responses": with_errors(
                    json!({ "200": json_response("The directory.", schema_ref("Directory")) }),
                    &["401", "404"],
                ),
            },
            "delete": {
                "operationId": "deleteDirectory",
                "summary": concat!(
                    "Offboard a directory: emits `dsync.deleted`, then removes the SFTP account, ",
                    "its keys, every stored file and the directory's users, groups and memberships. ",
                    "Runs in the background; a retry resumes an interrupted run."
                ),
                "tags": ["directories"],
                "responses": with_errors(
                    json!({
                        "202": { "description": "Offboarding started, or is already running." },
                        "204": { "description": "No such directory (already offboarded or never created)." },
                    }),
                    &["401", "404"],
                ),
            },
        }),
    );
    paths.insert(
        "/directories/{id}/sync".into(),
        json!({
            "parameters": [path_id("id", "directory_")],
            "post": {
                "operationId": "syncDirectory",
                "summary": "Reconcile the directory from its newest uploads, in the background.",
                "tags": ["directories"],
                "responses": with_errors(
                    json!({ "202": json_response("The sync is queued.", schema_ref("SyncQueued")) }),
                    &["401", "404"],
                ),
            },
        }),
    );
    paths.insert(
        "/directories/{id}/ssh_keys".into(),
        json!({
            "parameters": [path_id("id", "directory_")],
            "get": {
                "operationId": "listSshKeys",
                "summary": "List the SSH public keys allowed to upload into the directory (one unpaged list).",
                "tags": ["ssh keys"],
                "x-dsync-extension": true,
                "responses": with_errors(
                    json!({ "200": json_response("The keys.", list_schema("SshKey")) }),
                    &["401", "404"],
                ),
            },
            "post": {
                "operationId": "addSshKey",
                "summary": "Register an OpenSSH public key. The first key links the directory and emits `dsync.activated`.",
                "tags": ["ssh keys"],
                "x-dsync-extension": true,
                "requestBody": json_body(schema_ref("SshKeyCreate")),
                "responses": with_errors(
                    json!({ "201": json_response("The registered key.", schema_ref("SshKey")) }),
                    &["400", "401", "404", "409", "422"],
                ),
            },
        }),
    );
    paths.insert(
        "/directories/{id}/ssh_keys/{key_id}".into(),
        json!({
            "parameters": [path_id("id", "directory_"), path_id("key_id", "ssh_key_")],
            "delete": {
                "operationId": "removeSshKey",
                "summary": "Remove one key; uploads signed with it are refused from then on.",
                "tags": ["ssh keys"],
                "x-dsync-extension": true,
                "responses": with_errors(
                    json!({ "204": { "description": "The key is removed." } }),
                    &["401", "404", "409"],
                ),
            },
        }),
    );
    paths.insert(
        "/directories/{id}/settings".into(),
        json!({
            "parameters": [path_id("id", "directory_")],
            "get": {
                "operationId": "getDirectorySettings",
                "summary": "Read the mass-deletion guard and the inactive-user policy.",
                "tags": ["directories"],
                "x-dsync-extension": true,
                "responses": with_errors(
                    json!({ "200": json_response("The settings.", schema_ref("DirectorySettings")) }),
                    &["401", "404"],
                ),
            },
            "patch": {
                "operationId": "updateDirectorySettings",
                "summary": "Change any subset of the settings; the others keep their values.",
                "tags": ["directories"],
                "x-dsync-extension": true,
                "requestBody": optional_json_body(schema_ref("DirectorySettingsUpdate")),
                "responses": with_errors(
                    json!({ "200": json_response("The settings after the change.", schema_ref("DirectorySettings")) }),
                    &["400", "401", "404", "409", "422"],
                ),
            },
        }),
    );
    paths.insert(
        "/directories/{id}/syncs".into(),
        json!({
            "parameters": [path_id("id", "directory_")],
            "get": {
                "operationId": "listSyncs",
                "summary": "List the directory's sync reports, newest first by default.",
                "tags": ["syncs"],
                "x-dsync-extension": true,
                "parameters": with_paging(vec![], cursor_schema("sync_")),
                "responses": with_errors(list_ok("SyncRecord"), &["401", "404", "422"]),
            },
        }),
    );
    paths.insert(
        "/syncs/{id}".into(),
        json!({
            "parameters": [path_id("id", "sync_")],
            "get": {
                "operationId": "getSync",
                "summary": "Read one sync report.",
                "tags": ["syncs"],
                "x-dsync-extension": true,
                "responses": with_errors(
                    json!({ "200": json_response("The sync report.", schema_ref("SyncRecord")) }),
                    &["401", "404"],
                ),
            },
        }),
    );
    for (action, summary) in [
        ("approve", "Apply a sync held by the mass-deletion guard."),
        (
            "discard",
            "Drop a sync held by the mass-deletion guard; nothing changes.",
        ),
    ] {
        let operation_id = format!("{action}Sync");
        paths.insert(
            format!("/syncs/{{id}}/{action}"),
            json!({
                "parameters": [path_id("id", "sync_")],
                "post": {
                    "operationId": operation_id,
                    "summary": summary,
                    "tags": ["syncs"],
                    "x-dsync-extension": true,
                    "responses": with_errors(
                        json!({ "200": json_response("The sync report after the decision.", schema_ref("SyncRecord")) }),
                        &["401", "404", "409"],
                    ),
                },
            }),
        );
    }

    paths.insert(
        "/directory_users".into(),
        json!({
            "get": {
                "operationId": "listDirectoryUsers",
                "summary": "List users of a directory or of a group (give exactly one), newest first by default.",
                "tags": ["directory users"],
                "parameters": with_paging(vec![
                    query("directory", "A directory id.", id_schema("directory_")),
                    query("group", "A directory group id.", id_schema("directory_group_")),
                    query("idp_id", "Only the user with this HR `user_id` (exact, leading zeros count).", string()),
                    query("email", "Only users with this primary email (ASCII case ignored).", string()),
                ], cursor_schema("directory_user_")),
                "responses": list_responses("DirectoryUser"),
            },
        }),
    );
    paths.insert(
        "/directory_users/{id}".into(),
        json!({
            "parameters": [path_id("id", "directory_user_")],
            "get": {
                "operationId": "getDirectoryUser",
                "summary": "Read one user with its groups.",
                "tags": ["directory users"],
                "responses": with_errors(
                    json!({ "200": json_response("The user.", schema_ref("DirectoryUser")) }),
                    &["401", "404"],
                ),
            },
        }),
    );
    paths.insert(
        "/directory_groups".into(),
        json!({
            "get": {
                "operationId": "listDirectoryGroups",
                "summary": "List groups of a directory or of a user (give exactly one), newest first by default.",
                "tags": ["directory groups"],
                "parameters": with_paging(vec![
                    query("directory", "A directory id.", id_schema("directory_")),
                    query("user", "A directory user id.", id_schema("directory_user_")),
                ], cursor_schema("directory_group_")),
                "responses": list_responses("DirectoryGroup"),
            },
        }),
    );
    paths.insert(
        "/directory_groups/{id}".into(),
        json!({
            "parameters": [path_id("id", "directory_group_")],
            "get": {
                "operationId": "getDirectoryGroup",
                "summary": "Read one group.",
                "tags": ["directory groups"],
                "responses": with_errors(
                    json!({ "200": json_response("The group.", schema_ref("DirectoryGroup")) }),
                    &["401", "404"],
                ),
            },
        }),
    );

    paths.insert(
        "/events".into(),
        json!({
            "get": {
                "operationId": "listEvents",
                "summary": "List events oldest first. `after` combines with every filter.",
                "tags": ["events"],
                "parameters": [
                    {
                        "name": "events",
                        "in": "query",
                        "description": "Event types, comma-separated in one value (as the SDKs send them) or repeated. Absent or empty means every type.",
                        "schema": { "type": "string" },
                    },
                    {
                        "name": "events[]",
                        "in": "query",
                        "description": "Event types, one per repeated parameter.",
                        "schema": { "type": "array", "items": schema_ref("EventType") },
                        "style": "form",
                        "explode": true,
                    },
                    query("organization_id", "Only events of this organization.", string()),
                    query("directory_id", "Only events of this directory.", id_schema("directory_")),
                    query("range_start", "Only events created at or after this RFC 3339 time.", timestamp()),
                    query("range_end", "Only events created at or before this RFC 3339 time.", timestamp()),
                    query("after", "Exclusive cursor: the id of the last event already read (`list_metadata.after`). A `before` parameter is ignored beside it and rejected alone, because events page forward only.", id_schema("event_")),
                    query("limit", "Page size, 1 to 100.", json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 10 })),
                    query("order", "Only `asc` (the default) is served.", json!({ "type": "string", "enum": ["asc"], "default": "asc" })),
                ],
                "responses": list_responses("Event"),
            },
        }),
    );

    paths.insert(
        "/webhook_endpoints".into(),
        json!({
            "get": {
                "operationId": "listWebhookEndpoints",
                "summary": "List webhook endpoints, newest first by default. Each item includes its signing secret.",
                "tags": ["webhooks"],
                "parameters": with_paging(vec![], cursor_schema("we_")),
                "responses": list_responses("WebhookEndpoint"),
            },
            "post": {
                "operationId": "createWebhookEndpoint",
                "summary": "Register a URL that receives signed event deliveries; dsync generates the secret.",
                "tags": ["webhooks"],
                "requestBody": json_body(schema_ref("WebhookEndpointCreate")),
                "responses": with_errors(
                    json!({ "201": json_response("The new endpoint, with its secret.", schema_ref("WebhookEndpoint")) }),
                    &["400", "401", "422"],
                ),
            },
        }),
    );
    paths.insert(
        "/webhook_endpoints/{id}".into(),
        json!({
            "parameters": [path_id("id", "we_")],
            "patch": {
                "operationId": "updateWebhookEndpoint",
                "summary": "Change any subset of `endpoint_url`, `status` and `events`.",
                "tags": ["webhooks"],
                "requestBody": optional_json_body(schema_ref("WebhookEndpointUpdate")),
                "responses": with_errors(
                    json!({ "200": json_response("The endpoint after the change.", schema_ref("WebhookEndpoint")) }),
                    &["400", "401", "404", "422"],
                ),
            },
            "delete": {
                "operationId": "deleteWebhookEndpoint",
                "summary": "Remove an endpoint; pending deliveries to it stop. Idempotent.",
                "tags": ["webhooks"],
                "responses": with_errors(
                    json!({ "204": { "description": "The endpoint is gone (or was already)." } }),
                    &["401", "404"],
                ),
            },
        }),
    );
    paths.insert(
        "/webhook_endpoints/{id}/attempts".into(),
        json!({
            "parameters": [path_id("id", "we_")],
            "get": {
                "operationId": "listWebhookAttempts",
                "summary": "List every delivery attempt to the endpoint, newest first by default.",
                "tags": ["webhooks"],
                "x-dsync-extension": true,
                "parameters": with_paging(vec![], attempt_cursor()),
                "responses": with_errors(list_ok("WebhookAttempt"), &["401", "404", "422"]),
            },
        }),
    );

    Value::Object(paths)
}

fn schemas() -> Value {
    let event_types = json!([
        "dsync.activated",
        "dsync.deleted",
        "dsync.user.created",
        "dsync.user.updated",
        "dsync.user.deleted",
        "dsync.group.created",
        "dsync.group.updated",
        "dsync.group.deleted",
        "dsync.group.user_added",
        "dsync.group.user_removed",
    ]);

    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["message", "code"],
            "properties": {
                "message": { "type": "string", "description": "What failed and what to do next." },
                "code": { "type": "string", "description": "snake_case reason, such as `entity_not_found`." },
                "errors": { "type": "array", "items": schema_ref("FieldError") },
            },
        }),
    );
    schemas.insert(
        "FieldError".into(),
        json!({
            "type": "object",
            "required": ["field", "code", "message"],
            "properties": {
                "field": { "type": "string" },
                "code": { "type": "string", "description": "`required`, `invalid`, `out_of_range`, `unknown_field`, `unsupported`, `duplicate_key`, `invalid_cursor`, or for `endpoint_url` `userinfo_not_allowed`, `forbidden_address`, `forbidden_host` or `private_address`." },
                "message": { "type": "string" },
            },
        }),
    );
    schemas.insert(
        "ListMetadata".into(),
        json!({
            "type": "object",
            "required": ["before", "after"],
            "properties": {
                "before": { "type": ["string", "null"], "description": "Cursor for the previous page, null on the first." },
                "after": { "type": ["string", "null"], "description": "Cursor for the next page, null on the last." },
            },
        }),
    );
    schemas.insert(
        "Health".into(),
        json!({
            "type": "object",
            "required": ["status"],
            "properties": { "status": { "const": "ok" } },
        }),
    );
    schemas.insert(
        "SyncQueued".into(),
        json!({
            "type": "object",
            "required": ["status"],
            "properties": { "status": { "const": "queued" } },
        }),
    );
    schemas.insert(
        "Directory".into(),
        json!({
            "type": "object",
            "required": ["object", "id", "organization_id", "external_key", "name", "type", "state", "domain", "created_at", "updated_at"],
            "properties": {
                "object": { "const": "directory" },
                "id": id_schema("directory_"),
                "organization_id": string(),
                "external_key": string(),
                "name": string(),
                "type": { "const": "sftp" },
                "state": {
                    "type": "string",
                    "enum": ["linked", "unlinked", "deleting"],
                    "description": "`linked` once an SSH key is registered, `deleting` while offboarding.",
                },
                "domain": { "type": ["string", "null"] },
                "sftp": {
                    "type": "object",
                    "description": "Extension: where the organization uploads its files.",
                    "required": ["host", "port", "username"],
                    "properties": {
                        "host": string(),
                        "port": { "type": "integer", "minimum": 0, "maximum": 65535 },
                        "username": string(),
                    },
                },
                "created_at": timestamp(),
                "updated_at": timestamp(),
            },
        }),
    );
    schemas.insert(
        "DirectoryCreate".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["organization_id", "name"],
            "properties": {
                "organization_id": { "type": "string", "minLength": 1, "pattern": "\\S" },
                "name": { "type": "string", "minLength": 1, "pattern": "\\S" },
            },
        }),
    );
    schemas.insert(
        "DirectoryUser".into(),
        json!({
            "type": "object",
            "required": [
                "object", "id", "idp_id", "directory_id", "organization_id", "email", "emails",
                "first_name", "last_name", "username", "job_title", "state", "custom_attributes",
                "raw_attributes", "groups", "created_at", "updated_at"
            ],
            "properties": {
                "object": { "const": "directory_user" },
                "id": id_schema("directory_user_"),
                "idp_id": { "type": "string", "description": "The HR system's `user_id`, exactly as uploaded." },
                "directory_id": id_schema("directory_"),
                "organization_id": string(),
                "email": nullable_string(),
                "emails": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["primary", "type", "value"],
                        "properties": {
                            "primary": { "type": "boolean" },
                            "type": string(),
                            "value": string(),
                        },
                    },
                },
                "first_name": nullable_string(),
                "last_name": nullable_string(),
                "username": nullable_string(),
                "job_title": nullable_string(),
                "state": { "type": "string", "enum": ["active", "inactive"] },
                "custom_attributes": string_map("The optional WorkOS columns present in the upload, by name."),
                "raw_attributes": string_map("Every uploaded column by normalised name."),
                "groups": { "type": "array", "items": schema_ref("DirectoryGroup") },
                "created_at": timestamp(),
                "updated_at": timestamp(),
            },
        }),
    );
    schemas.insert(
        "DirectoryGroup".into(),
        json!({
            "type": "object",
            "required": ["object", "id", "idp_id", "directory_id", "organization_id", "name", "raw_attributes", "created_at", "updated_at"],
            "properties": {
                "object": { "const": "directory_group" },
                "id": id_schema("directory_group_"),
                "idp_id": { "type": "string", "description": "The group name, which identifies the group." },
                "directory_id": id_schema("directory_"),
                "organization_id": string(),
                "name": string(),
                "raw_attributes": string_map("Extra `groups.csv` columns by normalised name."),
                "created_at": timestamp(),
                "updated_at": timestamp(),
            },
        }),
    );
    schemas.insert(
        "EventType".into(),
        json!({ "type": "string", "enum": event_types }),
    );
    schemas.insert(
        "Event".into(),
        json!({
            "type": "object",
            "required": ["object", "id", "event", "data", "created_at"],
            "properties": {
                "object": { "const": "event" },
                "id": id_schema("event_"),
                "event": schema_ref("EventType"),
                "data": {
                    "type": "object",
                    "description": concat!(
                        "A directory (`dsync.activated`, `dsync.deleted`), a user, a group, or ",
                        "`{directory_id, user, group}` for membership events. `*.updated` data ",
                        "adds `previous_attributes`."
                    ),
                },
                "created_at": timestamp(),
            },
        }),
    );
    schemas.insert(
        "WebhookEndpoint".into(),
        json!({
            "type": "object",
            "required": ["object", "id", "endpoint_url", "secret", "status", "events", "created_at", "updated_at"],
            "properties": {
                "object": { "const": "webhook_endpoint" },
                "id": id_schema("we_"),
                "endpoint_url": { "type": "string", "format": "uri" },
                "secret": {
                    "type": "string",
                    "description": concat!(
                        "HMAC-SHA256 key. Each delivery carries `WorkOS-Signature: t=<unix ms>, v1=<hex>`, ",
                        "where the hex is the HMAC of `<t>.<raw body>`."
                    ),
                },
                "status": { "type": "string", "enum": ["enabled", "disabled"] },
                "events": {
                    "type": "array",
                    "items": schema_ref("EventType"),
                    "description": "Subscribed event types; empty means every type.",
                },
                "created_at": timestamp(),
                "updated_at": timestamp(),
            },
        }),
    );
    schemas.insert(
        "WebhookEndpointCreate".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["endpoint_url"],
            "properties": {
                "endpoint_url": { "type": "string", "format": "uri", "pattern": "^https?://[^/?#\\s]+", "description": "An absolute http or https URL without user info. Link-local, unspecified, multicast and cloud metadata targets are refused (422 `forbidden_address` or `forbidden_host`), and loopback and private ranges unless the server allows them (422 `private_address`). The sender checks the addresses the host resolves to again at each delivery." },
                "events": { "type": "array", "items": schema_ref("EventType") },
                "status": { "type": "string", "enum": ["enabled", "disabled"], "default": "enabled" },
            },
        }),
    );
    schemas.insert(
        "WebhookEndpointUpdate".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "endpoint_url": { "type": "string", "format": "uri", "pattern": "^https?://[^/?#\\s]+", "description": "Checked as on create." },
                "events": { "type": "array", "items": schema_ref("EventType") },
                "status": { "type": "string", "enum": ["enabled", "disabled"] },
            },
        }),
    );
    schemas.insert(
        "WebhookAttempt".into(),
        json!({
            "type": "object",
            "required": ["object", "endpoint_id", "event_id", "attempt", "attempted_at", "status_code", "error", "succeeded"],
            "properties": {
                "object": { "const": "webhook_attempt" },
                "endpoint_id": id_schema("we_"),
                "event_id": id_schema("event_"),
                "attempt": { "type": "integer", "minimum": 1, "description": "1 for the first try." },
                "attempted_at": timestamp(),
                "status_code": { "type": ["integer", "null"], "description": "The receiver's HTTP status; null when no response arrived." },
                "error": nullable_string(),
                "succeeded": { "type": "boolean" },
            },
        }),
    );
    schemas.insert(
        "SshKey".into(),
        json!({
            "type": "object",
            "required": ["object", "id", "directory_id", "key_type", "public_key", "comment", "fingerprint", "created_at"],
            "properties": {
                "object": { "const": "ssh_key" },
                "id": id_schema("ssh_key_"),
                "directory_id": id_schema("directory_"),
                "key_type": { "type": "string", "description": "`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, ..." },
                "public_key": { "type": "string", "description": "`type base64`, without options or comment." },
                "comment": nullable_string(),
                "fingerprint": { "type": "string", "description": "`SHA256:...` as `ssh-keygen -l` prints it." },
                "created_at": timestamp(),
            },
        }),
    );
    schemas.insert(
        "SshKeyCreate".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["public_key"],
            "properties": {
                "public_key": {
                    "type": "string",
                    "description": "One OpenSSH public key line: `ssh-ed25519 AAAA... comment`. RSA keys need at least 2048 bits.",
                },
            },
        }),
    );
    schemas.insert(
        "DirectorySettings".into(),
        json!({
            "type": "object",
            "required": ["object", "directory_id", "deletion_threshold_percent", "deletion_minimum_users", "inactive_users"],
            "properties": {
                "object": { "const": "directory_settings" },
                "directory_id": id_schema("directory_"),
                "deletion_threshold_percent": {
                    "type": "integer", "minimum": 0, "maximum": 100,
                    "description": "A sync deleting or deactivating more than this percentage of the users is held.",
                },
                "deletion_minimum_users": {
                    "type": "integer", "minimum": 0,
                    "description": "The guard applies only to directories with at least this many users.",
                },
                "inactive_users": {
                    "type": "string", "enum": ["delete", "keep"],
                    "description": "What happens to a user whose `state` column says inactive.",
                },
            },
        }),
    );
    schemas.insert(
        "DirectorySettingsUpdate".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "deletion_threshold_percent": { "type": "integer", "minimum": 0, "maximum": 100 },
                "deletion_minimum_users": { "type": "integer", "minimum": 0, "maximum": 4294967295u64 },
                "inactive_users": { "type": "string", "enum": ["delete", "keep"] },
            },
        }),
    );
    schemas.insert(
        "Diagnostic".into(),
        json!({
            "type": "object",
            "required": ["file", "row", "line", "column", "message"],
            "properties": {
                "file": string(),
                "row": { "type": ["integer", "null"], "description": "1-based data row; null for file-level problems." },
                "line": { "type": ["integer", "null"], "description": "1-based physical line where the row starts." },
                "column": nullable_string(),
                "message": string(),
            },
        }),
    );
    schemas.insert(
        "SyncRecord".into(),
        json!({
            "type": "object",
            "required": ["object", "id", "directory_id", "status", "reason", "files", "counts", "errors", "warnings", "started_at", "finished_at", "resolved_at"],
            "properties": {
                "object": string(),
                "id": id_schema("sync_"),
                "directory_id": id_schema("directory_"),
                "status": { "type": "string", "enum": ["applied", "held", "rejected", "failed", "discarded"] },
                "reason": nullable_string(),
                "files": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "kind", "encoding", "delimiter", "rows", "size_bytes", "sha256", "accepted"],
                        "properties": {
                            "name": string(),
                            "kind": { "type": "string", "enum": ["users", "groups", "user_groups"] },
                            "encoding": string(),
                            "delimiter": string(),
                            "rows": { "type": "integer", "minimum": 0 },
                            "size_bytes": { "type": "integer", "minimum": 0 },
                            "sha256": string(),
                            "accepted": { "type": "boolean" },
                        },
                    },
                },
                "counts": {
                    "type": "object",
                    "required": ["created", "updated", "deleted", "unchanged", "skipped_rows"],
                    "properties": {
                        "created": { "type": "integer", "minimum": 0 },
                        "updated": { "type": "integer", "minimum": 0 },
                        "deleted": { "type": "integer", "minimum": 0 },
                        "unchanged": { "type": "integer", "minimum": 0 },
                        "skipped_rows": { "type": "integer", "minimum": 0 },
                    },
                },
                "errors": { "type": "array", "items": schema_ref("Diagnostic") },
                "warnings": { "type": "array", "items": schema_ref("Diagnostic") },
                "started_at": timestamp(),
                "finished_at": timestamp(),
                "resolved_at": { "type": ["string", "null"], "format": "date-time" },
            },
        }),
    );
    Value::Object(schemas)
}

fn responses() -> Value {
    let error = |description: &str| json_response(description, schema_ref("Error"));
    json!({
        "400": error("The body is not a JSON object."),
        "401": error("The API key is missing, unknown or revoked."),
        "404": error("No such object (malformed ids included)."),
        "409": error("The change conflicts with the current state (for example, the directory is being deleted)."),
        "414": error("The request path and query are over 8 KiB."),
        "415": error("A non-empty request body was sent without `Content-Type: application/json`."),
        "422": error("A parameter or body field is invalid; `errors` lists each one."),
        "431": error("The request has over 64 header fields or over 32 KiB of headers."),
    })
}

/// Adds the errors any request can meet before it reaches its route: 414
/// and 431 everywhere, 415 where the operation takes a body.
fn with_transport_errors(mut paths: Value) -> Value {
    let Some(items) = paths.as_object_mut() else {
        return paths;
    };
    for item in items.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if !matches!(method.as_str(), "get" | "post" | "patch" | "delete") {
                continue;
            }
            let mut statuses = vec!["414", "431"];
            if operation.get("requestBody").is_some() {
                statuses.push("415");
            }
            let responses = std::mem::take(&mut operation["responses"]);
            operation["responses"] = with_errors(responses, &statuses);
        }
    }
    paths
}

/// Adds the paging parameters; `cursor` is the schema of `before` and `after`
/// (the id of an item of the listed type).
fn with_paging(mut parameters: Vec<Value>, cursor: Value) -> Vec<Value> {
    parameters.extend([
        query("limit", "Page size, 1 to 100.", json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 10 })),
        query(
            "order",
            "`asc`, `desc` or `normal` (the same as `desc`).",
            json!({ "type": "string", "enum": ["asc", "desc", "normal"], "default": "desc" }),
        ),
        query("after", "Cursor from `list_metadata.after`: the next page in the requested order. Wins over `before`. Anything but a cursor of this list is a 422 with code `invalid_cursor`.", cursor.clone()),
        query("before", "Cursor from `list_metadata.before`: the previous page. Anything but a cursor of this list is a 422 with code `invalid_cursor`.", cursor),
    ]);
    parameters
}

fn list_ok(item: &str) -> Value {
    json!({ "200": json_response("One page.", list_schema(item)) })
}

fn list_responses(item: &str) -> Value {
    with_errors(list_ok(item), &["401", "422"])
}

fn list_schema(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["object", "data", "list_metadata"],
        "properties": {
            "object": { "const": "list" },
            "data": { "type": "array", "items": schema_ref(item) },
            "list_metadata": schema_ref("ListMetadata"),
        },
    })
}

fn with_errors(mut responses: Value, statuses: &[&str]) -> Value {
    for status in statuses {
        responses[*status] = json!({ "$ref": format!("#/components/responses/{status}") });
    }
    responses
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "headers": {
            "X-Request-ID": { "description": "Identifies the request in the server log.", "schema": string() },
        },
        "content": { "application/json": { "schema": schema } },
    })
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

/// Describes a body that may be left out; an empty body changes nothing.
fn optional_json_body(schema: Value) -> Value {
    json!({ "required": false, "content": { "application/json": { "schema": schema } } })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "description": description, "schema": schema })
}

fn path_id(name: &str, prefix: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": id_schema(prefix) })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Describes a prefixed ULID: the prefix, then 26 Crockford base32
/// characters whose first is at most 7 (a larger one overflows 128 bits).
fn id_schema(prefix: &str) -> Value {
    json!({
        "type": "string",
        "pattern": format!("^{prefix}[0-7][0-9A-HJKMNP-TV-Z]{{25}}$"),
        "description": format!("An id starting with `{prefix}`."),
    })
}

/// Describes a list cursor: the id of an item of the listed type. An empty
/// value counts as no cursor.
fn cursor_schema(prefix: &str) -> Value {
    json!({
        "type": "string",
        "pattern": format!("^({prefix}[0-7][0-9A-HJKMNP-TV-Z]{{25}})?$"),
        "description": format!("An id starting with `{prefix}`; empty means no cursor."),
    })
}

/// Describes a delivery attempt cursor: a storage position with no fixed
/// shape. An empty value counts as no cursor.
fn attempt_cursor() -> Value {
    json!({
        "type": "string",
        "pattern": "^[A-Za-z0-9_.:#-]{0,256}$",
        "description": "An opaque cursor from `list_metadata` of this list; empty means no cursor.",
    })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn nullable_string() -> Value {
    json!({ "type": ["string", "null"] })
}

fn timestamp() -> Value {
    json!({ "type": "string", "format": "date-time", "description": "RFC 3339, UTC, milliseconds, `Z`." })
}

fn string_map(description: &str) -> Value {
    json!({ "type": "object", "additionalProperties": { "type": "string" }, "description": description })
}
