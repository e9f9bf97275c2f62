//! The OPA sidecar fleet: status reports (latest per instance, drift against the registry's
//! active versions, drift gauges) and decision-log ingestion into the org's ledger.
//!
//! **Exactly-once ingestion.** The ledger's append and this module's tables cannot share one
//! transaction (the ledger has a single group-committing writer), so a decision id moves
//! through `fleet_decisions` in three durable steps:
//!
//! 1. *claim*: one transaction inserts a `claimed` row per new decision id (the primary key
//!    `(org, decision_id)` makes a second claim fail), recording the org's log size at that
//!    moment;
//! 2. *append*: the claimed events are appended to the ledger together (one group commit);
//! 3. *commit*: one statement marks this request's claims `committed`; then the upload is
//!    acknowledged.
//!
//! A retry finds `committed` rows and skips them. A crash between 1 and 2 leaves a claim
//! without an entry; a crash between 2 and 3 leaves a claim whose entry exists. Both look the
//! same, so a claim older than `[fleet] claim_lease_secs` (longer than any request can still be
//! appending) is *recovered*: the retry takes the claim over (compare-and-set on its claim id)
//! and scans the org's log from the recorded size for a `decision.sidecar` entry with that
//! decision id — found: it is only marked committed; not found: it is appended. A fresh claim
//! of another request is answered 503 `ingest_in_progress` (OPA retries the chunk later).
//! When this request's own append fails, its claims are made immediately recoverable.

pub mod events;
pub mod retention;
pub mod schema;
pub mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sck_ledger::entry::{Event, EventType};
use sck_ledger::store::BeginWrite;
use sck_ledger::store::Store;
use sck_ledger::Ledger;
use serde_json::{json, Value};
use sqlx::Row;

use crate::budget::{Budget, Reservation};
use crate::clock::unix_now;
use crate::config::FleetConfig;
use crate::db::{new_id, now, with_pool};
use crate::error::{EnforceError, EnforceResult, Kind};

pub use sck_wire::opa_logs::{InputPolicy, SidecarDecision, StoredInput, Uploader};
pub use sck_wire::opa_status::{ActiveRevision, StatusReport};

/// Rows per multi-row claim statement.
const CLAIM_CHUNK: usize = 100;
/// Entries read per page by a recovery scan.
const SCAN_PAGE: u64 = 1000;

/// What an upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Distinct decision ids in the upload.
    pub received: usize,
    /// Entries appended by this request.
    pub appended: usize,
    /// Decision ids already in the ledger (a retry), including recovered ones.
    pub duplicates: usize,
}

/// Fleet status and decision-log ingestion on the shared store and ledger.
#[derive(Debug, Clone)]
pub struct FleetService {
    store: Store,
    ledger: Ledger,
    config: Arc<FleetConfig>,
    default_policy: Arc<InputPolicy>,
    /// Decompressed bytes in flight, shared with compile uploads.
    decompression: Budget,
    /// When each org's gauges were last recomputed after a status report.
    refreshed: Arc<Mutex<HashMap<String, Instant>>>,
}

impl FleetService {
    /// Checks the configured mask pointers and builds the service.
    pub fn new(
        store: Store,
        ledger: Ledger,
        config: &FleetConfig,
        decompression: Budget,
    ) -> Result<Self, String> {
        let default_policy = InputPolicy {
            store_input: config.store_input,
            mask: config.mask.clone(),
            input_retention_days: config.input_retention_days,
        };
        default_policy.validate()?;
        for (org, policy) in &config.orgs {
            policy
                .validate()
                .map_err(|e| format!("[fleet.orgs.{org}] {e}"))?;
        }
        Ok(FleetService {
            store,
            ledger,
            config: Arc::new(config.clone()),
            default_policy: Arc::new(default_policy),
            decompression,
            refreshed: Arc::default(),
        })
    }

