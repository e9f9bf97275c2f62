//! Tables of the OPA sidecar fleet (component `fleet` of the shared migration runner).
//!
//! `fleet_sidecars` keeps the latest status report per org and OPA instance id (a bounded
//! summary, not the raw report). `fleet_decisions` is the idempotency table of decision-log
//! ingestion: one row per org and `decision_id`, first `claimed` by the request that will
//! append it (with the org's log size at claim time, where a recovery scan starts), then
//! `committed` once its ledger entry is durable. Its primary key is what makes a retried
//! upload never append an entry twice.

use sck_ledger::store::Migration;

const TABLES: &str = r#"
CREATE TABLE fleet_sidecars (
    org_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    opa_version TEXT,
    labels TEXT NOT NULL,
    bundles TEXT NOT NULL,
    plugins TEXT NOT NULL,
    partition_name TEXT,
    credential_id TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    last_seen_unix BIGINT NOT NULL,
    PRIMARY KEY (org_id, instance_id)
);
CREATE TABLE fleet_decisions (
    org_id TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('claimed', 'committed')),
    claim_id TEXT NOT NULL,
    log_size_at_claim BIGINT NOT NULL,
    claimed_at_unix BIGINT NOT NULL,
    PRIMARY KEY (org_id, decision_id)
);
CREATE INDEX fleet_decisions_claim ON fleet_decisions(org_id, claim_id);
"#;

pub const MIGRATIONS: &[Migration] = &[Migration {
    component: "fleet",
    version: 1,
    name: "sidecar status reports, decision-log idempotency",
    sqlite: TABLES,
    postgres: TABLES,
}];
