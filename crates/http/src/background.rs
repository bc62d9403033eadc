//! Work that outlives its request: offboarding and re-syncs.

use std::collections::HashSet;
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Runs at most one background task per key at a time, so a client retrying
/// `DELETE /directories/{id}` does not start a second offboarding beside the
/// first.
#[derive(Clone, Default)]
pub struct Background {
    running: Arc<Mutex<HashSet<String>>>,
}

impl Background {
    /// Spawns `work` unless a task with the same key is still running.
    /// Returns whether a new task started. `what` names the work in logs.
    pub fn spawn_once<F, T, E>(&self, key: String, what: &'static str, work: F) -> bool
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        E: Display + Send + 'static,
        T: Send + 'static,
    {
        {
            let mut running = self
                .running
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if !running.insert(key.clone()) {
                return false;
            }
        }

        let running = self.running.clone();
        tokio::spawn(async move {
            tracing::info!(id = %key, task = what, "background task started");

            // A second spawn, so that a panic inside `work` is caught here and
            // the key is released instead of blocking retries forever.
            let outcome = tokio::spawn(work).await;
            match outcome {
                Ok(Ok(_)) => tracing::info!(id = %key, task = what, "background task finished"),
                Ok(Err(error)) => {
                    tracing::error!(id = %key, task = what, %error, "background task failed; send the request again to retry")
                }
                Err(join_error) => {
                    tracing::error!(id = %key, task = what, error = %join_error, "background task panicked")
                }
            }

            running
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&key);
        });
        true
    }
}