    /// The fleet settings.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// A reservation of the shared budget of decompressed bytes for inflating one gzip
    /// upload (its declared size held up front); 503 `decompression_busy` when it is in use.
    pub fn reserve_for_gzip(&self, body: &[u8]) -> EnforceResult<Reservation> {
        self.decompression
            .reserve_for_gzip(body, self.config.max_decompressed_bytes)
    }

    /// What of the input `org` keeps: its `[fleet.orgs.<org>]` override, else the default.
    pub fn input_policy(&self, org: &str) -> &InputPolicy {
        self.config.orgs.get(org).unwrap_or(&self.default_policy)
    }

    /// Keeps `report` as the latest of its instance in `org`.
    pub async fn record_status(
        &self,
        org: &str,
        uploader: &Uploader<'_>,
        report: &StatusReport,
    ) -> EnforceResult<()> {
        let ts = now();
        let labels = report.labels.to_string();
        let bundles = Value::Object(report.bundles.clone()).to_string();
        let plugins = Value::Object(report.plugins.clone()).to_string();
        with_pool!(&self.store, pool => {
            sqlx::query(
                "INSERT INTO fleet_sidecars (org_id, instance_id, opa_version, labels, bundles, plugins, \
                 partition_name, credential_id, first_seen, last_seen, last_seen_unix) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) \
                 ON CONFLICT (org_id, instance_id) DO UPDATE SET opa_version = excluded.opa_version, \
                 labels = excluded.labels, bundles = excluded.bundles, plugins = excluded.plugins, \
                 partition_name = excluded.partition_name, credential_id = excluded.credential_id, \
                 last_seen = excluded.last_seen, last_seen_unix = excluded.last_seen_unix",
            )
            .bind(org)
            .bind(&report.instance_id)
            .bind(&report.opa_version)
            .bind(&labels)
            .bind(&bundles)
            .bind(&plugins)
            .bind(uploader.partition)
            .bind(uploader.credential_id)
            .bind(&ts)
            .bind(unix_now())
            .execute(pool)
            .await?;
        });
        metrics::counter!("sck_fleet_status_reports_total", "org" => org.to_owned()).increment(1);
        Ok(())
    }

    /// The manifest revision of every active bundle of `org`, by bundle name.
    async fn active_revisions(&self, org: &str) -> EnforceResult<BTreeMap<String, ActiveRevision>> {
        let mut out = BTreeMap::new();
        with_pool!(&self.store, pool => {
            for row in sqlx::query(
                "SELECT h.name, b.version, b.revision, b.sha256 FROM bundle_heads h \
                 JOIN bundles b ON b.id = h.active_bundle_id WHERE h.org_id = $1",
            )
            .bind(org)
            .fetch_all(pool)
            .await?
            {
                let name: String = row.try_get("name")?;
                out.insert(name.clone(), ActiveRevision {
                    name,
                    version: row.try_get("version")?,
                    revision: row.try_get("revision")?,
                    sha256: row.try_get::<Option<String>, _>("sha256")?.unwrap_or_default(),
                });
            }
        });
        Ok(out)
    }

