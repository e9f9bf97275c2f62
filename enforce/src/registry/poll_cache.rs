//! What an OPA sidecar's poll reads — its credential and its org's active bundle version —
//! read through short-lived caches, so a poll answered 304 reads no database.
//!
//! Invariants:
//! - An active-version entry is used only while the [`ActivationHub`]'s generation is the one
//!   read *before* the entry was fetched (every activation and revocation this replica makes or
//!   hears of moves it, so none is missed), and for at most [`MAX_AGE`], the bound for changes
//!   no notification reaches (another process on the same SQLite file, a lost `NOTIFY`).
//! - A sidecar credential is used for at most [`MAX_AGE`] after it was read (credentials are
//!   revoked in the database; no notification announces it). Only credentials that exist are
//!   cached, keyed by the secret's digest, never the secret.
//! - Only what exists is cached, at most [`MAX_ENTRIES`] of each, so polls for made-up names
//!   or secrets cannot grow it.
//! - Tarballs are kept by bundle id (a stored version's tarball never changes) up to
//!   [`MAX_TARBALL_BYTES`] in all, shared with every answer that sends them. A poll reaches a
//!   tarball only through the active version above, so a revoked one is never sent.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{secret_digest, ActiveBundle, Credential, CredentialKind, Registry};
use crate::activations::ActivationHub;
use crate::error::EnforceResult;

/// Longest an entry is used without a notification.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Most entries held in each cache.
pub const MAX_ENTRIES: usize = 10_000;
/// Most tarball bytes held.
pub const MAX_TARBALL_BYTES: usize = 128 << 20;

/// The read-through caches of the bundle service's polls.
#[derive(Debug)]
pub struct PollCache {
    registry: Registry,
    hub: ActivationHub,
    active: Mutex<Fresh<(String, String), ActiveBundle>>,
    sidecars: Mutex<Fresh<String, Credential>>,
    tarballs: Mutex<Tarballs>,
}

impl PollCache {
    pub fn new(registry: Registry, hub: ActivationHub) -> PollCache {
        PollCache {
            registry,
            hub,
            active: Mutex::new(Fresh::default()),
            sidecars: Mutex::new(Fresh::default()),
            tarballs: Mutex::new(Tarballs::default()),
        }
    }

    /// The active version of `org`/`name`, `None` if it has none.
    pub async fn active(&self, org: &str, name: &str) -> EnforceResult<Option<ActiveBundle>> {
        let now = Instant::now();
        let generation = self.hub.generation();
        let key = (org.to_owned(), name.to_owned());
        if let Some(hit) = lock(&self.active).get(&key, generation, now) {
            return Ok(Some(hit));
        }
        let active = self.registry.active(org, name).await?;
        lock(&self.active).put(key, active.clone(), generation, now);
        Ok(active)
    }

    /// The sidecar credential `secret` names, `None` if it names none (or not a sidecar's).
    pub async fn sidecar(&self, secret: &str) -> EnforceResult<Option<Credential>> {
        let now = Instant::now();
        let key = secret_digest(secret);
        if let Some(hit) = lock(&self.sidecars).get(&key, 0, now) {
            return Ok(Some(hit));
        }
        let found = self
            .registry
            .authenticate(CredentialKind::Sidecar, secret)
            .await?;
        lock(&self.sidecars).put(key, found.clone(), 0, now);
        Ok(found)
    }

    /// The stored tarball of version `bundle_id`.
    pub async fn tarball(&self, bundle_id: &str) -> EnforceResult<Option<Bytes>> {
        if let Some(hit) = lock(&self.tarballs).0.get(bundle_id) {
            return Ok(Some(hit.clone()));
        }
        let Some(tarball) = self.registry.tarball(bundle_id).await? else {
            return Ok(None);
        };
        let tarball = Bytes::from(tarball);
        lock(&self.tarballs).put(bundle_id, tarball.clone());
        Ok(Some(tarball))
    }
}

/// Tarballs by bundle id, and their total size.
#[derive(Debug, Default)]
struct Tarballs(HashMap<String, Bytes>, usize);

