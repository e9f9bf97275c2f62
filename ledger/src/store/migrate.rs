//! A small versioned migration runner shared by every sck component.
//!
//! Each [`Migration`] carries SQL for both backends. Applied versions are recorded per
//! component in `sck_schema_migrations`; each version runs in its own transaction together
//! with its record, so a crash never leaves a half-applied version. Starters serialise on a
//! PostgreSQL advisory lock or on SQLite's write lock.

use sqlx::{Connection, Row};

use super::Store;
use crate::error::{LedgerError, Result};

/// One schema version of one component.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Owning component, e.g. `"ledger"` or `"bundles"`.
    pub component: &'static str,
    /// Version number, increasing from 1 within the component.
    pub version: i64,
    /// Short description.
    pub name: &'static str,
    /// SQL script for SQLite (may hold several statements).
    pub sqlite: &'static str,
    /// SQL script for PostgreSQL (may hold several statements).
    pub postgres: &'static str,
}

const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS sck_schema_migrations (
    component TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (component, version))";
const PG_TABLE: &str = "CREATE TABLE IF NOT EXISTS sck_schema_migrations (
    component TEXT NOT NULL, version BIGINT NOT NULL, name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version))";
/// Arbitrary constant key of the advisory lock that serialises migrations.
const PG_LOCK_KEY: i64 = 0x73636b_6d696772;

fn failed(m: &Migration, source: sqlx::Error) -> LedgerError {
    LedgerError::Migration {
        component: m.component.to_owned(),
        version: m.version,
        name: m.name.to_owned(),
        source,
    }
}

/// Applies every migration in `migrations` not yet recorded, in version order.
pub async fn run(store: &Store, migrations: &[Migration]) -> Result<()> {
    let mut sorted: Vec<&Migration> = migrations.iter().collect();
    sorted.sort_by_key(|m| (m.component, m.version));
    match store {
        Store::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            sqlx::query(SQLITE_TABLE).execute(&mut *conn).await?;
            for m in sorted {
                let mut tx = conn.begin_with(super::SQLITE_BEGIN_WRITE).await?;
                let done = sqlx::query(
                    "SELECT 1 FROM sck_schema_migrations WHERE component = $1 AND version = $2",
                )
                .bind(m.component)
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?;
                if done.is_some() {
                    continue;
                }
                sqlx::raw_sql(m.sqlite)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| failed(m, e))?;
                sqlx::query(
                    "INSERT INTO sck_schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                )
                .bind(m.component)
                .bind(m.version)
                .bind(m.name)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Store::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            for m in sorted {
                let mut tx = conn.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(PG_TABLE).execute(&mut *tx).await?;
                let done: Option<i64> = sqlx::query(
                    "SELECT version FROM sck_schema_migrations WHERE component = $1 AND version = $2",
                )
                .bind(m.component)
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get(0));
                if done.is_some() {
                    continue;
                }
                sqlx::raw_sql(m.postgres)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| failed(m, e))?;
                sqlx::query(
                    "INSERT INTO sck_schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                )
                .bind(m.component)
                .bind(m.version)
                .bind(m.name)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
    }
    Ok(())
}
