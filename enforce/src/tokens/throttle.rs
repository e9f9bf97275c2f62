//! On-demand reloads of an in-memory snapshot (token keys, issuers): a token naming a key or
//! issuer the snapshot does not know may name one another replica just created, so the snapshot
//! is reloaded — at most once a second, so tokens full of garbage cannot hammer the database.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When the snapshot was last reloaded.
#[derive(Debug)]
pub(crate) struct ReloadThrottle(Mutex<Instant>);

impl ReloadThrottle {
    /// A throttle that allows a reload at once.
    pub fn new() -> Self {
        ReloadThrottle(Mutex::new(Instant::now() - Duration::from_secs(60)))
    }

    /// Notes that the snapshot was just reloaded.
    pub fn reloaded(&self) {
        if let Ok(mut last) = self.0.lock() {
            *last = Instant::now();
        }
    }

    /// Runs `reload` unless the last reload was less than a second ago; true if it ran and
    /// succeeded (a failure is logged as a failed reload of `what`).
    pub async fn reload_if_stale<E: std::fmt::Display>(
        &self,
        what: &str,
        reload: impl Future<Output = Result<(), E>>,
    ) -> bool {
        let stale = self
            .0
            .lock()
            .map(|last| last.elapsed() >= Duration::from_secs(1))
            .unwrap_or(false);
        if !stale {
            return false;
        }
        match reload.await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "{what} reload failed");
                false
            }
        }
    }
}