    /// The fleet view of `org` (and its drift gauges, refreshed on the way).
    pub async fn view(&self, org: &str) -> EnforceResult<Value> {
        let active = self.active_revisions(org).await?;
        let stale_before = unix_now() - self.config.stale_after_secs as i64;
        let mut sidecars = Vec::new();
        let (mut drifted, mut live, mut stale_count) = (0u64, 0u64, 0u64);
        with_pool!(&self.store, pool => {
            for row in sqlx::query(
                "SELECT instance_id, opa_version, labels, bundles, plugins, partition_name, credential_id, \
                 first_seen, last_seen, last_seen_unix FROM fleet_sidecars WHERE org_id = $1 ORDER BY instance_id",
            )
            .bind(org)
            .fetch_all(pool)
            .await?
            {
                let parse = |column: &str| -> EnforceResult<Value> {
                    let text: String = row.try_get(column)?;
                    serde_json::from_str(&text).map_err(|e| EnforceError::internal("fleet row", e))
                };
                let bundles = match parse("bundles")? {
                    Value::Object(map) => map,
                    _ => Default::default(),
                };
                let verdict = sck_wire::opa_status::drift(&bundles, &active);
                let stale = row.try_get::<i64, _>("last_seen_unix")? < stale_before;
                if stale {
                    stale_count += 1;
                } else {
                    live += 1;
                    if verdict.drift {
                        drifted += 1;
                    }
                }
                sidecars.push(json!({
                    "instanceId": row.try_get::<String, _>("instance_id")?,
                    "opaVersion": row.try_get::<Option<String>, _>("opa_version")?,
                    "labels": parse("labels")?,
                    "partition": row.try_get::<Option<String>, _>("partition_name")?,
                    "credentialId": row.try_get::<String, _>("credential_id")?,
                    "firstSeen": row.try_get::<String, _>("first_seen")?,
                    "lastContact": row.try_get::<String, _>("last_seen")?,
                    "stale": stale,
                    "activeRevisions": bundles.iter().map(|(name, b)| (name.clone(), b.get("active_revision").cloned().unwrap_or(Value::Null))).collect::<serde_json::Map<_, _>>(),
                    "drift": verdict.drift,
                    "driftReasons": verdict.reasons,
                    "bundles": verdict.bundles,
                    "plugins": parse("plugins")?,
                }));
            }
        });
        set_gauges(org, live, drifted, stale_count);
        Ok(json!({
            "organizationId": org,
            "activeBundles": active.values().collect::<Vec<_>>(),
            "summary": {"sidecars": live + stale_count, "live": live, "drifted": drifted, "stale": stale_count},
            "sidecars": sidecars,
        }))
    }

    /// Recomputes `org`'s gauges after a status report, at most once a second per org (the
    /// background task and every fleet view refresh them too).
    pub async fn refresh_gauges_soon(&self, org: &str) -> EnforceResult<()> {
        let due = {
            let mut refreshed = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            match refreshed.get(org) {
                Some(at) if now.duration_since(*at) < Duration::from_secs(1) => false,
                _ => {
                    refreshed.insert(org.to_owned(), now);
                    true
                }
            }
        };
        if due {
            self.view(org).await?;
        }
        Ok(())
    }

    /// Recomputes the drift gauges of every org that has sidecars.
    pub async fn refresh_all_gauges(&self) -> EnforceResult<()> {
        let mut orgs: Vec<String> = Vec::new();
        with_pool!(&self.store, pool => {
            for row in sqlx::query("SELECT DISTINCT org_id FROM fleet_sidecars").fetch_all(pool).await? {
                orgs.push(row.try_get("org_id")?);
            }
        });
        for org in orgs {
            self.view(&org).await?;
        }
        Ok(())
    }

