//! Usage accounting of the enforcement point: calls, denials, errors, bytes relayed and the
//! tokens upstreams report, per org, route, subject and tool; `input.usage` for quota
//! policies; bounded Prometheus series; the persisted counts `GET /usage` answers from.
//!
//! Invariants:
//! - The decision path only touches memory ([`counters`]); each replica writes its deltas to
//!   `usage_counts` every `[proxy] usage_flush_secs`, before answering a usage query, and at
//!   shutdown, by adding them to the rows (so replicas never overwrite each other's counts).
//! - `input.usage` counts this replica's calls of the current window (in memory): another
//!   replica's calls are not in it, and a restart starts the current window from zero.
//! - Metrics carry org, route and tool labels only — never the subject; a route's tools beyond
//!   `[proxy] usage_tool_labels` distinct names, and names that are not plain, share `other`.
//! - Accounting never fails a call: a malformed usage report is counted, not refused.
//! - A query sees one org's rows only.

pub mod counters;
pub mod labels;
pub mod schema;

use std::sync::Arc;
use std::time::Duration;

use sck_ledger::store::{BeginWrite, Store};
use serde::Serialize;
use sqlx::Row;

use crate::clock::unix_now;
use crate::config::ProxyConfig;
use crate::db::with_pool;
use crate::error::{EnforceError, EnforceResult};
use counters::{Counters, Pending};
pub use counters::{Counts, UsageKey, WindowUsage};
use labels::ToolLabels;

/// Most rows a usage query answers (`truncated` says when more matched).
pub const MAX_ROWS: usize = 1000;
const MAX_FILTER_LEN: usize = 256;

/// What the upstream reported in the route's usage header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    Absent,
    Tokens(u64),
    /// Not exactly one unsigned decimal integer that fits 64 bits.
    Malformed,
}

impl Reported {
    /// The report in a header's values (all of them: two values are malformed).
    pub fn parse<'v>(mut values: impl Iterator<Item = &'v [u8]>) -> Reported {
        let Some(first) = values.next() else {
            return Reported::Absent;
        };
        if values.next().is_some() {
            return Reported::Malformed;
        }
        let text = first.trim_ascii();
        if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
            return Reported::Malformed;
        }
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .map_or(Reported::Malformed, Reported::Tokens)
    }
}

/// One forwarded exchange: what was relayed and how it ended.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Upstream status >= 500, no upstream answer (502/504), or the relayed answer broke off.
    pub failed: bool,
    pub reported: Reported,
}

/// What a usage query selects: one org's rows, optionally one route, subject or tool, of the
/// windows starting in `[since, until)` (`since` rounded down to its window).
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub route: Option<String>,
    pub subject: Option<String>,
    pub tool: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// The counts of one route, subject and tool, summed over the selected windows and replicas.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct UsageRow {
    pub route: String,
    pub subject: String,
    /// `""` for calls that name no tool.
    pub tool: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// A usage query's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub organization_id: String,
    /// The first window counted (Unix seconds).
    pub since: i64,
    /// The end of the last window counted (exclusive).
    pub until: i64,
    pub window_secs: i64,
    pub usage: Vec<UsageRow>,
    /// More rows matched than [`MAX_ROWS`].
    pub truncated: bool,
}

/// Usage accounting of one replica.
pub struct UsageService {
    store: Store,
    counters: Counters,
    flush_every: Duration,
    tool_labels: ToolLabels,
    /// One flush at a time, so a query's flush waits for one already writing.
    flushing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for UsageService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageService")
            .field("window_secs", &self.counters.window_secs())
            .finish_non_exhaustive()
    }
}

