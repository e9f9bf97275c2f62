//! One replica's usage counters in memory: the calls of the current fixed window per subject
//! and route (and tool), which `input.usage` reports, and the deltas not yet written to the
//! database. Sharded by (org, route, subject) so concurrent calls of different subjects take
//! different locks; every lock is held for a few map operations, never across an await.
//!
//! Invariant: a call is counted in [`Counters::begin`] under the same lock that reads the
//! counts before it, so two concurrent calls of one subject never see the same count (a
//! quota of N lets exactly N calls of a window through on this replica).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use serde::Serialize;

const SHARDS: usize = 16;

/// What usage is counted per: org, route, subject and tool (`""` for calls naming no tool).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsageKey {
    pub org: String,
    pub route: String,
    pub subject: String,
    pub tool: String,
}

impl UsageKey {
    pub fn new(org: &str, route: &str, subject: &str, tool: &str) -> UsageKey {
        UsageKey {
            org: org.to_owned(),
            route: route.to_owned(),
            subject: subject.to_owned(),
            tool: tool.to_owned(),
        }
    }
}

/// Counts of one key in one window (or deltas of them, or sums of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Decided calls, allowed or denied.
    pub calls: u64,
    pub denied: u64,
    /// Forwarded calls the upstream answered with a status >= 500, or that sck answered 502/504
    /// (unreachable, reset, timed out), or whose relayed answer broke off.
    pub errors: u64,
    /// Request body bytes forwarded.
    pub request_bytes: u64,
    /// Response body bytes relayed to the client.
    pub response_bytes: u64,
    /// Tokens the upstream reported in the route's `usage_header`.
    pub tokens: u64,
    /// Answers whose `usage_header` held no unsigned integer (counted, the call unharmed).
    pub malformed_reports: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.calls = self.calls.saturating_add(other.calls);
        self.denied = self.denied.saturating_add(other.denied);
        self.errors = self.errors.saturating_add(other.errors);
        self.request_bytes = self.request_bytes.saturating_add(other.request_bytes);
        self.response_bytes = self.response_bytes.saturating_add(other.response_bytes);
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.malformed_reports = self
            .malformed_reports
            .saturating_add(other.malformed_reports);
    }
}

/// `input.usage`: the calls counted before this one in the current window on this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowUsage {
    /// Unix seconds, a multiple of `window_secs`.
    pub window_start: i64,
    pub window_secs: i64,
    /// This subject's calls on this route, any tool.
    pub calls: u64,
    /// This subject's calls of this tool on this route (MCP `tools/call` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<u64>,
}

/// A window's deltas not yet flushed, keyed by window start and key.
pub type Pending = Vec<((i64, UsageKey), Counts)>;

#[derive(Default)]
struct Shard {
    window: i64,
    route_calls: HashMap<(String, String, String), u64>,
    tool_calls: HashMap<UsageKey, u64>,
    pending: HashMap<(i64, UsageKey), Counts>,
}

impl Shard {
    fn roll(&mut self, window: i64) {
        if self.window != window {
            self.window = window;
            self.route_calls.clear();
            self.tool_calls.clear();
        }
    }

    fn usage(&self, key: &UsageKey, window_secs: i64) -> WindowUsage {
        let route = (key.org.clone(), key.route.clone(), key.subject.clone());
        WindowUsage {
            window_start: self.window,
            window_secs,
            calls: self.route_calls.get(&route).copied().unwrap_or(0),
            tool_calls: (!key.tool.is_empty())
                .then(|| self.tool_calls.get(key).copied().unwrap_or(0)),
        }
    }
}

/// The counters of one replica.
pub struct Counters {
    window_secs: i64,
    hasher: RandomState,
    shards: Vec<Mutex<Shard>>,
}

impl Counters {
    pub fn new(window_secs: u64) -> Counters {
        Counters {
            window_secs: i64::try_from(window_secs.max(1)).unwrap_or(i64::MAX),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The start of the window `now` falls in.
    pub fn window_of(&self, now: i64) -> i64 {
        now - now.rem_euclid(self.window_secs)
    }

    pub fn window_secs(&self) -> i64 {
        self.window_secs
    }

    fn shard(&self, key: &UsageKey) -> std::sync::MutexGuard<'_, Shard> {
        let index = self.hasher.hash_one((&key.org, &key.route, &key.subject)) as usize % SHARDS;
        // A panic while holding a shard lock leaves only counts behind: keep counting.
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one decided call of `key` at `now`; what was counted before it in its window.
    pub fn begin(&self, key: &UsageKey, now: i64) -> WindowUsage {
        let window = self.window_of(now);
        let mut shard = self.shard(key);
        shard.roll(window);
        let before = shard.usage(key, self.window_secs);
        *shard
            .route_calls
            .entry((key.org.clone(), key.route.clone(), key.subject.clone()))
            .or_default() += 1;
        if !key.tool.is_empty() {
            *shard.tool_calls.entry(key.clone()).or_default() += 1;
        }
        shard
            .pending
            .entry((window, key.clone()))
            .or_default()
            .calls += 1;
        before
    }

    /// What [`Self::begin`] would report for `key` at `now`, counting nothing.
    pub fn peek(&self, key: &UsageKey, now: i64) -> WindowUsage {
        let mut shard = self.shard(key);
        shard.roll(self.window_of(now));
        shard.usage(key, self.window_secs)
    }

    /// Adds `counts` to `key`'s pending deltas of the window `now` falls in.
    pub fn add(&self, key: &UsageKey, now: i64, counts: &Counts) {
        let window = self.window_of(now);
        self.shard(key)
            .pending
            .entry((window, key.clone()))
            .or_default()
            .add(counts);
    }

    /// Every pending delta, leaving none.
    pub fn take(&self) -> Pending {
        self.shards
            .iter()
            .flat_map(|shard| {
                std::mem::take(
                    &mut shard
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .pending,
                )
            })
            .collect()
    }

    /// Puts deltas [`Self::take`] returned back (their flush failed).
    pub fn restore(&self, pending: Pending) {
        for ((window, key), counts) in pending {
            self.shard(&key)
                .pending
                .entry((window, key))
                .or_default()
                .add(&counts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(subject: &str, tool: &str) -> UsageKey {
        UsageKey::new("o", "r", subject, tool)
    }

    #[test]
    fn calls_are_counted_per_window_subject_and_tool() {
        let counters = Counters::new(60);
        assert_eq!(counters.begin(&key("a", "x"), 120).calls, 0);
        let second = counters.begin(&key("a", "y"), 130);
        assert_eq!((second.calls, second.tool_calls), (1, Some(0)));
        let third = counters.begin(&key("a", "x"), 179);
        assert_eq!((third.calls, third.tool_calls), (2, Some(1)));
        assert_eq!(
            counters.peek(&key("b", ""), 150).calls,
            0,
            "another subject"
        );
        assert_eq!(counters.peek(&key("b", ""), 150).tool_calls, None);
        let next = counters.peek(&key("a", "x"), 180);
        assert_eq!((next.window_start, next.calls), (180, 0), "a new window");
        let pending = counters.take();
        let calls: u64 = pending.iter().map(|(_, c)| c.calls).sum();
        assert_eq!((pending.len(), calls), (2, 3));
        assert!(counters.take().is_empty());
        counters.restore(pending);
        assert_eq!(counters.take().len(), 2);
    }
}
