//! The local deployment of dsync: everything on one machine.

pub mod app;
pub mod files;
pub mod sftp;
pub mod store;
pub mod webhooks;