impl UsageService {
    pub fn new(store: Store, config: &ProxyConfig) -> UsageService {
        UsageService {
            store,
            counters: Counters::new(config.usage_window_secs),
            flush_every: Duration::from_secs(config.usage_flush_secs),
            tool_labels: ToolLabels::new(config.usage_tool_labels),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    /// Counts one call of `key` about to be decided; `input.usage` (the calls before it).
    pub fn begin(&self, key: &UsageKey) -> WindowUsage {
        let usage = self.counters.begin(key, unix_now());
        metrics::counter!("sck_usage_calls_total", &self.labels(key)).increment(1);
        usage
    }

    /// `input.usage` for `key` without counting a call (entries of a filtered list answer).
    pub fn peek(&self, key: &UsageKey) -> WindowUsage {
        self.counters.peek(key, unix_now())
    }

    /// The call [`Self::begin`] counted was denied.
    pub fn denied(&self, key: &UsageKey) {
        let counts = Counts {
            denied: 1,
            ..Counts::default()
        };
        self.counters.add(key, unix_now(), &counts);
        metrics::counter!("sck_usage_denied_total", &self.labels(key)).increment(1);
    }

    /// A forwarded exchange of `key` ended (counted in the window it ended in).
    pub fn exchanged(&self, key: &UsageKey, exchange: &Exchange) {
        let (tokens, malformed) = match exchange.reported {
            Reported::Absent => (0, 0),
            Reported::Tokens(n) => (n, 0),
            Reported::Malformed => (0, 1),
        };
        let counts = Counts {
            errors: u64::from(exchange.failed),
            request_bytes: exchange.request_bytes,
            response_bytes: exchange.response_bytes,
            tokens,
            malformed_reports: malformed,
            ..Counts::default()
        };
        self.counters.add(key, unix_now(), &counts);
        let labels = self.labels(key);
        metrics::counter!("sck_usage_errors_total", &labels).increment(counts.errors);
        metrics::counter!("sck_usage_request_bytes_total", &labels).increment(counts.request_bytes);
        metrics::counter!("sck_usage_response_bytes_total", &labels)
            .increment(counts.response_bytes);
        metrics::counter!("sck_usage_tokens_total", &labels).increment(tokens);
        metrics::counter!("sck_usage_malformed_reports_total", &labels).increment(malformed);
    }

    /// The bounded labels of `key`: org, route and the tool (or `other`).
    fn labels(&self, key: &UsageKey) -> [(&'static str, String); 3] {
        [
            ("org", key.org.clone()),
            ("route", key.route.clone()),
            ("tool", self.tool_labels.label(key)),
        ]
    }

    /// Writes this replica's pending deltas to the database (added to the rows); on failure
    /// they are kept for the next flush.
    pub async fn flush(&self) -> EnforceResult<()> {
        let _one = self.flushing.lock().await;
        let pending = self.counters.take();
        if pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.write(&pending).await {
            self.counters.restore(pending);
            return Err(e);
        }
        Ok(())
    }

    async fn write(&self, pending: &Pending) -> EnforceResult<()> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        with_pool!(&self.store, pool => {
            let mut tx = pool.begin_write().await?;
            for ((window, key), c) in pending {
                sqlx::query(
                    "INSERT INTO usage_counts (window_start, org_id, route_id, subject, tool, calls, denied, errors, request_bytes, response_bytes, tokens, malformed_reports) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (org_id, window_start, route_id, subject, tool) DO UPDATE SET \
                     calls = usage_counts.calls + excluded.calls, denied = usage_counts.denied + excluded.denied, \
                     errors = usage_counts.errors + excluded.errors, request_bytes = usage_counts.request_bytes + excluded.request_bytes, \
                     response_bytes = usage_counts.response_bytes + excluded.response_bytes, tokens = usage_counts.tokens + excluded.tokens, \
                     malformed_reports = usage_counts.malformed_reports + excluded.malformed_reports",
                )
                .bind(window)
                .bind(&key.org)
                .bind(&key.route)
                .bind(&key.subject)
                .bind(&key.tool)
                .bind(n(c.calls))
                .bind(n(c.denied))
                .bind(n(c.errors))
                .bind(n(c.request_bytes))
                .bind(n(c.response_bytes))
                .bind(n(c.tokens))
                .bind(n(c.malformed_reports))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Flushes every `[proxy] usage_flush_secs` until the process ends.
    pub fn spawn_background(self: &Arc<Self>) {
        let usage = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(usage.flush_every).await;
                if let Err(e) = usage.flush().await {
                    tracing::warn!(error = %e.detail, "writing usage counts failed; kept for the next flush");
                }
            }
        });
    }

    /// `org`'s persisted usage matching `filter` (this replica's pending counts flushed first;
    /// other replicas' appear after their next flush).
    pub async fn query(&self, org: &str, filter: &UsageFilter) -> EnforceResult<UsageReport> {
        for value in [&filter.route, &filter.subject, &filter.tool]
            .into_iter()
            .flatten()
        {
            if value.len() > MAX_FILTER_LEN {
                return Err(EnforceError::invalid(
                    "invalid_request",
                    format!("filters are at most {MAX_FILTER_LEN} bytes"),
                ));
            }
        }
        let requested = filter.since.unwrap_or(0);
        let until = filter
            .until
            .unwrap_or_else(|| self.counters.window_of(unix_now()) + self.counters.window_secs());
        if requested < 0 || until < requested {
            return Err(EnforceError::invalid(
                "invalid_window",
                "since and until are Unix seconds with since <= until",
            ));
        }
        let since = self.counters.window_of(requested);
        self.flush().await?;
        let get = |v: i64| u64::try_from(v).unwrap_or(0);
        let mut usage: Vec<UsageRow> = with_pool!(&self.store, pool => {
            sqlx::query(
                "SELECT route_id, subject, tool, CAST(SUM(calls) AS BIGINT), CAST(SUM(denied) AS BIGINT), CAST(SUM(errors) AS BIGINT), \
                 CAST(SUM(request_bytes) AS BIGINT), CAST(SUM(response_bytes) AS BIGINT), CAST(SUM(tokens) AS BIGINT), \
                 CAST(SUM(malformed_reports) AS BIGINT) FROM usage_counts \
                 WHERE org_id = $1 AND window_start >= $2 AND window_start < $3 \
                 AND ($4 IS NULL OR route_id = $4) AND ($5 IS NULL OR subject = $5) AND ($6 IS NULL OR tool = $6) \
                 GROUP BY route_id, subject, tool ORDER BY route_id, subject, tool LIMIT $7",
            )
            .bind(org)
            .bind(since)
            .bind(until)
            .bind(filter.route.as_deref())
            .bind(filter.subject.as_deref())
            .bind(filter.tool.as_deref())
            .bind(MAX_ROWS as i64 + 1)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| UsageRow {
                route: r.get(0),
                subject: r.get(1),
                tool: r.get(2),
                counts: Counts {
                    calls: get(r.get(3)),
                    denied: get(r.get(4)),
                    errors: get(r.get(5)),
                    request_bytes: get(r.get(6)),
                    response_bytes: get(r.get(7)),
                    tokens: get(r.get(8)),
                    malformed_reports: get(r.get(9)),
                },
            })
            .collect()
        });
        let truncated = usage.len() > MAX_ROWS;
        usage.truncate(MAX_ROWS);
        Ok(UsageReport {
            organization_id: org.to_owned(),
            since,
            until,
            window_secs: self.counters.window_secs(),
            usage,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Reported;

    #[test]
    fn usage_reports_are_one_unsigned_integer() {
        let parse = |values: &[&str]| Reported::parse(values.iter().map(|v| v.as_bytes()));
        assert_eq!(parse(&[]), Reported::Absent);
        assert_eq!(parse(&["123"]), Reported::Tokens(123));
        assert_eq!(parse(&[" 7 "]), Reported::Tokens(7));
        assert_eq!(parse(&["18446744073709551615"]), Reported::Tokens(u64::MAX));
        for bad in ["", "-1", "+1", "1.5", "12a", "18446744073709551616", "１"] {
            assert_eq!(parse(&[bad]), Reported::Malformed, "{bad:?}");
        }
        assert_eq!(parse(&["1", "2"]), Reported::Malformed);
    }
}
