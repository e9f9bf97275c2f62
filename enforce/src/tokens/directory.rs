//! Every token issuer and org TTL setting in memory, for the one verification function: a token
//! that verifies under one of sck's keys is still refused unless sck could have issued it (its
//! `client_id` an issuer of its org, within that issuer's LoA ceiling, scopes and algorithm,
//! and the org's maximum TTL), and checking that costs no database query per request.
//!
//! Invariant: the snapshot is replaced whole and reloaded after every local change, on a
//! `sck_tokens` notification of another replica's change and on every sweep; a token that
//! fails against it reloads it at most once a second (only tokens whose signature verified get
//! that far), so an issuer or setting created a moment ago on another replica is not refused.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sck_ledger::store::Store;

use super::issuers::{self, Issuer, OrgTokenSettings};
use super::throttle::ReloadThrottle;
use crate::error::EnforceResult;

/// One consistent view of the issuers and org settings.
#[derive(Debug)]
pub struct Snapshot {
    issuers: HashMap<String, Issuer>,
    settings: HashMap<String, OrgTokenSettings>,
    defaults: OrgTokenSettings,
}

impl Snapshot {
    /// The issuer with id `id`.
    pub fn issuer(&self, id: &str) -> Option<&Issuer> {
        self.issuers.get(id)
    }

    /// The TTL settings of `org` (the deployment defaults if it has none).
    pub fn settings(&self, org: &str) -> OrgTokenSettings {
        self.settings.get(org).copied().unwrap_or(self.defaults)
    }
}

/// The issuers and org settings of the database, as an in-memory [`Snapshot`].
pub struct Directory {
    store: Store,
    defaults: OrgTokenSettings,
    snapshot: ArcSwap<Snapshot>,
    throttle: ReloadThrottle,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("issuers", &self.snapshot.load().issuers.len())
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// Loads the directory of `store` (org settings default to `defaults`).
    pub async fn open(store: Store, defaults: OrgTokenSettings) -> EnforceResult<Directory> {
        let snapshot = load(&store, defaults).await?;
        let throttle = ReloadThrottle::new();
        throttle.reloaded();
        Ok(Directory {
            store,
            defaults,
            snapshot: ArcSwap::from_pointee(snapshot),
            throttle,
        })
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Reads every issuer and org setting again.
    pub async fn reload(&self) -> EnforceResult<()> {
        let snapshot = load(&self.store, self.defaults).await?;
        self.snapshot.store(Arc::new(snapshot));
        self.throttle.reloaded();
        Ok(())
    }

    /// Reloads unless the last reload was less than a second ago; true if it reloaded.
    pub async fn reload_if_stale(&self) -> bool {
        self.throttle
            .reload_if_stale("token issuer", self.reload())
            .await
    }
}

async fn load(store: &Store, defaults: OrgTokenSettings) -> EnforceResult<Snapshot> {
    let issuers = issuers::list(store, None)
        .await?
        .into_iter()
        .map(|issuer| (issuer.id.clone(), issuer))
        .collect();
    let settings = issuers::all_settings(store).await?;
    Ok(Snapshot {
        issuers,
        settings,
        defaults,
    })
}
