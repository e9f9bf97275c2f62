//! The ledger's tables, as migrations for both backends.
//!
//! - `ledger_logs`: one head row per org log (size, leaf hash of the last entry). Writers lock
//!   this row (`SELECT ... FOR UPDATE` on PostgreSQL, the database write lock on SQLite) so
//!   the chain never forks.
//! - `ledger_entries`: the leaf bytes and leaf hash of every entry, keyed by (log, seq).
//! - `ledger_nodes`: every complete Merkle subtree hash, keyed by (log, level, index).
//! - `ledger_checkpoints`: every signed checkpoint note, keyed by (log, size).
//! - `ledger_keys`: checkpoint verifier keys with validity windows.
//!
//! Entries, nodes and checkpoints are append-only: triggers refuse UPDATE and DELETE (and
//! TRUNCATE on PostgreSQL).

use crate::store::Migration;

/// Every ledger migration, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    component: "ledger",
    version: 1,
    name: "logs, entries, nodes, checkpoints, keys",
    sqlite: SQLITE_V1,
    postgres: POSTGRES_V1,
}];

const SQLITE_V1: &str = r#"
CREATE TABLE ledger_logs (
    log_id INTEGER PRIMARY KEY AUTOINCREMENT,
    org TEXT NOT NULL UNIQUE,
    origin TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    head_hash BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE ledger_entries (
    log_id INTEGER NOT NULL REFERENCES ledger_logs(log_id),
    seq INTEGER NOT NULL,
    leaf BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    PRIMARY KEY (log_id, seq)
);
CREATE TABLE ledger_nodes (
    log_id INTEGER NOT NULL,
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (log_id, level, idx)
) WITHOUT ROWID;
CREATE TABLE ledger_checkpoints (
    log_id INTEGER NOT NULL REFERENCES ledger_logs(log_id),
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    key_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (log_id, size)
);
CREATE TABLE ledger_keys (
    key_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    verifier TEXT NOT NULL PRIMARY KEY,
    valid_from TEXT NOT NULL,
    valid_until TEXT
);
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;
CREATE TRIGGER ledger_nodes_no_update BEFORE UPDATE ON ledger_nodes
BEGIN SELECT RAISE(ABORT, 'ledger_nodes is append-only'); END;
CREATE TRIGGER ledger_nodes_no_delete BEFORE DELETE ON ledger_nodes
BEGIN SELECT RAISE(ABORT, 'ledger_nodes is append-only'); END;
CREATE TRIGGER ledger_checkpoints_no_update BEFORE UPDATE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'ledger_checkpoints is append-only'); END;
CREATE TRIGGER ledger_checkpoints_no_delete BEFORE DELETE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'ledger_checkpoints is append-only'); END;
"#;

const POSTGRES_V1: &str = r#"
CREATE TABLE ledger_logs (
    log_id BIGSERIAL PRIMARY KEY,
    org TEXT NOT NULL UNIQUE,
    origin TEXT NOT NULL,
    size BIGINT NOT NULL DEFAULT 0,
    head_hash BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE ledger_entries (
    log_id BIGINT NOT NULL REFERENCES ledger_logs(log_id),
    seq BIGINT NOT NULL,
    leaf BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL,
    PRIMARY KEY (log_id, seq)
);
CREATE TABLE ledger_nodes (
    log_id BIGINT NOT NULL,
    level BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (log_id, level, idx)
);
CREATE TABLE ledger_checkpoints (
    log_id BIGINT NOT NULL REFERENCES ledger_logs(log_id),
    size BIGINT NOT NULL,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    key_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (log_id, size)
);
CREATE TABLE ledger_keys (
    key_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    verifier TEXT NOT NULL PRIMARY KEY,
    valid_from TEXT NOT NULL,
    valid_until TEXT
);
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_nodes_append_only BEFORE UPDATE OR DELETE ON ledger_nodes
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_nodes_no_truncate BEFORE TRUNCATE ON ledger_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_checkpoints_append_only BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
"#;
