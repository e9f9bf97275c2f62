//! The single writer task: group commit, chain and tree extension, checkpoint signing.
//!
//! Invariant: a [`Receipt`] is sent only after the transaction holding its entry (and its
//! companion row, [`crate::companion`]) committed.
//! Every request queued while a commit is in flight joins the next batch, so many entries
//! share one transaction and one fsync. Each batch locks the head row of every org it touches
//! (sorted, so replicas cannot deadlock), reloads its cached frontier when another process
//! moved the head, appends entries and the new complete-subtree hashes, moves the head, and —
//! when K entries have accumulated — signs a checkpoint after checking it is consistent with
//! the previous one. Timed (T seconds) and shutdown checkpoints use the same path.
//!
//! Metrics: `sck_ledger_batch_entries` and `sck_ledger_commit_seconds` per committed batch,
//! `sck_ledger_checkpoint_timestamp_seconds{org}` when a checkpoint is signed (its age is
//! `time() - ` that gauge).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Postgres, Sqlite};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::checkpoint::Checkpoint;
use crate::entry::{format_timestamp, genesis_prev, origin, seal, validate_org, Event};
use crate::error::{LedgerError, Result};
use crate::keys::LedgerKey;
use crate::log_store::{Conn, Head, StoredCheckpoint};
use crate::merkle::{consistency_proof, required_nodes, verify_consistency, Frontier, Hash};
use crate::store::{Store, SQLITE_BEGIN_WRITE};

/// Proof that an entry was durably committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The org log.
    pub org: String,
    /// The entry's position.
    pub seq: u64,
    /// SHA-256(0x00 || leaf bytes).
    pub leaf_hash: Hash,
}

/// Writer tuning.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Deployment name: origins are `<deployment>/<org>`.
    pub deployment: String,
    /// Sign a checkpoint once this many entries are unsigned (K).
    pub checkpoint_every: u64,
    /// Sign a checkpoint when entries have been unsigned this long (T).
    pub checkpoint_interval: Duration,
    /// Most entries committed in one transaction.
    pub max_batch: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            deployment: "sck".into(),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            max_batch: 4096,
        }
    }
}

/// How many times the writer yields to appenders before committing a batch.
const LINGER_YIELDS: u32 = 3;

pub(crate) enum Command {
    Append {
        org: String,
        event: Event,
        reply: oneshot::Sender<Result<Receipt>>,
    },
    Checkpoint {
        org: String,
        reply: oneshot::Sender<Result<Option<StoredCheckpoint>>>,
    },
    SetKey {
        key: LedgerKey,
        reply: oneshot::Sender<()>,
    },
    Shutdown {
        reply: oneshot::Sender<Result<()>>,
    },
}

/// What the writer remembers about a log between batches.
struct LogState {
    head: Head,
    frontier: Frontier,
    last_checkpoint: Option<(u64, Hash)>,
    last_checkpoint_at: Instant,
}

type Waiter = (Event, oneshot::Sender<Result<Receipt>>);

pub(crate) struct Writer {
    store: Store,
    key: LedgerKey,
    config: WriterConfig,
    logs: HashMap<String, LogState>,
    held: Option<Held>,
}

/// The writer's own database connection, kept from one batch to the next.
///
/// Taking a pooled connection per batch cost two extra round trips to the database (the
/// acquire, and the check sqlx runs on release) on top of the transaction's own statements.
/// After a failed transaction the connection is dropped, back to the pool whose release
/// check closes one left inside a transaction, and the next batch takes a fresh one.
enum Held {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Held {
    async fn acquire(store: &Store) -> Result<Held> {
        Ok(match store {
            Store::Sqlite(pool) => Held::Sqlite(pool.acquire().await?),
            Store::Postgres(pool) => Held::Postgres(pool.acquire().await?),
        })
    }
}

/// Runs `$body` inside one write transaction on the writer's held connection, committing on
/// success; the connection is kept only if the transaction committed.
macro_rules! in_transaction {
    ($writer:expr, $conn:ident => $body:expr) => {{
        let held = match $writer.held.take() {
            Some(held) => held,
            None => Held::acquire(&$writer.store).await?,
        };
        match held {
            Held::Sqlite(mut c) => {
                let mut tx = c.begin_with(SQLITE_BEGIN_WRITE).await?;
                let out = {
                    let mut $conn = Conn::Sqlite(&mut *tx);
                    $body
                };
                tx.commit().await?;
                $writer.held = Some(Held::Sqlite(c));
                out
            }
            Held::Postgres(mut c) => {
                let mut tx = c.begin().await?;
                let out = {
                    let mut $conn = Conn::Postgres(&mut *tx);
                    $body
                };
                tx.commit().await?;
                $writer.held = Some(Held::Postgres(c));
                out
            }
        }
    }};
}

impl Writer {
    pub(crate) fn new(store: Store, key: LedgerKey, config: WriterConfig) -> Self {
        Writer {
            store,
            key,
            config,
            logs: HashMap::new(),
            held: None,
        }
    }

