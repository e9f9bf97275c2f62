//! The storage layer every part of sck shares: SQLite by default, PostgreSQL on request.
//!
//! [`Store::open`] takes a database URL — a file path or `sqlite:` URL (SQLite, a single file in
//! WAL mode with `synchronous=FULL`, created with its directory on first start) or a
//! `postgres://` URL — connects, and runs every pending migration before returning. Two concrete
//! sqlx pools sit behind the [`Store`] enum because the `Any` driver cannot set SQLite pragmas.
//! All SQL is checked at run time (no sqlx macros, no database needed to build).
//!
//! # Adding tables for another part of sck
//! Define a `&'static [Migration]` with your own `component` name (e.g. `"bundles"`), one entry
//! per schema version with the SQL for each backend, and pass it to [`Store::migrate`] at start
//! (or to [`Store::open`] together with [`crate::schema::MIGRATIONS`]). Versions are applied in
//! order, once, each in its own transaction, recorded in `sck_schema_migrations`; concurrent
//! starters serialise (PostgreSQL advisory lock, SQLite `BEGIN IMMEDIATE`). Then use
//! [`Store::sqlite`] / [`Store::postgres`] for your queries.

pub mod migrate;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::Connection;

pub use migrate::Migration;

use crate::error::{LedgerError, Result};

/// The database used when none is configured: a SQLite file under `sck-data/`.
pub const DEFAULT_DATABASE_URL: &str = "sck-data/sck.db";

/// Environment variable naming the database (same as `--database-url`).
pub const DATABASE_URL_ENV: &str = "SCK_DATABASE_URL";

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A single SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A connection pool to the sck database.
#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite pool (WAL, `synchronous=FULL`, foreign keys on).
    Sqlite(SqlitePool),
    /// PostgreSQL pool.
    Postgres(PgPool),
}

/// WAL pages after which a SQLite commit checkpoints (see where the connections are opened).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 500;

/// What opens a writing transaction on SQLite (see [`BeginWrite`]); for code holding a
/// connection rather than the pool.
pub const SQLITE_BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The one way sck opens a transaction that writes, on either backend: `BEGIN IMMEDIATE` on
/// SQLite (the write lock is taken at the start, so a transaction that reads and then writes
/// never fails half-way with `SQLITE_BUSY` or deadlocks against another writer), a plain
/// `BEGIN` on PostgreSQL (where rows are locked by the statements, `FOR UPDATE`). Used inside
/// `match store { Store::Sqlite(pool) | Store::Postgres(pool) => ... }` bodies written once
/// for both pools.
pub trait BeginWrite {
    type Database: sqlx::Database;

    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = std::result::Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>,
    > + Send;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;

    async fn begin_write(
        &self,
    ) -> std::result::Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with(SQLITE_BEGIN_WRITE).await
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;

    async fn begin_write(
        &self,
    ) -> std::result::Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// Tuning for [`Store::connect_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Maximum pool connections.
    pub max_connections: u32,
    /// How long a SQLite writer waits for another process's write lock.
    pub busy_timeout: Duration,
    /// How long a PostgreSQL query waits for a connection (including reconnecting to a server
    /// that went away) before failing. Well below the HTTP request timeout, so an unreachable
    /// database becomes a prompt `503 unavailable` rather than a hung request.
    pub pg_acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            busy_timeout: Duration::from_secs(30),
            pg_acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Holds one more connection to the SQLite file open until `pool` is closed or dropped.
///
/// A connection that opens the file after every other one closed rebuilds the WAL index
/// (`-shm`), which needs disk space: on a full disk, reads would stop as soon as the pool had
/// recycled its connections (it closes those a failed write left unusable).
async fn keep_wal_index_open(pool: &SqlitePool, opts: &SqliteConnectOptions) -> Result<()> {
    let keeper = SqliteConnection::connect_with(opts).await?;
    let closed = pool.close_event();
    tokio::spawn(async move {
        closed.await;
        let _ = keeper.close().await;
    });
    Ok(())
}

impl Store {
    /// Connects to `url` and applies `migrations` (each set in order).
    pub async fn open(url: &str, migrations: &[&[Migration]]) -> Result<Store> {
        let store = Store::connect_with(url, &StoreOptions::default()).await?;
        for set in migrations {
            store.migrate(set).await?;
        }
        Ok(store)
    }

    /// Connects to `url` without running migrations.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.pg_acquire_timeout)
                .connect_with(opts)
                .await?;
            return Ok(Store::Postgres(pool));
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if url.contains("://") {
            return Err(LedgerError::UnsupportedDatabase);
        } else {
            url
        };
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() || path == ":memory:" {
            return Err(LedgerError::UnsupportedDatabase);
        }
        if let Some(dir) = Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Statement journals (a multi-row insert's undo for its own rollback) stay in
            // memory: on the default file store SQLite spilled them into a temp file it
            // created and unlinked every other batch. The WAL, not these, makes commits durable.
            .pragma("temp_store", "memory")
            // The WAL is copied into the database by the commit that finds it past this many
            // pages, inside that commit: its size is what the requests waiting on that batch
            // (and those queued behind it) add to their latency. 500 pages instead of SQLite's
            // 1000 halves that stall; same throughput, p99 of decisions 18% lower
            // (docs/benchmarks.md, "WAL checkpoints").
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
            .busy_timeout(options.busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(Duration::from_secs(60))
            .after_release(|conn, _| {
                Box::pin(async move {
                    // After an I/O error (a full disk) SQLite may roll a transaction back by
                    // itself; sqlx's own ROLLBACK then fails and the connection keeps counting
                    // itself inside a transaction, refusing every later BEGIN. The ping runs
                    // after any queued rollback; a connection still "in a transaction" is closed.
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(opts.clone())
            .await?;
        keep_wal_index_open(&pool, &opts).await?;
        Ok(Store::Sqlite(pool))
    }

    /// Applies the pending migrations of one component.
    pub async fn migrate(&self, migrations: &[Migration]) -> Result<()> {
        migrate::run(self, migrations).await
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite pool, when this is a SQLite store.
    pub fn sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Store::Sqlite(p) => Some(p),
            Store::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, when this is a PostgreSQL store.
    pub fn postgres(&self) -> Option<&PgPool> {
        match self {
            Store::Postgres(p) => Some(p),
            Store::Sqlite(_) => None,
        }
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(p) => p.close().await,
            Store::Postgres(p) => p.close().await,
        }
    }
}
