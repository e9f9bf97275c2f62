//! The routes created through the API (component `proxy` of the shared migration runner).
//!
//! `proxy_routes`: one row per route; `prefix` is unique (overlapping prefixes are refused in
//! the inserting transaction). `config` is the route's JSON ([`super::route::RouteConfig`]
//! without any credential). `credential` is the upstream credential sealed under the master
//! key (ChaCha20-Poly1305, nonce || ciphertext, route id and `credential_version` as
//! associated data), NULL when the route injects none; the version grows with each rotation.

use sck_ledger::store::Migration;

pub const MIGRATIONS: &[Migration] = &[Migration {
    component: "proxy",
    version: 1,
    name: "gateway routes",
    sqlite: SQLITE,
    postgres: POSTGRES,
}];

const SQLITE: &str = r#"
CREATE TABLE proxy_routes (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    prefix TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    credential BLOB,
    credential_version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX proxy_routes_org ON proxy_routes(org_id);
"#;

const POSTGRES: &str = r#"
CREATE TABLE proxy_routes (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    prefix TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    credential BYTEA,
    credential_version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX proxy_routes_org ON proxy_routes(org_id);
"#;
