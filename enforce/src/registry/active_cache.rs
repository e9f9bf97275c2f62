//! The active version of each (org, bundle name) as the bundle service answers OPA sidecars'
//! polls: read through a short-lived cache, so a poll answered 304 reads no database.
//!
//! Invariant: an entry is used only while the [`ActivationHub`]'s counter is the one read
//! *before* the entry was fetched (every activation and revocation this replica makes or hears
//! of moves it, so none is missed), and for at most [`MAX_AGE`], the bound for changes no
//! notification reaches (another process on the same SQLite file, a lost `NOTIFY`). Only
//! bundles that exist are cached, and at most [`MAX_ENTRIES`] of them, so polls for made-up
//! names cannot grow it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{ActiveBundle, Registry};
use crate::activations::ActivationHub;
use crate::error::EnforceResult;

/// Longest an entry is used without a notification.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Most entries held.
pub const MAX_ENTRIES: usize = 10_000;

/// The read-through cache of active versions.
#[derive(Debug)]
pub struct ActiveVersions {
    registry: Registry,
    hub: ActivationHub,
    entries: Mutex<Entries>,
}

impl ActiveVersions {
    pub fn new(registry: Registry, hub: ActivationHub) -> ActiveVersions {
        ActiveVersions {
            registry,
            hub,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The active version of `org`/`name`, `None` if it has none.
    pub async fn get(&self, org: &str, name: &str) -> EnforceResult<Option<ActiveBundle>> {
        let now = Instant::now();
        let generation = self.hub.generation();
        if let Some(hit) = self.lock().get(org, name, generation, now) {
            return Ok(Some(hit));
        }
        let active = self.registry.active(org, name).await?;
        self.lock().put(org, name, active.clone(), generation, now);
        Ok(active)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map holds no invariant a panicking holder could break half-way.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One cached answer: what was read, under which hub generation, when.
#[derive(Debug)]
struct Entry {
    active: ActiveBundle,
    generation: u64,
    read_at: Instant,
}

/// The cache's rules, apart from the database and the clock.
#[derive(Debug, Default)]
struct Entries(HashMap<(String, String), Entry>);

impl Entries {
    fn get(&self, org: &str, name: &str, generation: u64, now: Instant) -> Option<ActiveBundle> {
        let entry = self.0.get(&(org.to_owned(), name.to_owned()))?;
        let fresh = entry.generation == generation
            && now.saturating_duration_since(entry.read_at) < MAX_AGE;
        fresh.then(|| entry.active.clone())
    }

    /// Records what a read under `generation` (taken before the read) found at `now`.
    fn put(
        &mut self,
        org: &str,
        name: &str,
        active: Option<ActiveBundle>,
        generation: u64,
        now: Instant,
    ) {
        let key = (org.to_owned(), name.to_owned());
        let Some(active) = active else {
            self.0.remove(&key);
            return;
        };
        if self.0.len() >= MAX_ENTRIES && !self.0.contains_key(&key) {
            self.0
                .retain(|_, e| now.saturating_duration_since(e.read_at) < MAX_AGE);
            if self.0.len() >= MAX_ENTRIES {
                return;
            }
        }
        self.0.insert(
            key,
            Entry {
                active,
                generation,
                read_at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(v: &str) -> Option<ActiveBundle> {
        Some(ActiveBundle {
            bundle_id: format!("bnd_{v}"),
            version: v.into(),
            sha256: format!("{v:0>64}"),
        })
    }

    #[test]
    fn an_entry_serves_until_the_hub_moves_or_it_is_a_second_old() {
        let t0 = Instant::now();
        let mut e = Entries::default();
        e.put("acme", "gateway", version("1"), 7, t0);
        let later = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(e.get("acme", "gateway", 7, later(999)), version("1"));
        // An activation or revocation heard since the read.
        assert_eq!(e.get("acme", "gateway", 8, later(1)), None);
        // No notification: a second at most.
        assert_eq!(e.get("acme", "gateway", 7, later(1000)), None);
        // Another org, another name: nothing.
        assert_eq!(e.get("other", "gateway", 7, later(1)), None);
        assert_eq!(e.get("acme", "other", 7, later(1)), None);
    }

    #[test]
    fn a_read_that_finds_no_active_version_forgets_the_old_one() {
        let t0 = Instant::now();
        let mut e = Entries::default();
        e.put("acme", "gateway", version("1"), 1, t0);
        e.put("acme", "gateway", None, 2, t0);
        assert_eq!(e.get("acme", "gateway", 2, t0), None);
        assert!(e.0.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let t0 = Instant::now();
        let mut e = Entries::default();
        for i in 0..MAX_ENTRIES {
            e.put("acme", &format!("b{i}"), version("1"), 1, t0);
        }
        e.put("acme", "one-more", version("1"), 1, t0);
        assert_eq!(e.0.len(), MAX_ENTRIES);
        assert_eq!(e.get("acme", "one-more", 1, t0), None);
        // Once the old entries expired, new ones fit again.
        let later = t0 + MAX_AGE;
        e.put("acme", "one-more", version("1"), 1, later);
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.get("acme", "one-more", 1, later), version("1"));
    }
}
