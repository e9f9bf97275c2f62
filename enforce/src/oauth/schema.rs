//! Tables of OAuth 2 service accounts (component `oauth` of the shared migration runner).
//!
//! - `oauth_clients`: one row per service account. `client_id` is the id of the token issuer
//!   (`token_issuers`) it mints with, which holds its LoA ceiling and scopes, so the one token
//!   verification checks its tokens like any other. `audiences` and `source_cidrs` are JSON
//!   arrays (no `source_cidrs`: any address). A revoked client stays revoked.
//! - `oauth_client_secrets`: the SHA-256 of each generated secret (never the secret); a
//!   secret is live while `retired_at` is NULL, at most two per client (enforced in the one
//!   transaction that adds one, which first updates the client row and so serialises with any
//!   other change of that client).
//!
//! - `oauth_client_keys` (version 2): the public keys a client signs `private_key_jwt`
//!   assertions with, as a public JWK whose `kid` is unique per client and whose `alg` is
//!   pinned at registration; a key is live while `removed_at` is NULL.
//! - `oauth_assertion_jtis` (version 2): the `jti` of every accepted client assertion until its
//!   `exp`, shared by replicas; the primary key makes the insert the replay check.
//!
//! Times are unix seconds (BIGINT) so both backends compare them alike.

use sck_ledger::store::Migration;

const COMMON: &str = r#"
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    audiences TEXT NOT NULL,
    source_cidrs TEXT NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    revoked_at BIGINT,
    UNIQUE (org_id, name)
);
CREATE TABLE oauth_client_secrets (
    secret_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oauth_clients(client_id),
    secret_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE INDEX oauth_client_secrets_client ON oauth_client_secrets(client_id);
"#;

const ASSERTION_KEYS: &str = r#"
CREATE TABLE oauth_client_keys (
    client_id TEXT NOT NULL REFERENCES oauth_clients(client_id),
    kid TEXT NOT NULL,
    alg TEXT NOT NULL,
    thumbprint TEXT NOT NULL,
    jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    removed_at BIGINT,
    PRIMARY KEY (client_id, kid)
);
CREATE TABLE oauth_assertion_jtis (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX oauth_assertion_jtis_expiry ON oauth_assertion_jtis(expires_at);
"#;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        component: "oauth",
        version: 1,
        name: "service accounts and their hashed secrets",
        sqlite: COMMON,
        postgres: COMMON,
    },
    Migration {
        component: "oauth",
        version: 2,
        name: "private_key_jwt keys and the assertion replay store",
        sqlite: ASSERTION_KEYS,
        postgres: ASSERTION_KEYS,
    },
];
