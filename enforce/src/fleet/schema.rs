//! Tables of the OPA sidecar fleet (component `fleet` of the shared migration runner).
//!
//! `fleet_sidecars` keeps the latest status report per org and OPA instance id (a bounded
//! summary, not the raw report). `fleet_decisions` is the idempotency table of decision-log
//! ingestion: one row per org and `decision_id`, first `claimed` by the request that will
//! append it (with the org's log size at claim time, where a recovery scan starts), then
//! `committed` once its ledger entry is durable. Its primary key is what makes a retried
//! upload never append an entry twice.
//!
//! Version 2: `fleet_inputs` keeps the masked input of a sidecar decision (orgs with
//! `store_input`) beside the log, keyed by org and decision id with the entry's `seq`: the
//! leaf holds only the input's hash, so retention can delete these rows and every entry still
//! verifies. `fleet_input_prunes` records each pruning run (how many rows, the cutoff) until
//! its `retention.inputs_pruned` entry is durable: written in the same transaction as the
//! deletes, it is how a crash between deleting and ledgering is caught up later.

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

const INPUTS: &str = r#"
CREATE TABLE fleet_inputs (
    org_id TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    input TEXT NOT NULL,
    masked TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    stored_at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, decision_id)
);
CREATE INDEX fleet_inputs_age ON fleet_inputs(org_id, stored_at_us);
CREATE TABLE fleet_input_prunes (
    run_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    cutoff_us BIGINT NOT NULL,
    pruned BIGINT NOT NULL,
    actor TEXT NOT NULL,
    lease_until_unix BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'logged'))
);
CREATE INDEX fleet_input_prunes_pending ON fleet_input_prunes(state, lease_until_unix);
"#;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        component: "fleet",
        version: 1,
        name: "sidecar status reports, decision-log idempotency",
        sqlite: TABLES,
        postgres: TABLES,
    },
    Migration {
        component: "fleet",
        version: 2,
        name: "stored decision inputs beside the log, pruning runs",
        sqlite: INPUTS,
        postgres: INPUTS,
    },
];
