//! The dsync domain, shared by the local service and the AWS functions.
//!
//! Everything here is pure: reading an upload takes a `Read`, planning takes
//! the stored state and a snapshot, and storage sits behind the traits in
//! [`ports`]. Library code never logs; it reports through errors and the
//! diagnostics in [`report`].

pub mod event;
pub mod ids;
pub mod keys;
pub mod model;
pub mod plan;
pub mod ports;
pub mod report;
pub mod service;
pub mod settings;
pub mod snapshot;
pub mod sync;
pub mod time;
pub mod upload;
pub mod webhook;
pub mod wire;