    /// The writer loop: runs until shutdown or until every sender is dropped.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut carried: Option<Command> = None;
        loop {
            let cmd = match carried.take() {
                Some(c) => Some(c),
                None => {
                    let deadline = self.next_deadline();
                    tokio::select! {
                        c = rx.recv() => c,
                        _ = sleep_until_opt(deadline) => {
                            if let Err(e) = self.timed_checkpoints(false).await {
                                tracing::error!(error = %e, "timed ledger checkpoint failed");
                                self.logs.clear();
                            }
                            continue;
                        }
                    }
                }
            };
            match cmd {
                None => {
                    if let Err(e) = self.timed_checkpoints(true).await {
                        tracing::error!(error = %e, "final ledger checkpoint failed");
                    }
                    return;
                }
                Some(Command::Append { org, event, reply }) => {
                    let mut batch = vec![(org, (event, reply))];
                    // Drain what is queued; then yield a few times so appenders that were
                    // just answered can queue their next entry and share this commit.
                    let mut lingers = 0;
                    while batch.len() < self.config.max_batch && carried.is_none() {
                        match rx.try_recv() {
                            Ok(Command::Append { org, event, reply }) => {
                                batch.push((org, (event, reply)))
                            }
                            Ok(other) => carried = Some(other),
                            Err(_) if lingers < LINGER_YIELDS => {
                                lingers += 1;
                                tokio::task::yield_now().await;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_batch(batch).await;
                }
                Some(Command::Checkpoint { org, reply }) => {
                    let r = self.checkpoint_org(&org).await;
                    if r.is_err() {
                        self.logs.clear();
                    }
                    let _ = reply.send(r);
                }
                Some(Command::SetKey { key, reply }) => {
                    self.key = key;
                    let _ = reply.send(());
                }
                Some(Command::Shutdown { reply }) => {
                    let r = self.timed_checkpoints(true).await;
                    let _ = reply.send(r);
                    return;
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.logs
            .values()
            .filter(|s| s.head.size > s.last_checkpoint.map_or(0, |c| c.0))
            .map(|s| s.last_checkpoint_at + self.config.checkpoint_interval)
            .min()
    }

    /// Commits one batch and answers every waiter.
    async fn commit_batch(&mut self, batch: Vec<(String, Waiter)>) {
        let mut groups: BTreeMap<String, Vec<Waiter>> = BTreeMap::new();
        for (org, waiter) in batch {
            if let Err(e) = validate_org(&org) {
                let _ = waiter.1.send(Err(e));
                continue;
            }
            groups.entry(org).or_default().push(waiter);
        }
        if groups.is_empty() {
            return;
        }
        let started = Instant::now();
        let result: Result<Vec<Vec<Result<Receipt>>>> = async {
            Ok(in_transaction!(self, conn => self.write_groups(&mut conn, &groups).await?))
        }
        .await;
        metrics::histogram!("sck_ledger_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("sck_ledger_batch_entries")
            .record(groups.values().map(Vec::len).sum::<usize>() as f64);
        match result {
            Ok(all) => {
                for (receipts, waiters) in all.into_iter().zip(groups.into_values()) {
                    for (r, (_, reply)) in receipts.into_iter().zip(waiters) {
                        let _ = reply.send(r);
                    }
                }
            }
            Err(e) => {
                self.logs.clear();
                let msg = e.to_string();
                tracing::error!(error = %msg, "ledger batch rolled back");
                for (_, reply) in groups.into_values().flatten() {
                    let _ = reply.send(Err(LedgerError::AppendFailed(msg.clone())));
                }
            }
        }
    }

    /// Locks the head of `org` and returns its state, reloading it if another writer moved it.
    async fn lock_log(&mut self, conn: &mut Conn<'_>, org: &str) -> Result<&mut LogState> {
        let origin = origin(&self.config.deployment, org);
        let head = conn.lock_head(org, &origin, &genesis_prev(&origin)).await?;
        let fresh = match self.logs.get(org) {
            Some(s) => {
                s.head.log_id != head.log_id
                    || s.head.size != head.size
                    || s.head.head_hash != head.head_hash
            }
            None => true,
        };
        if fresh {
            let ids = Frontier::node_ids(head.size);
            let nodes = conn.nodes(head.log_id, &ids).await?;
            let hashes = ids
                .iter()
                .map(|id| {
                    nodes.get(id).copied().ok_or_else(|| {
                        LedgerError::Inconsistent(format!("missing tree node {id:?} of `{org}`"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let frontier = Frontier::from_nodes(head.size, hashes)?;
            let last_checkpoint = conn.last_checkpoint(head.log_id).await?;
            self.logs.insert(
                org.to_owned(),
                LogState {
                    head,
                    frontier,
                    last_checkpoint,
                    last_checkpoint_at: Instant::now(),
                },
            );
        }
        self.logs
            .get_mut(org)
            .ok_or_else(|| LedgerError::Inconsistent("log state vanished".into()))
    }

    async fn write_groups(
        &mut self,
        conn: &mut Conn<'_>,
        groups: &BTreeMap<String, Vec<Waiter>>,
    ) -> Result<Vec<Vec<Result<Receipt>>>> {
        let now = OffsetDateTime::now_utc();
        for (event, _) in groups.values().flatten() {
            if let Some(row) = event.row() {
                conn.insert_row(row).await?;
            }
        }
        let mut out = Vec::with_capacity(groups.len());
        for (org, waiters) in groups {
            out.push(self.write_group(conn, org, waiters, now).await?);
        }
        Ok(out)
    }

    /// Appends one org's entries. The head is advanced by compare-and-set from the cached
    /// state, so the common case reads nothing; if another process moved the head, the state
    /// is reloaded under the head lock and the entries are sealed again.
    async fn write_group(
        &mut self,
        conn: &mut Conn<'_>,
        org: &str,
        waiters: &[Waiter],
        now: OffsetDateTime,
    ) -> Result<Vec<Result<Receipt>>> {
        let every = self.config.checkpoint_every.max(1);
        let cached = self.logs.contains_key(org);
        if !cached {
            self.lock_log(conn, org).await?;
        }
        let state = self
            .logs
            .get_mut(org)
            .ok_or_else(|| LedgerError::Inconsistent("log state vanished".into()))?;
        let sealed = Sealed::new(org, state, waiters, now);
        if sealed.rows.is_empty() {
            return Ok(sealed.receipts);
        }
        let log_id = state.head.log_id;
        let from = (state.head.size, &state.head.head_hash);
        if !conn
            .advance_head(log_id, from, (sealed.size, &sealed.head))
            .await?
        {
            if !cached {
                return Err(LedgerError::Inconsistent(format!(
                    "head of `{org}` moved while locked"
                )));
            }
            self.logs.remove(org);
            return Box::pin(self.write_group(conn, org, waiters, now)).await;
        }
        conn.insert_entries(log_id, state.head.size, &sealed.rows)
            .await?;
        conn.insert_nodes(log_id, &sealed.nodes).await?;
        state.head.size = sealed.size;
        state.head.head_hash = sealed.head;
        state.frontier = sealed.frontier;
        let signed = state.last_checkpoint.map_or(0, |c| c.0);
        if sealed.size - signed >= every {
            let key = self.key.clone();
            sign_checkpoint(conn, org, state, &key, now).await?;
        }
        Ok(sealed.receipts)
    }

    /// Checkpoints every log with unsigned entries whose interval elapsed (or all, if `all`).
    async fn timed_checkpoints(&mut self, all: bool) -> Result<()> {
        let now = Instant::now();
        let due: Vec<String> = self
            .logs
            .iter()
            .filter(|(_, s)| s.head.size > s.last_checkpoint.map_or(0, |c| c.0))
            .filter(|(_, s)| all || s.last_checkpoint_at + self.config.checkpoint_interval <= now)
            .map(|(org, _)| org.clone())
            .collect();
        for org in due {
            self.checkpoint_org(&org).await?;
        }
        Ok(())
    }

    /// Signs a checkpoint of `org` at its current size, if newer than the last one.
    async fn checkpoint_org(&mut self, org: &str) -> Result<Option<StoredCheckpoint>> {
        validate_org(org)?;
        let key = self.key.clone();
        let now = OffsetDateTime::now_utc();
        Ok(in_transaction!(self, conn => {
            let state = self.lock_log(&mut conn, org).await?;
            sign_checkpoint(&mut conn, org, state, &key, now).await?
        }))
    }
}

/// A batch of one org's entries sealed onto a log state, not yet written.
struct Sealed {
    rows: Vec<(Vec<u8>, Hash)>,
    nodes: Vec<(crate::merkle::NodeId, Hash)>,
    receipts: Vec<Result<Receipt>>,
    frontier: Frontier,
    size: u64,
    head: Hash,
}

impl Sealed {
    /// Seals each waiter's event at the next position after `state` (entries that cannot be
    /// sealed get their error and take no position).
    fn new(org: &str, state: &LogState, waiters: &[Waiter], now: OffsetDateTime) -> Sealed {
        let mut frontier = state.frontier.clone();
        let mut head = state.head.head_hash;
        let mut size = state.head.size;
        let mut rows = Vec::with_capacity(waiters.len());
        let mut nodes = Vec::with_capacity(waiters.len() * 2);
        let mut receipts = Vec::with_capacity(waiters.len());
        for (event, _) in waiters {
            match seal(org, size, now, &head, event) {
                Ok((bytes, hash)) => {
                    nodes.extend(frontier.push(hash));
                    rows.push((bytes, hash));
                    receipts.push(Ok(Receipt {
                        org: org.to_owned(),
                        seq: size,
                        leaf_hash: hash,
                    }));
                    head = hash;
                    size += 1;
                }
                Err(e) => receipts.push(Err(e)),
            }
        }
        Sealed {
            rows,
            nodes,
            receipts,
            frontier,
            size,
            head,
        }
    }
}

/// Signs and stores a checkpoint at the log's current size after checking consistency with
/// the previous checkpoint. Returns `None` when the last checkpoint already covers the log.
async fn sign_checkpoint(
    conn: &mut Conn<'_>,
    org: &str,
    state: &mut LogState,
    key: &LedgerKey,
    now: OffsetDateTime,
) -> Result<Option<StoredCheckpoint>> {
    let size = state.head.size;
    let root = state.frontier.root();
    if let Some((old_size, old_root)) = state.last_checkpoint {
        if old_size > size {
            return Err(LedgerError::Inconsistent(format!(
                "log shrank from checkpoint size {old_size} to {size}"
            )));
        }
        if old_size == size {
            return Ok(None);
        }
        let ids = required_nodes(|src| consistency_proof(src, old_size, size).map(|_| ()));
        let nodes = conn.nodes(state.head.log_id, &ids).await?;
        let proof = consistency_proof(&mut |id| nodes.get(&id).copied(), old_size, size)?;
        verify_consistency(old_size, size, &proof, &old_root, &root).map_err(|e| {
            LedgerError::Inconsistent(format!(
                "tree of size {size} is not consistent with checkpoint {old_size}: {e}"
            ))
        })?;
    } else if size == 0 {
        return Ok(None);
    }
    let checkpoint = Checkpoint {
        origin: state.head.origin.clone(),
        size,
        root,
    };
    let stored = StoredCheckpoint {
        size,
        root,
        note: key.sign(&checkpoint)?,
        key_name: key.name().to_owned(),
        created_at: format_timestamp(now),
    };
    conn.insert_checkpoint(state.head.log_id, &stored).await?;
    state.last_checkpoint = Some((size, root));
    state.last_checkpoint_at = Instant::now();
    metrics::gauge!("sck_ledger_checkpoint_timestamp_seconds", "org" => org.to_owned())
        .set(now.unix_timestamp() as f64);
    Ok(Some(stored))
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
