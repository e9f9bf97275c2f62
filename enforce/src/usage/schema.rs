//! The persisted usage counts (component `usage` of the shared migration runner).
//!
//! `usage_counts`: one row per fixed window (`window_start`, Unix seconds, a multiple of
//! `[proxy] usage_window_secs`), org, route, subject and tool (`''` for calls that name no
//! tool). Replicas add their deltas to a row (`ON CONFLICT ... DO UPDATE SET n = n + excluded.n`),
//! so a row is the sum of every replica's flushed counts and no replica overwrites another's.

use sck_ledger::store::Migration;

pub const MIGRATIONS: &[Migration] = &[Migration {
    component: "usage",
    version: 1,
    name: "usage counts",
    sqlite: TABLE,
    postgres: TABLE,
}];

const TABLE: &str = r#"
CREATE TABLE usage_counts (
    window_start BIGINT NOT NULL,
    org_id TEXT NOT NULL,
    route_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    tool TEXT NOT NULL,
    calls BIGINT NOT NULL DEFAULT 0,
    denied BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    request_bytes BIGINT NOT NULL DEFAULT 0,
    response_bytes BIGINT NOT NULL DEFAULT 0,
    tokens BIGINT NOT NULL DEFAULT 0,
    malformed_reports BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, window_start, route_id, subject, tool)
);
"#;