impl Tarballs {
    /// Keeps `tarball` if it fits; when it does not, the others make room (all of them: the
    /// active versions come back on their next poll) unless it alone is over half the bound.
    fn put(&mut self, bundle_id: &str, tarball: Bytes) {
        if tarball.len() > MAX_TARBALL_BYTES / 2 || self.0.contains_key(bundle_id) {
            return;
        }
        if self.1 + tarball.len() > MAX_TARBALL_BYTES {
            self.0.clear();
            self.1 = 0;
        }
        self.1 += tarball.len();
        self.0.insert(bundle_id.to_owned(), tarball);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A cache holds no invariant a panicking holder could break half-way.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One cached answer: what was read, under which generation, when.
#[derive(Debug)]
struct Entry<V> {
    value: V,
    generation: u64,
    read_at: Instant,
}

/// A cache's rules, apart from the database and the clock.
#[derive(Debug)]
struct Fresh<K, V>(HashMap<K, Entry<V>>);

impl<K, V> Default for Fresh<K, V> {
    fn default() -> Self {
        Fresh(HashMap::new())
    }
}

impl<K: Hash + Eq, V: Clone> Fresh<K, V> {
    fn get(&self, key: &K, generation: u64, now: Instant) -> Option<V> {
        let entry = self.0.get(key)?;
        let fresh = entry.generation == generation
            && now.saturating_duration_since(entry.read_at) < MAX_AGE;
        fresh.then(|| entry.value.clone())
    }

    /// Records what a read under `generation` (taken before the read) found at `now`.
    fn put(&mut self, key: K, value: Option<V>, generation: u64, now: Instant) {
        let Some(value) = value else {
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
                value,
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

    fn key(org: &str, name: &str) -> (String, String) {
        (org.into(), name.into())
    }

    #[test]
    fn an_entry_serves_until_the_hub_moves_or_it_is_a_second_old() {
        let t0 = Instant::now();
        let mut e = Fresh::default();
        e.put(key("acme", "gateway"), version("1"), 7, t0);
        let later = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(e.get(&key("acme", "gateway"), 7, later(999)), version("1"));
        // An activation or revocation heard since the read.
        assert_eq!(e.get(&key("acme", "gateway"), 8, later(1)), None);
        // No notification: a second at most.
        assert_eq!(e.get(&key("acme", "gateway"), 7, later(1000)), None);
        // Another org, another name: nothing.
        assert_eq!(e.get(&key("other", "gateway"), 7, later(1)), None);
        assert_eq!(e.get(&key("acme", "other"), 7, later(1)), None);
    }

    #[test]
    fn a_read_that_finds_nothing_forgets_the_old_entry() {
        let t0 = Instant::now();
        let mut e = Fresh::default();
        e.put(key("acme", "gateway"), version("1"), 1, t0);
        e.put(key("acme", "gateway"), None, 2, t0);
        assert_eq!(e.get(&key("acme", "gateway"), 2, t0), None);
        assert!(e.0.is_empty());
    }

    #[test]
    fn tarballs_stay_within_their_bound() {
        let mut t = Tarballs::default();
        let quarter = Bytes::from(vec![0u8; MAX_TARBALL_BYTES / 4]);
        for id in ["a", "b", "c", "d"] {
            t.put(id, quarter.clone());
        }
        assert_eq!((t.0.len(), t.1), (4, MAX_TARBALL_BYTES));
        // One more makes room by dropping the others.
        t.put("e", quarter.clone());
        assert_eq!((t.0.len(), t.1), (1, MAX_TARBALL_BYTES / 4));
        // Too large to keep at all.
        t.put("huge", Bytes::from(vec![0u8; MAX_TARBALL_BYTES / 2 + 1]));
        assert!(!t.0.contains_key("huge"));
        assert_eq!(t.1, MAX_TARBALL_BYTES / 4);
    }

    #[test]
    fn the_cache_is_bounded() {
        let t0 = Instant::now();
        let mut e = Fresh::default();
        for i in 0..MAX_ENTRIES {
            e.put(key("acme", &format!("b{i}")), version("1"), 1, t0);
        }
        e.put(key("acme", "one-more"), version("1"), 1, t0);
        assert_eq!(e.0.len(), MAX_ENTRIES);
        assert_eq!(e.get(&key("acme", "one-more"), 1, t0), None);
        // Once the old entries expired, new ones fit again.
        let later = t0 + MAX_AGE;
        e.put(key("acme", "one-more"), version("1"), 1, later);
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.get(&key("acme", "one-more"), 1, later), version("1"));
    }
}
