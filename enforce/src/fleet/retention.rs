//! Retention of stored decision inputs: the masked inputs orgs with `store_input` keep in
//! `fleet_inputs` are deleted once older than the org's `input_retention_days` (by the
//! background task of `sck serve`) or on demand (`sck ledger prune-inputs`). Ledger entries
//! are never touched: a leaf holds only the input's SHA-256, so every entry still verifies.
//!
//! A run deletes in batches, each in its own transaction that also adds the batch's count to
//! the run's row in `fleet_input_prunes` (`pending`). When the run is done it appends one
//! `retention.inputs_pruned` entry (run id, count, cutoff) to the org's log and marks the row
//! `logged`. A run that crashed before its entry was durable leaves a `pending` row whose
//! lease runs out; the next run on any replica takes it over (compare-and-set on the lease)
//! and appends the entry then, so no deletion goes unrecorded.
//!
//! Several replicas may prune at once: on PostgreSQL a batch locks its rows with
//! `FOR UPDATE SKIP LOCKED` (a row is deleted, and counted, by exactly one run); on SQLite
//! `BEGIN IMMEDIATE` serialises the batches.

use std::time::Duration;

use sck_ledger::entry::{format_timestamp, EventType};
use sck_ledger::store::BeginWrite;
use sck_ledger::store::{Backend, Store};
use serde_json::{json, Value};
use sqlx::Row;
use time::OffsetDateTime;

use super::{FleetService, InputRow};
use crate::clock::unix_now;
use crate::db::{new_id, with_pool};
use crate::error::{EnforceError, EnforceResult};

/// Rows deleted per transaction.
const BATCH: i64 = 500;
/// Rows per multi-row insert of stored inputs.
const INSERT_CHUNK: usize = 100;
/// How long a run owns its `pending` row before another run may log it.
const LEASE_SECS: i64 = 600;

/// What one pruning run removed from one org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub org: String,
    pub count: u64,
    pub cutoff: OffsetDateTime,
}

/// Microseconds since the epoch, as `stored_at_us` and `cutoff_us` hold them.
fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// `now` minus `days`; `None` when that is before anything can have been stored.
pub fn cutoff(now: OffsetDateTime, days: u64) -> Option<OffsetDateTime> {
    let seconds = i64::try_from(days.checked_mul(86_400)?).ok()?;
    now.checked_sub(time::Duration::seconds(seconds))
}

