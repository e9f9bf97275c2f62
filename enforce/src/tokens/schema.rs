//! Tables of gateway tokens (component `tokens` of the shared migration runner).
//!
//! - `token_keys`: public halves and states of the signing keys (`next`, `active`, `retiring`,
//!   `retired`); partial unique indexes keep at most one `active` and one `next` key, so two
//!   replicas starting or rotating at once cannot both win. Private keys never enter the
//!   database: they live in `<data_dir>/token-keys/<kid>.pem` (mode 0600).
//! - `token_issuers`: per-org issuers with their LoA ceiling, allowed scopes and algorithm.
//! - `token_org_settings`: per-org default and maximum TTL.
//! - `issued_tokens`: one row per issued token (`jti`, org, expiry, key, SHA-256 of the token —
//!   never the token; the parent's `jti` for a delegated one), so revocation by id and key
//!   retirement know each token's lifetime and a revocation knows what it cascades to.
//! - `revoked_tokens`: revoked `jti`s with the token's expiry; kept until then, loaded at start.
//!
//! Times are unix seconds (BIGINT) so both backends compare them alike.

use sck_ledger::store::Migration;

const COMMON: &str = r#"
CREATE TABLE token_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL CHECK (algorithm IN ('EdDSA')),
    public_x TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('next', 'active', 'retiring', 'retired')),
    created_at BIGINT NOT NULL,
    activated_at BIGINT,
    retiring_at BIGINT,
    retired_at BIGINT
);
CREATE UNIQUE INDEX token_keys_one_active ON token_keys(state) WHERE state = 'active';
CREATE UNIQUE INDEX token_keys_one_next ON token_keys(state) WHERE state = 'next';
CREATE TABLE token_issuers (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    loa_ceiling BIGINT NOT NULL CHECK (loa_ceiling BETWEEN 1 AND 4),
    scopes TEXT NOT NULL,
    algorithm TEXT NOT NULL CHECK (algorithm IN ('EdDSA', 'HS256')),
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE TABLE token_org_settings (
    org_id TEXT PRIMARY KEY,
    default_ttl_seconds BIGINT NOT NULL,
    max_ttl_seconds BIGINT NOT NULL
);
CREATE TABLE issued_tokens (
    jti TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    issuer_id TEXT NOT NULL,
    kid TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX issued_tokens_kid ON issued_tokens(kid, expires_at);
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens(expires_at);
"#;

/// Delegated tokens (RFC 8693) name the token they were exchanged for, so a revocation can
/// list what it refuses with it.
const PARENTS: &str = r#"
ALTER TABLE issued_tokens ADD COLUMN parent_jti TEXT;
CREATE INDEX issued_tokens_parent ON issued_tokens(parent_jti);
"#;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        component: "tokens",
        version: 1,
        name: "token keys, issuers, org settings, issued and revoked tokens",
        sqlite: COMMON,
        postgres: COMMON,
    },
    Migration {
        component: "tokens",
        version: 2,
        name: "the parent of each delegated token",
        sqlite: PARENTS,
        postgres: PARENTS,
    },
];