    /// Keeps the drift gauges current: on every activation announcement (the active revision
    /// changed) and every 30 s (sidecars turn stale without reporting). Also starts input
    /// retention ([`retention`]) when some org has a retention period.
    pub fn spawn_background(&self, hub: crate::activations::ActivationHub) {
        self.spawn_retention();
        let service = self.clone();
        let mut changes = hub.subscribe();
        tokio::spawn(async move {
            loop {
                if let Err(e) = service.refresh_all_gauges().await {
                    tracing::warn!(error = %e, "fleet drift gauges not refreshed");
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { break },
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
            }
        });
    }

    /// Appends every decision of a validated batch to `org`'s ledger exactly once (see the
    /// module header), returning after all of them are durable.
    pub async fn ingest(
        &self,
        org: &str,
        batch: Vec<SidecarDecision>,
    ) -> EnforceResult<IngestOutcome> {
        let mut outcome = IngestOutcome {
            received: batch.len(),
            ..IngestOutcome::default()
        };
        if batch.is_empty() {
            return Ok(outcome);
        }
        // Validate every ledger event before claiming anything.
        let mut prepared: Vec<Prepared> = Vec::with_capacity(batch.len());
        for d in batch {
            let event = Event::new(EventType::DecisionSidecar, d.body)
                .map_err(|e| EnforceError::invalid("invalid_decision_log", e.to_string()))?;
            prepared.push((d.decision_id, event, d.input));
        }
        let size_at_claim = self.ledger.reader().size(org).await?;
        let claim = new_id("clm");
        let claimed = self.claim(org, &claim, size_at_claim, &prepared).await?;

        let mut to_append: Vec<usize> = Vec::new();
        let mut others: Vec<usize> = Vec::new();
        for (i, (id, _, _)) in prepared.iter().enumerate() {
            if claimed.contains(id.as_str()) {
                to_append.push(i);
            } else {
                others.push(i);
            }
        }
        let prior = self.resolve_prior(org, &claim, &prepared, others).await?;
        outcome.duplicates += prior.duplicates;
        to_append.extend(prior.append);
        to_append.sort_unstable();
        self.append_and_commit(org, &claim, &prepared, &to_append, prior.durable)
            .await?;
        outcome.appended = to_append.len();
        metrics::counter!("sck_fleet_decisions_ingested_total", "org" => org.to_owned())
            .increment(outcome.appended as u64);
        metrics::counter!("sck_fleet_decisions_duplicate_total", "org" => org.to_owned())
            .increment(outcome.duplicates as u64);
        if prior.in_progress > 0 {
            return Err(EnforceError::new(Kind::Unavailable,
                "ingest_in_progress",
                format!(
                    "{} decision(s) of this upload are being recorded by another request; retry later",
                    prior.in_progress
                ),
            ));
        }
        Ok(outcome)
    }

    /// What became of the decision ids (`others`, indexes into `prepared`) that some request
    /// claimed before this one: committed (duplicates), still in progress, or stale — taken
    /// over, and found by a scan of the log from the claim's recorded size (durable, their
    /// inputs stored with our commit) or not (to append).
    async fn resolve_prior(
        &self,
        org: &str,
        claim: &str,
        prepared: &[Prepared],
        others: Vec<usize>,
    ) -> EnforceResult<Prior> {
        let mut prior = Prior::default();
        let mut recovered: Vec<(usize, i64)> = Vec::new();
        for i in others {
            match self.take_over(org, &prepared[i].0, claim).await? {
                Existing::Committed => prior.duplicates += 1,
                Existing::InProgress => prior.in_progress += 1,
                Existing::Recovered { scan_from } => recovered.push((i, scan_from)),
            }
        }
        if let Some(from) = recovered.iter().map(|(_, f)| *f).min() {
            let found = self.scan_for(org, from.max(0) as u64).await?;
            for (i, _) in recovered {
                if let Some(&seq) = found.get(&prepared[i].0) {
                    prior.duplicates += 1;
                    prior.durable.push((i, seq));
                } else {
                    prior.append.push(i);
                }
            }
        }
        Ok(prior)
    }

    /// Appends the decisions `to_append` (indexes into `prepared`) in one group commit, then
    /// commits the claim with the kept inputs of everything durable (`durable` holds what was
    /// durable before). When an append fails, the claim is settled for what succeeded (best
    /// effort: the lease recovers the rest) and the upload is refused as unavailable.
    async fn append_and_commit(
        &self,
        org: &str,
        claim: &str,
        prepared: &[Prepared],
        to_append: &[usize],
        mut durable: Vec<(usize, u64)>,
    ) -> EnforceResult<()> {
        let appends = to_append.iter().map(|&i| {
            let (_, event, _) = &prepared[i];
            self.ledger.append(org, event.clone())
        });
        let results = futures_util::future::join_all(appends).await;
        durable.extend(
            to_append
                .iter()
                .zip(&results)
                .filter_map(|(&i, r)| r.as_ref().ok().map(|receipt| (i, receipt.seq))),
        );
        let inputs: Vec<InputRow<'_>> = durable
            .iter()
            .filter_map(|&(i, seq)| {
                let (id, _, input) = &prepared[i];
                input.as_ref().map(|input| (id.as_str(), seq, input))
            })
            .collect();
        let (done, failed): (Vec<_>, Vec<_>) = to_append
            .iter()
            .zip(&results)
            .map(|(&i, r)| (prepared[i].0.as_str(), r.is_ok()))
            .partition(|(_, ok)| *ok);
        if failed.is_empty() {
            return self.commit_claim(org, claim, &inputs).await;
        }
        let done: Vec<&str> = done.into_iter().map(|(id, _)| id).collect();
        let failed: Vec<&str> = failed.into_iter().map(|(id, _)| id).collect();
        if let Err(e) = self
            .settle_partial(org, claim, &done, &failed, &inputs)
            .await
        {
            tracing::warn!(error = %e, "fleet claims left for lease recovery");
        }
        let error = results
            .into_iter()
            .find_map(Result::err)
            .map(|e| e.to_string())
            .unwrap_or_default();
        Err(EnforceError::unavailable("ledger", error))
    }

    /// Inserts `claimed` rows for the decision ids nobody holds; returns the ids now ours.
    async fn claim(
        &self,
        org: &str,
        claim: &str,
        size_at_claim: u64,
        prepared: &[Prepared],
    ) -> EnforceResult<HashSet<String>> {
        let mut claimed = HashSet::new();
        let at = unix_now();
        let size = size_at_claim as i64;
        with_pool!(&self.store, pool => {
            let mut tx = pool.begin_write().await?;
            for chunk in prepared.chunks(CLAIM_CHUNK) {
                let sql = claim_sql(chunk.len());
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (id, _, _) in chunk {
                    query = query.bind(org).bind(id).bind(claim).bind(size).bind(at).bind("claimed");
                }
                for row in query.fetch_all(&mut *tx).await? {
                    claimed.insert(row.try_get::<String, _>("decision_id")?);
                }
            }
            tx.commit().await?;
        });
        Ok(claimed)
    }

    /// Looks at a decision id someone claimed earlier; takes a stale claim over.
    async fn take_over(
        &self,
        org: &str,
        decision_id: &str,
        claim: &str,
    ) -> EnforceResult<Existing> {
        let lease_start = unix_now() - self.config.claim_lease_secs as i64;
        let existing = with_pool!(&self.store, pool => {
            let row = sqlx::query(
                "SELECT state, claim_id, claimed_at_unix, log_size_at_claim FROM fleet_decisions \
                 WHERE org_id = $1 AND decision_id = $2",
            )
            .bind(org)
            .bind(decision_id)
            .fetch_optional(pool)
            .await?;
            match row {
                // Vanished rows cannot happen (no deletes); treat as in progress to be safe.
                None => Existing::InProgress,
                Some(row) => {
                    let state: String = row.try_get("state")?;
                    let holder: String = row.try_get("claim_id")?;
                    let at: i64 = row.try_get("claimed_at_unix")?;
                    let scan_from: i64 = row.try_get("log_size_at_claim")?;
                    if state == "committed" {
                        Existing::Committed
                    } else if at >= lease_start {
                        Existing::InProgress
                    } else {
                        let taken = sqlx::query(
                            "UPDATE fleet_decisions SET claim_id = $1, claimed_at_unix = $2 \
                             WHERE org_id = $3 AND decision_id = $4 AND claim_id = $5 AND state = 'claimed'",
                        )
                        .bind(claim)
                        .bind(unix_now())
                        .bind(org)
                        .bind(decision_id)
                        .bind(&holder)
                        .execute(pool)
                        .await?
                        .rows_affected();
                        if taken == 1 {
                            Existing::Recovered { scan_from }
                        } else {
                            Existing::InProgress
                        }
                    }
                }
            }
        });
        Ok(existing)
    }

    /// Decision ids (and seqs) of the `decision.sidecar` entries of `org` from `from` on.
    async fn scan_for(&self, org: &str, from: u64) -> EnforceResult<HashMap<String, u64>> {
        let reader = self.ledger.reader();
        let mut found = HashMap::new();
        let mut next = from;
        let end = reader.size(org).await?;
        while next < end {
            let page = reader.entries(org, next, SCAN_PAGE).await?;
            if page.is_empty() {
                break;
            }
            for (seq, leaf, _) in &page {
                next = next.max(seq + 1);
                let Ok(entry) = serde_json::from_slice::<Value>(leaf) else {
                    continue;
                };
                if entry["type"] == "decision.sidecar" {
                    if let Some(id) = entry["body"]["decision_id"].as_str() {
                        found.insert(id.to_owned(), *seq);
                    }
                }
            }
        }
        Ok(found)
    }

    /// Marks every claim of this request committed (its entries are durable), storing the
    /// kept inputs of those entries in the same transaction.
    async fn commit_claim(
        &self,
        org: &str,
        claim: &str,
        inputs: &[InputRow<'_>],
    ) -> EnforceResult<()> {
        with_pool!(&self.store, pool => {
            let mut tx = pool.begin_write().await?;
            retention::insert_inputs(&mut tx, org, inputs).await?;
            sqlx::query(
                "UPDATE fleet_decisions SET state = 'committed' WHERE org_id = $1 AND claim_id = $2 AND state = 'claimed'",
            )
            .bind(org)
            .bind(claim)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// After a partly failed append: commits what is durable and makes the rest recoverable
    /// at once (a failed append may still have committed, so it is scanned for, never assumed).
    async fn settle_partial(
        &self,
        org: &str,
        claim: &str,
        done: &[&str],
        failed: &[&str],
        inputs: &[InputRow<'_>],
    ) -> EnforceResult<()> {
        with_pool!(&self.store, pool => {
            let mut tx = pool.begin_write().await?;
            retention::insert_inputs(&mut tx, org, inputs).await?;
            for id in done {
                sqlx::query("UPDATE fleet_decisions SET state = 'committed' WHERE org_id = $1 AND decision_id = $2 AND claim_id = $3")
                    .bind(org).bind(*id).bind(claim).execute(&mut *tx).await?;
            }
            for id in failed {
                sqlx::query("UPDATE fleet_decisions SET claimed_at_unix = 0 WHERE org_id = $1 AND decision_id = $2 AND claim_id = $3")
                    .bind(org).bind(*id).bind(claim).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// A validated event of an upload: decision id, ledger event, input to keep.
type Prepared = (String, Event, Option<StoredInput>);

/// A kept input ready for `fleet_inputs`: decision id, entry seq, the input.
type InputRow<'a> = (&'a str, u64, &'a StoredInput);
/// The decision ids of an upload that an earlier request had claimed (see
/// [`FleetService::resolve_prior`]).
#[derive(Debug, Default)]
struct Prior {
    duplicates: usize,
    in_progress: usize,
    /// Stale claims whose entries the log does not hold: to append.
    append: Vec<usize>,
    /// Stale claims whose entries the log holds, with their `seq`.
    durable: Vec<(usize, u64)>,
}

/// What a decision id claimed before this request is.
enum Existing {
    Committed,
    InProgress,
    Recovered { scan_from: i64 },
}

/// `INSERT ... VALUES (...), ... ON CONFLICT DO NOTHING RETURNING decision_id` for `rows` rows.
fn claim_sql(rows: usize) -> String {
    retention::values_sql(
        "INSERT INTO fleet_decisions (org_id, decision_id, claim_id, log_size_at_claim, claimed_at_unix, state) VALUES ",
        rows,
        6,
        " ON CONFLICT (org_id, decision_id) DO NOTHING RETURNING decision_id",
    )
}

fn set_gauges(org: &str, live: u64, drifted: u64, stale: u64) {
    metrics::gauge!("sck_fleet_sidecars", "org" => org.to_owned()).set(live as f64);
    metrics::gauge!("sck_fleet_sidecars_drifted", "org" => org.to_owned()).set(drifted as f64);
    metrics::gauge!("sck_fleet_sidecars_stale", "org" => org.to_owned()).set(stale as f64);
}