/// Stores the kept inputs of durable entries (inside the caller's transaction). A decision id
/// already present keeps its row, so a recovered retry never duplicates or revives one.
pub(super) async fn insert_inputs<'c, DB>(
    tx: &mut sqlx::Transaction<'c, DB>,
    org: &str,
    inputs: &[InputRow<'_>],
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let at = OffsetDateTime::now_utc();
    let (stored_at, stored_at_us) = (format_timestamp(at), micros(at));
    for chunk in inputs.chunks(INSERT_CHUNK) {
        let sql = values_sql(
            "INSERT INTO fleet_inputs (org_id, decision_id, seq, input, masked, stored_at, stored_at_us) VALUES ",
            chunk.len(),
            7,
            " ON CONFLICT (org_id, decision_id) DO NOTHING",
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for &(decision_id, seq, stored) in chunk {
            query = query
                .bind(org)
                .bind(decision_id)
                .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                .bind(stored.input.to_string())
                .bind(json!(stored.masked).to_string())
                .bind(stored_at.clone())
                .bind(stored_at_us);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// `<prefix>($1, ..., $cols), (...), ...<suffix>` for `rows` rows.
pub(super) fn values_sql(prefix: &str, rows: usize, cols: usize, suffix: &str) -> String {
    let mut sql = String::from(prefix);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        let params: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
        sql.push('(');
        sql.push_str(&params.join(", "));
        sql.push(')');
    }
    sql.push_str(suffix);
    sql
}

/// The stored inputs of `org` (one decision, or all), oldest first, as JSON objects with
/// `decision_id`, `seq`, `stored_at`, `input` and `masked`.
pub async fn stored_inputs(
    store: &Store,
    org: &str,
    decision_id: Option<&str>,
) -> Result<Vec<Value>, sqlx::Error> {
    let mut out = Vec::new();
    with_pool!(store, pool => {
        let rows = sqlx::query(
            "SELECT decision_id, seq, input, masked, stored_at FROM fleet_inputs \
             WHERE org_id = $1 AND ($2 IS NULL OR decision_id = $2) ORDER BY stored_at_us, decision_id",
        )
        .bind(org)
        .bind(decision_id)
        .fetch_all(pool)
        .await?;
        for row in rows {
            let parse = |column: &str| -> Result<Value, sqlx::Error> {
                let text: String = row.try_get(column)?;
                serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(e.into()))
            };
            out.push(json!({
                "decision_id": row.try_get::<String, _>("decision_id")?,
                "seq": row.try_get::<i64, _>("seq")?,
                "stored_at": row.try_get::<String, _>("stored_at")?,
                "input": parse("input")?,
                "masked": parse("masked")?,
            }));
        }
    });
    Ok(out)
}

impl FleetService {
    /// Whether any org has a retention period (the background task runs only then).
    pub fn retention_configured(&self) -> bool {
        self.default_policy.input_retention_days.is_some()
            || self
                .config
                .orgs
                .values()
                .any(|p| p.input_retention_days.is_some())
    }

    /// Deletes `org`'s inputs stored before `cutoff`; appends one `retention.inputs_pruned`
    /// entry if anything went. Returns how many were deleted.
    pub async fn prune_inputs(
        &self,
        org: &str,
        cutoff: OffsetDateTime,
        actor: &str,
    ) -> EnforceResult<u64> {
        self.log_abandoned_runs().await?;
        self.prune_org(org, cutoff, actor).await
    }

    /// Applies every org's `input_retention_days` as of `now`.
    pub async fn prune_expired(&self, now: OffsetDateTime) -> EnforceResult<Vec<Pruned>> {
        self.log_abandoned_runs().await?;
        let mut orgs: Vec<String> = Vec::new();
        with_pool!(&self.store, pool => {
            for row in sqlx::query("SELECT DISTINCT org_id FROM fleet_inputs").fetch_all(pool).await? {
                orgs.push(row.try_get("org_id")?);
            }
        });
        let mut out = Vec::new();
        for org in orgs {
            let Some(days) = self.input_policy(&org).input_retention_days else {
                continue;
            };
            let Some(cutoff) = cutoff(now, days) else {
                continue;
            };
            let count = self.prune_org(&org, cutoff, "system").await?;
            if count > 0 {
                out.push(Pruned { org, count, cutoff });
            }
        }
        Ok(out)
    }

    /// Prunes expired inputs now and every `[fleet] input_prune_interval_secs`.
    pub(super) fn spawn_retention(&self) {
        if !self.retention_configured() {
            return;
        }
        let service = self.clone();
        let every = Duration::from_secs(self.config.input_prune_interval_secs.max(1));
        tokio::spawn(async move {
            loop {
                match service.prune_expired(OffsetDateTime::now_utc()).await {
                    Ok(runs) => {
                        for run in runs {
                            tracing::info!(org = %run.org, count = run.count, "pruned stored decision inputs");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "stored decision inputs not pruned"),
                }
                tokio::time::sleep(every).await;
            }
        });
    }

    async fn prune_org(
        &self,
        org: &str,
        cutoff: OffsetDateTime,
        actor: &str,
    ) -> EnforceResult<u64> {
        let run = new_id("prn");
        let mut total = 0u64;
        loop {
            let deleted = self.prune_batch(org, &run, micros(cutoff), actor).await?;
            total += deleted;
            if deleted < BATCH as u64 {
                break;
            }
        }
        if total > 0 {
            self.log_run(&run).await?;
            metrics::counter!("sck_fleet_inputs_pruned_total", "org" => org.to_owned())
                .increment(total);
        }
        Ok(total)
    }

    /// Deletes up to [`BATCH`] expired rows and counts them in the run's pending row.
    async fn prune_batch(
        &self,
        org: &str,
        run: &str,
        cutoff_us: i64,
        actor: &str,
    ) -> EnforceResult<u64> {
        let backend = self.store.backend();
        let lock = match backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let delete = format!(
            "DELETE FROM fleet_inputs WHERE org_id = $1 AND decision_id IN (SELECT decision_id \
             FROM fleet_inputs WHERE org_id = $1 AND stored_at_us < $2 ORDER BY stored_at_us \
             LIMIT $3{lock})"
        );
        let deleted = with_pool!(&self.store, pool => {
            let mut tx = pool.begin_write().await?;
            let deleted = sqlx::query(sqlx::AssertSqlSafe(delete))
                .bind(org)
                .bind(cutoff_us)
                .bind(BATCH)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted > 0 {
                sqlx::query(
                    "INSERT INTO fleet_input_prunes (run_id, org_id, cutoff_us, pruned, actor, lease_until_unix, state) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending') ON CONFLICT (run_id) DO UPDATE SET \
                     pruned = fleet_input_prunes.pruned + excluded.pruned, lease_until_unix = excluded.lease_until_unix",
                )
                .bind(run)
                .bind(org)
                .bind(cutoff_us)
                .bind(deleted as i64)
                .bind(actor)
                .bind(unix_now() + LEASE_SECS)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            deleted
        });
        Ok(deleted)
    }

    /// Appends the entry of a run whose owner crashed (its lease ran out) — once: the lease is
    /// taken over by compare-and-set, so concurrent runs do not both log it.
    async fn log_abandoned_runs(&self) -> EnforceResult<()> {
        let now = unix_now();
        let mut stale: Vec<(String, i64)> = Vec::new();
        with_pool!(&self.store, pool => {
            for row in sqlx::query(
                "SELECT run_id, lease_until_unix FROM fleet_input_prunes WHERE state = 'pending' AND lease_until_unix < $1",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
            {
                stale.push((row.try_get("run_id")?, row.try_get("lease_until_unix")?));
            }
        });
        for (run, lease) in stale {
            let taken = with_pool!(&self.store, pool => {
                sqlx::query(
                    "UPDATE fleet_input_prunes SET lease_until_unix = $1 \
                     WHERE run_id = $2 AND state = 'pending' AND lease_until_unix = $3",
                )
                .bind(now + LEASE_SECS)
                .bind(&run)
                .bind(lease)
                .execute(pool)
                .await?
                .rows_affected()
            });
            if taken == 1 {
                self.log_run(&run).await?;
            }
        }
        Ok(())
    }

    /// Appends the `retention.inputs_pruned` entry of a pending run and marks it logged.
    async fn log_run(&self, run: &str) -> EnforceResult<()> {
        let row = with_pool!(&self.store, pool => {
            let row = sqlx::query(
                "SELECT org_id, cutoff_us, pruned, actor FROM fleet_input_prunes WHERE run_id = $1 AND state = 'pending'",
            )
            .bind(run)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => Some((
                    row.try_get::<String, _>("org_id")?,
                    row.try_get::<i64, _>("cutoff_us")?,
                    row.try_get::<i64, _>("pruned")?,
                    row.try_get::<String, _>("actor")?,
                )),
                None => None,
            }
        });
        let Some((org, cutoff_us, count, actor)) = row else {
            return Ok(());
        };
        let cutoff = OffsetDateTime::from_unix_timestamp_nanos(i128::from(cutoff_us) * 1000)
            .map_err(|e| EnforceError::internal("pruning run", e))?;
        let event = crate::events::event(
            EventType::RetentionInputsPruned,
            json!({
                "run_id": run,
                "count": count,
                "cutoff": format_timestamp(cutoff),
                "table": "fleet_inputs",
                "actor": actor,
            }),
        )?;
        self.ledger.append(&org, event).await?;
        with_pool!(&self.store, pool => {
            sqlx::query("UPDATE fleet_input_prunes SET state = 'logged' WHERE run_id = $1")
                .bind(run)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_never_overflow() {
        let now = time::macros::datetime!(2026-11-23 12:00 UTC);
        assert_eq!(
            cutoff(now, 2),
            Some(time::macros::datetime!(2026-11-21 12:00 UTC))
        );
        assert_eq!(cutoff(now, 0), Some(now));
        assert_eq!(cutoff(now, u64::MAX), None);
        assert_eq!(cutoff(now, 1 << 40), None);
    }

    #[test]
    fn values_sql_numbers_every_parameter() {
        assert_eq!(
            values_sql(
                "INSERT INTO t (a, b) VALUES ",
                2,
                2,
                " ON CONFLICT DO NOTHING"
            ),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
    }
}
