//! Tables of the bundle registry (component `registry` of the shared migration runner).
//!
//! `bundles` holds every compiled version; its content columns are frozen by a trigger once the
//! version is published. `bundle_heads` has one row per org and bundle name: activations and
//! revocations lock it, so they serialise and exactly one version is active. `revoked_hashes`
//! lists bundle digests that are never served or activated again.

use sck_ledger::store::Migration;

pub const MIGRATIONS: &[Migration] = &[Migration {
    component: "registry",
    version: 1,
    name: "orgs, credentials, bundles, heads, revoked hashes",
    sqlite: r#"
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE credentials (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('admin', 'sidecar')),
    org_id TEXT REFERENCES orgs(id),
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE bundles (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('DRAFT','PUBLISHED','ACTIVE','SUPERSEDED','REVOKED')),
    revision TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    tarball BLOB NOT NULL,
    sha256 TEXT,
    signer_id TEXT,
    revoke_reason TEXT,
    created_at TEXT NOT NULL,
    published_at TEXT,
    activated_at TEXT,
    revoked_at TEXT,
    UNIQUE (org_id, name, version)
);
CREATE INDEX bundles_sha256 ON bundles(sha256);
CREATE TRIGGER bundles_immutable BEFORE UPDATE OF tarball, sha256, version, org_id, name ON bundles
WHEN OLD.status <> 'DRAFT'
BEGIN
    SELECT RAISE(ABORT, 'published bundle versions are immutable');
END;
CREATE TRIGGER bundles_no_delete BEFORE DELETE ON bundles
BEGIN
    SELECT RAISE(ABORT, 'bundle versions are never deleted');
END;
CREATE TABLE bundle_heads (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    active_bundle_id TEXT REFERENCES bundles(id),
    generation INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, name)
);
CREATE TABLE revoked_hashes (
    sha256 TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    revoked_at TEXT NOT NULL,
    reason TEXT NOT NULL
);
"#,
    postgres: r#"
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE credentials (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('admin', 'sidecar')),
    org_id TEXT REFERENCES orgs(id),
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE bundles (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('DRAFT','PUBLISHED','ACTIVE','SUPERSEDED','REVOKED')),
    revision TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    tarball BYTEA NOT NULL,
    sha256 TEXT,
    signer_id TEXT,
    revoke_reason TEXT,
    created_at TEXT NOT NULL,
    published_at TEXT,
    activated_at TEXT,
    revoked_at TEXT,
    UNIQUE (org_id, name, version)
);
CREATE INDEX bundles_sha256 ON bundles(sha256);
CREATE FUNCTION sck_bundles_immutable() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'bundle versions are never deleted';
    END IF;
    IF OLD.status <> 'DRAFT' AND (NEW.tarball IS DISTINCT FROM OLD.tarball
        OR NEW.sha256 IS DISTINCT FROM OLD.sha256 OR NEW.version IS DISTINCT FROM OLD.version
        OR NEW.org_id IS DISTINCT FROM OLD.org_id OR NEW.name IS DISTINCT FROM OLD.name) THEN
        RAISE EXCEPTION 'published bundle versions are immutable';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER bundles_immutable BEFORE UPDATE OR DELETE ON bundles
FOR EACH ROW EXECUTE FUNCTION sck_bundles_immutable();
CREATE TABLE bundle_heads (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    active_bundle_id TEXT REFERENCES bundles(id),
    generation BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, name)
);
CREATE TABLE revoked_hashes (
    sha256 TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    revoked_at TEXT NOT NULL,
    reason TEXT NOT NULL
);
"#,
}];
