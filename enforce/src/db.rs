//! Helpers for code that queries the shared store on either backend.
//!
//! [`with_pool!`] runs the same body against the SQLite or the PostgreSQL pool: write queries
//! with `$1` placeholders and types both backends share (TEXT, BIGINT/INTEGER, BLOB/BYTEA), and
//! the body compiles once per backend. Timestamps are RFC 3339 UTC text.

/// Runs the same body against whichever pool the store holds.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            sck_ledger::store::Store::Sqlite($pool) => $body,
            sck_ledger::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Current time as RFC 3339 UTC with microseconds.
pub fn now() -> String {
    sck_ledger::entry::format_timestamp(time::OffsetDateTime::now_utc())
}

/// A new random identifier with a readable prefix, e.g. `bnd_3f2a...`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}
