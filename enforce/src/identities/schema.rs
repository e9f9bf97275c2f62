//! Tables of identity pins and the X-SCK replay store (component `identities` of the shared
//! migration runner).
//!
//! - `identity_pins`: one row per ANS ID (globally unique: an ANS ID belongs to exactly one
//!   org). A revoked pin stays revoked; its ANS ID cannot be pinned again.
//! - `identity_keys`: the keys of a pin. `material` is the Ed25519 public key (32 bytes) or
//!   the HMAC secret sealed with the master key (ChaCha20-Poly1305, nonce || ciphertext, the
//!   key id and ANS ID as associated data). A key is live while `retired_at` is NULL; at most
//!   two are live per pin (enforced in the one transaction that adds a key, which first
//!   updates the pin row and so serialises with any other change of that pin).
//! - `xsck_nonces`: (ANS ID, nonce) pairs seen in verified calls, with their expiry (unix
//!   seconds); shared by every replica on PostgreSQL. In compat mode the key is the signature.

use sck_ledger::store::Migration;

pub const MIGRATIONS: &[Migration] = &[Migration {
    component: "identities",
    version: 1,
    name: "identity pins, pinned keys, X-SCK nonces",
    sqlite: SQLITE,
    postgres: POSTGRES,
}];

const SQLITE: &str = r#"
CREATE TABLE identity_pins (
    ans_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoke_reason TEXT
);
CREATE INDEX identity_pins_org ON identity_pins(org_id);
CREATE TABLE identity_keys (
    key_id TEXT PRIMARY KEY,
    ans_id TEXT NOT NULL REFERENCES identity_pins(ans_id),
    scheme TEXT NOT NULL CHECK (scheme IN ('hmac-sha256', 'ed25519')),
    material BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE INDEX identity_keys_ans ON identity_keys(ans_id);
CREATE TABLE xsck_nonces (
    ans_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (ans_id, nonce)
);
CREATE INDEX xsck_nonces_expiry ON xsck_nonces(expires_at);
"#;

const POSTGRES: &str = r#"
CREATE TABLE identity_pins (
    ans_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoke_reason TEXT
);
CREATE INDEX identity_pins_org ON identity_pins(org_id);
CREATE TABLE identity_keys (
    key_id TEXT PRIMARY KEY,
    ans_id TEXT NOT NULL REFERENCES identity_pins(ans_id),
    scheme TEXT NOT NULL CHECK (scheme IN ('hmac-sha256', 'ed25519')),
    material BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE INDEX identity_keys_ans ON identity_keys(ans_id);
CREATE TABLE xsck_nonces (
    ans_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (ans_id, nonce)
);
CREATE INDEX xsck_nonces_expiry ON xsck_nonces(expires_at);
"#;
