//! The dsync HTTP API as one axum [`Router`]: the WorkOS-compatible Directory
//! Sync, Events and webhook-endpoint routes, plus the operator extensions
//! (directories, SSH keys, settings, sync reports).
//!
//! The router reaches storage only through [`dsync_core::service::Services`], so
//! the same value runs under `axum::serve` locally and under `lambda_http` on
//! AWS. Every route except `GET /health` and `GET /openapi.json` needs
//! `Authorization: Bearer <api key>`.
//!
//! This crate is the API service itself, so unlike the library crates it logs
//! with `tracing`: background work (offboarding, re-syncs) and internal errors.

mod auth;
mod background;
mod body;
mod directories;
mod error;
mod events;
mod groups;
mod keys;
mod limits;
pub mod openapi;
mod pagination;
mod params;
mod request_id;
mod settings;
mod syncs;
mod target;
mod users;
mod webhooks;

use std::sync::Arc;

use axum::routing::{get, patch, post};
use axum::{middleware, Router};
use dsync_core::ids::DirectoryId;
use dsync_core::service::Services;
use tower_http::catch_panic::CatchPanicLayer;

pub use auth::hash_api_key;

/// Starts a reconcile of one directory in the background and returns at once.
pub type SyncTrigger = Arc<dyn Fn(DirectoryId) + Send + Sync>;

/// Deployment facts and hooks the API uses but does not own.
#[derive(Clone)]
pub struct ApiConfig {
    /// SFTP host name shown in each directory's `sftp` extension field.
    pub sftp_host: String,
    /// SFTP port shown beside the host.
    pub sftp_port: u16,
    /// The reconcile starter behind `POST /directories/{id}/sync`. With
    /// `None` the router spawns `Services::reconcile` on a task. A deployment
    /// with its own sync queue (one reconcile per directory at a time) passes
    /// that queue here instead.
    pub sync_trigger: Option<SyncTrigger>,
    /// Whether webhook endpoints may point at loopback and private ranges
    /// (`127.0.0.0/8`, `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`,
    /// `100.64.0.0/10`, `::1`, `fc00::/7`, `localhost`). Off by default, as
    /// suits a cloud deployment; `dsync serve` turns it on because a local
    /// service's receivers usually run on the same machine or network.
    /// Link-local, metadata, unspecified and multicast targets are refused
    /// either way.
    pub allow_private_webhook_urls: bool,
}

impl ApiConfig {
    /// Creates a config that shows this SFTP endpoint and has no sync queue.
    pub fn new(sftp_host: impl Into<String>, sftp_port: u16) -> Self {
        Self {
            sftp_host: sftp_host.into(),
            sftp_port,
            sync_trigger: None,
            allow_private_webhook_urls: false,
        }
    }
}

/// What every handler reads: the services and the config.
#[derive(Clone)]
pub(crate) struct AppState {
    pub services: Services,
    pub config: Arc<ApiConfig>,
    pub background: background::Background,
}

/// Builds the whole API.
///
/// Routes live at the root of the origin, because the Node SDK drops any path
/// prefix of its base URL. Long work (offboarding after `DELETE
/// /directories/{id}`, re-syncs after `POST /directories/{id}/sync`) runs on
/// `tokio::spawn`ed tasks after a quick 202.
///
/// Note that under `lambda_http` a spawned task only runs while the function
/// instance is alive; an interrupted offboarding finishes when the DELETE is
/// sent again.
pub fn router(services: Services, config: ApiConfig) -> Router {
    let state = AppState {
        services,
        config: Arc::new(config),
        background: background::Background::default(),
    };

    let data_routes = Router::new()
        .route(
            "/directories",
            get(directories::list).post(directories::create),
        )
        .route(
            "/directories/{id}",
            get(directories::get).delete(directories::delete),
        )
        .route("/directories/{id}/sync", post(directories::sync))
        .route(
            "/directories/{id}/ssh_keys",
            get(keys::list).post(keys::add),
        )
        .route(
            "/directories/{id}/ssh_keys/{key_id}",
            axum::routing::delete(keys::remove),
        )
        .route(
            "/directories/{id}/settings",
            get(settings::get).patch(settings::update),
        )
        .route("/directories/{id}/syncs", get(syncs::list))
        .route("/syncs/{id}", get(syncs::get))
        .route("/syncs/{id}/approve", post(syncs::approve))
        .route("/syncs/{id}/discard", post(syncs::discard))
        .route("/directory_users", get(users::list))
        .route("/directory_users/{id}", get(users::get))
        .route("/directory_groups", get(groups::list))
        .route("/directory_groups/{id}", get(groups::get))
        .route("/events", get(events::list))
        .route(
            "/webhook_endpoints",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/webhook_endpoints/{id}",
            patch(webhooks::update).delete(webhooks::delete),
        )
        .route("/webhook_endpoints/{id}/attempts", get(webhooks::attempts))
        .route_layer(middleware::from_fn(limits::require_json_body))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ));

    let public_routes = Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi::serve));

    Router::new()
        .merge(data_routes)
        .merge(public_routes)
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(middleware::map_response(error::json_error_bodies))
        .layer(middleware::from_fn(limits::check_sizes))
        .layer(middleware::from_fn(request_id::attach))
}

/// `GET /health`: a liveness probe that needs no key and touches no storage.
async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}
